// The Tenant reconcile loop: finalizer, ids generated once and persisted before use (so is a
// recovery's source), registration on every member, compute, and status from observations
// (written only when it changed).
import { TENANT_FINALIZER, type Safekeeper, type Tenant, type TenantStatus } from '../../api/schema.js';
import { validateResource } from '../../api/validation.js';
import { majority } from '../../rollout/planner.js';
import { formatLsn, parseLsn } from '../../lsn.js';
import { isConflict, kinds, splitKey } from '../../runtime/kube.js';
import type { ReconcileResult } from '../../runtime/queue.js';
import type { ComputeRecovery } from '../../specs/compute.js';
import type { KubeObject } from '../../specs/types.js';
import { writeStatusIfChanged } from '../common/apply.js';
import type { ControllerContext } from '../context.js';
import { listMemberPods } from '../safekeeper/observe.js';
import { applyCompute, observeCompute, removeCompute } from './apply.js';
import { reconcileBackups } from './backup.js';
import { finalizeTenant } from './delete.js';
import { computeRecovery, isProblem, resolveRecoverySource, type RecoveryProblem } from './recovery.js';
import { registerOnMembers, type TenantMemberReport } from './register.js';
import { computeTenantStatus } from './status.js';

type TenantObject = Tenant & { [k: string]: unknown };

