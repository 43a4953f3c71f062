// Registers the tenant and its timeline on every member of the Safekeeper cluster (idempotent: an
// existing tenant or timeline, 409, is fine) and reads each member's view of the timeline.
import type { Safekeeper } from '../../api/schema.js';
import { names } from '../../specs/meta.js';
import type { PodLike } from '../../specs/types.js';
import { mapLimit, type TimelineJson } from '../common/dataplane.js';
import type { ControllerContext } from '../context.js';
import { adminToken, memberCa, memberClient } from '../safekeeper/observe.js';

export interface TenantMemberReport {
  name: string;
  registered: boolean;
  /** Registered during this pass. */
  createdNow: boolean;
  timeline?: TimelineJson;
  error?: string;
}

export async function registerOnMembers(
  ctx: ControllerContext,
  sk: Safekeeper,
  pods: Map<string, PodLike>,
  tenantId: string,
  timelineId: string,
): Promise<TenantMemberReport[]> {
  const token = await adminToken(ctx, sk);
  const tls = await memberCa(ctx, sk);
  const ordinals = Array.from({ length: sk.spec.replicas }, (_, i) => i);
  return mapLimit(ordinals, 4, async (ordinal) => {
    const name = names.safekeeperPod(sk.metadata.name ?? '', ordinal);
    const pod = pods.get(name);
    if (!pod || pod.metadata.deletionTimestamp) return { name, registered: false, createdNow: false, error: 'pod does not exist' };
    const api = memberClient(ctx, sk, pod, ordinal, token, tls);
    try {
      let timeline = await api.timeline(tenantId, timelineId);
      let createdNow = false;
      if (!timeline) {
        await api.ensureTenant(tenantId);
        createdNow = await api.ensureTimeline(tenantId, timelineId);
        timeline = await api.timeline(tenantId, timelineId);
        if (!timeline) return { name, registered: false, createdNow, error: 'timeline created but not found on re-read' };
      }
      return { name, registered: true, createdNow, timeline };
    } catch (e) {
      return { name, registered: false, createdNow: false, error: (e as Error).message };
    }
  });
}

/** Removes the tenant from every member; a member that never had it (404) is fine. */
export async function deregisterFromMembers(
  ctx: ControllerContext,
  sk: Safekeeper,
  pods: Map<string, PodLike>,
  tenantId: string,
): Promise<Array<{ name: string; ok: boolean; error?: string }>> {
  const token = await adminToken(ctx, sk);
  const tls = await memberCa(ctx, sk);
  const ordinals = Array.from({ length: sk.spec.replicas }, (_, i) => i);
  return mapLimit(ordinals, 4, async (ordinal) => {
    const name = names.safekeeperPod(sk.metadata.name ?? '', ordinal);
    const pod = pods.get(name);
    if (!pod) return { name, ok: false, error: 'pod does not exist' };
    try {
      await memberClient(ctx, sk, pod, ordinal, token, tls).deleteTenant(tenantId);
      return { name, ok: true };
    } catch (e) {
      return { name, ok: false, error: (e as Error).message };
    }
  });
}
