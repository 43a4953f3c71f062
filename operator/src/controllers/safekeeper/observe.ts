// Fetches the observations a Safekeeper reconcile needs (I/O only): member pods and each member's
// HTTP view (status, tenants, timelines). Interpretation lives in status.ts.
import type { Safekeeper } from '../../api/schema.js';
import { LABEL_CLUSTER, memberFqdn, names, ports } from '../../specs/meta.js';
import { type PodLike, podReady } from '../../specs/types.js';
import { kinds } from '../../runtime/kube.js';
import type { TimelineStatusJson } from '@walkeeper/dataplane/api';
import { DataPlaneClient, mapLimit, tlsFetch } from '../common/dataplane.js';
import { type ControllerContext, readSecretKey } from '../context.js';

export interface MemberReport {
  name: string;
  ordinal: number;
  pod: PodLike | undefined;
  podReady: boolean;
  /** Answered GET /v1/status. */
  reachable: boolean;
  error?: string;
  /** The member's data volume, when it reports one. */
  disk?: { usedBytes: number; totalBytes: number; highWater: boolean };
  /** Per "tenant/timeline": the member's view (only when reachable). */
  timelines: Record<string, Pick<TimelineStatusJson, 'flush_lsn' | 'commit_lsn'>>;
}

export function memberBaseUrl(pod: PodLike | undefined, sk: Safekeeper, ordinal: number, clusterDomain: string): string {
  const ip = pod?.status?.podIP;
  const host = ip ? (ip.includes(':') ? `[${ip}]` : ip) : memberFqdn(sk.metadata.name ?? '', sk.metadata.namespace ?? 'default', ordinal, clusterDomain);
  return `${sk.spec.tls ? 'https' : 'http'}://${host}:${ports.safekeeperHttp}`;
}

/** With TLS on, the CA (`ca.crt` of the TLS Secret) the members' certificates are verified against. */
export async function memberCa(ctx: ControllerContext, sk: Safekeeper): Promise<{ ca: string | undefined } | undefined> {
  if (!sk.spec.tls) return undefined;
  return { ca: await readSecretKey(ctx, sk.metadata.namespace ?? 'default', sk.spec.tls.secretRef.name, 'ca.crt') };
}

export async function adminToken(ctx: ControllerContext, sk: Safekeeper): Promise<string | undefined> {
  if (!sk.spec.auth) return undefined;
  return readSecretKey(ctx, sk.metadata.namespace ?? 'default', sk.spec.auth.secretRef.name, 'admin-token');
}

export async function listMemberPods(ctx: ControllerContext, sk: Safekeeper): Promise<Map<string, PodLike>> {
  const { items } = await ctx.client.list<PodLike>(kinds.Pod, sk.metadata.namespace, `${LABEL_CLUSTER}=${sk.metadata.name}`);
  return new Map(items.map((p) => [p.metadata.name ?? '', p]));
}

/**
 * A client for one member. With TLS on (`tls` from memberCa), requests go over HTTPS and the
 * certificate must be signed by the Secret's CA and name the member's DNS name, whatever
 * address the URL holds. An injected ctx.fetch (tests) is used as it is.
 */
export function memberClient(ctx: ControllerContext, sk: Safekeeper, pod: PodLike | undefined, ordinal: number, token: string | undefined, tls?: { ca: string | undefined }): DataPlaneClient {
  const { clusterDomain } = ctx.options;
  let fetch = ctx.fetch;
  if (!fetch && sk.spec.tls) {
    const servername = memberFqdn(sk.metadata.name ?? '', sk.metadata.namespace ?? 'default', ordinal, clusterDomain);
    fetch = tlsFetch({ ca: tls?.ca, servername, missingCa: `TLS is on but Secret ${sk.spec.tls.secretRef.name} has no ca.crt to verify safekeeper ${servername} with` });
  }
  return new DataPlaneClient(memberBaseUrl(pod, sk, ordinal, clusterDomain), { fetch, timeoutMs: ctx.options.httpTimeoutMs, token });
}

/** One member of a Safekeeper cluster as the fan-outs below see it. */
export interface MemberHandle {
  name: string;
  ordinal: number;
  pod: PodLike | undefined;
  /** a client for its HTTP API (credentials and CA read once per fan-out) */
  client(): DataPlaneClient;
}

/** Runs fn for every member, four at a time, with the admin token and CA read once. */
export async function forEachMember<T>(ctx: ControllerContext, sk: Safekeeper, pods: Map<string, PodLike>, fn: (m: MemberHandle) => Promise<T>): Promise<T[]> {
  const token = await adminToken(ctx, sk);
  const tls = await memberCa(ctx, sk);
  const ordinals = Array.from({ length: sk.spec.replicas }, (_, i) => i);
  return mapLimit(ordinals, 4, (ordinal) => {
    const name = names.safekeeperPod(sk.metadata.name ?? '', ordinal);
    const pod = pods.get(name);
    return fn({ name, ordinal, pod, client: () => memberClient(ctx, sk, pod, ordinal, token, tls) });
  });
}

/**
 * Disk use in status is rounded down to a hundredth of the volume: exact bytes change with every
 * write, and a status that changes on every pass is a write per member per pass for nothing a
 * reader needs (the safekeeper's metrics carry the exact figure; high water is reported exactly).
 */
export function coarseUsedBytes(used: number, total: number): number {
  const step = Math.max(1, Math.floor(total / 100));
  return Math.floor(used / step) * step;
}

export async function observeMembers(ctx: ControllerContext, sk: Safekeeper, pods: Map<string, PodLike>): Promise<MemberReport[]> {
  return forEachMember(ctx, sk, pods, async ({ name, ordinal, pod, client }) => {
    const report: MemberReport = { name, ordinal, pod, podReady: podReady(pod), reachable: false, timelines: {} };
    if (!pod || pod.metadata.deletionTimestamp) return report;
    const api = client();
    try {
      const status = await api.status();
      report.reachable = true;
      if (status.disk_used_bytes !== undefined && status.disk_total_bytes !== undefined) {
        const totalBytes = Number(status.disk_total_bytes);
        report.disk = { usedBytes: coarseUsedBytes(Number(status.disk_used_bytes), totalBytes), totalBytes, highWater: status.disk_high_water === true };
      }
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

/**
 * Reads the flush LSN of every timeline again on every member that answered before, after the
 * first round (which gave the commit LSNs) has completed. The restart gate compares these flush
 * LSNs with the earlier commit LSNs: reading the reference strictly before the flush positions
 * means the members' reads, which are never simultaneous, cannot make a member that is on the
 * live stream look behind. A member whose re-read fails keeps its first reading.
 */
export async function rereadFlush(ctx: ControllerContext, sk: Safekeeper, reports: MemberReport[]): Promise<MemberReport[]> {
  const pods = new Map(reports.flatMap((r) => (r.pod ? [[r.name, r.pod] as const] : [])));
  const byName = new Map(reports.map((r) => [r.name, r]));
  return forEachMember(ctx, sk, pods, async ({ name, client }) => {
    const before = byName.get(name)!;
    if (!before.reachable) return before;
    const api = client();
    const timelines = { ...before.timelines };
    try {
      for (const key of Object.keys(timelines)) {
        const [tenant, timeline] = key.split('/') as [string, string];
        const detail = await api.timeline(tenant, timeline);
        if (detail) timelines[key] = { flush_lsn: detail.flush_lsn, commit_lsn: timelines[key]!.commit_lsn };
      }
    } catch {
      // keep what the first round saw
    }
    return { ...before, timelines };
  });
}
