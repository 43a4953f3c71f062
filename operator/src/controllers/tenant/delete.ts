// Tenant deletion, in this order: make the compute gone (its StatefulSet deleted and every compute
// pod gone, so no proposer still pushes WAL), then remove the tenant from every safekeeper (404 =
// already gone), then drop the walkeeper.io/tenant-cleanup finalizer with an optimistic-locked patch.
import { TENANT_FINALIZER, type Safekeeper, type Tenant } from '../../api/schema.js';
import { validateResource } from '../../api/validation.js';
import { LABEL_TENANT, names } from '../../specs/meta.js';
import type { KubeObject, PodLike } from '../../specs/types.js';
import { kinds } from '../../runtime/kube.js';
import type { ReconcileResult } from '../../runtime/queue.js';
import type { ControllerContext } from '../context.js';
import { listMemberPods } from '../safekeeper/observe.js';
import { deregisterFromMembers } from './register.js';

/** Escape hatch: drop the finalizer without cleaning the safekeepers (data is left behind). */
export const ANNOTATION_SKIP_CLEANUP = 'walkeeper.io/skip-cleanup';

export async function removeFinalizer(ctx: ControllerContext, tenant: Tenant): Promise<void> {
  const remaining = (tenant.metadata.finalizers ?? []).filter((f) => f !== TENANT_FINALIZER);
  await ctx.client.mergePatch(kinds.Tenant, tenant.metadata.namespace, tenant.metadata.name ?? '', {
    metadata: { finalizers: remaining, resourceVersion: tenant.metadata.resourceVersion },
  });
}

/**
 * Deletes the compute StatefulSet (once) and reports what of the compute is still there: the
 * StatefulSet itself or any of its pods (terminating pods included: their proposer may still be
 * pushing WAL). Undefined when the compute is gone.
 */
async function stopCompute(ctx: ControllerContext, tenant: Tenant): Promise<string | undefined> {
  const ns = tenant.metadata.namespace;
  const n = tenant.metadata.name ?? '';
  const sts = await ctx.client.get<KubeObject>(kinds.StatefulSet, ns, names.computeStatefulSet(n));
  const owned = sts && sts.metadata.ownerReferences?.some((r) => r.uid === tenant.metadata.uid);
  if (sts && owned && !sts.metadata.deletionTimestamp) {
    await ctx.client.delete(kinds.StatefulSet, ns, sts.metadata.name ?? '', { uid: sts.metadata.uid, propagationPolicy: 'Foreground' });
    ctx.events.record(tenant as unknown as KubeObject, 'Normal', 'StoppingCompute', `deleted StatefulSet ${sts.metadata.name}; the tenant is removed from the safekeepers once its pods are gone`);
  }
  const { items } = await ctx.client.list<PodLike>(kinds.Pod, ns, `${LABEL_TENANT}=${n}`);
  const pods = items.filter((p) => p.metadata.name === names.computePod(n) || p.metadata.ownerReferences?.some((r) => r.kind === 'StatefulSet' && r.name === names.computeStatefulSet(n)));
  if (pods.length > 0) return `pod ${pods.map((p) => p.metadata.name).join(', ')}`;
  // Foreground deletion keeps the StatefulSet until the garbage collector has removed its pods.
  if (owned && (await ctx.client.get<KubeObject>(kinds.StatefulSet, ns, names.computeStatefulSet(n)))) return `StatefulSet ${sts.metadata.name}`;
  return undefined;
}

export async function finalizeTenant(ctx: ControllerContext, tenant: Tenant): Promise<ReconcileResult> {
  if (!tenant.metadata.finalizers?.includes(TENANT_FINALIZER)) return {};
  const owner = tenant as unknown as KubeObject;
  const tenantId = tenant.status?.tenantId ?? tenant.spec.tenantId;
  const skipped = tenant.metadata.annotations?.[ANNOTATION_SKIP_CLEANUP] === 'true';

  const computeLeft = await stopCompute(ctx, tenant);
  if (computeLeft) {
    // The tenant must not vanish under a running proposer: wait for the compute to be gone.
    ctx.log.debug({ tenant: tenant.metadata.name, computeLeft }, 'tenant deletion waits for the compute to stop');
    return { requeueAfterMs: 1000 };
  }

  const found = await ctx.client.get<Safekeeper & { [k: string]: unknown }>(kinds.Safekeeper, tenant.metadata.namespace, tenant.spec.safekeeperRef.name);
  if (!tenantId || skipped || !found) {
    const why = !tenantId ? 'it was never registered' : skipped ? `${ANNOTATION_SKIP_CLEANUP} is set` : `Safekeeper ${tenant.spec.safekeeperRef.name} no longer exists`;
    ctx.events.record(owner, skipped || found ? 'Normal' : 'Warning', 'CleanupSkipped', `not removing tenant data from safekeepers: ${why}`);
    await removeFinalizer(ctx, tenant);
    return {};
  }
  const sk = validateResource<Safekeeper>('Safekeeper', found).value;
  const results = await deregisterFromMembers(ctx, sk, await listMemberPods(ctx, sk), tenantId);
  const failed = results.filter((r) => !r.ok);
  if (failed.length > 0) {
    const msg = `tenant ${tenantId} not yet removed from ${failed.map((f) => `${f.name} (${f.error})`).join('; ')}; retrying`;
    ctx.events.record(owner, 'Warning', 'CleanupFailed', msg);
    throw new Error(msg);
  }
  ctx.events.record(owner, 'Normal', 'TenantDeleted', `tenant ${tenantId} removed from all ${results.length} safekeepers`);
  await removeFinalizer(ctx, tenant);
  return {};
}