export async function reconcileTenant(ctx: ControllerContext, key: string): Promise<ReconcileResult> {
  const { namespace, name } = splitKey(key);
  const found = await ctx.client.get<TenantObject>(kinds.Tenant, namespace, name);
  if (!found) return {};
  const tenant = validateResource<Tenant>('Tenant', found).value;
  const owner = found as unknown as KubeObject;

  try {
    if (found.metadata.deletionTimestamp) return await finalizeTenant(ctx, tenant);

    if (!found.metadata.finalizers?.includes(TENANT_FINALIZER)) {
      await ctx.client.mergePatch(kinds.Tenant, namespace, name, {
        metadata: { finalizers: [...(found.metadata.finalizers ?? []), TENANT_FINALIZER], resourceVersion: found.metadata.resourceVersion },
      });
      return { requeueAfterMs: 0 };
    }

    // Ids are generated once and persisted before anything uses them, so a crash cannot orphan data.
    const tenantId = tenant.status?.tenantId ?? tenant.spec.tenantId ?? ctx.randomHex(16);
    const timelineId = tenant.status?.timelineId ?? ctx.randomHex(16);
    if (tenant.status?.tenantId !== tenantId || tenant.status?.timelineId !== timelineId) {
      if (tenant.spec.tenantId && tenant.status?.tenantId && tenant.spec.tenantId !== tenant.status.tenantId) {
        // Not reachable through the API (tenantId is immutable); kept as a guard.
        throw new Error(`spec.tenantId ${tenant.spec.tenantId} differs from the registered ${tenant.status.tenantId}`);
      }
      const status: TenantStatus = { ...(tenant.status ?? {}), tenantId, timelineId };
      await ctx.client.replaceStatus(kinds.Tenant, { ...found, status });
      ctx.events.record(owner, 'Normal', 'IdsAssigned', `tenant ${tenantId}, timeline ${timelineId}`);
      return { requeueAfterMs: 0 };
    }

    const now = ctx.now().toISOString();
    const skFound = await ctx.client.get<Safekeeper & { [k: string]: unknown }>(kinds.Safekeeper, namespace, tenant.spec.safekeeperRef.name);
    if (!skFound) {
      const status = computeTenantStatus({
        tenant, tenantId, timelineId, size: 0, members: [], lagThresholdBytes: ctx.options.lagThresholdBytes, now,
        compute: { enabled: tenant.spec.compute.enabled, podReady: false },
        problem: { reason: 'SafekeeperNotFound', message: `Safekeeper ${tenant.spec.safekeeperRef.name} not found in namespace ${namespace}` },
      });
      await writeStatusIfChanged(ctx.client, found, status);
      return { requeueAfterMs: 15_000 };
    }
    const sk = validateResource<Safekeeper>('Safekeeper', skFound).value;
    let recovery: ComputeRecovery | undefined;
    let computeProblem: RecoveryProblem | undefined;
    if (tenant.spec.bootstrap?.recovery) {
      const from = tenant.status?.recoveredFrom ?? (await resolveRecoverySource(ctx, tenant, sk));
      if (isProblem(from)) computeProblem = from;
      else if (!tenant.status?.recoveredFrom) {
        // Persisted before the compute uses it, as the ids are: every later restore reads the same source.
        await ctx.client.replaceStatus(kinds.Tenant, { ...found, status: { ...(tenant.status ?? {}), recoveredFrom: from } });
        ctx.events.record(owner, 'Normal', 'RecoverySourceResolved', `recovering from Tenant ${from.tenant} (tenant ${from.tenantId}, timeline ${from.timelineId})`);
        return { requeueAfterMs: 0 };
      } else recovery = computeRecovery(tenant, from);
    }
    const pods = await listMemberPods(ctx, sk);
    const members: TenantMemberReport[] = await registerOnMembers(ctx, sk, pods, tenantId, timelineId);
    // One Event per pass, not one per member: at hundreds of tenants the Events are most of the writes.
    const createdOn = members.filter((x) => x.createdNow).map((m) => m.name);
    if (createdOn.length > 0) ctx.events.record(owner, 'Normal', 'Registered', `timeline ${tenantId}/${timelineId} created on ${createdOn.join(', ')}`);
    const registered = members.filter((m) => m.registered).length;

    if (tenant.spec.compute.enabled) {
      // The proposer can only push to a tenant that exists on a majority.
      if (registered >= majority(sk.spec.replicas) && !computeProblem) await applyCompute(ctx, tenant, sk, tenantId, timelineId, recovery);
    } else {
      await removeCompute(ctx, tenant);
    }
    const compute = await observeCompute(ctx, tenant);
    const backup = await reconcileBackups(ctx, found as unknown as Tenant & KubeObject, tenant, sk, compute, lowestBackupLsn(members));
    const status = computeTenantStatus({
      tenant, tenantId, timelineId, size: sk.spec.replicas, members, compute, lagThresholdBytes: ctx.options.lagThresholdBytes, now,
      offloadEnabled: sk.spec.remoteStorage !== undefined, backup: backup?.status, computeProblem,
    });
    await writeStatusIfChanged(ctx.client, backup?.wroteStatus ? await refetch(ctx, found) : found, status);

    if (registered < sk.spec.replicas || backup?.busy) return { requeueAfterMs: 5000 };
    if (computeProblem) return { requeueAfterMs: 15_000 };
    if (backup?.status.nextScheduleTime) {
      const untilNext = Date.parse(backup.status.nextScheduleTime) - ctx.now().getTime();
      return { requeueAfterMs: Math.max(1000, Math.min(untilNext, ctx.options.pollIntervalMs, 15_000)) };
    }
    return { requeueAfterMs: Math.min(ctx.options.pollIntervalMs, 15_000) };
  } catch (e) {
    if (isConflict(e)) return { requeueAfterMs: 0 }; // changed under us: recompute from a fresh read
    throw e;
  }
}

/** The Tenant as stored now (the backup step may have written its status during this pass). */
async function refetch(ctx: ControllerContext, found: TenantObject): Promise<TenantObject> {
  return (await ctx.client.get<TenantObject>(kinds.Tenant, found.metadata.namespace, found.metadata.name ?? '')) ?? found;
}

function lowestBackupLsn(members: TenantMemberReport[]): string | undefined {
  let low: bigint | undefined;
  for (const m of members) {
    const v = m.timeline?.backup_lsn;
    if (v !== undefined && (low === undefined || parseLsn(v) < low)) low = parseLsn(v);
  }
  return low === undefined ? undefined : formatLsn(low);
}
