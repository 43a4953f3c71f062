// The benchmark: pgbench on one PostgreSQL server (a) alone, (b) with pg_receivewal
// --synchronous as its synchronous standby, (c) through walkeeper's 3 safekeepers, (d) with
// PostgreSQL's own quorum commit to three pg_receivewal (the same copies and fdatasyncs as
// (c), in stock C code), and (c) again with remote storage off; then a safekeeper's raw ingest
// rate (segment recycling on and off) against fio on the same disk, offload throughput to the
// file:// store and s3rver, and the start-up time of a member after 1 GB and 4 GB of history.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_WAL_SEG_SIZE, formatLsn, parseLsn, segmentNo } from '@walkeeper/dataplane/common/lsn';
import { parsePgSize } from '@walkeeper/dataplane/common/size';
import { waitFor, type LocalCluster } from '@walkeeper/dataplane/local/cluster';
import { ensureDirFor, processAlive, sleep, type RunAs } from '@walkeeper/dataplane/local/postgres';
import { EXTRA_PORT, killCluster, newTempCluster, runOk, safekeeperTimeline, timestamped } from '../torture/env.js';
import { ingestInto, measureOffload, measureStartup, type BenchSafekeeperOptions } from './walLifecycle.js';
import { combineRuns, formatBenchReport, parseFioJson, parsePgbench, type BenchReport, type BenchStep, type PgbenchResult } from './parse.js';
import { cpuBetween, sampleCpu } from './cpu.js';

export interface BenchOptions {
  seconds: number;
  scale?: number;
  clients?: number;
  jobs?: number;
  /** fio and ingest duration; default min(20, seconds) */
  diskSeconds?: number;
  /** (b), (c) and (d) run in turn this many times, so all see the same machine weather; default 1 */
  rounds?: number;
  /** run only these steps; default all */
  only?: BenchStep[];
  log?: (line: string) => void;
  /** print pgbench's own summary lines */
  printRaw?: (line: string) => void;
  parentDir?: string;
}

const INGEST_SLOT = 'bench_ingest';
/** --wal-keep-size of the lone safekeepers: small, so removal (and recycling) runs within seconds */
const LONE_KEEP_SIZE = '64MB';
/** segments uploaded per store by the offload row (256 MB) */
const OFFLOAD_SEGMENTS = 16;
/** history of the start-up rows: 1 GB and 4 GB (10 GB takes minutes to generate here) */
const STARTUP_HISTORY_BYTES = [1 << 30, 4 * (1 << 30)];
const RECV_SLOT = 'bench_recv';
/** (d)'s three receivers: application name and slot */
const QUORUM_RECEIVERS = ['recv1', 'recv2', 'recv3'];
const QUORUM_NAMES = `ANY 2 (${QUORUM_RECEIVERS.join(', ')})`;

