// Backups and restores of a local cluster (walctl backup, walctl restore): the cluster's own
// bucket, tenant and timeline, and for a restore the whole sequence a user would otherwise run
// by hand — restore the data directory, start PostgreSQL as a standby of the safekeepers, and
// either let a --promote proposer take the timeline (latest) or, for a point in time, wait for
// PostgreSQL to promote itself and put it on a new walkeeper timeline (a branch).
import { existsSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { newId } from '../common/ids.js';
import { formatLsn, parseLsn } from '../common/lsn.js';
import { openRemoteStorage, parseRemoteStorageUrl } from '../remote/url.js';
import type { RemoteStorage } from '../remote/remoteStorage.js';
import { createBackup } from '../backup/create.js';
import { identifyTimeline, planRestore, restoreBackup, RestoreError, type RestorePlan, type RestoreTarget } from '../backup/restore.js';
import { walFetchCommand } from '../backup/walFetch.js';
import type { BackupManifest } from '../backup/manifest.js';
import { httpPost, type LocalCluster } from './cluster.js';
import type { TimelineCreateJson } from '../api/index.js';
import { pgMajorVersion, sleep } from './postgres.js';

export async function openClusterStore(cluster: LocalCluster): Promise<RemoteStorage> {
  const r = cluster.remoteStorage;
  if (!r) throw new Error(`the cluster in ${cluster.baseDir} runs without remote storage (remote_storage: null): backups need a bucket`);
  const f = r.flags;
  return openRemoteStorage(parseRemoteStorageUrl(r.url, { endpoint: f.endpoint, region: f.region, pathStyle: f['path-style'], checksum: f.checksum, accessKeyId: f['access-key-id'], secretAccessKey: f['secret-access-key'] }));
}

export async function backupCluster(cluster: LocalCluster, opts: { partSize?: number; log?: (line: string) => void } = {}): Promise<BackupManifest> {
  const store = await openClusterStore(cluster);
  try {
    const c = cluster.config;
    return await createBackup({
      store, tenantId: c.tenant_id, timelineId: c.timeline_id, binDir: cluster.postgres.binDir, partSize: opts.partSize, log: opts.log,
      pg: { host: c.host, port: c.postgres.port, user: 'postgres', dbname: 'postgres', extra: {} },
    });
  } finally {
    await store.close();
  }
}

function restoreOptionsFor(cluster: LocalCluster, store: RemoteStorage, target: RestoreTarget, datadir: string, opts: { force?: boolean; log?: (line: string) => void }) {
  const c = cluster.config;
  return {
    store, tenantId: c.tenant_id, timelineId: c.timeline_id, datadir, target, pgMajor: pgMajorVersion(cluster.postgres.binDir),
    safekeepers: cluster.safekeeperPgAddresses, restoreCommand: walFetchCommand(cluster.remoteStorage!, c.tenant_id, c.timeline_id),
    force: opts.force, runAs: cluster.postgres.runAs, log: opts.log,
  };
}

/** Only rebuilds `datadir` (configured to recover) from the cluster's bucket; nothing is started or stopped. */
export async function restoreDataDir(cluster: LocalCluster, target: RestoreTarget, datadir: string, opts: { force?: boolean; log?: (line: string) => void } = {}): Promise<RestorePlan> {
  const store = await openClusterStore(cluster);
  try {
    return await restoreBackup(restoreOptionsFor(cluster, store, target, datadir, opts));
  } finally {
    await store.close();
  }
}

export interface LocalRestoreResult {
  plan: RestorePlan;
  /** the walkeeper timeline the restored primary writes to: the same one (latest) or a new branch */
  timelineId: string;
  /** where the restored PostgreSQL's own timeline begins (its promotion) */
  pgTimeline: number;
}

/**
 * Restores the cluster's primary into its data directory (absent or empty, or --force), and
 * brings it up as the primary. The old primary, if it still runs, is stopped first; a
 * primary elsewhere that still runs is fenced by the restored proposer's higher term.
 */
export async function restoreCluster(cluster: LocalCluster, target: RestoreTarget, opts: { force?: boolean; log?: (line: string) => void; timeoutMs?: number } = {}): Promise<LocalRestoreResult> {
  const log = opts.log ?? (() => {});
  const c = cluster.config;
  const datadir = resolve(cluster.postgres.dataDir);
  if (existsSync(datadir) && readdirSync(datadir).length > 0 && !opts.force) {
    throw new RestoreError(`data directory ${datadir} is not empty: restore into an empty or absent directory, or pass --force to replace it`);
  }
  const store = await openClusterStore(cluster);
  let plan: RestorePlan;
  try {
    const restoreOpts = restoreOptionsFor(cluster, store, target, datadir, { force: opts.force, log });
    // The checks first, while the old primary still runs: a refused restore changes nothing.
    await planRestore({ ...restoreOpts, force: true });
    log('restore: stopping the old proposer and PostgreSQL');
    await cluster.killProposer();
    await cluster.postgres.stop('immediate');
    plan = await restoreBackup(restoreOpts);
  } finally {
    await store.close();
  }
  const deadline = Date.now() + (opts.timeoutMs ?? 300_000);
  await cluster.postgres.start(opts.timeoutMs ?? 300_000);
  if (plan.promote === 'by-proposer') {
    log('restore: PostgreSQL replays bucket WAL, then the safekeepers\' tail; the proposer (--promote) takes the timeline with a higher term and promotes it');
    await cluster.startProposer({ promote: true });
    await until('the restored PostgreSQL to be promoted by its proposer', deadline, async () => cluster.postgres.psql('SELECT pg_is_in_recovery()') === 'f');
    await cluster.waitForQuorum(Math.max(1000, deadline - Date.now()));
    return { plan, timelineId: c.timeline_id, pgTimeline: currentPgTimeline(cluster) };
  }

  // A point in time: PostgreSQL promotes itself at the target. It must get there before it has
  // replayed everything the quorum committed, else the target lies after the newest WAL.
  const quorum = await identifyTimeline(cluster.safekeeperPgAddresses, c.tenant_id, c.timeline_id);
  let caughtUpPolls = 0;
  await until(`the restored PostgreSQL to reach ${plan.target} and promote`, deadline, async () => {
    if (cluster.postgres.psql('SELECT pg_is_in_recovery()') === 'f') return true;
    const replayed = parseLsn(cluster.postgres.psql('SELECT pg_last_wal_replay_lsn()') || '0/0');
    if (replayed >= quorum.commitLsn && ++caughtUpPolls > 20) {
      await cluster.postgres.stop('immediate');
      throw new RestoreError(`target ${plan.target} is after the newest WAL: every committed transaction (up to ${formatLsn(quorum.commitLsn)}) was replayed without reaching it; nothing in the bucket or on the safekeepers was changed`);
    }
    return false;
  });
  const branch = newId();
  log(`restore: PostgreSQL promoted at ${plan.target}; its WAL goes to a new walkeeper timeline ${branch} (the original timeline ${c.timeline_id} is left as it was)`);
  for (const sk of c.safekeepers) {
    const r = await httpPost(`${cluster.httpUrl(sk.id)}/v1/tenants/${c.tenant_id}/timelines`, { timeline_id: branch } satisfies TimelineCreateJson);
    if (r.status !== 201) throw new Error(`safekeeper ${sk.id}: creating timeline ${branch} answered ${r.status} ${r.text}`);
  }
  c.timeline_id = branch;
  cluster.saveConfig();
  await cluster.startProposer();
  await cluster.waitForQuorum(Math.max(1000, deadline - Date.now()));
  return { plan, timelineId: branch, pgTimeline: currentPgTimeline(cluster) };
}

/** The timeline PostgreSQL writes on now (pg_control's checkpoint lags behind a promotion). */
function currentPgTimeline(cluster: LocalCluster): number {
  return parseInt(cluster.postgres.psql('SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)'), 16);
}

async function until(what: string, deadline: number, probe: () => Promise<boolean>): Promise<void> {
  let last = '';
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (err) {
      if (err instanceof RestoreError) throw err;
      last = (err as Error).message;
    }
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ''}`);
}


