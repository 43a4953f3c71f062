// Backups and restores with real processes: PostgreSQL 15, pg_basebackup, 3 safekeepers
// offloading to the cluster's file:// bucket, and the proposer. Each test is one scenario on
// the same cluster, in order: a primary lost under load comes back from backup + bucket WAL
// (some of it on no safekeeper's disk any more) + the safekeepers' tail with every acknowledged row (RPO 0); bad input is refused with nothing
// changed; kill -9 of a backup or a restore never leaves a backup that looks complete and a
// retried restore succeeds; a point-in-time restore branches onto a new timeline; retention.
import { jest } from '@jest/globals';
import { execFile, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import type { LocalCluster } from '../../src/local/cluster.js';
import { httpGet, httpPost } from '../../src/local/cluster.js';
import { pgMajorVersion, sleep } from '../../src/local/postgres.js';
import { WALKEEPER_JS } from '../../src/local/process.js';
import { newId } from '../../src/common/ids.js';
import { parseLsn, parseWalFileName, segmentNo, walFileName, type Lsn } from '../../src/common/lsn.js';
import { Prng, randomSeed } from '../../src/common/prng.js';
import type { RemoteStorage } from '../../src/remote/remoteStorage.js';
import { backupCluster, openClusterStore, restoreCluster } from '../../src/local/backupLocal.js';
import { restoreBackup, type RestoreOptions } from '../../src/backup/restore.js';
import { applyRetention, listBackups } from '../../src/backup/catalog.js';
import { backupPrefix, manifestKey, newBackupId } from '../../src/backup/layout.js';
import { walFetchCommand } from '../../src/backup/walFetch.js';
import type { BackupManifest } from '../../src/backup/manifest.js';
import { LedgerRecord, checkLedger } from '@walkeeper/testkit/torture/ledger';
import { LEDGER_DDL, Workload } from '@walkeeper/testkit/torture/workload';
import { readLedger } from '@walkeeper/testkit/torture/restore';
import { safekeeperTimeline } from '@walkeeper/testkit/torture/env';
import { destroyTestCluster, newTestCluster } from '../helpers/cluster.js';
import { pgConnect } from '../helpers/pg.js';
import { until } from '../helpers/until.js';

jest.setTimeout(240_000);

let cluster: LocalCluster;
let store: RemoteStorage;
/** the timeline backed up, before the point-in-time restore branches off it */
let tenantId: string;
let originalTimeline: string;
let firstBackup: BackupManifest;
/** the point-in-time restore's target, between the pitr table's 'before' and 'after' rows */
let targetMs: number;
const seed = Number(process.env.WALKEEPER_TEST_SEED ?? randomSeed());
const prng = new Prng(seed);

/** Every object in the bucket with its checksum. */
async function bucketSnapshot(): Promise<Map<string, string>> {
  return new Map((await store.list('')).map((o) => [o.key, o.sha256]));
}

/**
 * Nothing in the bucket changed: every object is still there with the same bytes, and the only
 * new ones are WAL the running cluster's safekeepers offloaded meanwhile.
 */
async function expectBucketUnchanged(before: Map<string, string>): Promise<void> {
  const after = await bucketSnapshot();
  for (const [key, sha] of before) expect([key, after.get(key)]).toEqual([key, sha]);
  const added = [...after.keys()].filter((k) => !before.has(k) && !/\/wal\/[0-9A-F]{24}$/.test(k));
  expect(added).toEqual([]);
}

/** term, flush and commit LSN on every member, for "nothing on the safekeepers changed". */
async function safekeeperSnapshot(timelineId = cluster.config.timeline_id): Promise<string[]> {
  const out: string[] = [];
  for (const sk of cluster.config.safekeepers) {
    const r = await httpGet(`${cluster.httpUrl(sk.id)}/v1/tenants/${tenantId}/timelines/${timelineId}`);
    const j = JSON.parse(r.text) as { term: string; flush_lsn: string; commit_lsn: string };
    out.push(`${sk.id} ${j.term} ${j.flush_lsn} ${j.commit_lsn}`);
  }
  return out;
}

async function minBackupLsn(): Promise<Lsn> {
  let min: Lsn | undefined;
  for (const sk of cluster.config.safekeepers) {
    const st = await safekeeperTimeline(cluster, sk.id);
    const l = parseLsn(String(st?.backup_lsn ?? '0/0'));
    if (min === undefined || l < min) min = l;
  }
  return min ?? 0n;
}

async function maxBackupLsn(): Promise<Lsn> {
  let max = 0n;
  for (const sk of cluster.config.safekeepers) {
    const l = parseLsn(String((await safekeeperTimeline(cluster, sk.id))?.backup_lsn ?? '0/0'));
    if (l > max) max = l;
  }
  return max;
}

function restoreOptions(over: Partial<RestoreOptions>): RestoreOptions {
  const remote = cluster.remoteStorage!;
  return {
    store, tenantId, timelineId: originalTimeline, datadir: join(cluster.baseDir, 'scratch', 'data'), target: { kind: 'latest' },
    pgMajor: pgMajorVersion(cluster.postgres.binDir), safekeepers: cluster.safekeeperPgAddresses, restoreCommand: walFetchCommand(remote, tenantId, originalTimeline),
    runAs: cluster.postgres.runAs, ...over,
  };
}

/** The error restoreBackup fails with, and proof that it touched neither the bucket, the safekeepers nor the data directory. */
async function refused(over: Partial<RestoreOptions>): Promise<string> {
  const bucketBefore = await bucketSnapshot();
  const membersBefore = await safekeeperSnapshot(originalTimeline);
  const opts = restoreOptions(over);
  const err = await restoreBackup(opts).then(() => undefined, (e: Error) => e);
  expect(err).toBeInstanceOf(Error);
  await expectBucketUnchanged(bucketBefore);
  expect(await safekeeperSnapshot(originalTimeline)).toEqual(membersBefore);
  expect(existsSync(opts.datadir) && readdirSync(opts.datadir).length > 0).toBe(false);
  return err!.message;
}

/** A copy of a backup under a new (newer) id with a changed manifest: what another system's backup looks like. */
async function forgedBackup(from: BackupManifest, change: Partial<BackupManifest>): Promise<string> {
  const id = newBackupId(new Date());
  const src = backupPrefix(tenantId, originalTimeline, from.backup_id);
  for (const p of from.parts) await store.putImmutable(backupPrefix(tenantId, originalTimeline, id) + p.name, (await store.get(src + p.name))!);
  await store.putImmutable(manifestKey(tenantId, originalTimeline, id), Buffer.from(JSON.stringify({ ...from, backup_id: id, ...change })));
  return id;
}

beforeAll(async () => {
  cluster = await newTestCluster();
  // A short grace: every member then uploads (or finds uploaded) each segment soon, so all
  // backup_lsn move and retention may remove WAL below them.
  mkdirSync(cluster.defaultBucketDir, { recursive: true });
  cluster.config.remote_storage = { url: `file://${cluster.defaultBucketDir}`, flags: { 'grace-ms': '300' } };
  // and little WAL kept on the members: offloaded segments leave their disks, so some WAL a restore needs is only in the bucket
  cluster.config.safekeeper_flags = { 'wal-keep-size': '16MB' };
  cluster.saveConfig();
  await cluster.start();
  store = await openClusterStore(cluster);
  tenantId = cluster.config.tenant_id;
  originalTimeline = cluster.config.timeline_id;
  const c = await pgConnect(cluster.config.postgres.port);
  await c.query(LEDGER_DDL);
  await c.end();
});

afterAll(async () => {
  await store?.close();
  await destroyTestCluster(cluster);
});

test('restore to latest after the primary and its volume are lost under load: every acknowledged row, once (RPO 0)', async () => {
  // Given a workload that records which inserts were acknowledged
  const record = new LedgerRecord();
  const { host } = cluster.config;
  const port = cluster.config.postgres.port;
  const workload = new Workload({ host, port, clients: 4, record, log: () => {} });
  let admin: pg.Client | undefined;
  try {
    workload.start();
    await until('acknowledged rows before the backup', 60_000, async () => record.acknowledged.size >= 200);
    // When a base backup is taken mid-way
    firstBackup = await backupCluster(cluster, { partSize: 1024 * 1024 });
    expect(firstBackup.parts.length).toBeGreaterThan(1);
    // and more WAL follows: whole segments that reach the bucket, then a tail only on the safekeepers
    admin = await pgConnect(port);
    const backupStopSeg = segmentNo(parseLsn(firstBackup.stop_lsn));
    for (let i = 0; i < 2; i++) {
      const seen = record.acknowledged.size;
      await until('more acknowledged rows', 60_000, async () => record.acknowledged.size >= seen + 100);
      await admin.query('SELECT pg_switch_wal()');
    }
    await until('the bucket to hold WAL written after the backup', 90_000, async () => segmentNo(await maxBackupLsn()) > backupStopSeg + 1n);
    // the segment the restore starts from is then in the bucket and on no member's disk
    const startSegment = walFileName(firstBackup.pg_timeline, segmentNo(parseLsn(firstBackup.start_lsn)));
    await until(`segment ${startSegment} to be only in the bucket`, 60_000, async () => {
      const onDisk = cluster.config.safekeepers.some((sk) => existsSync(join(cluster.baseDir, 'safekeepers', `sk${sk.id}`, 'tenants', tenantId, originalTimeline, startSegment)));
      return !onDisk && (await store.head(`tenants/${tenantId}/${originalTimeline}/wal/${startSegment}`)) !== null;
    });
    const seen = record.acknowledged.size;
    await until('a tail of acknowledged rows after the last offloaded segment', 60_000, async () => record.acknowledged.size >= seen + 100);
    await admin.end();
    admin = undefined;
    // and the primary is killed and its data directory deleted
    await cluster.killProposer();
    await cluster.postgres.stop('kill');
    await workload.stop(5_000);
    rmSync(cluster.postgres.dataDir, { recursive: true, force: true });
  } finally {
    await admin?.end().catch(() => undefined);
    await workload.stop(1_000).catch(() => undefined);
  }
  const acknowledged = record.acknowledged.size;

  // Then restore to latest brings back every acknowledged row, none twice, none invented
  const restored = await restoreCluster(cluster, { kind: 'latest' });
  expect(restored.plan.backup.backup_id).toBe(firstBackup.backup_id);
  expect(restored.timelineId).toBe(originalTimeline);
  const check = checkLedger(record.acknowledged, record.attempted, await readLedger(host, port));
  expect({ lost: check.lost.slice(0, 10), duplicates: check.duplicates, phantoms: check.phantoms.slice(0, 10), acknowledged }).toEqual({ lost: [], duplicates: 0, phantoms: [], acknowledged });
  // with WAL from both sources: segments through restore_command, the tail streamed from a safekeeper
  const pgLog = readFileSync(cluster.postgres.logFile, 'utf8');
  expect(pgLog).toMatch(/restored log file "[0-9A-F]{24}" from archive/);
  expect(pgLog).toMatch(/started streaming WAL from primary/);

  // and the restored primary's writes reach the quorum (a COMMIT returns only once they do)
  const c = await pgConnect(port, { statementTimeoutMs: 60_000 });
  try {
    await c.query(`INSERT INTO ledger VALUES (-1, 0, 'after restore')`);
    const lsn = parseLsn((await c.query<{ l: string }>('SELECT pg_current_wal_flush_lsn()::text AS l')).rows[0].l);
    await until('the safekeepers to commit the restored primary\'s insert', 30_000, async () => parseLsn(String((await safekeeperTimeline(cluster, 1))?.commit_lsn ?? '0/0')) >= lsn);
  } finally {
    await c.end();
  }
});

/** The real `walkeeper` binary, as a compute's init container runs it. */
function walkeeper(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [WALKEEPER_JS, ...args], { timeout: 180_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const bootstrapArgs = (datadir: string, timelineId: string, bucketUrl = cluster.config.remote_storage!.url) => [
  'restore', '--if-empty', '--stream-only', '--json', '--datadir', datadir, '--remote-storage', bucketUrl,
  '--tenant-id', tenantId, '--timeline-id', timelineId, '--safekeepers', cluster.safekeeperPgAddresses.join(','),
];

test('a compute whose data directory is empty comes back on its own: `restore --if-empty --stream-only` rebuilds it, the safekeepers stream all WAL (removed WAL from the bucket), every row is there', async () => {
  // Given committed rows, and the primary gone with its volume (a new, empty one in its place)
  const port = cluster.config.postgres.port;
  const c = await pgConnect(port);
  await c.query(`INSERT INTO ledger SELECT -1000 - g, 0, 'before the volume was lost' FROM generate_series(1, 500) g`);
  const expected = (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM ledger')).rows[0].n;
  await c.end();
  await cluster.killProposer();
  await cluster.postgres.stop('immediate');
  const datadir = cluster.postgres.dataDir;
  rmSync(datadir, { recursive: true, force: true });
  mkdirSync(datadir, { mode: 0o700 });
  if (cluster.postgres.runAs) chownSync(datadir, cluster.postgres.runAs.uid, cluster.postgres.runAs.gid);

  // When the compute's init step runs, without a restore_command (a stock postgres image has no walkeeper)
  const first = await walkeeper(bootstrapArgs(datadir, originalTimeline));
  expect([first.code, first.stderr]).toEqual([0, expect.any(String)]);
  expect(JSON.parse(first.stdout)).toMatchObject({ outcome: 'restored', backup_id: firstBackup.backup_id, promote: 'by-proposer' });
  // the WAL from the backup's start is on no member's disk any more: streaming it means reading it from the bucket
  const startSegment = walFileName(firstBackup.pg_timeline, segmentNo(parseLsn(firstBackup.start_lsn)));
  expect(cluster.config.safekeepers.filter((sk) => existsSync(join(cluster.baseDir, 'safekeepers', `sk${sk.id}`, 'tenants', tenantId, originalTimeline, startSegment)))).toEqual([]);
  expect(readFileSync(join(datadir, 'postgresql.auto.conf'), 'utf8')).not.toMatch(/restore_command/);
  // and again at the next start of the pod: a data directory holding a cluster is left alone
  const again = await walkeeper(bootstrapArgs(datadir, originalTimeline));
  expect(JSON.parse(again.stdout)).toEqual({ outcome: 'existing' });

  // Then PostgreSQL streams from the safekeepers and its proposer (--promote) makes it the primary, with every row
  await cluster.postgres.start(300_000);
  await cluster.startProposer({ promote: true });
  await until('the rebuilt PostgreSQL to be promoted by its proposer', 300_000, async () => cluster.postgres.psql('SELECT pg_is_in_recovery()') === 'f');
  await cluster.waitForQuorum(60_000);
  const after = await pgConnect(port);
  try {
    expect((await after.query<{ n: number }>('SELECT count(*)::int AS n FROM ledger')).rows[0].n).toBe(expected);
  } finally {
    await after.end();
  }
  const pgLog = readFileSync(cluster.postgres.logFile, 'utf8');
  expect(pgLog).toMatch(/started streaming WAL from primary/);
});

test('`restore --if-empty` leaves an empty data directory to initdb only for a timeline that never held a system, and refuses one whose WAL has no base backup, changing nothing', async () => {
  const scratch = join(cluster.baseDir, 'scratch', 'bootstrap');
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  // A timeline just registered: nothing to restore, the directory stays empty for initdb
  const fresh = newId();
  for (const sk of cluster.config.safekeepers) {
    const r = await httpPost(`${cluster.httpUrl(sk.id)}/v1/tenants/${tenantId}/timelines`, { timeline_id: fresh });
    expect(r.status).toBe(201);
  }
  const r = await walkeeper(bootstrapArgs(join(scratch, 'fresh'), fresh));
  expect([r.code, JSON.parse(r.stdout)]).toEqual([0, { outcome: 'fresh' }]);
  expect(existsSync(join(scratch, 'fresh')) && readdirSync(join(scratch, 'fresh')).length > 0).toBe(false);

  // The original timeline against a bucket without its backups: initdb would be refused by the safekeepers, so it is an error
  const emptyBucket = join(scratch, 'empty-bucket');
  mkdirSync(emptyBucket);
  // The proposer is stopped so that the safekeepers' state is still (the primary's own WAL, such
  // as its periodic standby snapshots, would move it): only the refused run could change it now.
  await cluster.stopProposer();
  try {
    const membersBefore = await safekeeperSnapshot(originalTimeline);
    const refusedRun = await walkeeper(bootstrapArgs(join(scratch, 'lost'), originalTimeline, `file://${emptyBucket}`));
    expect(refusedRun.code).not.toBe(0);
    expect(refusedRun.stderr).toMatch(/safekeepers hold WAL of PostgreSQL system \d+ up to [0-9A-F]+\/[0-9A-F]+ on timeline [0-9a-f]{32}, but file:\/\/.* has no complete base backup of it/);
    expect(readdirSync(emptyBucket)).toEqual([]);
    expect(existsSync(join(scratch, 'lost'))).toBe(false);
    expect(await safekeeperSnapshot(originalTimeline)).toEqual(membersBefore);
  } finally {
    await cluster.startProposer();
    await cluster.waitForQuorum();
  }

  // A directory with files but no cluster (an interrupted initdb) is named, not overwritten
  mkdirSync(join(scratch, 'half'));
  writeFileSync(join(scratch, 'half', 'postgresql.conf'), '# half an initdb\n');
  const half = await walkeeper(bootstrapArgs(join(scratch, 'half'), originalTimeline));
  expect(half.code).not.toBe(0);
  expect(half.stderr).toMatch(/is not empty but holds no PostgreSQL cluster \(no PG_VERSION\)/);
  expect(readdirSync(join(scratch, 'half'))).toEqual(['postgresql.conf']);
});

test('bad input is refused with a clear error, and nothing in the bucket, on the safekeepers or in the data directory changes', async () => {
  // The proposer is stopped so that the safekeepers' state is still; only a restore could change it now.
  await cluster.stopProposer();
  try {
    await refusals();
  } finally {
    await cluster.startProposer();
    await cluster.waitForQuorum();
  }
});

async function refusals(): Promise<void> {
  const oldest = (await listBackups(store, tenantId, originalTimeline)).complete[0];
  // a target before the oldest backup, and after the newest WAL
  expect(await refused({ target: { kind: 'time', time: new Date(Date.parse(oldest.stop_time) - 60_000) } })).toMatch(/is before the oldest base backup .*consistent from/);
  expect(await refused({ target: { kind: 'time', time: new Date(Date.now() + 3_600_000) } })).toMatch(/is after the newest WAL: it is in the future/);
  expect(await refused({ target: { kind: 'lsn', lsn: parseLsn('FF/0') } })).toMatch(/target LSN FF\/0 is after the newest WAL: the safekeepers have committed up to/);
  // a data directory that is not empty
  const busy = join(cluster.baseDir, 'scratch', 'busy');
  rmSync(busy, { recursive: true, force: true });
  mkdirSync(busy, { recursive: true });
  writeFileSync(join(busy, 'precious'), 'x');
  const bucketBefore = await bucketSnapshot();
  await expect(restoreBackup(restoreOptions({ datadir: busy }))).rejects.toThrow(/data directory .*busy is not empty: .*--force/);
  expect(readdirSync(busy)).toEqual(['precious']);
  await expectBucketUnchanged(bucketBefore);

  // a manifest for another PostgreSQL version
  const v14 = await forgedBackup(oldest, { pg_version_num: 140010 });
  expect(await refused({})).toMatch(new RegExp(`base backup ${v14} is of PostgreSQL 14 .*restore with PostgreSQL 14`));
  await store.delete(manifestKey(tenantId, originalTimeline, v14));
  // a backup of another PostgreSQL system than the safekeepers' WAL
  const other = await forgedBackup(oldest, { system_identifier: '1234567890' });
  expect(await refused({})).toMatch(new RegExp(`base backup ${other} is of PostgreSQL system 1234567890, but the safekeepers' timeline`));
  await store.delete(manifestKey(tenantId, originalTimeline, other));
  // a corrupt part, and a missing part
  const corrupt = await forgedBackup(oldest, {});
  const partPath = join(cluster.defaultBucketDir, backupPrefix(tenantId, originalTimeline, corrupt) + oldest.parts[1].name);
  const bytes = readFileSync(partPath);
  bytes[100] ^= 0xff;
  writeFileSync(partPath, bytes);
  expect(await refused({})).toMatch(new RegExp(`base backup ${corrupt} is damaged: part ${oldest.parts[1].name}: .*damaged: its bytes have sha256`));
  rmSync(partPath);
  rmSync(`${partPath}.sha256`);
  expect(await refused({})).toMatch(new RegExp(`base backup ${corrupt} is damaged: part ${oldest.parts[1].name} is missing`));
  await store.delete(manifestKey(tenantId, originalTimeline, corrupt));
  // the bucket of another tenant: its backups are not this tenant's
  const stranger = newId();
  const strangerTimeline = newId();
  for (const sk of cluster.config.safekeepers) {
    expect((await httpPost(`${cluster.httpUrl(sk.id)}/v1/tenants`, { tenant_id: stranger })).status).toBe(201);
    expect((await httpPost(`${cluster.httpUrl(sk.id)}/v1/tenants/${stranger}/timelines`, { timeline_id: strangerTimeline })).status).toBe(201);
  }
  expect(await refused({ tenantId: stranger, timelineId: strangerTimeline })).toMatch(new RegExp(`no complete base backup in file://.* for tenant ${stranger} timeline ${strangerTimeline}`));
}

/** Runs `walkeeper <args>` and kill -9s it once `killWhen` says so; resolves with how it ended. */
async function runAndKill(args: string[], killWhen: () => Promise<boolean>): Promise<'killed' | 'finished'> {
  const child = spawn(process.execPath, [WALKEEPER_JS, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));
  try {
    while (!done) {
      if (await killWhen()) {
        child.kill('SIGKILL');
        await exited;
        return 'killed';
      }
      await sleep(5);
    }
    const code = await exited;
    if (code !== 0) throw new Error(`walkeeper ${args[0]} failed (exit ${code}): ${stderr}`);
    return 'finished';
  } finally {
    if (!done) child.kill('SIGKILL');
  }
}

test(`kill -9 of a backup or a restore at seeded points (seed ${seed}): no backup looks complete that is not, and a retried restore succeeds`, async () => {
  const storeFlags = ['--remote-storage', cluster.remoteStorage!.url, '--tenant-id', tenantId, '--timeline-id', originalTimeline];
  const c = cluster.config;
  const pgConn = `host=${c.host} port=${c.postgres.port} user=postgres dbname=postgres`;
  const backupDir = join(cluster.defaultBucketDir, 'tenants', tenantId, originalTimeline, 'basebackups');
  const countParts = () => readdirSync(backupDir, { recursive: true }).filter((n) => String(n).endsWith('.tar.gz.sha256')).length;
  for (let round = 0; round < 3; round++) {
    // kill once the backup has uploaded a seeded number of parts (0 = while pg_basebackup starts)
    const before = countParts();
    const killAfterParts = prng.int(0, Math.max(0, firstBackup.parts.length - 1));
    const outcome = await runAndKill(['backup', 'create', ...storeFlags, '--pg', pgConn, '--part-size', '1MB'], async () => countParts() - before >= killAfterParts && (killAfterParts > 0 || prng.next() < 0.5));
    const catalog = await listBackups(store, tenantId, originalTimeline);
    for (const m of catalog.complete) {
      for (const p of m.parts) expect(await store.head(backupPrefix(tenantId, originalTimeline, m.backup_id) + p.name)).toMatchObject({ sha256: p.sha256, size: p.size });
    }
    if (outcome === 'killed') expect(catalog.incomplete.length).toBeGreaterThan(0);
  }

  // kill the restore once its staging directory holds a seeded number of entries, then retry
  const scratch = mkdtempSync(join(cluster.baseDir, 'kill-restore-'));
  const runAs = cluster.postgres.runAs;
  if (runAs) chownSync(scratch, runAs.uid, runAs.gid); // PostgreSQL must reach its data directory
  const datadir = join(scratch, 'data');
  const staging = join(scratch, '.data.restoring');
  const restoreArgs = ['restore', ...storeFlags, '--datadir', datadir, '--safekeepers', cluster.safekeeperPgAddresses.join(',')];
  const killAtEntries = prng.int(0, 8);
  const bucketBefore = await bucketSnapshot();
  const first = await runAndKill(restoreArgs, async () => existsSync(staging) && readdirSync(staging).length >= killAtEntries);
  await expectBucketUnchanged(bucketBefore);
  // killed: the target was never touched, and a plain retry succeeds; a restore that won the race is complete, and replacing it needs --force
  expect(existsSync(datadir)).toBe(first === 'finished');
  expect(await runAndKill(first === 'killed' ? restoreArgs : [...restoreArgs, '--force'], async () => false)).toBe('finished');
  expect(existsSync(staging)).toBe(false);
  for (const f of ['PG_VERSION', 'backup_label', 'standby.signal', 'global/pg_control']) expect(existsSync(join(datadir, f))).toBe(true);
  expect(readFileSync(join(datadir, 'postgresql.auto.conf'), 'utf8')).toMatch(/restore_command = .*wal-fetch/);
  // the retried restore took the newest complete backup (a kill above may have left one complete)
  const newest = (await listBackups(store, tenantId, originalTimeline)).complete.at(-1)!;
  expect(readFileSync(join(datadir, 'backup_label'), 'utf8')).toContain(`START WAL LOCATION: ${newest.start_lsn}`);
  rmSync(scratch, { recursive: true, force: true });
});

test('retention keeps the newest backups and deletes older ones and only the bucket WAL no kept backup needs', async () => {
  // Given at least two complete backups, WAL after each, and an incomplete leftover of an old crash
  const admin = await pgConnect(cluster.config.postgres.port);
  try {
    await admin.query('SELECT pg_switch_wal()');
    await admin.query(`INSERT INTO ledger VALUES (-2, 0, 'before the last backup')`);
  } finally {
    await admin.end();
  }
  const newest = await backupCluster(cluster, { partSize: 1024 * 1024 });
  const leftover = newBackupId(new Date(Date.parse(firstBackup.start_time) - 1000));
  await store.putImmutable(backupPrefix(tenantId, originalTimeline, leftover) + 'part-00000.tar.gz', Buffer.from('half a backup'));
  const before = await listBackups(store, tenantId, originalTimeline);
  expect(before.complete.length).toBeGreaterThanOrEqual(2);
  const backupLsn = await until('every member\'s backup_lsn past the newest backup\'s start', 60_000, async () => {
    const l = await minBackupLsn();
    return segmentNo(l) > segmentNo(parseLsn(newest.start_lsn)) ? l : undefined;
  });
  const walPrefix = `tenants/${tenantId}/${originalTimeline}/wal/`;
  const walBefore = (await store.list(walPrefix)).map((o) => o.key.slice(walPrefix.length));

  // When retention keeps one
  const r = await applyRetention(store, tenantId, originalTimeline, { keep: 1, backupLsn });

  // Then only the newest is left, the leftover is gone, and exactly the WAL below the horizon went
  expect(r.kept).toEqual([newest.backup_id]);
  expect(r.deleted_backups.sort()).toEqual(before.complete.filter((m) => m.backup_id !== newest.backup_id).map((m) => m.backup_id).sort());
  expect(r.deleted_incomplete).toContain(leftover);
  const after = await listBackups(store, tenantId, originalTimeline);
  expect(after.complete.map((m) => m.backup_id)).toEqual([newest.backup_id]);
  expect(after.incomplete.map((b) => b.backup_id)).not.toContain(leftover);
  const horizon = parseLsn(newest.start_lsn) < backupLsn ? parseLsn(newest.start_lsn) : backupLsn;
  const walAfter = (await store.list(walPrefix)).map((o) => o.key.slice(walPrefix.length));
  const isOld = (name: string) => {
    const seg = parseWalFileName(name);
    return seg !== null && seg.segNo < segmentNo(horizon);
  };
  expect(walBefore.some(isOld)).toBe(true);
  expect(r.deleted_wal.filter((n) => !isOld(n))).toEqual([]);
  expect(walBefore.filter(isOld).filter((n) => !r.deleted_wal.includes(n))).toEqual([]);
  for (const n of walBefore) expect([n, walAfter.includes(n)]).toEqual([n, !isOld(n)]);

  // and an age rule that would drop everything still never deletes the last good backup
  const far = await applyRetention(store, tenantId, originalTimeline, { maxAgeDays: 1, now: new Date(Date.now() + 30 * 86_400_000) });
  expect(far).toMatchObject({ kept: [newest.backup_id], deleted_backups: [], deleted_wal: [] });
});

test('point-in-time restore: rows before the target are there, rows after are not, and the server writes on a new PostgreSQL timeline to a new walkeeper timeline', async () => {
  const port = cluster.config.postgres.port;
  const c = await pgConnect(port);
  const pgTimelineBefore = parseInt(cluster.postgres.psql('SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)'), 16);
  try {
    await c.query('CREATE TABLE pitr (id int PRIMARY KEY, phase text NOT NULL)');
    await c.query(`INSERT INTO pitr SELECT g, 'before' FROM generate_series(1, 100) g`);
    // the target: a millisecond strictly after the 'before' commit, by the server's own clock
    targetMs = Number((await c.query<{ ms: string }>(`SELECT (floor(extract(epoch FROM clock_timestamp()) * 1000) + 1)::bigint::text AS ms`)).rows[0].ms);
    await until('the server clock to pass the target', 10_000, async () => Number((await c.query<{ ms: string }>(`SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint::text AS ms`)).rows[0].ms) > targetMs + 1);
    await c.query(`INSERT INTO pitr SELECT g, 'after' FROM generate_series(101, 200) g`);
  } finally {
    await c.end();
  }
  const walPrefix = `tenants/${tenantId}/${originalTimeline}/wal/`;
  const originalWal = await store.list(walPrefix);

  // When restored to the target
  const restored = await restoreCluster(cluster, { kind: 'time', time: new Date(targetMs) }, { force: true });

  // Then the rows before it are there and those after are not
  expect(cluster.postgres.psql(`SELECT phase, count(*) FROM pitr GROUP BY phase ORDER BY phase`)).toBe('before|100');
  expect(cluster.postgres.psql(`SELECT payload FROM ledger WHERE id = -2`)).toBe('before the last backup');
  // on a new PostgreSQL timeline, pushed to a new walkeeper timeline
  expect(restored.pgTimeline).toBeGreaterThan(pgTimelineBefore);
  expect(restored.timelineId).not.toBe(originalTimeline);
  expect(cluster.config.timeline_id).toBe(restored.timelineId);
  const w = await pgConnect(port, { statementTimeoutMs: 60_000 });
  try {
    await w.query(`INSERT INTO pitr VALUES (1000, 'branch')`);
    const lsn = parseLsn((await w.query<{ l: string }>('SELECT pg_current_wal_flush_lsn()::text AS l')).rows[0].l);
    await until('the safekeepers to commit the branch\'s insert', 30_000, async () => parseLsn(String((await safekeeperTimeline(cluster, 1))?.commit_lsn ?? '0/0')) >= lsn);
    await w.query('SELECT pg_switch_wal()');
    await w.query(`INSERT INTO pitr VALUES (1001, 'branch')`);
  } finally {
    await w.end();
  }
  // whose WAL and history file reach the bucket under the new timeline
  const branchPrefix = `tenants/${tenantId}/${restored.timelineId}/wal/`;
  const historyName = `${restored.pgTimeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
  await until('the branch\'s history file and a WAL segment in the bucket', 90_000, async () => {
    const names = (await store.list(branchPrefix)).map((o) => o.key.slice(branchPrefix.length));
    return names.includes(historyName) && names.some((n) => parseWalFileName(n)?.pgTimeline === restored.pgTimeline);
  });
  // and the original timeline's WAL in the bucket is as it was
  const originalAfter = new Map((await store.list(walPrefix)).map((o) => [o.key, o.sha256]));
  for (const o of originalWal) expect(originalAfter.get(o.key)).toBe(o.sha256);
});

test('a new timeline recovered from another at a point (`restore --if-empty --recover-from-*`, a Tenant\'s spec.bootstrap.recovery): the copy promotes itself at the target, then its --promote proposer starts the new timeline; the source is only read', async () => {
  const fork = newId();
  const datadir = cluster.postgres.dataDir;
  const recoverArgs = (target: string[]) => [...bootstrapArgs(datadir, fork), '--recover-from-tenant-id', tenantId, '--recover-from-timeline-id', originalTimeline, ...target];
  // Bad input first, refused before anything is touched
  for (const [args, why] of [
    [recoverArgs([]), /needs --target-time or --target-lsn/],
    [[...bootstrapArgs(datadir, fork), '--recover-from-tenant-id', 'nope', '--recover-from-timeline-id', originalTimeline, '--target-lsn', '0/1'], /invalid --recover-from-tenant-id "nope"/],
    [recoverArgs(['--target-lsn', '0/1']).filter((a) => a !== '--if-empty'), /go with --if-empty/],
    [[...bootstrapArgs(datadir, fork), '--target-lsn', '0/1'], /--target-time and --target-lsn apply only to a recovery source/],
  ] as [string[], RegExp][]) {
    const r = await walkeeper(args);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(why);
  }

  // Given the source timeline, quiet since the point-in-time restore branched off it, and an empty volume
  await cluster.killProposer();
  await cluster.postgres.stop('immediate');
  rmSync(datadir, { recursive: true, force: true });
  mkdirSync(datadir, { mode: 0o700 });
  if (cluster.postgres.runAs) chownSync(datadir, cluster.postgres.runAs.uid, cluster.postgres.runAs.gid);
  for (const sk of cluster.config.safekeepers) {
    expect((await httpPost(`${cluster.httpUrl(sk.id)}/v1/tenants/${tenantId}/timelines`, { timeline_id: fork })).status).toBe(201);
  }
  const sourceBefore = await safekeeperSnapshot(originalTimeline);
  const sourceObjects = (await store.list(`tenants/${tenantId}/${originalTimeline}/`)).map((o) => `${o.key} ${o.sha256}`);

  // When the compute's init step runs with the recovery source and a target
  const r = await walkeeper(recoverArgs(['--target-time', new Date(targetMs).toISOString()]));
  expect([r.code, r.stderr]).toEqual([0, expect.stringMatching(/recovering from tenant [0-9a-f]{32} timeline [0-9a-f]{32} to time/)]);
  expect(JSON.parse(r.stdout)).toMatchObject({ outcome: 'recovered', promote: 'at-target', target: `time ${new Date(targetMs).toISOString()}` });

  // Then PostgreSQL replays the source to the target and promotes itself; the proposer, started
  // beside it with --promote as a compute's is, waits for that instead of promoting it early
  cluster.config.timeline_id = fork;
  cluster.saveConfig();
  await cluster.postgres.start(300_000);
  await cluster.startProposer({ promote: true });
  await until('the copy to promote itself', 300_000, async () => cluster.postgres.psql('SELECT pg_is_in_recovery()') === 'f');
  await cluster.waitForQuorum(120_000);
  expect(cluster.postgres.psql(`SELECT phase, count(*) FROM pitr GROUP BY phase ORDER BY phase`)).toBe('before|100');
  const w = await pgConnect(cluster.config.postgres.port, { statementTimeoutMs: 60_000 });
  try {
    await w.query(`INSERT INTO pitr VALUES (2000, 'fork')`);
    const lsn = parseLsn((await w.query<{ l: string }>('SELECT pg_current_wal_flush_lsn()::text AS l')).rows[0].l);
    await until('the new timeline to commit the copy\'s insert', 60_000, async () => parseLsn(String((await safekeeperTimeline(cluster, 1))?.commit_lsn ?? '0/0')) >= lsn);
  } finally {
    await w.end();
  }
  // and the source is as it was, on the safekeepers and in the bucket
  expect(await safekeeperSnapshot(originalTimeline)).toEqual(sourceBefore);
  const sourceAfter = new Set((await store.list(`tenants/${tenantId}/${originalTimeline}/`)).map((o) => `${o.key} ${o.sha256}`));
  expect(sourceObjects.filter((o) => !sourceAfter.has(o))).toEqual([]);
  // and once the new timeline holds WAL, the same init step leaves the directory alone
  expect(JSON.parse((await walkeeper(recoverArgs(['--target-time', new Date(targetMs).toISOString()]))).stdout)).toEqual({ outcome: 'existing' });
});