export async function runBench(opts: BenchOptions): Promise<BenchReport> {
  const log = timestamped(Date.now(), opts.log ?? ((l) => process.stderr.write(l + '\n')));
  const raw = opts.printRaw ?? ((l) => process.stdout.write(l + '\n'));
  const report: BenchReport = { seconds: opts.seconds, scale: opts.scale ?? 10, clients: opts.clients ?? 8, jobs: opts.jobs ?? 2, errors: [] };
  const diskSeconds = opts.diskSeconds ?? Math.min(20, Math.max(3, opts.seconds));
  const { cluster, portBase, runAs } = await newTempCluster('walkeeper-bench-', opts.parentDir);
  const dir = cluster.baseDir;
  log(`bench: cluster in ${dir}`);
  const pg = cluster.postgres;
  /** pg_receivewal processes running now (killed on the way out whatever happens) */
  const receivers: ChildProcess[] = [];
  const stopReceivers = async () => {
    for (const child of receivers.splice(0)) await stopChild(child);
  };
  /** a lone safekeeper per lifecycle row, on the two spare ports, removal behind what it acknowledges */
  const loneSafekeeper = (name: string, flags: string[] = []): BenchSafekeeperOptions => ({
    dir: join(dir, name), host: cluster.config.host, pgPort: portBase + EXTRA_PORT.ingestPg, httpPort: portBase + EXTRA_PORT.ingestHttp,
    tenantId: cluster.config.tenant_id, timelineId: cluster.config.timeline_id, flags: ['--wal-keep-size', LONE_KEEP_SIZE, ...flags],
  });
  const wanted = (s: BenchStep) => !opts.only || opts.only.includes(s);
  const step = async (name: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      const msg = `${name}: ${(err as Error).message}`;
      report.errors.push(msg);
      log(`bench: ERROR ${msg}`);
    }
  };
  try {
    await cluster.start((m) => log(`cluster: ${m}`));
    // keeps every WAL segment written from here on, for the ingest test
    pg.psql(`SELECT pg_create_physical_replication_slot('${INGEST_SLOT}', true)`);
    log(`bench: pgbench -i -s ${report.scale}`);
    await runOk('pgbench -i', join(pg.binDir, 'pgbench'), ['-i', '-s', String(report.scale), '-q', ...pgArgs(cluster)], { timeoutMs: 600_000 });

    /** pgbench against the primary; `pids` are the setup's replication processes, whose CPU is reported */
    const bench = async (label: string, pids: Map<string, number | undefined>): Promise<PgbenchResult> => {
      pg.psql('CHECKPOINT');
      log(`bench: ${label}: pgbench -N -c ${report.clients} -j ${report.jobs} -T ${opts.seconds}`);
      const before = sampleCpu(pids);
      const r = await runOk('pgbench', join(pg.binDir, 'pgbench'), ['-N', '-c', String(report.clients), '-j', String(report.jobs), '-T', String(opts.seconds), ...pgArgs(cluster)], { timeoutMs: (opts.seconds + 120) * 1000 });
      const result = { ...parsePgbench(r.stdout), cpu: cpuBetween(before, sampleCpu(pids)) };
      raw(`### ${label}`);
      raw('```');
      for (const l of result.raw) raw(l);
      raw('```');
      return result;
    };

    if (wanted('a')) {
      await step('(a) primary alone', async () => {
        await cluster.stopProposer();
        setSyncNames(cluster, '');
        report.primaryAlone = await bench("(a) primary alone, synchronous_standby_names=''", new Map());
      });
    }

    const rounds = opts.rounds ?? 1;
    const runsB: PgbenchResult[] = [];
    const runsC: PgbenchResult[] = [];
    const runsCoff: PgbenchResult[] = [];
    const runsD: PgbenchResult[] = [];
    for (let round = 0; round < rounds; round++) {
      const suffix = rounds > 1 ? ` [round ${round + 1}/${rounds}]` : '';
      const thisRound: NonNullable<BenchReport['rounds']>[number] = {};
      if (wanted('b')) {
        await step(`(b) pg_receivewal --synchronous${suffix}`, async () => {
          await cluster.stopProposer();
          const recv = startReceiver(cluster, RECV_SLOT, 'recv', join(dir, 'recv'), runAs);
          receivers.push(recv);
          setSyncNames(cluster, 'recv');
          await waitForSyncStandby(cluster, 'recv');
          thisRound.receivewalSync = await bench(`(b) pg_receivewal --synchronous, synchronous_standby_names='recv'${suffix}`, new Map([['pg_receivewal', recv.pid]]));
          runsB.push(thisRound.receivewalSync);
          await stopReceivers();
          pg.psql(`SELECT pg_drop_replication_slot('${RECV_SLOT}')`);
        });
      }
      if (wanted('c')) {
        await step(`(c) walkeeper${suffix}`, async () => {
          setSyncNames(cluster, 'walkeeper_proposer');
          await cluster.startProposer();
          await cluster.waitForQuorum();
          await waitForSyncStandby(cluster, 'walkeeper_proposer');
          await waitForSafekeepersCaughtUp(cluster);
          const pids = new Map<string, number | undefined>([['proposer', cluster.proposerProcess.pid]]);
          for (const sk of cluster.config.safekeepers) pids.set(`sk${sk.id}`, cluster.safekeeperProcess(sk.id).pid);
          thisRound.walkeeper = await bench(`(c) walkeeper, 3 safekeepers, synchronous_standby_names='walkeeper_proposer'${suffix}`, pids);
          runsC.push(thisRound.walkeeper);
        });
      }
      if (wanted('c-off')) {
        await step(`(c) walkeeper, remote storage off${suffix}`, async () => {
          setSyncNames(cluster, 'walkeeper_proposer');
          await restartSafekeepers(cluster, null);
          try {
            await cluster.startProposer();
            await cluster.waitForQuorum();
            await waitForSyncStandby(cluster, 'walkeeper_proposer');
            await waitForSafekeepersCaughtUp(cluster);
            const pids = new Map<string, number | undefined>([['proposer', cluster.proposerProcess.pid]]);
            for (const sk of cluster.config.safekeepers) pids.set(`sk${sk.id}`, cluster.safekeeperProcess(sk.id).pid);
            thisRound.walkeeperNoOffload = await bench(`(c) walkeeper, 3 safekeepers, remote storage off${suffix}`, pids);
            runsCoff.push(thisRound.walkeeperNoOffload);
          } finally {
            await restartSafekeepers(cluster, undefined);
          }
        });
      }
      if (wanted('d')) {
        await step(`(d) 3 pg_receivewal, quorum${suffix}`, async () => {
          await cluster.stopProposer();
          const pids = new Map<string, number | undefined>();
          for (const name of QUORUM_RECEIVERS) {
            const child = startReceiver(cluster, `bench_${name}`, name, join(dir, name), runAs);
            receivers.push(child);
            pids.set(name, child.pid);
          }
          setSyncNames(cluster, QUORUM_NAMES);
          for (const name of QUORUM_RECEIVERS) await waitForSyncStandby(cluster, name, 'quorum', QUORUM_NAMES);
          thisRound.receivewalQuorum = await bench(`(d) 3 pg_receivewal --synchronous, synchronous_standby_names='${QUORUM_NAMES}'${suffix}`, pids);
          runsD.push(thisRound.receivewalQuorum);
          await stopReceivers();
          for (const name of QUORUM_RECEIVERS) pg.psql(`SELECT pg_drop_replication_slot('bench_${name}')`);
        });
      }
      (report.rounds ??= []).push(thisRound);
    }
    report.receivewalSync = combineRuns(runsB);
    report.walkeeper = combineRuns(runsC);
    report.walkeeperNoOffload = combineRuns(runsCoff);
    report.receivewalQuorum = combineRuns(runsD);

    const realWal = () => ({
      endLsn: parseLsn(pg.psql('SELECT pg_current_wal_flush_lsn()')),
      startSegNo: segmentNo(parseLsn(pg.psql(`SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '${INGEST_SLOT}'`))),
      systemId: BigInt(pg.psql('SELECT system_identifier FROM pg_control_system()')),
      pgTimeline: Number(pg.psql('SELECT timeline_id FROM pg_control_checkpoint()')),
      walDir: join(pg.dataDir, 'pg_wal'),
    });
    report.ingestKeepSize = LONE_KEEP_SIZE;
    if (wanted('ingest')) {
      await step('safekeeper ingest, recycling off', async () => {
        report.ingestNoRecycling = await ingestInto({ ...loneSafekeeper('ingest-norecycle', ['--max-recycled-segments', '0']), ...realWal(), maxSeconds: diskSeconds, log });
      });
      await step('safekeeper ingest', async () => {
        report.ingest = await ingestInto({ ...loneSafekeeper('ingest'), ...realWal(), maxSeconds: diskSeconds, log });
      });
    }

    if (wanted('fio')) await step('fio', async () => {
      const fioDir = join(dir, 'fio');
      ensureDirFor(fioDir, undefined);
      log(`bench: fio 128k write + fdatasync for ${diskSeconds} s in ${fioDir}`);
      const r = await runOk('fio', 'fio', ['--name=x', `--directory=${fioDir}`, '--rw=write', '--bs=128k', '--size=1G', '--fdatasync=1', '--ioengine=sync', `--runtime=${diskSeconds}`, '--time_based', '--output-format=json'], { timeoutMs: (diskSeconds + 120) * 1000 });
      report.fio = parseFioJson(r.stdout);
      report.fioSeconds = diskSeconds;
      rmSync(fioDir, { recursive: true, force: true });
    });

    if (wanted('offload')) await step('offload', async () => {
      const w = realWal();
      // complete segments only, as the uploader sends them
      const count = Math.min(OFFLOAD_SEGMENTS, Number(segmentNo(w.endLsn) - w.startSegNo));
      if (count < 1) throw new Error(`no complete WAL segment on the primary to upload (flush LSN ${formatLsn(w.endLsn)})`);
      report.offload = await measureOffload({ dir: join(dir, 'offload'), walDir: w.walDir, pgTimeline: w.pgTimeline, firstSegNo: w.startSegNo, count, tenantId: cluster.config.tenant_id, timelineId: cluster.config.timeline_id, log });
    });

    if (wanted('startup')) await step('start-up after history', async () => {
      // Nobody else needs this WAL: the proposer would push gigabytes of it through the three
      // safekeepers beside the measurement, and a commit would wait for them.
      await cluster.stopProposer();
      setSyncNames(cluster, '');
      const largest = Math.max(...STARTUP_HISTORY_BYTES);
      const from = realWal();
      await makeWal(cluster, from.startSegNo * BigInt(DEFAULT_WAL_SEG_SIZE) + BigInt(largest) + BigInt(DEFAULT_WAL_SEG_SIZE), log);
      report.startup = [];
      for (const historyBytes of STARTUP_HISTORY_BYTES) {
        report.startup.push(await measureStartup({ ...loneSafekeeper(`startup-${historyBytes}`), ...realWal(), maxSeconds: 3600, historyBytes, keepBytes: Number(parsePgSize(LONE_KEEP_SIZE, '--wal-keep-size')), log }));
      }
    });
  } catch (err) {
    report.errors.push((err as Error).message);
    log(`bench: ERROR ${(err as Error).message}`);
  } finally {
    await stopReceivers();
    await killCluster(cluster);
    if (report.errors.length) log(`bench: kept ${dir} (logs in ${join(dir, 'logs')})`);
    else rmSync(dir, { recursive: true, force: true });
  }
  return report;
}

