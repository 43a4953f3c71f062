// The durability torture: a LocalCluster under a concurrent insert workload while a seeded
// schedule kills safekeepers, the proposer and PostgreSQL; then a brand-new PostgreSQL is
// rebuilt from a base backup plus WAL streamed only from a safekeeper, and every
// acknowledged row must be on it exactly once.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { formatLsn, parseLsn, segmentStart, type Lsn } from '@walkeeper/dataplane/common/lsn';
import type { LocalCluster } from '@walkeeper/dataplane/local/cluster';
import { sleep, type PostgresServer } from '@walkeeper/dataplane/local/postgres';
import { EXTRA_PORT, killCluster, newTempCluster, safekeeperTimeline, timestamped, withWalRemoval } from './env.js';
import { applyFault, emptyFaultCounts, heal } from './faults.js';
import { applyBreakRule, checkLedger, LedgerRecord, type BreakRule, type LedgerCheck } from './ledger.js';
import { Prng, randomSeed } from '@walkeeper/dataplane/common/prng';
import { readLedger, receiveWalFromSafekeeper, startRestoredServer, switchUntilRemoved, takeBaseBackup } from './restore.js';
import { FAULT_KINDS, generateSchedule, type FaultKind } from './schedule.js';
import { LEDGER_DDL, Workload, destroyClient } from './workload.js';

export interface TortureOptions {
  seconds: number;
  seed?: number;
  log?: (line: string) => void;
  /** concurrent workload clients (default 8) */
  clients?: number;
  /** deliberately break the check so the run must fail (proves the checker can fail) */
  breakRule?: BreakRule;
  /** keep the temp directory: always, never, or only when the run fails (default) */
  keepDir?: 'always' | 'never' | 'on-failure';
  /** fault mix; a weight of 0 disables a kind */
  weights?: Partial<Record<FaultKind, number>>;
  parentDir?: string;
}

export interface TortureReport {
  seed: number;
  seconds: number;
  clients: number;
  attempted: number;
  acknowledged: number;
  unknown: number;
  faults: Record<FaultKind, number>;
  faultsTotal: number;
  proposerRestartsBySupervisor: number;
  slowRecoveries: number;
  workloadErrors: number;
  syncRepWarnings: number;
  rowsOnPrimary?: number;
  commitLsn?: string;
  readerSafekeeper?: number;
  /** the reader's first local LSN when it was read: above the base backup's start, so the restore read WAL it removed */
  readerLocalStartLsn?: string;
  walFiles?: number;
  restoredRows?: number;
  lost: number;
  lostIds: number[];
  duplicates: number;
  phantoms: number;
  unknownPresent?: number;
  breakRule?: BreakRule;
  fakeId?: number;
  /** the run could not complete (setup, a fault or the restore failed) */
  error?: string;
  ok: boolean;
  dir?: string;
}

