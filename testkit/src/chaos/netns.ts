// Network faults with Linux network namespaces. A topology is one bridge namespace holding a
// bridge, one namespace per node joined to it by a veth pair, and a veth from the root
// namespace into the bridge (so this process can reach every node), all on a private
// 10.213.N.0/24 subnet picked so that it collides with nothing on the machine. Faults act on
// a node's bridge-side veth: `down`/`up` (partition), and impairment (delay, loss).
// Impairment uses `tc netem` when the kernel has it; without netem (CONFIG_NET_SCH_NETEM
// unset) loss is real packet loss from nftables (`numgen random`) and delay comes from a
// delaying TCP forwarder (delayProxy.ts) in the node's namespace that the proposer always
// goes through. Everything is removed by destroy(), which never touches what it did not create.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalCluster, waitFor, httpGet, type LocalClusterConfig } from '@walkeeper/dataplane/local/cluster';
import { WALKEEPER_JS } from '@walkeeper/dataplane/local/process';
import { postgresIdentity, sleep } from '@walkeeper/dataplane/local/postgres';

export interface NetNode {
  name: string;
  ns: string;
  ip: string;
  /** a second address of the node, where the delaying forwarder listens */
  proxyIp: string;
  /** the node's veth end inside the bridge namespace */
  bridgePort: string;
}

export interface Topology {
  prefix: string;
  subnet: string;
  bridgeNs: string;
  rootVeth: string;
  rootIp: string;
  nodes: Map<string, NetNode>;
  netem: boolean;
  nft: boolean;
  /** ip commands run, for the log */
  commands: string[];
}

