// spec.bootstrap.recovery: a new Tenant whose database starts as a copy of another Tenant's at a
// point. The source is resolved once, to its tenant and timeline ids, and kept in
// status.recoveredFrom, so the copy keeps restoring from the same place (a compute whose volume
// is lost before its first own WAL) even if the source Tenant is renamed or deleted later.
import type { Safekeeper, Tenant, TenantStatus } from '../../api/schema.js';
import { validateResource } from '../../api/validation.js';
import { imageMajor, type ComputeRecovery } from '../../specs/compute.js';
import { names } from '../../specs/meta.js';
import type { SecretLike } from '../../specs/types.js';
import { kinds } from '../../runtime/kube.js';
import type { ControllerContext } from '../context.js';

export type RecoveredFrom = NonNullable<TenantStatus['recoveredFrom']>;
export interface RecoveryProblem {
  reason: string;
  message: string;
}

/**
 * Why `tenant` cannot be recovered from `source` on `sk` (pure, so every refusal is testable), or
 * the ids to recover from. The restore init container is what performs a recovery, so what it
 * cannot do (no bucket, TLS, an image without a major version) is refused here with its reason.
 */
export function checkRecoverySource(tenant: Tenant, sk: Safekeeper, source: Tenant | undefined, sourceHasCredentials: boolean): RecoveredFrom | RecoveryProblem {
  const spec = tenant.spec.bootstrap!.recovery!;
  const name = spec.source.tenantRef.name;
  const ns = tenant.metadata.namespace ?? 'default';
  if (name === tenant.metadata.name) return { reason: 'RecoverySourceInvalid', message: 'spec.bootstrap.recovery.source.tenantRef names this Tenant: a Tenant cannot recover from itself' };
  if (!sk.spec.remoteStorage) return { reason: 'RecoveryNeedsRemoteStorage', message: `Safekeeper ${sk.metadata.name} has no remoteStorage: a recovery starts from base backups in its bucket` };
  if (sk.spec.tls) return { reason: 'RecoveryNotSupported', message: `Safekeeper ${sk.metadata.name} uses TLS, which the compute's restore step does not speak yet` };
  if (imageMajor(tenant.spec.compute.image) === undefined) {
    return { reason: 'RecoveryNotSupported', message: `spec.compute.image ${tenant.spec.compute.image} names no PostgreSQL major version in its tag (e.g. postgres:15): the restore checks backups against it` };
  }
  if (!source) return { reason: 'RecoverySourceNotFound', message: `Tenant ${name} (the recovery source) not found in namespace ${ns}` };
  if (source.spec.safekeeperRef.name !== tenant.spec.safekeeperRef.name) {
    return { reason: 'RecoverySourceInvalid', message: `Tenant ${name} is on Safekeeper ${source.spec.safekeeperRef.name}, this one on ${tenant.spec.safekeeperRef.name}: a recovery reads the source's WAL from the same safekeepers and bucket` };
  }
  const tenantId = source.status?.tenantId;
  const timelineId = source.status?.timelineId;
  if (!tenantId || !timelineId) return { reason: 'RecoverySourceNotReady', message: `Tenant ${name} has no tenant and timeline ids yet` };
  if (!sourceHasCredentials) {
    return { reason: 'RecoverySourceNotReady', message: `Tenant ${name} has no compute credentials Secret ${names.computeSecret(name)}: the copy has the source's roles, so it takes the source's password` };
  }
  return { tenant: name, tenantId, timelineId };
}

export const isProblem = (r: RecoveredFrom | RecoveryProblem): r is RecoveryProblem => 'reason' in r;

/** Resolves the source (reads only); the caller persists the result in status.recoveredFrom. */
export async function resolveRecoverySource(ctx: ControllerContext, tenant: Tenant, sk: Safekeeper): Promise<RecoveredFrom | RecoveryProblem> {
  const ns = tenant.metadata.namespace ?? 'default';
  const name = tenant.spec.bootstrap!.recovery!.source.tenantRef.name;
  const found = name === tenant.metadata.name ? undefined : await ctx.client.get<Tenant & { [k: string]: unknown }>(kinds.Tenant, ns, name);
  const source = found ? validateResource<Tenant>('Tenant', found).value : undefined;
  const credentials = source ? await ctx.client.get<SecretLike>(kinds.Secret, ns, names.computeSecret(name)) : undefined;
  return checkRecoverySource(tenant, sk, source, credentials?.data?.password !== undefined);
}

/** What the compute's restore step is given: the persisted source and the spec's target. */
export function computeRecovery(tenant: Tenant, from: RecoveredFrom): ComputeRecovery {
  const spec = tenant.spec.bootstrap!.recovery!;
  return {
    tenant: from.tenant,
    tenantId: from.tenantId,
    timelineId: from.timelineId,
    ...(spec.targetTime ? { targetTime: spec.targetTime } : {}),
    ...(spec.targetLSN ? { targetLsn: spec.targetLSN } : {}),
  };
}
