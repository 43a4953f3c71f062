// Network scenarios on a namespaced cluster (netns.ts) under the torture's ledger workload:
//   partition  the proposer loses a majority: no commit is acknowledged and its status says
//              quorum_healthy false; healing the links brings commits back;
//   impair     delay + loss on one member's link: commits keep flowing; latency measured
//              (and, for contrast, on two links: then every commit waits for the delay);
//   lagging    one member partitioned while commits go on, then healed: it catches up.
// The run ends with the ledger check: WAL streamed from the member that was partitioned and
// impaired, restored into a new server, every acknowledged row present exactly once.
import { mkdtempSync, chownSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { parseLsn } from '@walkeeper/dataplane/common/lsn';
import { defaultConfig } from '@walkeeper/dataplane/local/cluster';
import { sleep } from '@walkeeper/dataplane/local/postgres';
import { LedgerRecord } from '../torture/ledger.js';
import { ID_STRIDE, Workload } from '../torture/workload.js';
import { safekeeperTimeline, walRemovalConfig } from '../torture/env.js';
import { prepareLedger, verifyLedger, waitForCommit, type LedgerVerification } from './ledgerCheck.js';
import { createTopology, destroyTopology, impair, killNetCluster, leftovers, linkDown, linkUp, netCluster, netnsUnavailable, startNetCluster, unimpair, type NetCluster, type Topology } from './netns.js';

export interface LatencyStats {
  n: number;
  p50: number;
  p95: number;
  max: number;
}

export interface NetworkReport {
  skipped?: string;
  impairmentMethod?: string;
  scenarios: { name: string; ok: boolean; detail: string }[];
  /** problems seen that do not lose data (reported, not failed on) */
  knownIssues: string[];
  faults: number;
  latency: { baseline?: LatencyStats; oneLinkImpaired?: LatencyStats; twoLinksImpaired?: LatencyStats };
  acknowledged: number;
  ledger?: LedgerVerification;
  leftovers: string[];
  error?: string;
  ok: boolean;
}

type Log = (line: string) => void;

/** Sequential single-row commits on one connection; ids in their own range, recorded in the ledger. */
async function measureCommits(host: string, port: number, record: LedgerRecord, n: number, client: number, seqStart: number): Promise<LatencyStats> {
  const c = new pg.Client({ host, port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 10_000 });
  c.on('error', () => undefined);
  await c.connect();
  const times: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const id = client * ID_STRIDE + seqStart + i;
      record.attempt(id);
      const t = performance.now();
      await c.query('INSERT INTO ledger (id, client, payload) VALUES ($1, $2, $3)', [id, client, 'latency probe']);
      times.push(performance.now() - t);
      record.acknowledge(id);
    }
  } finally {
    await c.end().catch(() => undefined);
  }
  times.sort((a, b) => a - b);
  const q = (p: number) => Math.round(times[Math.min(times.length - 1, Math.floor(p * times.length))] * 10) / 10;
  return { n, p50: q(0.5), p95: q(0.95), max: Math.round(times[times.length - 1] * 10) / 10 };
}

async function waitUntil(what: string, ms: number, check: () => Promise<boolean>): Promise<boolean> {
  void what; // names the wait at the call site
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return true;
    await sleep(100);
  }
  return false;
}

