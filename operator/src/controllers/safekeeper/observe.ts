// Fetches the observations a Safekeeper reconcile needs (I/O only): member pods and each member's
// HTTP view (status, tenants, timelines). Interpretation lives in status.ts.
import type { Safekeeper } from '../../api/schema.js';
import { LABEL_CLUSTER, memberFqdn, names, ports } from '../../specs/meta.js';
import { type PodLike, podReady } from '../../specs/types.js';
import { kinds } from '../../runtime/kube.js';
import { DataPlaneClient, mapLimit, type TimelineJson } from '../common/dataplane.js';
import { type ControllerContext, readSecretKey } from '../context.js';

export interface MemberReport {
  name: string;
  ordinal: number;
  pod: PodLike | undefined;
  podReady: boolean;
  /** Answered GET /v1/status. */
  reachable: boolean;
  error?: string;
  /** Per "tenant/timeline": the member's view (only when reachable). */
  timelines: Record<string, Pick<TimelineJson, 'flush_lsn' | 'commit_lsn'>>;
}

export function memberBaseUrl(pod: PodLike | undefined, sk: Safekeeper, ordinal: number, clusterDomain: string): string {
  const ip = pod?.status?.podIP;
  const host = ip ? (ip.includes(':') ? `[${ip}]` : ip) : memberFqdn(sk.metadata.name ?? '', sk.metadata.namespace ?? 'default', ordinal, clusterDomain);
  return `http://${host}:${ports.safekeeperHttp}`;
}

export async function adminToken(ctx: ControllerContext, sk: Safekeeper): Promise<string | undefined> {
  if (!sk.spec.auth) return undefined;
  return readSecretKey(ctx, sk.metadata.namespace ?? 'default', sk.spec.auth.secretRef.name, 'admin-token');
}

export async function listMemberPods(ctx: ControllerContext, sk: Safekeeper): Promise<Map<string, PodLike>> {
  const { items } = await ctx.client.list<PodLike>(kinds.Pod, sk.metadata.namespace, `${LABEL_CLUSTER}=${sk.metadata.name}`);
  return new Map(items.map((p) => [p.metadata.name ?? '', p]));
}

export function memberClient(ctx: ControllerContext, sk: Safekeeper, pod: PodLike | undefined, ordinal: number, token: string | undefined): DataPlaneClient {
  return new DataPlaneClient(memberBaseUrl(pod, sk, ordinal, ctx.options.clusterDomain), { fetch: ctx.fetch, timeoutMs: ctx.options.httpTimeoutMs, token });
}

export async function observeMembers(ctx: ControllerContext, sk: Safekeeper, pods: Map<string, PodLike>): Promise<MemberReport[]> {
  const token = await adminToken(ctx, sk);
  const ordinals = Array.from({ length: sk.spec.replicas }, (_, i) => i);
  return mapLimit(ordinals, 4, async (ordinal) => {
    const name = names.safekeeperPod(sk.metadata.name ?? '', ordinal);
    const pod = pods.get(name);
    const report: MemberReport = { name, ordinal, pod, podReady: podReady(pod), reachable: false, timelines: {} };
    if (!pod || pod.metadata.deletionTimestamp) return report;
    const api = memberClient(ctx, sk, pod, ordinal, token);
    try {
      await api.status();
      report.reachable = true;
      const { tenants } = await api.listTenants();
      for (const t of tenants) {
        for (const tl of t.timelines) {
          const detail = await api.timeline(t.tenant_id, tl);
          if (detail) report.timelines[`${t.tenant_id}/${tl}`] = { flush_lsn: detail.flush_lsn, commit_lsn: detail.commit_lsn };
        }
      }
    } catch (e) {
      report.error = (e as Error).message;
    }
    return report;
  });
}
