// The benchmark: pgbench on one PostgreSQL server (a) alone, (b) with pg_receivewal
// --synchronous as its synchronous standby, (c) through walkeeper's 3 safekeepers, (d) with
// PostgreSQL's own quorum commit to three pg_receivewal (the same copies and fdatasyncs as
// (c), in stock C code); then a safekeeper's raw ingest rate against fio on the same disk.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseLsn, segmentNo } from '../common/lsn.js';
import { httpGet, httpPost, waitFor, type LocalCluster } from '../local/cluster.js';
import { ensureDirFor, processAlive, sleep, type RunAs } from '../local/postgres.js';
import { ManagedProcess } from '../local/process.js';
import { EXTRA_PORT, killCluster, newTempCluster, runOk, safekeeperTimeline, timestamped } from '../torture/env.js';
import { measureIngest } from './ingest.js';
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
  const ingestSk = new ManagedProcess('ingest safekeeper', join(dir, 'run', 'ingest-sk.pid'), join(dir, 'logs', 'ingest-sk.log'));
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
    report.receivewalQuorum = combineRuns(runsD);

    if (wanted('ingest')) await step('safekeeper ingest', async () => {
      const endLsn = parseLsn(pg.psql('SELECT pg_current_wal_flush_lsn()'));
      const restart = parseLsn(pg.psql(`SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '${INGEST_SLOT}'`));
      const systemId = BigInt(pg.psql('SELECT system_identifier FROM pg_control_system()'));
      const pgTimeline = Number(pg.psql('SELECT timeline_id FROM pg_control_checkpoint()'));
      const skPg = portBase + EXTRA_PORT.ingestPg;
      const skHttp = portBase + EXTRA_PORT.ingestHttp;
      const host = cluster.config.host;
      ingestSk.start(['safekeeper', '--id', '9', '--datadir', join(dir, 'ingest-sk'), '--listen-pg', `${host}:${skPg}`, '--listen-http', `${host}:${skHttp}`]);
      const base = `http://${host}:${skHttp}`;
      await waitFor('the ingest safekeeper to become ready', 30_000, async () => (await httpGet(`${base}/readyz`)).status === 200, () => ingestSk.running, ingestSk.logFile);
      const tenantId = cluster.config.tenant_id;
      const timelineId = cluster.config.timeline_id;
      const t = await httpPost(`${base}/v1/tenants`, { tenant_id: tenantId });
      if (t.status !== 201) throw new Error(`tenant create answered ${t.status} ${t.text}`);
      const l = await httpPost(`${base}/v1/tenants/${tenantId}/timelines`, { timeline_id: timelineId });
      if (l.status !== 201) throw new Error(`timeline create answered ${l.status} ${l.text}`);
      report.ingest = await measureIngest({
        host, port: skPg, tenantId, timelineId, systemId, walDir: join(pg.dataDir, 'pg_wal'), pgTimeline,
        startSegNo: segmentNo(restart), endLsn, maxSeconds: diskSeconds, log,
      });
      await ingestSk.stop();
    });

    if (wanted('fio')) await step('fio', async () => {
      const fioDir = join(dir, 'fio');
      ensureDirFor(fioDir, undefined);
      log(`bench: fio 128k write + fdatasync for ${diskSeconds} s in ${fioDir}`);
      const r = await runOk('fio', 'fio', ['--name=x', `--directory=${fioDir}`, '--rw=write', '--bs=128k', '--size=1G', '--fdatasync=1', '--ioengine=sync', `--runtime=${diskSeconds}`, '--time_based', '--output-format=json'], { timeoutMs: (diskSeconds + 120) * 1000 });
      report.fio = parseFioJson(r.stdout);
      report.fioSeconds = diskSeconds;
      rmSync(fioDir, { recursive: true, force: true });
    });
  } catch (err) {
    report.errors.push((err as Error).message);
    log(`bench: ERROR ${(err as Error).message}`);
  } finally {
    await stopReceivers();
    await ingestSk.kill().catch(() => undefined);
    await killCluster(cluster);
    if (report.errors.length) log(`bench: kept ${dir} (logs in ${join(dir, 'logs')})`);
    else rmSync(dir, { recursive: true, force: true });
  }
  return report;
}

export { formatBenchReport };

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
