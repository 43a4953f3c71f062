// Network scenario (issue 6): a partitioned old primary and a new primary racing — only the
// new one commits, the old one is fenced. Namespaces: sk1..sk3, `pg` (PG1 and its proposer
// P1) and `pg2` (PG2, a hot standby following safekeeper 2, and its proposer P2).
//   1. the ledger workload writes through PG1;
//   2. PG1/P1 lose their routes to sk2 and sk3 (blackholed; sk1 stays reachable, so P1 keeps
//      trying): P1's quorum goes, no commit is acknowledged;
//   3. P2 starts with --promote: it wins a higher term, commits the quorum's WAL, waits for
//      PG2 to replay it, promotes PG2 (PostgreSQL timeline 2) and streams; the workload
//      moves to PG2 and commits;
//   4. P1, still talking to sk1, is fenced by the higher term and acknowledges nothing more;
//   5. the partition heals; P1 restarted is fenced again (the safekeepers hold timeline 2);
//      an insert on PG1 is never acknowledged;
//   6. the ledger check, twice: on PG2 itself, and on a new server restored from the base
//      backup and WAL streamed by pg_receivewal from sk3 across the timeline switch.
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, chownSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { formatLsn, parseLsn, type Lsn } from '@walkeeper/dataplane/common/lsn';
import type { ProposerStatusJson } from '@walkeeper/dataplane/api';
import { defaultConfig, httpGet, waitFor } from '@walkeeper/dataplane/local/cluster';
import { WALKEEPER_JS } from '@walkeeper/dataplane/local/process';
import { sleep, processAlive, type PostgresServer } from '@walkeeper/dataplane/local/postgres';
import { createStandby } from '../standby.js';
import { checkLedger, LedgerRecord, type LedgerCheck } from '../torture/ledger.js';
import { readLedger } from '../torture/restore.js';
import { destroyClient, Workload } from '../torture/workload.js';
import { safekeeperTimeline, walRemovalConfig } from '../torture/env.js';
import { prepareLedger, verifyLedger, type LedgerVerification } from './ledgerCheck.js';
import { createTopology, destroyTopology, killNetCluster, leftovers, netCluster, netnsUnavailable, spawnInNs, startNetCluster, startNetProposer, type NetCluster, type Topology } from './netns.js';

export interface FailoverReport {
  skipped?: string;
  ok: boolean;
  /** one line per checked claim */
  checks: { name: string; ok: boolean; detail: string }[];
  ackedOnOldPrimary: number;
  ackedOnOldPrimaryDuringPartition: number;
  ackedOnNewPrimary: number;
  /** how far sk1 (reached by the partitioned P1) was ahead of the majority when P2 started */
  donorAheadBytes?: number;
  oldTerm?: string;
  newTerm?: string;
  switchpoint?: string;
  oldProposerReason?: string;
  restartedOldProposerReason?: string;
  ledgerOnNewPrimary?: LedgerCheck;
  ledger?: LedgerVerification;
  faults: number;
  leftovers: string[];
  error?: string;
}

type Log = (line: string) => void;

const P2_HTTP_PORT_OFFSET = 30;

async function status(url: string): Promise<ProposerStatusJson | undefined> {
  const r = await httpGet(`${url}/v1/status`).catch(() => undefined);
  return r?.status === 200 ? (JSON.parse(r.text) as ProposerStatusJson) : undefined;
}

async function waitUntil<T>(ms: number, probe: () => Promise<T | undefined | false>): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    await sleep(200);
  }
  return undefined;
}

function blackhole(topo: Topology, from: string, to: string[], add: boolean): void {
  const ns = topo.nodes.get(from)!.ns;
  for (const name of to) {
    const node = topo.nodes.get(name)!;
    for (const ip of [node.ip, node.proxyIp]) {
      try {
        execIp(['-n', ns, 'route', add ? 'add' : 'del', 'blackhole', `${ip}/32`]);
        topo.commands.push(`ip -n ${ns} route ${add ? 'add' : 'del'} blackhole ${ip}/32`);
      } catch (err) {
        if (add) throw err;
      }
    }
  }
}