function sh(cmd: string, args: string[], topo?: Topology): string {
  topo?.commands.push(`${cmd} ${args.join(' ')}`);
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function quiet(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why namespaces cannot be used here, or undefined if they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root: ip netns add needs CAP_SYS_ADMIN';
  const probe = `wk-probe-${randomBytes(3).toString('hex')}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' });
  } catch (err) {
    return `ip netns add is not permitted here: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`;
  }
  quiet('ip', ['netns', 'del', probe]);
  return undefined;
}

function probeNetem(ns: string, dev: string): boolean {
  if (!quiet('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', dev, 'root', 'netem', 'delay', '1ms'])) return false;
  quiet('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'del', 'dev', dev, 'root']);
  return true;
}

function pickSubnet(): string {
  const used = execFileSync('ip', ['-4', '-o', 'addr'], { encoding: 'utf8' }) + execFileSync('ip', ['-4', 'route'], { encoding: 'utf8' });
  for (let i = 0; i < 50; i++) {
    const n = 1 + Math.floor(Math.random() * 253);
    if (!used.includes(`10.213.${n}.`) && !used.includes('10.213.0.0/16') && !used.includes('10.0.0.0/8')) return `10.213.${n}`;
  }
  throw new Error('no free 10.213.N.0/24 subnet found');
}

/** Creates the bridge, one namespace per name and the root attachment. */
export function createTopology(names: string[]): Topology {
  const tag = randomBytes(2).toString('hex');
  const prefix = `wk-${tag}`;
  const subnet = pickSubnet();
  const topo: Topology = { prefix, subnet, bridgeNs: `${prefix}-br`, rootVeth: `wk${tag}r`, rootIp: `${subnet}.1`, nodes: new Map(), netem: false, nft: false, commands: [] };
  try {
    sh('ip', ['netns', 'add', topo.bridgeNs], topo);
    sh('ip', ['-n', topo.bridgeNs, 'link', 'set', 'lo', 'up'], topo);
    sh('ip', ['-n', topo.bridgeNs, 'link', 'add', 'br0', 'type', 'bridge'], topo);
    sh('ip', ['-n', topo.bridgeNs, 'link', 'set', 'br0', 'up'], topo);
    names.forEach((name, i) => {
      const node: NetNode = { name, ns: `${prefix}-${name}`, ip: `${subnet}.${10 + i}`, proxyIp: `${subnet}.${110 + i}`, bridgePort: `p${i}` };
      sh('ip', ['netns', 'add', node.ns], topo);
      sh('ip', ['-n', node.ns, 'link', 'set', 'lo', 'up'], topo);
      sh('ip', ['-n', node.ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', node.bridgePort, 'netns', topo.bridgeNs], topo);
      sh('ip', ['-n', node.ns, 'addr', 'add', `${node.ip}/24`, 'dev', 'eth0'], topo);
      sh('ip', ['-n', node.ns, 'addr', 'add', `${node.proxyIp}/24`, 'dev', 'eth0'], topo);
      sh('ip', ['-n', node.ns, 'link', 'set', 'eth0', 'up'], topo);
      sh('ip', ['-n', topo.bridgeNs, 'link', 'set', node.bridgePort, 'master', 'br0', 'up'], topo);
      topo.nodes.set(name, node);
    });
    sh('ip', ['link', 'add', topo.rootVeth, 'type', 'veth', 'peer', 'name', 'proot', 'netns', topo.bridgeNs], topo);
    sh('ip', ['addr', 'add', `${topo.rootIp}/24`, 'dev', topo.rootVeth], topo);
    sh('ip', ['link', 'set', topo.rootVeth, 'up'], topo);
    sh('ip', ['-n', topo.bridgeNs, 'link', 'set', 'proot', 'master', 'br0', 'up'], topo);
    const first = [...topo.nodes.values()][0];
    topo.netem = first ? probeNetem(topo.bridgeNs, first.bridgePort) : false;
    topo.nft = quiet('nft', ['--version']);
  } catch (err) {
    destroyTopology(topo);
    throw err;
  }
  return topo;
}

/** Removes every namespace (their veths and the bridge go with them) and the root veth. */
export function destroyTopology(topo: Topology): void {
  for (const n of topo.nodes.values()) quiet('ip', ['netns', 'del', n.ns]);
  quiet('ip', ['netns', 'del', topo.bridgeNs]);
  quiet('ip', ['link', 'del', topo.rootVeth]);
}

/** Namespaces of this prefix still present (for tests that check the clean-up). */
export function leftovers(prefix: string): string[] {
  const ns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith(prefix));
  const links = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(prefix.replace('-', '')));
  return [...ns, ...links];
}

export function linkDown(topo: Topology, name: string): void {
  sh('ip', ['-n', topo.bridgeNs, 'link', 'set', topo.nodes.get(name)!.bridgePort, 'down'], topo);
}

export function linkUp(topo: Topology, name: string): void {
  sh('ip', ['-n', topo.bridgeNs, 'link', 'set', topo.nodes.get(name)!.bridgePort, 'up'], topo);
}

export interface Impairment {
  delayMs: number;
  lossPct: number;
}

/**
 * Delays and drops what reaches node `name` over its link. Returns how it was done. With netem
 * the delay and loss are on the bridge-side veth; otherwise loss is nftables in the node's
 * namespace (every packet it receives) and the delay is the node's forwarder (see startProxy).
 */
export function impair(topo: Topology, name: string, imp: Impairment, proxyControl?: string): string {
  const node = topo.nodes.get(name)!;
  if (topo.netem) {
    sh('ip', ['netns', 'exec', topo.bridgeNs, 'tc', 'qdisc', 'replace', 'dev', node.bridgePort, 'root', 'netem', 'delay', `${imp.delayMs}ms`, 'loss', `${imp.lossPct}%`], topo);
    return `tc netem delay ${imp.delayMs}ms loss ${imp.lossPct}% on ${node.bridgePort}`;
  }
  const how: string[] = [];
  if (imp.lossPct > 0) {
    if (topo.nft) {
      sh('ip', ['netns', 'exec', node.ns, 'nft', 'add', 'table', 'inet', 'wkchaos'], topo);
      sh('ip', ['netns', 'exec', node.ns, 'nft', 'add', 'chain', 'inet', 'wkchaos', 'in', '{ type filter hook input priority 0; policy accept; }'], topo);
      sh('ip', ['netns', 'exec', node.ns, 'nft', 'add', 'rule', 'inet', 'wkchaos', 'in', 'iifname', 'eth0', 'numgen', 'random', 'mod', '100', '<', String(imp.lossPct), 'drop'], topo);
      how.push(`nftables numgen random drop ${imp.lossPct}% of packets into ${node.ns}`);
    } else {
      how.push(`no packet loss: the kernel has no netem and the nft tool is not installed (apt-get install nftables)`);
    }
  }
  if (imp.delayMs > 0) {
    if (!proxyControl) throw new Error('delay without netem needs the node\'s forwarder control file');
    writeFileSync(proxyControl, String(imp.delayMs));
    how.push(`${imp.delayMs} ms delay toward the safekeeper in the TCP forwarder in ${node.ns} (the kernel has no netem)`);
  }
  return how.join('; ');
}

export function unimpair(topo: Topology, name: string, proxyControl?: string): void {
  const node = topo.nodes.get(name)!;
  if (topo.netem) quiet('ip', ['netns', 'exec', topo.bridgeNs, 'tc', 'qdisc', 'del', 'dev', node.bridgePort, 'root']);
  if (topo.nft) quiet('ip', ['netns', 'exec', node.ns, 'nft', 'delete', 'table', 'inet', 'wkchaos']);
  if (proxyControl) writeFileSync(proxyControl, '0');
}

// ---------------------------------------------------------------------------------------
// Processes inside namespaces

const DELAY_PROXY_JS = [new URL('./delayProxy.js', import.meta.url), new URL('../../dist/src/chaos/delayProxy.js', import.meta.url), new URL('../../../dist/src/chaos/delayProxy.js', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((p) => p.endsWith('.js') && existsSync(p) && p.includes(`${'dist'}`));

/** Starts `ip netns exec NS <argv>` detached, logging to logFile; `ip netns exec` execs in place, so the pid is the program's. */
export function spawnInNs(ns: string, argv: string[], logFile: string, pidFile: string, runAs?: { uid: number; gid: number }): number {
  mkdirSync(dirname(logFile), { recursive: true });
  mkdirSync(dirname(pidFile), { recursive: true });
  const fd = openSync(logFile, 'a');
  const cmd = runAs ? ['nsenter', `--net=/run/netns/${ns}`, '-S', String(runAs.uid), '-G', String(runAs.gid), '--', ...argv] : ['ip', 'netns', 'exec', ns, ...argv];
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', fd, fd], detached: true, cwd: '/', env: process.env });
  closeSync(fd);
  child.unref();
  writeFileSync(pidFile, String(child.pid));
  return child.pid!;
}

export interface NetCluster {
  topo: Topology;
  /** the cluster as seen from PostgreSQL's and the proposer's namespace (host = its address) */
  cluster: LocalCluster;
  /** per safekeeper, a LocalCluster whose host is that safekeeper's address (HTTP, readers) */
  views: Map<number, LocalCluster>;
  /** per safekeeper, the file holding its forwarder's delay in ms */
  proxyControl: Map<number, string>;
  runAs: { uid: number; gid: number } | undefined;
  nodeOf: (id: number) => string;
}

/**
 * A LocalCluster (its config, ports, pid files and logs) whose safekeepers each run in their
 * own namespace and PostgreSQL and the proposer in another; the proposer reaches safekeeper N
 * through its forwarder. Nothing is started.
 */
export function netCluster(topo: Topology, baseDir: string, base: LocalClusterConfig): NetCluster {
  const pgNode = topo.nodes.get('pg')!;
  const cluster = new LocalCluster(baseDir, { ...base, host: pgNode.ip });
  cluster.saveConfig();
  const views = new Map<number, LocalCluster>();
  const proxyControl = new Map<number, string>();
  for (const sk of base.safekeepers) {
    views.set(sk.id, new LocalCluster(baseDir, { ...base, host: topo.nodes.get(`sk${sk.id}`)!.ip }));
    proxyControl.set(sk.id, join(baseDir, 'run', `proxy-${sk.id}.delay`));
  }
  return { topo, cluster, views, proxyControl, runAs: postgresIdentity(), nodeOf: (id) => `sk${id}` };
}

export async function startNetSafekeeper(nc: NetCluster, id: number): Promise<void> {
  const { cluster, topo } = nc;
  const sk = cluster.safekeeperAddr(id);
  const node = topo.nodes.get(nc.nodeOf(id))!;
  const proc = cluster.safekeeperProcess(id);
  spawnInNs(node.ns, [process.execPath, WALKEEPER_JS, ...cluster.safekeeperArgs(id, node.ip)], proc.logFile, proc.pidFile);
  const view = nc.views.get(id)!;
  await waitFor(`safekeeper ${id} in ${node.ns}`, 30_000, async () => (await httpGet(`${view.httpUrl(id)}/readyz`)).status === 200, () => proc.running, proc.logFile);
  // its forwarder: proxyIp:pg_port -> ip:pg_port, delay read from the control file
  const control = nc.proxyControl.get(id)!;
  if (!existsSync(control)) writeFileSync(control, '0');
  const proxyPid = join(cluster.baseDir, 'run', `proxy-${id}.pid`);
  if (!DELAY_PROXY_JS) throw new Error('dist/src/chaos/delayProxy.js not found: run npx tsc -b dataplane first');
  spawnInNs(node.ns, [process.execPath, DELAY_PROXY_JS, `${node.proxyIp}:${sk.pg_port}`, `${node.ip}:${sk.pg_port}`, control], join(cluster.baseDir, 'logs', `proxy-${id}.log`), proxyPid);
  await sleep(300);
}

export async function startNetPostgres(nc: NetCluster): Promise<void> {
  const pg = nc.cluster.postgres;
  if (!pg.initialized) {
    pg.initdb({ synchronous_standby_names: `'walkeeper_proposer'`, synchronous_commit: 'on', wal_keep_size: `'256MB'`, max_wal_size: `'1GB'` });
    // the proposer and the workload come from the test subnet (initdb trusts only loopback)
    appendFileSync(join(pg.dataDir, 'pg_hba.conf'), `\nhost all all ${nc.topo.subnet}.0/24 trust\nhost replication all ${nc.topo.subnet}.0/24 trust\n`);
  }
  const node = nc.topo.nodes.get('pg')!;
  spawnInNs(node.ns, [join(pg.binDir, 'postgres'), '-D', pg.dataDir], pg.logFile, join(nc.cluster.baseDir, 'run', 'postgres.pid'), nc.runAs);
  await waitFor('PostgreSQL in its namespace', 60_000, async () => pg.isReady());
}

export async function startNetProposer(nc: NetCluster): Promise<void> {
  const { cluster, topo } = nc;
  const node = topo.nodes.get('pg')!;
  const sks = cluster.config.safekeepers.map((s) => `${topo.nodes.get(nc.nodeOf(s.id))!.proxyIp}:${s.pg_port}`).join(',');
  const proc = cluster.proposerProcess;
  spawnInNs(node.ns, [
    process.execPath, WALKEEPER_JS, 'proposer', '--pg', `host=${node.ip} port=${cluster.config.postgres.port} user=postgres dbname=postgres`,
    '--safekeepers', sks, '--tenant', cluster.config.tenant_id, '--timeline', cluster.config.timeline_id, '--listen-http', `${node.ip}:${cluster.config.proposer.http_port}`,
  ], proc.logFile, proc.pidFile);
  await waitFor('the proposer in its namespace', 30_000, async () => (await httpGet(`${cluster.proposerUrl}/v1/status`)).status === 200, () => proc.running, proc.logFile);
}

export async function startNetCluster(nc: NetCluster, log: (l: string) => void = () => undefined): Promise<void> {
  for (const sk of nc.cluster.config.safekeepers) {
    await startNetSafekeeper(nc, sk.id);
    await nc.views.get(sk.id)!.registerTimeline(sk.id);
    log(`safekeeper ${sk.id} up in ${nc.topo.nodes.get(nc.nodeOf(sk.id))!.ns} at ${nc.views.get(sk.id)!.config.host}`);
  }
  await startNetPostgres(nc);
  log(`PostgreSQL up in ${nc.topo.nodes.get('pg')!.ns} at ${nc.cluster.config.host}:${nc.cluster.config.postgres.port}`);
  await startNetProposer(nc);
  await nc.cluster.waitForQuorum();
  log('proposer streaming to a quorum');
}

/** Kills every process of the cluster (proxies included), hard. */
export async function killNetCluster(nc: NetCluster): Promise<void> {
  await nc.cluster.killProposer().catch(() => undefined);
  await nc.cluster.postgres.stop('immediate').catch(() => undefined);
  for (const sk of nc.cluster.config.safekeepers) {
    await nc.cluster.killSafekeeper(sk.id).catch(() => undefined);
    const pidFile = join(nc.cluster.baseDir, 'run', `proxy-${sk.id}.pid`);
    try {
      const { readFileSync } = await import('node:fs');
      process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
    } catch {
      // gone
    }
  }
}