export async function runTorture(opts: TortureOptions): Promise<TortureReport> {
  const seed = opts.seed ?? randomSeed();
  const clients = opts.clients ?? 8;
  const t0 = Date.now();
  const log = timestamped(t0, opts.log ?? ((l) => process.stdout.write(l + '\n')));
  const record = new LedgerRecord();
  const counts = emptyFaultCounts();
  const report: TortureReport = {
    seed, seconds: opts.seconds, clients, attempted: 0, acknowledged: 0, unknown: 0,
    faults: { ...counts.byKind }, faultsTotal: 0, proposerRestartsBySupervisor: 0, slowRecoveries: 0,
    workloadErrors: 0, syncRepWarnings: 0, lost: 0, lostIds: [], duplicates: 0, phantoms: 0, ok: false,
    breakRule: opts.breakRule,
  };
  log(`torture: seed ${seed} (replay with --seed ${seed}), ${opts.seconds} s, ${clients} clients${opts.breakRule ? `, break rule ${opts.breakRule}` : ''}`);

  const { cluster, portBase, runAs } = await newTempCluster('walkeeper-torture-', opts.parentDir);
  withWalRemoval(cluster);
  const dir = cluster.baseDir;
  log(`torture: cluster in ${dir}, ports ${portBase}..${portBase + 29}, tenant ${cluster.config.tenant_id} timeline ${cluster.config.timeline_id}`);
  let restored: PostgresServer | undefined;
  let workload: Workload | undefined;
  try {
    await cluster.start((m) => log(`cluster: ${m}`));
    const host = cluster.config.host;
    const port = cluster.config.postgres.port;

    // the table and a checkpoint, then the base backup: its start LSN is past the timeline start
    await withClient(host, port, async (c) => {
      await c.query(LEDGER_DDL);
      await c.query('CHECKPOINT');
    });
    const backup = await takeBaseBackup(cluster, join(dir, 'restore', 'data'), runAs);
    const tl = await safekeeperTimeline(cluster, cluster.config.safekeepers[0].id);
    const startFields = tl ? Object.entries(tl).filter(([k]) => /start/i.test(k)).map(([k, v]) => `${k}=${String(v)}`).join(' ') : '';
    log(`torture: base backup taken, start LSN ${formatLsn(backup.startLsn)} (${backup.startWalFile}); safekeeper 1 timeline: ${startFields || '(no start field reported)'}`);
    const tlStart = typeof tl?.timeline_start_lsn === 'string' ? parseLsn(tl.timeline_start_lsn) : undefined;
    if (tlStart !== undefined && segmentStart(backup.startLsn) < tlStart) {
      throw new Error(`the base backup starts at ${formatLsn(backup.startLsn)}, in a segment before the safekeepers' timeline start ${formatLsn(tlStart)}: its WAL cannot be read from them`);
    }

    // workload and faults
    const schedule = generateSchedule(seed, { safekeepers: cluster.config.safekeepers.map((s) => s.id), count: Math.ceil((opts.seconds * 1000) / 1500) + 1, weights: opts.weights });
    workload = new Workload({ host, port, clients, record, log });
    workload.start();
    log(`torture: workload started (${clients} clients)`);
    const deadline = Date.now() + opts.seconds * 1000;
    for (const fault of schedule) {
      const wait = Math.min(fault.afterMs, deadline - Date.now());
      if (wait > 0) await sleep(wait);
      if (Date.now() >= deadline) break;
      await applyFault(cluster, fault, log);
      counts.byKind[fault.kind]++;
      const healthy = await heal(cluster, counts, log);
      log(`fault #${fault.seq}: healed${healthy ? ', quorum healthy' : ''}; acknowledged so far ${record.acknowledged.size}`);
    }
    const left = deadline - Date.now();
    if (left > 0) await sleep(left);
    log('torture: time is up; healing the cluster and stopping the workload');
    await heal(cluster, counts, log, 60_000);
    await workload.stop();
    log(`torture: workload stopped: ${record.attempted.size} inserts sent, ${record.acknowledged.size} acknowledged, ${workload.stats.errors} errors`);
    for (const [kind, n] of workload.stats.errorKinds) log(`torture:   ${n} x ${kind}`);

    // a last acknowledged marker, then find the commit LSN the quorum holds
    await finalMarker(host, port, record, log);
    const primaryFlush = await withClient(host, port, async (c) => parseLsn((await c.query<{ lsn: string }>('SELECT pg_current_wal_flush_lsn()::text AS lsn')).rows[0].lsn));
    report.rowsOnPrimary = await withClient(host, port, async (c) => Number((await c.query<{ n: string }>('SELECT count(*)::text AS n FROM ledger')).rows[0].n));
    const commitLsn = await waitForProposerCommit(cluster, primaryFlush, log);
    const reader = await pickReader(cluster, commitLsn, new Prng((seed ^ 0x5eed5eed) >>> 0), log);
    report.commitLsn = formatLsn(reader.endLsn);
    report.readerSafekeeper = reader.id;
    // the restore must cross WAL the reader removed (offloaded, then removed below the horizon)
    const localStart = await switchUntilRemoved(cluster, reader.id, backup.startLsn, { host, port });
    report.readerLocalStartLsn = formatLsn(localStart);
    log(`torture: safekeeper ${reader.id} holds WAL from ${formatLsn(localStart)} on; below it (from the base backup's ${formatLsn(backup.startLsn)}) it comes from the bucket`);

    // WAL from the safekeeper only; then the primary and its WAL are out of the picture
    const walDir = join(dir, 'restore', 'wal');
    const received = await receiveWalFromSafekeeper(cluster, reader.id, walDir, backup.startWalFile, reader.endLsn, runAs);
    report.walFiles = received.files.length;
    log(`torture: pg_receivewal from safekeeper ${reader.id} up to ${formatLsn(reader.endLsn)}: ${received.files.join(' ')}`);
    await killCluster(cluster);
    log('torture: original cluster stopped; restoring a brand-new server from the base backup and the safekeeper WAL');

    const restoredPort = portBase + EXTRA_PORT.restoredPostgres;
    restored = await startRestoredServer(backup, walDir, host, restoredPort, join(dir, 'logs', 'restored.log'), runAs);
    const ledger = await readLedger(host, restoredPort);
    if (opts.breakRule) {
      report.fakeId = applyBreakRule(opts.breakRule, record);
      log(`torture: break rule ${opts.breakRule}: claimed id ${report.fakeId} as acknowledged although it was never inserted`);
    }
    const check: LedgerCheck = checkLedger(record.acknowledged, record.attempted, ledger);
    report.restoredRows = ledger.countAll;
    report.lost = check.lost.length;
    report.lostIds = check.lost.slice(0, 50);
    report.duplicates = check.duplicates;
    report.phantoms = check.phantoms.length;
    report.unknownPresent = check.unknownPresent;
    report.ok = check.ok;
    log(`torture: restored server has ${ledger.countAll} rows (${ledger.countDistinct} distinct); lost ${check.lost.length}, duplicates ${check.duplicates}, phantoms ${check.phantoms.length}, unknown-outcome rows present ${check.unknownPresent}`);
    if (check.lost.length) log(`torture: LOST acknowledged ids (first 50): ${check.lost.slice(0, 50).join(', ')}`);
    if (check.phantoms.length) log(`torture: ids never sent but present (first 50): ${check.phantoms.slice(0, 50).join(', ')}`);
  } catch (err) {
    report.error = (err as Error).stack ?? String(err);
    report.ok = false;
    log(`torture: ERROR ${(err as Error).message}`);
  } finally {
    if (workload) await workload.stop(5_000).catch(() => undefined);
    if (restored) await restored.stop('immediate').catch(() => undefined);
    await killCluster(cluster);
    report.attempted = record.attempted.size;
    report.acknowledged = record.acknowledged.size - (report.fakeId !== undefined ? 1 : 0);
    report.unknown = record.attempted.size - record.acknowledged.size;
    report.faults = { ...counts.byKind };
    report.faultsTotal = FAULT_KINDS.reduce((s, k) => s + counts.byKind[k], 0);
    report.proposerRestartsBySupervisor = counts.proposerRestartsBySupervisor;
    report.slowRecoveries = counts.slowRecoveries;
    report.workloadErrors = workload?.stats.errors ?? 0;
    report.syncRepWarnings = workload?.stats.syncRepWarnings ?? 0;
    const keep = opts.keepDir ?? 'on-failure';
    if (keep === 'always' || (keep === 'on-failure' && !report.ok)) {
      report.dir = dir;
      log(`torture: kept ${dir} (logs in ${join(dir, 'logs')})`);
    } else {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return report;
}

async function withClient<T>(host: string, port: number, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ host, port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 10_000 });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** One more acknowledged insert after the workload, retried on a fresh id until it commits. */
async function finalMarker(host: string, port: number, record: LedgerRecord, log: (line: string) => void): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (let id = 1; Date.now() < deadline; id++) {
    record.attempt(id);
    const c = new pg.Client({ host, port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 5000 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.query('INSERT INTO ledger (id, client, payload) VALUES ($1, 0, $2)', [id, 'final marker']);
      record.acknowledge(id);
      await c.end();
      log(`torture: final marker ${id} acknowledged`);
      return;
    } catch (err) {
      log(`torture: final marker ${id} failed: ${(err as Error).message}; retrying`);
      destroyClient(c);
      await sleep(500);
    }
  }
  throw new Error('the final marker insert did not commit within 60 s after the faults stopped');
}

/** Waits for the proposer's commit LSN to reach target (the primary's flush LSN); returns the commit LSN it reached. */
async function waitForProposerCommit(cluster: LocalCluster, target: Lsn, log: (line: string) => void): Promise<Lsn> {
  const deadline = Date.now() + 30_000;
  let commit = 0n;
  while (Date.now() < deadline) {
    const s = await cluster.proposerStatus().catch(() => undefined);
    if (s?.commit_lsn) commit = parseLsn(s.commit_lsn);
    if (commit >= target) break;
    await sleep(100);
  }
  log(`torture: primary flush LSN ${formatLsn(target)}, proposer commit LSN ${formatLsn(commit)}${commit < target ? ' (did not reach the flush LSN within 30 s)' : ''}`);
  if (commit === 0n) throw new Error('the proposer reports no commit LSN');
  return commit;
}

/** A safekeeper (seeded choice) whose commit LSN has reached `commit`; falls back to the most advanced. */
async function pickReader(cluster: LocalCluster, commit: Lsn, prng: Prng, log: (line: string) => void): Promise<{ id: number; endLsn: Lsn }> {
  const ids = cluster.config.safekeepers.map((s) => s.id);
  const order: number[] = [];
  while (ids.length) order.push(ids.splice(prng.int(0, ids.length - 1), 1)[0]);
  const deadline = Date.now() + 30_000;
  let best = { id: order[0], commit: 0n };
  for (;;) {
    for (const id of order) {
      const tl = await safekeeperTimeline(cluster, id);
      const c = tl?.commit_lsn ? parseLsn(tl.commit_lsn) : 0n;
      if (c >= commit) {
        log(`torture: reading WAL from safekeeper ${id} (its commit LSN ${formatLsn(c)} >= proposer commit LSN ${formatLsn(commit)})`);
        return { id, endLsn: commit };
      }
      if (c > best.commit) best = { id, commit: c };
    }
    if (Date.now() > deadline) break;
    await sleep(200);
  }
  log(`torture: WARNING no safekeeper's commit LSN reached the proposer's ${formatLsn(commit)} within 30 s; reading from safekeeper ${best.id} up to its commit LSN ${formatLsn(best.commit)}`);
  if (best.commit === 0n) throw new Error('no safekeeper reports a commit LSN');
  return { id: best.id, endLsn: best.commit };
}