function execIp(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** One INSERT on the old primary, given `ms` to be acknowledged; true if it was (which must not happen). */
async function probeOldPrimary(host: string, port: number, record: LedgerRecord, id: number, ms: number): Promise<boolean> {
  const c = new pg.Client({ host, port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 5000 });
  c.on('error', () => undefined);
  let warned = false;
  c.on('notice', (n: { message?: string }) => {
    if (/synchronous replication/i.test(n.message ?? '')) warned = true;
  });
  try {
    await c.connect();
  } catch {
    return false;
  }
  record.attempt(id);
  let timer: NodeJS.Timeout | undefined;
  const acked = await Promise.race([
    c.query('INSERT INTO ledger (id, client, payload) VALUES ($1, $2, $3)', [id, 99, 'probe on the old primary']).then(() => !warned, () => false),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]);
  clearTimeout(timer);
  if (acked) record.acknowledge(id);
  destroyClient(c);
  return acked;
}

export async function runFailoverRace(log: Log = () => undefined): Promise<FailoverReport> {
  const report: FailoverReport = { ok: false, checks: [], ackedOnOldPrimary: 0, ackedOnOldPrimaryDuringPartition: 0, ackedOnNewPrimary: 0, faults: 0, leftovers: [] };
  const why = netnsUnavailable();
  if (why) return { ...report, skipped: why, ok: true };
  const check = (name: string, ok: boolean, detail: string) => {
    report.checks.push({ name, ok, detail });
    log(`failover: ${ok ? 'ok' : 'FAILED'}: ${name}: ${detail}`);
  };
  let topo: Topology | undefined;
  let nc: NetCluster | undefined;
  let w1: Workload | undefined;
  let w2: Workload | undefined;
  let standby: PostgresServer | undefined;
  let p2PidFile: string | undefined;
  const record = new LedgerRecord();
  const dir = mkdtempSync(join(tmpdir(), 'walkeeper-failover-'));
  try {
    topo = createTopology(['sk1', 'sk2', 'sk3', 'pg', 'pg2']);
    const pg2Node = topo.nodes.get('pg2')!;
    nc = netCluster(topo, dir, { ...defaultConfig({ portBase: 15600 }), ...walRemovalConfig(dir) });
    if (nc.runAs) chownSync(dir, nc.runAs.uid, nc.runAs.gid);
    await startNetCluster(nc, (l) => log(`failover: ${l}`));
    const cfg = nc.cluster.config;
    const pgPort = cfg.postgres.port;
    const pg1Host = cfg.host;
    const backup = await prepareLedger(nc.cluster, 'restore', nc.runAs);

    // PG2: a hot standby of PG1's data following safekeeper 2, ready to be a primary
    const sk2 = topo.nodes.get('sk2')!;
    standby = await createStandby({
      primaryHost: pg1Host, primaryPort: pgPort, dir: join(dir, 'pg2'), host: pg2Node.ip, port: pgPort, binDir: nc.cluster.postgres.binDir,
      safekeeperConnInfo: nc.cluster.readerConnInfo(2, sk2.ip),
      applicationName: 'pg2',
      settings: { synchronous_standby_names: `'walkeeper_proposer'`, synchronous_commit: 'on', wal_keep_size: `'256MB'`, max_wal_size: `'1GB'` },
      hba: [`host all all ${topo.subnet}.0/24 trust`, `host replication all ${topo.subnet}.0/24 trust`],
    });
    spawnInNs(pg2Node.ns, [join(standby.binDir, 'postgres'), '-D', standby.dataDir], standby.logFile, join(dir, 'run', 'postgres2.pid'), nc.runAs);
    const pg2Server = standby;
    await waitFor('PG2 (hot standby) in its namespace', 60_000, async () => pg2Server.isReady());
    log(`failover: PG2 hot standby up in ${pg2Node.ns} at ${pg2Node.ip}:${pgPort}, following sk2`);

    // 1. the workload on PG1
    w1 = new Workload({ host: pg1Host, port: pgPort, clients: 4, record, log });
    w1.start();
    await sleep(3000);
    const p1Url = nc.cluster.proposerUrl;
    const p1Before = await status(p1Url);
    report.oldTerm = p1Before?.term;

    // 2. PG1/P1 partitioned from sk2 and sk3
    blackhole(topo, 'pg', ['sk2', 'sk3'], true);
    report.faults += 2;
    const unhealthy = await waitUntil(30_000, async () => (await status(p1Url))?.quorum_healthy === false);
    await sleep(1500); // commits in flight before the cut may still complete
    const ackedAtCut = record.acknowledged.size;
    log(`failover: PG1/P1 cut off from sk2, sk3 (quorum_healthy=false seen: ${!!unhealthy}); ${ackedAtCut} commits acknowledged by PG1 so far`);
    // P1 keeps streaming PG1's (uncommitted) WAL to sk1: sk1 becomes the donor, and the
    // new term must catch sk2 and sk3 up from it before PG2 can be promoted.
    const flushOf = async (id: number) => parseLsn((await safekeeperTimeline(nc!.views.get(id)!, id))?.flush_lsn ?? '0/0');
    const ahead = await waitUntil(15_000, async () => {
      const d = (await flushOf(1)) - ((await flushOf(2)) > (await flushOf(3)) ? await flushOf(2) : await flushOf(3));
      return d > 0n ? d : undefined;
    });
    report.donorAheadBytes = Number(ahead ?? 0n);
    log(`failover: sk1 (still reached by P1) is ${ahead ?? 0n} bytes ahead of sk2/sk3 with WAL nobody acknowledged`);

    // 3. P2 for PG2, failover mode
    const p2Port = cfg.proposer.http_port + P2_HTTP_PORT_OFFSET;
    const p2Url = `http://${pg2Node.ip}:${p2Port}`;
    p2PidFile = join(dir, 'run', 'proposer2.pid');
    const sks = cfg.safekeepers.map((s) => `${topo!.nodes.get(`sk${s.id}`)!.ip}:${s.pg_port}`).join(',');
    const started = Date.now();
    spawnInNs(pg2Node.ns, [
      process.execPath, WALKEEPER_JS, 'proposer', '--pg', `host=${pg2Node.ip} port=${pgPort} user=postgres dbname=postgres`,
      '--safekeepers', sks, '--tenant', cfg.tenant_id, '--timeline', cfg.timeline_id, '--listen-http', `${pg2Node.ip}:${p2Port}`, '--promote',
    ], join(dir, 'logs', 'proposer2.log'), p2PidFile);
    const p2 = await waitUntil(120_000, async () => {
      const s = await status(p2Url);
      return s?.state === 'streaming' && s.quorum_healthy ? s : undefined;
    });
    if (!p2) {
      const last = await status(p2Url);
      const tail = readFileSync(join(dir, 'logs', 'proposer2.log'), 'utf8').trim().split('\n').slice(-8).join('\n');
      throw new Error(`P2 did not start streaming within 120 s (state ${last?.state}: ${last?.reason ?? ''}); proposer2.log ends:\n${tail}`);
    }
    report.newTerm = p2.term;
    const history = readFileSync(join(standby.dataDir, 'pg_wal', '00000002.history'), 'utf8');
    report.switchpoint = /^1\t(\S+)\t/.exec(history)?.[1];
    log(`failover: P2 streaming in term ${p2.term} after ${((Date.now() - started) / 1000).toFixed(1)} s; PG2 promoted, timeline 2 from ${report.switchpoint}`);

    // the workload moves to PG2
    await w1.stop(3000);
    w1 = undefined;
    report.ackedOnOldPrimary = record.acknowledged.size;
    report.ackedOnOldPrimaryDuringPartition = report.ackedOnOldPrimary - ackedAtCut;
    w2 = new Workload({ host: pg2Node.ip, port: pgPort, clients: 4, clientOffset: 10, record, log });
    w2.start();
    await sleep(5000);

    // 4. P1, still reaching sk1, meets the higher term
    const p1Fenced = await waitUntil(30_000, async () => {
      const s = await status(p1Url);
      return s?.state === 'fenced' ? s : undefined;
    });
    report.oldProposerReason = p1Fenced?.reason;
    check('only the new primary commits', report.ackedOnOldPrimaryDuringPartition === 0 && record.acknowledged.size > report.ackedOnOldPrimary,
      `PG1 acknowledged ${report.ackedOnOldPrimaryDuringPartition} commits after its partition (sk1 ${report.donorAheadBytes} B ahead); PG2 acknowledged ${record.acknowledged.size - report.ackedOnOldPrimary} in 5 s (term ${report.oldTerm} -> ${report.newTerm})`);
    check('the partitioned old proposer is fenced by the new term', !!p1Fenced && /term/.test(p1Fenced.reason ?? ''), `P1 state ${p1Fenced?.state ?? 'not fenced'}: ${p1Fenced?.reason ?? ''}`);

    // 5. heal; the old proposer restarted is still fenced, and the old primary commits nothing
    blackhole(topo, 'pg', ['sk2', 'sk3'], false);
    await sleep(2000);
    await nc.cluster.killProposer();
    await startNetProposer(nc);
    const p1Again = await waitUntil(30_000, async () => {
      const s = await status(p1Url);
      return s?.state === 'fenced' ? s : undefined;
    });
    report.restartedOldProposerReason = p1Again?.reason;
    const probeAcked = await probeOldPrimary(pg1Host, pgPort, record, 99 * 1_000_000_000 + 1, 5000);
    const p2After = await status(p2Url);
    check('after healing, the old primary still cannot commit', !!p1Again && /timeline 2/.test(p1Again.reason ?? '') && !probeAcked && p2After?.quorum_healthy === true && p2After.term === report.newTerm,
      `restarted P1: ${p1Again?.state ?? 'not fenced'} (${p1Again?.reason ?? ''}); insert on PG1 acknowledged within 5 s: ${probeAcked}; P2 term ${p2After?.term}, healthy ${p2After?.quorum_healthy}`);
    await w2.stop();
    w2 = undefined;
    report.ackedOnNewPrimary = record.acknowledged.size - report.ackedOnOldPrimary;

    // 6. ledger: on PG2, and restored from sk3's WAL across the switch
    const flush = parseLsn((await sqlOne(pg2Node.ip, pgPort, 'SELECT pg_current_wal_flush_lsn()::text')) ?? '0/0');
    let commit: Lsn = 0n;
    await waitUntil(60_000, async () => {
      commit = parseLsn((await status(p2Url))?.commit_lsn ?? '0/0');
      return commit >= flush;
    });
    const view3 = nc.views.get(3)!;
    await waitUntil(30_000, async () => parseLsn((await safekeeperTimeline(view3, 3))?.commit_lsn ?? '0/0') >= commit);
    report.ledgerOnNewPrimary = checkLedger(record.acknowledged, record.attempted, await readLedger(pg2Node.ip, pgPort));
    check('ledger on the new primary', report.ledgerOnNewPrimary.ok, `acknowledged ${report.ledgerOnNewPrimary.acknowledged}, lost ${report.ledgerOnNewPrimary.lost.length}, duplicates ${report.ledgerOnNewPrimary.duplicates}, phantoms ${report.ledgerOnNewPrimary.phantoms.length}`);
    report.ledger = await verifyLedger({ readerView: view3, readerId: 3, backup, record, commitLsn: commit, restoredHost: '127.0.0.1', restoredPort: 16425 + Math.floor(Math.random() * 1000), runAs: nc.runAs, name: 'restore', primary: { host: pg2Node.ip, port: pgPort } });
    check('ledger restored from sk3\'s WAL across the timeline switch', report.ledger.ok, `up to ${formatLsn(commit)}: acknowledged ${report.ledger.acknowledged}, lost ${report.ledger.lost.length}, duplicates ${report.ledger.duplicates}, phantoms ${report.ledger.phantoms.length}; WAL below ${report.ledger.readerLocalStartLsn} read from the bucket`);
  } catch (err) {
    report.error = (err as Error).stack ?? String(err);
    log(`failover: ERROR ${(err as Error).message}`);
  } finally {
    if (w1) await w1.stop(3000).catch(() => undefined);
    if (w2) await w2.stop(5000).catch(() => undefined);
    killPidFile(p2PidFile);
    if (standby) await standby.stop('immediate').catch(() => undefined);
    if (nc) await killNetCluster(nc);
    if (topo) {
      destroyTopology(topo);
      report.leftovers = leftovers(topo.prefix);
    }
    if (!process.env.WALKEEPER_KEEP_TEST_DIRS) rmSync(dir, { recursive: true, force: true });
    else appendFileSync(join(dir, 'commands.log'), (topo?.commands ?? []).join('\n') + '\n');
  }
  report.ok = !report.error && report.checks.length === 5 && report.checks.every((c) => c.ok) && report.leftovers.length === 0;
  return report;
}

function killPidFile(file: string | undefined): void {
  if (!file) return;
  try {
    const pid = Number(readFileSync(file, 'utf8'));
    if (pid > 0 && processAlive(pid)) process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

async function sqlOne(host: string, port: number, text: string): Promise<string | undefined> {
  const c = new pg.Client({ host, port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 10_000 });
  c.on('error', () => undefined);
  await c.connect();
  try {
    const r = await c.query<Record<string, string>>(text);
    return Object.values(r.rows[0] ?? {})[0];
  } finally {
    await c.end().catch(() => undefined);
  }
}
