// `walkeeper backup create|list|delete|retain`, `walkeeper restore` and `walkeeper wal-fetch`
// (the restore_command): base backups and restores of one timeline, against the same bucket
// the safekeepers offload WAL to, with the safekeeper's --remote-storage flags.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { flag } from './flags.js';
import { table } from './table.js';
import { assertValidId, isValidId } from '../common/ids.js';
import { parseConnInfo } from '../common/conninfo.js';
import { parseLsn } from '../common/lsn.js';
import type { TimelineStatusJson } from '../api/index.js';
import { findPgBinDir, pgMajorVersion, postgresIdentity } from '../local/postgres.js';
import { openRemoteStorage } from '../remote/url.js';
import { addRemoteStorageFlags, remoteStorageConfig, type RemoteStorageFlags } from './remoteStorageFlags.js';
import type { RemoteStorage, RemoteStorageConfig } from '../remote/remoteStorage.js';
import { createBackup, DEFAULT_PART_SIZE } from '../backup/create.js';
import { applyRetention, deleteBackup, listBackups } from '../backup/catalog.js';
import { bootstrapDataDir, restoreBackup, type RecoverySource, type RestoreOptions, type RestorePlan, type RestoreTarget } from '../backup/restore.js';
import { fetchWalFile, walFetchCommand } from '../backup/walFetch.js';
import { parseSizeFlag } from './flags.js';

export interface StoreFlags extends RemoteStorageFlags {
  tenantId?: string;
  timelineId?: string;
  json?: boolean;
}

function withStoreFlags(cmd: Command): Command {
  return addRemoteStorageFlags(cmd, 'the bucket: s3://bucket/prefix or file:///dir (the one the safekeepers offload to)')
    .addOption(flag('--tenant-id <id>', 'tenant id (32 hex)'))
    .addOption(flag('--timeline-id <id>', 'timeline id (32 hex)'))
    .option('--json', 'print JSON');
}

function storeConfig(o: StoreFlags): RemoteStorageConfig {
  const config = remoteStorageConfig(o);
  if (!config) throw new Error('no --remote-storage given: the bucket the safekeepers offload to, s3://bucket/prefix or file:///dir');
  return config;
}

function ids(o: StoreFlags): { tenantId: string; timelineId: string } {
  assertValidId('tenant_id', o.tenantId);
  assertValidId('timeline_id', o.timelineId);
  return { tenantId: o.tenantId, timelineId: o.timelineId };
}

