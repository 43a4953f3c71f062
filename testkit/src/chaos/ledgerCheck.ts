// The end of every chaos scenario: the torture's ledger check. Before the workload, the ledger
// table and a base backup without WAL; after it, WAL streamed by stock pg_receivewal from ONE
// safekeeper, a brand-new server restored from both, and checkLedger over what the workload
// knows was acknowledged. Before the WAL is read, segments are switched until that member has
// removed the backup's start, so the check reads removed WAL back from the bucket. Reuses the
// torture's restore and ledger code unchanged.
import { join } from 'node:path';
import pg from 'pg';
import { formatLsn, parseLsn, type Lsn } from '@walkeeper/dataplane/common/lsn';
import type { LocalCluster } from '@walkeeper/dataplane/local/cluster';
import { sleep, type RunAs } from '@walkeeper/dataplane/local/postgres';
import { checkLedger, type LedgerCheck, type LedgerRecord } from '../torture/ledger.js';
import { readLedger, receiveWalFromSafekeeper, startRestoredServer, switchUntilRemoved, takeBaseBackup, type BaseBackup } from '../torture/restore.js';
import { LEDGER_DDL } from '../torture/workload.js';

export async function sql<T extends pg.QueryResultRow = pg.QueryResultRow>(host: string, port: number, text: string, timeoutMs = 30_000): Promise<T[]> {
  const c = new pg.Client({ host, port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 10_000, query_timeout: timeoutMs });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return (await c.query<T>(text)).rows;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Ledger table, a checkpoint and a base backup (no WAL) into <baseDir>/<name>/data. */
export async function prepareLedger(cluster: LocalCluster, name: string, runAs: RunAs | undefined): Promise<BaseBackup> {
  await sql(cluster.config.host, cluster.config.postgres.port, LEDGER_DDL);
  await sql(cluster.config.host, cluster.config.postgres.port, 'CHECKPOINT');
  return takeBaseBackup(cluster, join(cluster.baseDir, name, 'data'), runAs);
}

/** Waits until the proposer's commit LSN reaches the primary's flush LSN; returns it. */
export async function waitForCommit(cluster: LocalCluster, timeoutMs = 60_000): Promise<Lsn> {
  const flush = parseLsn((await sql<{ lsn: string }>(cluster.config.host, cluster.config.postgres.port, 'SELECT pg_current_wal_flush_lsn()::text AS lsn'))[0].lsn);
  const deadline = Date.now() + timeoutMs;
  let commit = 0n;
  while (Date.now() < deadline) {
    const s = await cluster.proposerStatus().catch(() => undefined);
    if (s?.commit_lsn) commit = parseLsn(s.commit_lsn);
    if (commit >= flush) return commit;
    await sleep(100);
  }
  throw new Error(`the proposer's commit LSN ${formatLsn(commit)} did not reach the primary's flush LSN ${formatLsn(flush)} within ${timeoutMs} ms`);
}

export interface LedgerVerification extends LedgerCheck {
  readerSafekeeper: number;
  commitLsn: string;
  restoredRows: number;
  /** the reader's first local LSN: above the base backup's start, so the restore read WAL it removed from the bucket */
  readerLocalStartLsn: string;
}

/**
 * Streams WAL up to `commitLsn` from safekeeper `readerId` (reached through `readerView`, a
 * LocalCluster whose `host` reaches that safekeeper), restores a new server from `backup` on
 * `restoredPort` of `restoredHost`, and checks the ledger. The restored server is stopped.
 */
export async function verifyLedger(opts: {
  readerView: LocalCluster;
  readerId: number;
  backup: BaseBackup;
  record: LedgerRecord;
  commitLsn: Lsn;
  restoredHost: string;
  restoredPort: number;
  runAs: RunAs | undefined;
  name: string;
  /** the current primary (segments are switched on it until the reader removed the backup's start); default the reader view's */
  primary?: { host: string; port: number };
}): Promise<LedgerVerification> {
  const base = opts.readerView.baseDir;
  const walDir = join(base, opts.name, 'wal');
  const primary = opts.primary ?? { host: opts.readerView.config.host, port: opts.readerView.config.postgres.port };
  const localStart = await switchUntilRemoved(opts.readerView, opts.readerId, opts.backup.startLsn, primary);
  await receiveWalFromSafekeeper(opts.readerView, opts.readerId, walDir, opts.backup.startWalFile, opts.commitLsn, opts.runAs);
  const server = await startRestoredServer(opts.backup, walDir, opts.restoredHost, opts.restoredPort, join(base, 'logs', `${opts.name}-restored.log`), opts.runAs);
  try {
    const ledger = await readLedger(opts.restoredHost, opts.restoredPort);
    const check = checkLedger(opts.record.acknowledged, opts.record.attempted, ledger);
    return { ...check, readerSafekeeper: opts.readerId, commitLsn: formatLsn(opts.commitLsn), restoredRows: ledger.countAll, readerLocalStartLsn: formatLsn(localStart) };
  } finally {
    await server.stop('immediate').catch(() => undefined);
  }
}
