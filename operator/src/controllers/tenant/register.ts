// Registers the tenant and its timeline on every member of the Safekeeper cluster (idempotent: an
// existing tenant or timeline, 409, is fine) and reads each member's view of the timeline.
import type { Safekeeper } from '../../api/schema.js';
import type { PodLike } from '../../specs/types.js';
import type { TimelineStatusJson } from '@walkeeper/dataplane/api';
import type { ControllerContext } from '../context.js';
import { forEachMember } from '../safekeeper/observe.js';

export interface TenantMemberReport {
  name: string;
  registered: boolean;
  /** Registered during this pass. */
  createdNow: boolean;
  timeline?: TimelineStatusJson;
  error?: string;
}

export async function registerOnMembers(
  ctx: ControllerContext,
  sk: Safekeeper,
  pods: Map<string, PodLike>,
  tenantId: string,
  timelineId: string,
): Promise<TenantMemberReport[]> {
  return forEachMember(ctx, sk, pods, async ({ name, pod, client }): Promise<TenantMemberReport> => {
    if (!pod || pod.metadata.deletionTimestamp) return { name, registered: false, createdNow: false, error: 'pod does not exist' };
    const api = client();
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
  return forEachMember(ctx, sk, pods, async ({ name, pod, client }) => {
    if (!pod) return { name, ok: false, error: 'pod does not exist' };
    try {
      await client().deleteTenant(tenantId);
      return { name, ok: true };
    } catch (e) {
      return { name, ok: false, error: (e as Error).message };
    }
  });
}