export { formatBenchReport };

/** Restarts every safekeeper with remote storage `remote` (null: off; undefined: the default file:// bucket). */
async function restartSafekeepers(cluster: LocalCluster, remote: null | undefined): Promise<void> {
  await cluster.stopProposer();
  if (remote === null) cluster.config.remote_storage = null;
  else delete cluster.config.remote_storage;
  for (const sk of cluster.config.safekeepers) {
    await cluster.stopSafekeeper(sk.id);
    await cluster.startSafekeeper(sk.id);
  }
}

/**
 * Switches WAL segments on the primary until its WAL reaches `until` (a table insert makes
 * each switch count); the ingest slot keeps all of it in pg_wal.
 */
async function makeWal(cluster: LocalCluster, until: bigint, log: (l: string) => void): Promise<void> {
  const pg = cluster.postgres;
  pg.psql('CREATE TABLE IF NOT EXISTS bench_history (i int)');
  const now = () => parseLsn(pg.psql('SELECT pg_current_wal_flush_lsn()'));
  log(`bench: switching WAL segments up to ${formatLsn(until)} for the start-up rows`);
  for (let lsn = now(); lsn < until; lsn = now()) {
    const n = Math.min(64, Number((until - lsn) / BigInt(DEFAULT_WAL_SEG_SIZE)) + 1);
    // wal_init_zero off: this backend creates the segments, and zero-filling 4 GB would be most of the row's time
    pg.psql(`SET wal_init_zero = off; DO $$ BEGIN FOR i IN 1..${n} LOOP INSERT INTO bench_history VALUES (i); PERFORM pg_switch_wal(); END LOOP; END $$`);
  }
}

