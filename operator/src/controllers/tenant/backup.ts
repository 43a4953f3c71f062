// The Tenant's scheduled base backups: asks the proposer sidecar what it has, decides with the
// pure planner (backup/schedule.ts) whether one is due, and starts it or applies the retention.
import type { Safekeeper, Tenant, TenantStatus } from '../../api/schema.js';
import { planBackup, type TenantBackupStatus } from '../../backup/schedule.js';
import type { KubeObject } from '../../specs/types.js';
import { writeStatusIfChanged } from '../common/apply.js';
import { DataPlaneClient } from '../common/dataplane.js';
import { readSecretKey, type ControllerContext } from '../context.js';
import { tenantTokenKey } from '../../specs/compute.js';
import type { ComputeObservation } from './status.js';

export interface BackupPass {
  status: TenantBackupStatus;
  /** A backup is running: the caller should come back soon to see it finish. */
  busy: boolean;
  /** The Tenant's status was written during this pass (read it again before writing). */
  wroteStatus: boolean;
}

export async function reconcileBackups(
  ctx: ControllerContext,
  found: Tenant & KubeObject,
  tenant: Tenant,
  sk: Safekeeper,
  compute: ComputeObservation,
  /** the lowest backup LSN the members report: the retention leaves bucket WAL at or above it alone */
  membersBackupLsn: string | undefined,
): Promise<BackupPass | undefined> {
  const spec = tenant.spec.backup;
  if (!spec) return undefined;
  // With auth on, the proposer wants its tenant token on the routes that change the bucket.
  const token = sk.spec.auth ? await readSecretKey(ctx, sk.metadata.namespace ?? '', sk.spec.auth.secretRef.name, tenantTokenKey(tenant.metadata.name ?? '')) : undefined;
  const proposer = compute.proposerUrl
    ? new DataPlaneClient(compute.proposerUrl, { fetch: ctx.fetch, timeoutMs: ctx.options.httpTimeoutMs, ...(token ? { token } : {}) })
    : undefined;
  let observed: Parameters<typeof planBackup>[0]['observed'];
  if (!proposer) observed = { ok: false, error: compute.proposerError ?? 'the compute pod has no address yet' };
  else {
    try {
      observed = { ok: true, value: await proposer.listBackups() };
    } catch (e) {
      observed = { ok: false, error: (e as Error).message };
    }
  }
  const plan = planBackup({
    spec,
    previous: tenant.status?.backup,
    createdAt: new Date(tenant.metadata.creationTimestamp ?? ctx.now().toISOString()),
    now: ctx.now(),
    remoteStorage: sk.spec.remoteStorage !== undefined,
    computeStreaming: compute.proposer?.state === 'streaming',
    observed,
  });
  for (const ev of plan.events) ctx.events.record(found, ev.type, ev.reason, ev.message);

  if (plan.retention && proposer) {
    const r = spec.retention;
    if (r?.keep !== undefined || r?.maxAgeDays !== undefined) {
      try {
        const out = await proposer.applyBackupRetention({
          ...(r.keep !== undefined ? { keep: r.keep } : {}),
          ...(r.maxAgeDays !== undefined ? { max_age_days: r.maxAgeDays } : {}),
          ...(membersBackupLsn !== undefined ? { backup_lsn: membersBackupLsn } : {}),
        });
        if (out.deleted.length > 0) {
          ctx.events.record(found, 'Normal', 'BackupsDeleted', `retention deleted ${out.deleted.join(', ')} and ${out.wal_objects_deleted} WAL objects`);
        }
      } catch (e) {
        ctx.events.record(found, 'Warning', 'RetentionFailed', (e as Error).message);
      }
    }
  }

  if (!plan.start || !proposer) return { status: plan.status, busy: plan.status.running !== undefined, wroteStatus: false };
  // The slot is recorded before the backup starts: a crash in between skips one slot rather than
  // taking two backups for it.
  const status: TenantStatus = { ...(found.status ?? {}), backup: plan.status };
  await writeStatusIfChanged(ctx.client, found, status);
  try {
    const started = await proposer.startBackup();
    ctx.events.record(found, 'Normal', 'BackupStarted', `backup ${started.id} started (scheduled for ${plan.status.lastScheduleTime})`);
    return { status: { ...plan.status, running: started.id }, busy: true, wroteStatus: true };
  } catch (e) {
    const message = `cannot start the backup scheduled for ${plan.status.lastScheduleTime}: ${(e as Error).message}`;
    ctx.events.record(found, 'Warning', 'BackupFailed', message);
    return { status: { ...plan.status, lastFailure: { time: ctx.now().toISOString(), reason: 'StartFailed', message } }, busy: false, wroteStatus: true };
  }
}