export async function runNetworkScenarios(log: Log = () => undefined): Promise<NetworkReport> {
  const report: NetworkReport = { scenarios: [], knownIssues: [], faults: 0, latency: {}, acknowledged: 0, leftovers: [], ok: false };
  const why = netnsUnavailable();
  if (why) return { ...report, skipped: why, ok: true };
  let topo: Topology | undefined;
  let nc: NetCluster | undefined;
  let workload: Workload | undefined;
  const record = new LedgerRecord();
  const dir = mkdtempSync(join(tmpdir(), 'walkeeper-netns-'));
  try {
    topo = createTopology(['sk1', 'sk2', 'sk3', 'pg']);
    log(`network: namespaces ${[...topo.nodes.values()].map((n) => `${n.ns}=${n.ip}`).join(' ')}, bridge in ${topo.bridgeNs}, subnet ${topo.subnet}.0/24; netem ${topo.netem ? 'available' : 'NOT in this kernel'}; nft ${topo.nft ? 'available' : 'not installed'}`);
    nc = netCluster(topo, dir, { ...defaultConfig({ portBase: 15400 }), ...walRemovalConfig(dir) });
    if (nc.runAs) chownSync(dir, nc.runAs.uid, nc.runAs.gid);
    await startNetCluster(nc, (l) => log(`network: ${l}`));
    const { host } = nc.cluster.config;
    const port = nc.cluster.config.postgres.port;
    const backup = await prepareLedger(nc.cluster, 'restore', nc.runAs);
    workload = new Workload({ host, port, clients: 4, record, log });
    workload.start();
    await sleep(1500);
    report.latency.baseline = await measureCommits(host, port, record, 40, 90, 0);
    log(`network: baseline commit latency ${JSON.stringify(report.latency.baseline)} ms`);

    // 1. the proposer partitioned from a majority
    {
      linkDown(topo, 'sk2');
      linkDown(topo, 'sk3');
      report.faults += 2;
      const unhealthy = await waitUntil('quorum_healthy false', 20_000, async () => (await nc!.cluster.proposerStatus())?.quorum_healthy === false);
      await sleep(1000); // commits in flight before the cut may still complete
      const before = record.acknowledged.size;
      await sleep(4000);
      const during = record.acknowledged.size - before;
      const st = await nc.cluster.proposerStatus();
      linkUp(topo, 'sk2');
      linkUp(topo, 'sk3');
      const healthy = await waitUntil('quorum back', 60_000, async () => (await nc!.cluster.proposerStatus())?.quorum_healthy === true);
      const after0 = record.acknowledged.size;
      await sleep(2000);
      const resumed = record.acknowledged.size - after0;
      // status says so; safety: nothing acknowledged without a quorum; liveness: commits return after healing
      const ok = unhealthy && during === 0 && healthy && resumed > 0;
      report.scenarios.push({ name: 'proposer partitioned from a majority', ok, detail: `quorum_healthy=false seen: ${unhealthy} (state ${st?.state}, safekeepers ${st?.safekeepers.map((x) => `${x.address}:${x.state}:${x.flush_lsn}`).join(' ')}${st?.reason ? `, ${st.reason}` : ''}); commits acknowledged during 4 s of partition: ${during}; healed: ${healthy}; commits in 2 s after healing: ${resumed}` });
      log(`network: ${report.scenarios.at(-1)!.name}: ${report.scenarios.at(-1)!.detail}`);
    }

    // 2. 200 ms delay + 5% loss on one link, then on two
    {
      const imp = { delayMs: 200, lossPct: 5 };
      report.impairmentMethod = impair(topo, 'sk3', imp, nc.proxyControl.get(3));
      report.faults++;
      await sleep(1000);
      report.latency.oneLinkImpaired = await measureCommits(host, port, record, 40, 91, 0);
      impair(topo, 'sk2', imp, nc.proxyControl.get(2));
      report.faults++;
      await sleep(1000);
      report.latency.twoLinksImpaired = await measureCommits(host, port, record, 15, 92, 0);
      unimpair(topo, 'sk2', nc.proxyControl.get(2));
      unimpair(topo, 'sk3', nc.proxyControl.get(3));
      const one = report.latency.oneLinkImpaired;
      const two = report.latency.twoLinksImpaired;
      const ok = one.n === 40 && two.n === 15 && two.p50 >= imp.delayMs;
      report.scenarios.push({ name: '200 ms delay + 5% loss on one link (then two)', ok, detail: `${report.impairmentMethod}; commit latency ms baseline p50 ${report.latency.baseline.p50} p95 ${report.latency.baseline.p95}; one link p50 ${one.p50} p95 ${one.p95} max ${one.max}; two links p50 ${two.p50} p95 ${two.p95} max ${two.max}` });
      log(`network: ${report.scenarios.at(-1)!.name}: ${report.scenarios.at(-1)!.detail}`);
    }

    // 3. one member partitioned while commits go on, then healed: it catches up
    {
      linkDown(topo, 'sk3');
      report.faults++;
      await sleep(5000);
      const commitDuring = parseLsn((await nc.cluster.proposerStatus())?.commit_lsn ?? '0/0');
      linkUp(topo, 'sk3');
      const view = nc.views.get(3)!;
      let lag = '';
      const caught = await waitUntil('sk3 catches up', 60_000, async () => {
        const tl = await safekeeperTimeline(view, 3);
        lag = `${tl?.flush_lsn} vs ${commitDuring.toString(16)}`;
        return !!tl?.flush_lsn && parseLsn(tl.flush_lsn) >= commitDuring;
      });
      report.scenarios.push({ name: 'healed partition: lagging member catches up', ok: caught, detail: `sk3 flush ${lag}; caught up: ${caught}` });
      log(`network: ${report.scenarios.at(-1)!.name}: ${report.scenarios.at(-1)!.detail}`);
    }

    await workload.stop();
    workload = undefined;
    report.acknowledged = record.acknowledged.size;
    const commit = await waitForCommit(nc.cluster);
    await waitUntil('sk3 has the commit LSN', 30_000, async () => parseLsn((await safekeeperTimeline(nc!.views.get(3)!, 3))?.commit_lsn ?? '0/0') >= commit);
    report.ledger = await verifyLedger({ readerView: nc.views.get(3)!, readerId: 3, backup, record, commitLsn: commit, restoredHost: '127.0.0.1', restoredPort: 15425 + Math.floor(Math.random() * 1000), runAs: nc.runAs, name: 'restore', primary: { host, port } });
    log(`network: ledger from sk3 (the partitioned and impaired member): acknowledged ${report.ledger.acknowledged}, lost ${report.ledger.lost.length}, duplicates ${report.ledger.duplicates}, phantoms ${report.ledger.phantoms.length}; WAL below ${report.ledger.readerLocalStartLsn} read from the bucket`);
  } catch (err) {
    report.error = (err as Error).stack ?? String(err);
    log(`network: ERROR ${(err as Error).message}`);
  } finally {
    if (workload) await workload.stop(5000).catch(() => undefined);
    if (nc) await killNetCluster(nc);
    if (topo) {
      destroyTopology(topo);
      report.leftovers = leftovers(topo.prefix);
    }
    report.acknowledged = record.acknowledged.size;
    if (!process.env.WALKEEPER_KEEP_TEST_DIRS) rmSync(dir, { recursive: true, force: true });
  }
  report.ok = !report.error && report.scenarios.every((s) => s.ok) && !!report.ledger?.ok && report.leftovers.length === 0;
  return report;
}