function pgArgs(cluster: LocalCluster): string[] {
  return ['-h', cluster.config.host, '-p', String(cluster.config.postgres.port), '-U', 'postgres', 'postgres'];
}

function setSyncNames(cluster: LocalCluster, names: string): void {
  cluster.postgres.psql(`ALTER SYSTEM SET synchronous_standby_names = '${names}'`);
  cluster.postgres.psql('SELECT pg_reload_conf()');
}

/** Waits until `applicationName` streams with `state` and PostgreSQL runs with `names`. */
async function waitForSyncStandby(cluster: LocalCluster, applicationName: string, state: 'sync' | 'quorum' = 'sync', names = applicationName): Promise<void> {
  await waitFor(`${applicationName} to be PostgreSQL's ${state} standby`, 30_000, async () =>
    cluster.postgres.psql(`SELECT count(*) FROM pg_stat_replication WHERE application_name = '${applicationName}' AND sync_state = '${state}'`) === '1' &&
    cluster.postgres.psql('SHOW synchronous_standby_names') === names,
  );
}

/**
 * The safekeepers missed the WAL of the other setups' runs while the proposer was stopped;
 * catching up must not be billed to (c)'s run.
 */
async function waitForSafekeepersCaughtUp(cluster: LocalCluster): Promise<void> {
  const target = parseLsn(cluster.postgres.psql('SELECT pg_current_wal_flush_lsn()'));
  await waitFor('every safekeeper to catch up with PostgreSQL', 300_000, async () => {
    for (const sk of cluster.config.safekeepers) {
      const flush = (await safekeeperTimeline(cluster, sk.id))?.flush_lsn;
      if (flush === undefined || parseLsn(flush) < target) return false;
    }
    return true;
  });
}

/** A new slot and an empty directory, and pg_receivewal --synchronous streaming into it as `name`. */
function startReceiver(cluster: LocalCluster, slot: string, name: string, dir: string, runAs: RunAs | undefined): ChildProcess {
  cluster.postgres.psql(`SELECT pg_create_physical_replication_slot('${slot}', true)`);
  rmSync(dir, { recursive: true, force: true });
  ensureDirFor(dir, runAs);
  const conn = `host=${cluster.config.host} port=${cluster.config.postgres.port} user=postgres application_name=${name}`;
  const child = spawn(join(cluster.postgres.binDir, 'pg_receivewal'), ['--synchronous', '-S', slot, '-D', dir, '-d', conn, '--no-password'], {
    uid: runAs?.uid,
    gid: runAs?.gid,
    cwd: '/',
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let tail = '';
  child.stderr?.on('data', (d: Buffer) => {
    tail = (tail + d.toString()).slice(-4000);
  });
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM' && signal !== 'SIGINT') process.stderr.write(`pg_receivewal ${name} exited (code ${code}, signal ${signal}); its last output:\n${tail}\n`);
  });
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  for (let i = 0; i < 100 && processAlive(child.pid); i++) await sleep(50);
  if (processAlive(child.pid)) child.kill('SIGKILL');
}
