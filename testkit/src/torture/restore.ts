// Rebuilding PostgreSQL from the safekeepers alone: a base backup taken before the workload
// (no WAL in it), WAL streamed by stock pg_receivewal from one safekeeper, and a brand-new
// server that replays it through restore_command to the end and then opens for reads.
import { chownSync, existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { formatLsn, parseLsn, segmentStart, type Lsn } from '@walkeeper/dataplane/common/lsn';
import { httpGet, type LocalCluster } from '@walkeeper/dataplane/local/cluster';
import { ensureDirFor, PostgresServer, sleep, type RunAs } from '@walkeeper/dataplane/local/postgres';
import type { RestoredLedger } from './ledger.js';
import { runOk } from './env.js';

export interface BaseBackup {
  dataDir: string;
  startLsn: Lsn;
  /** the WAL segment holding startLsn, e.g. 000000010000000000000003 */
  startWalFile: string;
}

/** pg_basebackup -X none of the cluster's primary into dataDir (run as the PostgreSQL user). */
export async function takeBaseBackup(cluster: LocalCluster, dataDir: string, runAs: RunAs | undefined): Promise<BaseBackup> {
  ensureDirFor(dataDir, runAs);
  const pgb = join(cluster.postgres.binDir, 'pg_basebackup');
  await runOk('pg_basebackup', pgb, ['-D', dataDir, '-X', 'none', '-c', 'fast', '-h', cluster.config.host, '-p', String(cluster.config.postgres.port), '-U', 'postgres', '--no-password'], { runAs, timeoutMs: 180_000 });
  const label = readFileSync(join(dataDir, 'backup_label'), 'utf8');
  const m = /START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)/.exec(label);
  if (!m) throw new Error(`cannot find START WAL LOCATION in ${join(dataDir, 'backup_label')}:\n${label}`);
  return { dataDir, startLsn: parseLsn(m[1]), startWalFile: m[2] };
}

export interface ReceivedWal {
  walDir: string;
  files: string[];
  output: string;
}

/**
 * Streams WAL [start of startWalFile, endLsn] from one safekeeper with stock pg_receivewal.
 * An empty `<startWalFile>.partial` makes pg_receivewal begin at that segment (it resumes from
 * the newest file in its directory). --endpos stops it once it has received past endpos, so
 * endpos = endLsn - 1 ends the run exactly when the safekeeper has sent endLsn.
 * The last segment comes as `.partial`; it is renamed for restore_command.
 */
export async function receiveWalFromSafekeeper(cluster: LocalCluster, safekeeperId: number, walDir: string, startWalFile: string, endLsn: Lsn, runAs: RunAs | undefined): Promise<ReceivedWal> {
  ensureDirFor(walDir, runAs);
  const seed = join(walDir, `${startWalFile}.partial`);
  writeFileSync(seed, '');
  if (runAs) chownSync(seed, runAs.uid, runAs.gid);
  const conn = cluster.readerConnInfo(safekeeperId);
  const bin = join(cluster.postgres.binDir, 'pg_receivewal');
  const r = await runOk('pg_receivewal', bin, ['-D', walDir, '-d', conn, '--endpos', formatLsn(endLsn - 1n), '--no-loop', '--no-password', '-v'], { runAs, timeoutMs: 180_000 });
  for (const f of readdirSync(walDir)) {
    if (f.endsWith('.partial')) {
      const full = f.slice(0, -'.partial'.length);
      if (!existsSync(join(walDir, full))) renameSync(join(walDir, f), join(walDir, full));
    }
  }
  return { walDir, files: readdirSync(walDir).sort(), output: r.stderr.trim() };
}

/**
 * Completes segments on the primary (`host`:`port`) until safekeeper `id` has removed the
 * segment holding `lsn` from its disk, so that a restore reading WAL from `lsn` on that member
 * crosses WAL it removed. Returns the member's first local LSN; throws when removal does not
 * get there (offload stuck, removal held), since the check would then prove less than it says.
 */
export async function switchUntilRemoved(cluster: LocalCluster, id: number, lsn: Lsn, primary: { host: string; port: number }, timeoutMs = 120_000): Promise<Lsn> {
  const client = new pg.Client({ host: primary.host, port: primary.port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined);
  await client.connect();
  const c = cluster.config;
  const deadline = Date.now() + timeoutMs;
  let localStart = 0n;
  try {
    for (;;) {
      const r = await httpGet(`${cluster.httpUrl(id)}/v1/tenants/${c.tenant_id}/timelines/${c.timeline_id}`);
      if (r.status === 200) localStart = parseLsn((JSON.parse(r.text) as { local_start_lsn: string }).local_start_lsn);
      if (localStart > segmentStart(lsn)) return localStart;
      if (Date.now() > deadline) {
        throw new Error(`safekeeper ${id} still holds WAL from ${formatLsn(localStart)} after ${timeoutMs} ms of segment switches: the segment holding ${formatLsn(lsn)} was never removed, so a restore from it would not cross removed WAL`);
      }
      // a record outside any table (the ledger must not change), then the segment ends
      await client.query(`SELECT pg_logical_emit_message(false, 'walkeeper', 'segment switch'), pg_switch_wal()`);
      await sleep(200);
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Configures the base backup as a brand-new server that replays walDir to its end, and starts it. */
export async function startRestoredServer(backup: BaseBackup, walDir: string, host: string, port: number, logFile: string, runAs: RunAs | undefined): Promise<PostgresServer> {
  const socketDir = join(backup.dataDir, '..', 'socket');
  ensureDirFor(socketDir, runAs);
  const server = new PostgresServer({ dataDir: backup.dataDir, port, host, socketDir, logFile });
  server.configure({
    listen_addresses: `'${host}'`,
    port,
    unix_socket_directories: `'${socketDir}'`,
    synchronous_standby_names: `''`,
    restore_command: `'cp "${walDir}/%f" "%p"'`,
    recovery_target_timeline: `'latest'`,
    archive_mode: 'off',
  });
  const signal = join(backup.dataDir, 'recovery.signal');
  writeFileSync(signal, '');
  if (runAs) chownSync(signal, runAs.uid, runAs.gid);
  await server.start(300_000);
  for (let i = 0; i < 600; i++) {
    if (server.psql('SELECT pg_is_in_recovery()') === 'f') return server;
    await sleep(100);
  }
  throw new Error(`restored server on port ${port} is still in recovery after 60 s; see ${logFile}`);
}

/** Reads every ledger row's id with a sequential scan (so heap duplicates cannot hide behind the index). */
export async function readLedger(host: string, port: number): Promise<RestoredLedger> {
  const client = new pg.Client({ host, port, user: 'postgres', database: 'postgres' });
  await client.connect();
  try {
    await client.query('SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = off');
    const counts = await client.query<{ all: string; distinct: string }>('SELECT count(*)::text AS all, count(DISTINCT id)::text AS distinct FROM ledger');
    const rows = await client.query<{ id: string }>('SELECT id::text AS id FROM ledger');
    return { ids: rows.rows.map((r) => Number(r.id)), countAll: Number(counts.rows[0].all), countDistinct: Number(counts.rows[0].distinct) };
  } finally {
    await client.end().catch(() => undefined);
  }
}
