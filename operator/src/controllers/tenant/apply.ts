// Applies (or removes) the Tenant's compute: credentials Secret (password generated once and kept),
// Service and the PostgreSQL + proposer StatefulSet; reads the compute pod and the proposer's status.
import type { Safekeeper, Tenant } from '../../api/schema.js';
import { buildComputeService, buildComputeStatefulSet, buildSecret, type ComputeRecovery } from '../../specs/compute.js';
import { names, ports } from '../../specs/meta.js';
import { type KubeObject, type PodLike, podReady, type SecretLike } from '../../specs/types.js';
import { kinds } from '../../runtime/kube.js';
import { applyChild } from '../common/apply.js';
import { DataPlaneClient } from '../common/dataplane.js';
import type { ControllerContext } from '../context.js';
import type { ComputeObservation } from './status.js';

async function existingPassword(ctx: ControllerContext, namespace: string | undefined, tenantName: string): Promise<string | undefined> {
  const secret = await ctx.client.get<SecretLike>(kinds.Secret, namespace, names.computeSecret(tenantName));
  const v = secret?.data?.password;
  return v ? Buffer.from(v, 'base64').toString('utf8') : undefined;
}

export async function applyCompute(ctx: ControllerContext, tenant: Tenant, sk: Safekeeper, tenantId: string, timelineId: string, recovery?: ComputeRecovery): Promise<void> {
  const ns = tenant.metadata.namespace;
  // A recovered database has the source's roles: its first password is the source's.
  const password =
    (await existingPassword(ctx, ns, tenant.metadata.name ?? '')) ?? (recovery ? await existingPassword(ctx, ns, recovery.tenant) : undefined) ?? ctx.randomHex(16);
  const desired: KubeObject[] = [
    buildSecret(tenant, password, ctx.options.clusterDomain),
    buildComputeService(tenant),
    buildComputeStatefulSet({ tenant, safekeeper: sk, tenantId, timelineId, dataPlaneImage: sk.spec.image, options: { clusterDomain: ctx.options.clusterDomain }, recovery }),
  ];
  for (const obj of desired) {
    const out = await applyChild(ctx.client, obj, ctx.log);
    if (out.result !== 'unchanged') {
      ctx.events.record(tenant as unknown as KubeObject, 'Normal', out.result === 'created' ? 'Created' : 'Updated', `${out.result} ${obj.kind} ${obj.metadata.name}`);
    }
  }
}

/** Compute disabled: remove what an earlier spec created (reads first, so a steady state writes nothing). */
export async function removeCompute(ctx: ControllerContext, tenant: Tenant): Promise<void> {
  const n = tenant.metadata.name ?? '';
  const targets: Array<[typeof kinds.StatefulSet | typeof kinds.Service | typeof kinds.Secret, string]> = [
    [kinds.StatefulSet, names.computeStatefulSet(n)],
    [kinds.Service, names.computeService(n)],
    [kinds.Secret, names.computeSecret(n)],
  ];
  for (const [kind, name] of targets) {
    const obj = await ctx.client.get<KubeObject>(kind, tenant.metadata.namespace, name);
    if (!obj || obj.metadata.ownerReferences?.every((r) => r.uid !== tenant.metadata.uid)) continue;
    await ctx.client.delete(kind, tenant.metadata.namespace, name, { uid: obj.metadata.uid });
    ctx.events.record(tenant as unknown as KubeObject, 'Normal', 'ComputeRemoved', `deleted ${kind.kind} ${name} (compute disabled)`);
  }
}

export async function observeCompute(ctx: ControllerContext, tenant: Tenant): Promise<ComputeObservation> {
  const n = tenant.metadata.name ?? '';
  if (!tenant.spec.compute.enabled) return { enabled: false, podReady: false };
  const pod = await ctx.client.get<PodLike>(kinds.Pod, tenant.metadata.namespace, names.computePod(n));
  const obs: ComputeObservation = { enabled: true, podReady: podReady(pod), service: names.computeService(n), secret: names.computeSecret(n) };
  const ip = pod?.status?.podIP;
  if (ip && !pod?.metadata.deletionTimestamp) {
    const host = ip.includes(':') ? `[${ip}]` : ip;
    obs.proposerUrl = `http://${host}:${ports.proposerHttp}`;
    try {
      obs.proposer = await new DataPlaneClient(obs.proposerUrl, { fetch: ctx.fetch, timeoutMs: ctx.options.httpTimeoutMs }).proposerStatus();
    } catch (e) {
      obs.proposerError = (e as Error).message;
    }
  }
  return obs;
}