async function withStore<T>(o: StoreFlags, fn: (store: RemoteStorage) => Promise<T>): Promise<T> {
  const store = await openRemoteStorage(storeConfig(o));
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

const progress = (line: string) => process.stderr.write(`walkeeper: ${line}\n`);

function fetchFlags(o: StoreFlags): Record<string, string> {
  const out: Record<string, string> = {};
  const opt: [string, string | boolean | undefined][] = [['endpoint', o.remoteStorageEndpoint], ['region', o.remoteStorageRegion], ['path-style', o.remoteStoragePathStyle], ['checksum', o.remoteStorageChecksum]];
  for (const [name, v] of opt) if (v !== undefined && v !== '') out[name] = String(v);
  return out;
}

export function parseTarget(o: { targetTime?: string; targetLsn?: string }): RestoreTarget {
  if (o.targetTime && o.targetLsn) throw new Error('give --target-time or --target-lsn, not both');
  if (o.targetLsn) return { kind: 'lsn', lsn: parseLsn(o.targetLsn) };
  if (o.targetTime) {
    const t = new Date(o.targetTime);
    if (Number.isNaN(t.getTime())) throw new Error(`invalid --target-time "${o.targetTime}": expected an ISO 8601 time such as 2026-12-03T12:00:00Z`);
    return { kind: 'time', time: t };
  }
  return { kind: 'latest' };
}

const planJson = (plan: RestorePlan) => ({ backup_id: plan.backup.backup_id, datadir: plan.datadir, target: plan.target, promote: plan.promote });

/** The major of the server that will run a restored directory: given, or the local server's. */
function serverMajor(flagValue: string | undefined): number {
  if (flagValue === undefined) return pgMajorVersion(findPgBinDir());
  if (!/^\d+$/.test(flagValue) || Number(flagValue) < 10) throw new Error(`invalid --pg-version "${flagValue}": expected a PostgreSQL major version such as 15`);
  return Number(flagValue);
}

interface RecoverFromFlags extends StoreFlags {
  recoverFromTenantId?: string;
  recoverFromTimelineId?: string;
  recoverFromAuthToken?: string;
  streamOnly?: boolean;
}

function recoverySource(o: RecoverFromFlags, target: RestoreTarget): RecoverySource {
  const [tenantId, timelineId] = [o.recoverFromTenantId, o.recoverFromTimelineId];
  if (!isValidId(tenantId)) throw new Error(`invalid --recover-from-tenant-id ${JSON.stringify(tenantId)}: expected 32 lowercase hex characters`);
  if (!isValidId(timelineId)) throw new Error(`invalid --recover-from-timeline-id ${JSON.stringify(timelineId)}: expected 32 lowercase hex characters`);
  if (tenantId === o.tenantId && timelineId === o.timelineId) throw new Error(`the recovery source is this timeline (${tenantId}/${timelineId}): name another tenant's timeline`);
  if (target.kind === 'latest') throw new Error('a recovery (--recover-from-tenant-id) needs --target-time or --target-lsn: the copy promotes itself there');
  return {
    tenantId, timelineId, target, token: o.recoverFromAuthToken || undefined,
    restoreCommand: o.streamOnly ? undefined : walFetchCommand({ url: o.remoteStorage!, flags: fetchFlags(o) }, tenantId, timelineId),
  };
}

export function addBackupCommands(program: Command): void {
  const backup = program.command('backup').description('base backups of a timeline in the bucket (docs/operations.md, "Backups and restore")');
  withStoreFlags(backup.command('create').description('take a base backup with pg_basebackup, gzip it and upload it; the manifest is written last'))
    .addOption(flag('--pg <connstr>', 'the primary to back up (a user allowed to replicate)'))
    .addOption(flag('--part-size <size>', 'size of each uploaded part (e.g. 64MB)', '64MB'))
    .action(async (o: StoreFlags & { pg?: string; partSize: string }) => {
      const { tenantId, timelineId } = ids(o);
      if (!o.pg) throw new Error('no --pg given: the connection string of the primary to back up');
      const partSize = Number(parseSizeFlag('part-size', o.partSize));
      if (partSize < 1024 * 1024) throw new Error(`invalid --part-size ${o.partSize}: at least 1MB`);
      const m = await withStore(o, (store) => createBackup({ store, tenantId, timelineId, pg: parseConnInfo(o.pg!), binDir: findPgBinDir(), partSize: partSize || DEFAULT_PART_SIZE, log: progress }));
      console.log(o.json ? JSON.stringify(m, null, 2) : `backup ${m.backup_id} complete: WAL ${m.start_lsn}..${m.stop_lsn}, ${m.compressed_bytes} bytes in ${m.parts.length} part(s)`);
    });
  withStoreFlags(backup.command('list').description('complete backups (oldest first) and incomplete ones with why')).action(async (o: StoreFlags) => {
    const { tenantId, timelineId } = ids(o);
    const catalog = await withStore(o, (store) => listBackups(store, tenantId, timelineId));
    if (o.json) return console.log(JSON.stringify(catalog, null, 2));
    console.log(table(['BACKUP', 'STATE', 'START LSN', 'STOP LSN', 'STOP TIME', 'BYTES'], [
      ...catalog.complete.map((m) => [m.backup_id, 'complete', m.start_lsn, m.stop_lsn, m.stop_time, String(m.compressed_bytes)]),
      ...catalog.incomplete.map((b) => [b.backup_id, `INCOMPLETE (${b.reason})`, '-', '-', '-', String(b.bytes)]),
    ]));
  });
  withStoreFlags(backup.command('delete <backup_id>').description('delete one backup (manifest first)')).action(async (id: string, o: StoreFlags) => {
    const { tenantId, timelineId } = ids(o);
    const r = await withStore(o, (store) => deleteBackup(store, tenantId, timelineId, id));
    console.log(o.json ? JSON.stringify({ backup_id: id, ...r }) : `deleted backup ${id} (${r.deleted} objects)`);
  });
  withStoreFlags(backup.command('retain').description('delete backups no rule keeps, and the bucket WAL older than the oldest kept backup'))
    .option('--keep <n>', 'keep the newest N complete backups')
    .option('--max-age-days <d>', 'keep complete backups younger than D days')
    .option('--safekeeper-urls <urls>', 'safekeepers\' HTTP URLs: WAL is removed only below their lowest backup_lsn too')
    .option('--dry-run', 'say what would be deleted')
    .action(async (o: StoreFlags & { keep?: string; maxAgeDays?: string; safekeeperUrls?: string; dryRun?: boolean }) => {
      const { tenantId, timelineId } = ids(o);
      const keep = o.keep === undefined ? undefined : Number(o.keep);
      const maxAgeDays = o.maxAgeDays === undefined ? undefined : Number(o.maxAgeDays);
      let backupLsn: bigint | undefined;
      for (const url of (o.safekeeperUrls ?? '').split(',').map((u) => u.trim().replace(/\/$/, '')).filter(Boolean)) {
        const r = await fetch(`${url}/v1/tenants/${tenantId}/timelines/${timelineId}`, { signal: AbortSignal.timeout(5000) });
        if (r.status !== 200) throw new Error(`${url}: timeline status answered ${r.status} ${await r.text()}; retention needs every safekeeper's backup_lsn`);
        const lsn = parseLsn(((await r.json()) as TimelineStatusJson).backup_lsn);
        if (backupLsn === undefined || lsn < backupLsn) backupLsn = lsn;
      }
      const r = await withStore(o, (store) => applyRetention(store, tenantId, timelineId, { keep, maxAgeDays, backupLsn, dryRun: o.dryRun }));
      if (o.json) return console.log(JSON.stringify(r, null, 2));
      console.log(`${o.dryRun ? 'would keep' : 'kept'} ${r.kept.join(', ') || 'nothing (no complete backup)'}; ${o.dryRun ? 'would delete' : 'deleted'} ${r.deleted_backups.length} backup(s), ${r.deleted_incomplete.length} incomplete, ${r.deleted_wal.length} WAL segment(s) below ${r.wal_horizon ?? '-'}`);
    });

  withStoreFlags(program.command('restore').description('rebuild a data directory from the newest base backup before the target, bucket WAL and the safekeepers\' tail'))
    .addOption(flag('--datadir <dir>', 'data directory to create (empty or absent)'))
    .addOption(flag('--safekeepers <list>', 'comma-separated host:port of the safekeepers\' Postgres-protocol ports'))
    .option('--target-time <time>', 'point in time (ISO 8601); default: latest, every committed transaction')
    .option('--target-lsn <lsn>', 'LSN X/X to recover to')
    .option('--force', 'replace a non-empty data directory')
    .option('--if-empty', 'a compute\'s start: leave a data directory holding a cluster alone, leave an empty one for initdb when the timeline never held a system, otherwise restore it to latest')
    .option('--stream-only', 'no restore_command: the standby streams all WAL from the safekeepers, which read removed WAL from the bucket (for a postgres image without walkeeper)')
    .addOption(flag('--auth-token <token>', 'the tenant\'s token, when the safekeepers require one; prefer the environment to a command line'))
    .option('--pg-version <major>', 'major version of the server that will run the data directory (default: the local server\'s)')
    .addOption(flag('--recover-from-tenant-id <id>', 'with --if-empty: while this timeline is empty, start it from that tenant\'s backups and WAL up to --target-time or --target-lsn'))
    .addOption(flag('--recover-from-timeline-id <id>', 'the recovery source\'s timeline id'))
    .addOption(flag('--recover-from-auth-token <token>', 'the recovery source tenant\'s token, when the safekeepers require one'))
    .action(async (o: StoreFlags & RecoverFromFlags & { datadir?: string; safekeepers?: string; targetTime?: string; targetLsn?: string; force?: boolean; ifEmpty?: boolean; streamOnly?: boolean; pgVersion?: string; authToken?: string }) => {
      const { tenantId, timelineId } = ids(o);
      if (!o.datadir) throw new Error('no --datadir given: the data directory to create');
      const target = parseTarget(o);
      const recovering = o.recoverFromTenantId !== undefined || o.recoverFromTimelineId !== undefined;
      if (recovering && !o.ifEmpty) throw new Error('--recover-from-tenant-id/--recover-from-timeline-id go with --if-empty (a compute\'s start); to restore another timeline now, give its --tenant-id and --timeline-id');
      if (o.ifEmpty && o.force) throw new Error('--if-empty never replaces a cluster: it takes no --force');
      if (o.ifEmpty && target.kind !== 'latest' && !recovering) throw new Error('--if-empty restores its own timeline to latest: --target-time and --target-lsn apply only to a recovery source (--recover-from-tenant-id)');
      const options: Omit<RestoreOptions, 'store'> = {
        tenantId, timelineId, datadir: resolve(o.datadir), target, pgMajor: serverMajor(o.pgVersion),
        safekeepers: (o.safekeepers ?? '').split(',').map((s) => s.trim()).filter(Boolean),
        restoreCommand: o.streamOnly ? undefined : walFetchCommand({ url: o.remoteStorage!, flags: fetchFlags(o) }, tenantId, timelineId), force: o.force, runAs: postgresIdentity(), log: progress, token: o.authToken || undefined,
      };
      if (o.ifEmpty) {
        const recoverFrom = recovering ? recoverySource(o, target) : undefined;
        const outcome = await withStore(o, (store) => bootstrapDataDir({ ...options, target: { kind: 'latest' }, store, recoverFrom }));
        if (o.json) return console.log(JSON.stringify('plan' in outcome ? { outcome: outcome.kind, ...planJson(outcome.plan) } : { outcome: outcome.kind }, null, 2));
        if (outcome.kind === 'existing') return console.log(`${options.datadir} holds a PostgreSQL cluster: nothing to restore.`);
        if (outcome.kind === 'fresh') return console.log(`timeline ${timelineId} never held a PostgreSQL system and has no backup: ${options.datadir} is left empty for initdb.`);
        if (outcome.kind === 'recovered') {
          return console.log(`recovered base backup ${outcome.plan.backup.backup_id} of tenant ${outcome.source.tenantId} timeline ${outcome.source.timelineId} into ${outcome.plan.datadir} (target ${outcome.plan.target}): PostgreSQL promotes itself there, then its proposer starts timeline ${timelineId}.`);
        }
        return console.log(`restored base backup ${outcome.plan.backup.backup_id} into ${outcome.plan.datadir} (target latest): start PostgreSQL on it and its proposer with --promote.`);
      }
      const plan = await withStore(o, (store) => restoreBackup({ ...options, store }));
      if (o.json) return console.log(JSON.stringify(planJson(plan), null, 2));
      console.log(`restored base backup ${plan.backup.backup_id} into ${plan.datadir} (target ${plan.target}).`);
      console.log(plan.promote === 'by-proposer'
        ? 'Start PostgreSQL on it (a standby) and its proposer with --promote: the proposer takes the timeline with a higher term, waits until the standby replayed the quorum\'s commit LSN, and promotes it.'
        : 'Start PostgreSQL on it: it replays to the target and promotes onto a new PostgreSQL timeline. Register a NEW timeline id on the safekeepers and start the proposer with it; the original timeline is left as it is.');
    });

  withStoreFlags(program.command('wal-fetch <file> <destination>').description('restore_command: copy a WAL or history file of the timeline from the bucket; exit 1 if absent'))
    .action(async (file: string, destination: string, o: StoreFlags) => {
      const { tenantId, timelineId } = ids(o);
      const r = await withStore(o, (store) => fetchWalFile(store, tenantId, timelineId, file, destination));
      if (r === 'absent') {
        process.stderr.write(`walkeeper wal-fetch: ${file} is not in the bucket (PostgreSQL then streams it from a safekeeper)\n`);
        process.exit(1);
      }
    });
}
