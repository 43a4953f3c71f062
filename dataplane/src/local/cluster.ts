// A whole walkeeper cluster on one machine: N safekeepers, a PostgreSQL primary and its
// proposer, all on loopback under one base directory (`.walkeeper/` for walctl, a temp dir
// for tests). All state lives in files, so any walctl invocation can act on it.
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { newId } from '../common/ids.js';
import { PostgresServer, sleep } from './postgres.js';
import { ManagedProcess, WALKEEPER_JS } from './process.js';
import type { ProposerStatusJson, TenantCreateJson, TimelineCreateJson } from '../api/index.js';

export interface SafekeeperAddr {
  id: number;
  pg_port: number;
  http_port: number;
}

export interface LocalClusterConfig {
  version: 1;
  host: string;
  tenant_id: string;
  timeline_id: string;
  safekeepers: SafekeeperAddr[];
  postgres: { port: number };
  proposer: { http_port: number };
  /** JWT for the cluster's own calls when the safekeepers run with auth (not in local mode). */
  token?: string;
  /**
   * Where the safekeepers offload WAL. Absent: a file:// bucket in `<base dir>/bucket` (the
   * embedded default); null: no offload; else a URL and `--remote-storage-*` flags (name
   * without the prefix, e.g. `endpoint`, `grace-ms`).
   */
  remote_storage?: { url: string; flags?: Record<string, string> } | null;
  /** More safekeeper flags, name without `--` (e.g. `wal-keep-size`), on every (re)start. */
  safekeeper_flags?: Record<string, string>;
}

export interface InitOptions {
  /** first port; safekeeper N uses base+N (pg) and base+10+N (http), postgres base+20, proposer base+21 */
  portBase?: number;
  safekeepers?: number;
  host?: string;
}

export const DEFAULT_PORT_BASE = 15400;

/** The primary's settings beyond initdb's: the proposer is its synchronous standby. */
export const PRIMARY_SETTINGS: Readonly<Record<string, string>> = {
  synchronous_standby_names: `'walkeeper_proposer'`,
  synchronous_commit: 'on',
  wal_keep_size: `'256MB'`,
  max_wal_size: `'1GB'`,
};

export function defaultConfig(opts: InitOptions = {}): LocalClusterConfig {
  const base = opts.portBase ?? DEFAULT_PORT_BASE;
  const n = opts.safekeepers ?? 3;
  return {
    version: 1,
    host: opts.host ?? '127.0.0.1',
    tenant_id: newId(),
    timeline_id: newId(),
    safekeepers: Array.from({ length: n }, (_, i) => ({ id: i + 1, pg_port: base + i + 1, http_port: base + 10 + i + 1 })),
    postgres: { port: base + 20 },
    proposer: { http_port: base + 21 },
  };
}

export type Progress = (message: string) => void;

export class LocalCluster {
  readonly postgres: PostgresServer;

  constructor(
    readonly baseDir: string,
    readonly config: LocalClusterConfig,
    /** the `walkeeper` launcher its processes run (torture names the testkit's, with test hooks) */
    readonly entrypoint: string = WALKEEPER_JS,
  ) {
    this.postgres = new PostgresServer({
      dataDir: join(baseDir, 'postgres', 'data'),
      port: config.postgres.port,
      host: config.host,
      socketDir: join(baseDir, 'postgres'),
      logFile: join(baseDir, 'logs', 'postgres.log'),
    });
  }

  static configPath(baseDir: string): string {
    return join(baseDir, 'config.json');
  }

  /** Loads an initialized cluster, or says which command creates one. */
  static load(baseDir: string): LocalCluster {
    const path = LocalCluster.configPath(baseDir);
    if (!existsSync(path)) throw new Error(`no walkeeper cluster in ${baseDir}: run "walctl init" first`);
    let config: LocalClusterConfig;
    try {
      config = JSON.parse(readFileSync(path, 'utf8')) as LocalClusterConfig;
    } catch (err) {
      throw new Error(`cannot read ${path}: ${(err as Error).message}`);
    }
    return new LocalCluster(baseDir, config);
  }

  /** Creates the base directory and config with a fresh default tenant; keeps an existing one. */
  static init(baseDir: string, opts: InitOptions = {}): { cluster: LocalCluster; created: boolean } {
    const path = LocalCluster.configPath(baseDir);
    if (existsSync(path)) return { cluster: LocalCluster.load(baseDir), created: false };
    mkdirSync(baseDir, { recursive: true });
    const config = defaultConfig(opts);
    writeFileSync(path, JSON.stringify(config, null, 2) + '\n');
    return { cluster: new LocalCluster(baseDir, config), created: true };
  }

  saveConfig(): void {
    writeFileSync(LocalCluster.configPath(this.baseDir), JSON.stringify(this.config, null, 2) + '\n');
  }

  safekeeperProcess(id: number): ManagedProcess {
    return new ManagedProcess(`safekeeper ${id}`, join(this.baseDir, 'run', `safekeeper-${id}.pid`), join(this.baseDir, 'logs', `safekeeper-${id}.log`), this.entrypoint);
  }

  get proposerProcess(): ManagedProcess {
    return new ManagedProcess('proposer', join(this.baseDir, 'run', 'proposer.pid'), join(this.baseDir, 'logs', 'proposer.log'), this.entrypoint);
  }

  safekeeperAddr(id: number): SafekeeperAddr {
    const sk = this.config.safekeepers.find((s) => s.id === id);
    if (!sk) throw new Error(`no safekeeper ${id}: this cluster has ${this.config.safekeepers.map((s) => s.id).join(', ')}`);
    return sk;
  }

  httpUrl(id: number): string {
    return `http://${this.config.host}:${this.safekeeperAddr(id).http_port}`;
  }

  /**
   * libpq conninfo for a stock reader (pg_receivewal, a hot standby) of this cluster's
   * timeline on safekeeper `id`; `host` when the member is reached at another address.
   */
  readerConnInfo(id: number, host = this.config.host): string {
    const c = this.config;
    return `host=${host} port=${this.safekeeperAddr(id).pg_port} user=postgres options='-c tenant_id=${c.tenant_id} -c timeline_id=${c.timeline_id}'`;
  }

  /** host:port of every member's Postgres-protocol port, as the proposer and restores take them */
  get safekeeperPgAddresses(): string[] {
    return this.config.safekeepers.map((s) => `${this.config.host}:${s.pg_port}`);
  }

  get proposerUrl(): string {
    return `http://${this.config.host}:${this.config.proposer.http_port}`;
  }

  /** libpq connection string for the primary. */
  get connString(): string {
    return `postgresql://postgres@${this.config.host}:${this.config.postgres.port}/postgres`;
  }

  /** Ports we will listen on that something else already holds, with what we wanted them for. */
  async busyPorts(): Promise<string[]> {
    const wanted: [number, string][] = [];
    for (const sk of this.config.safekeepers) {
      if (!this.safekeeperProcess(sk.id).running) {
        wanted.push([sk.pg_port, `safekeeper ${sk.id} postgres protocol`], [sk.http_port, `safekeeper ${sk.id} HTTP`]);
      }
    }
    if (!this.postgres.pid) wanted.push([this.config.postgres.port, 'PostgreSQL']);
    if (!this.proposerProcess.running) wanted.push([this.config.proposer.http_port, 'proposer HTTP']);
    const busy: string[] = [];
    for (const [port, what] of wanted) if (!(await portFree(this.config.host, port))) busy.push(`${this.config.host}:${port} (${what})`);
    return busy;
  }

  /** The bucket URL and flags the safekeepers offload to; undefined when offload is off. */
  get remoteStorage(): { url: string; flags: Record<string, string> } | undefined {
    const r = this.config.remote_storage;
    if (r === null) return undefined;
    if (r === undefined) return { url: `file://${this.defaultBucketDir}`, flags: {} };
    return { url: r.url, flags: r.flags ?? {} };
  }

  /** The embedded default bucket: `<base dir>/bucket`. */
  get defaultBucketDir(): string {
    return resolve(this.baseDir, 'bucket');
  }

  private remoteStorageArgs(): string[] {
    const r = this.remoteStorage;
    if (!r) return [];
    if (r.url === `file://${this.defaultBucketDir}`) mkdirSync(this.defaultBucketDir, { recursive: true });
    const args = ['--remote-storage', r.url, '--remote-storage-members', String(this.config.safekeepers.length)];
    for (const [name, value] of Object.entries(r.flags)) args.push(`--remote-storage-${name}`, value);
    return args;
  }

  /** The `walkeeper` arguments of safekeeper `id` listening on `host`; creates its data directory. */
  safekeeperArgs(id: number, host = this.config.host): string[] {
    const sk = this.safekeeperAddr(id);
    const datadir = join(this.baseDir, 'safekeepers', `sk${id}`);
    mkdirSync(datadir, { recursive: true });
    return [
      'safekeeper', '--id', String(id), '--datadir', datadir,
      '--listen-pg', `${host}:${sk.pg_port}`, '--listen-http', `${host}:${sk.http_port}`,
      ...this.remoteStorageArgs(),
      ...Object.entries(this.config.safekeeper_flags ?? {}).flatMap(([name, value]) => [`--${name}`, value]),
    ];
  }

  async startSafekeeper(id: number): Promise<void> {
    this.safekeeperProcess(id).start(this.safekeeperArgs(id));
    await waitFor(`safekeeper ${id} to become ready`, 30_000, async () => (await httpGet(`${this.httpUrl(id)}/readyz`)).status === 200, () => this.safekeeperProcess(id).running, this.safekeeperProcess(id).logFile);
  }

  async stopSafekeeper(id: number): Promise<void> {
    await this.safekeeperProcess(id).stop();
  }

  async killSafekeeper(id: number): Promise<void> {
    await this.safekeeperProcess(id).kill();
  }

  /** Registers the tenant and timeline on one safekeeper; already-present is fine. */
  async registerTimeline(id: number): Promise<void> {
    const base = this.httpUrl(id);
    const t = await httpPost(`${base}/v1/tenants`, { tenant_id: this.config.tenant_id } satisfies TenantCreateJson);
    if (t.status !== 201 && t.status !== 409) throw new Error(`safekeeper ${id}: tenant create answered ${t.status} ${t.text}`);
    const l = await httpPost(`${base}/v1/tenants/${this.config.tenant_id}/timelines`, { timeline_id: this.config.timeline_id } satisfies TimelineCreateJson);
    if (l.status !== 201 && l.status !== 409) throw new Error(`safekeeper ${id}: timeline create answered ${l.status} ${l.text}`);
  }

  async startPostgres(): Promise<void> {
    if (!this.postgres.initialized) {
      this.postgres.initdb(PRIMARY_SETTINGS);
    }
    await this.postgres.start();
  }

  /** `promote`: PostgreSQL is a standby following a safekeeper (a failover or a restore); the proposer promotes it once it holds the quorum. */
  async startProposer(opts: { promote?: boolean } = {}): Promise<void> {
    const sks = this.safekeeperPgAddresses.join(',');
    this.proposerProcess.start([
      'proposer',
      '--pg', `host=${this.config.host} port=${this.config.postgres.port} user=postgres dbname=postgres`,
      '--safekeepers', sks, '--tenant', this.config.tenant_id, '--timeline', this.config.timeline_id,
      '--listen-http', `${this.config.host}:${this.config.proposer.http_port}`,
      ...(opts.promote ? ['--promote'] : []),
    ]);
    await waitFor('the proposer HTTP API', 30_000, async () => (await httpGet(`${this.proposerUrl}/v1/status`)).status === 200, () => this.proposerProcess.running, this.proposerProcess.logFile);
  }

  async stopProposer(): Promise<void> {
    await this.proposerProcess.stop();
  }

  async killProposer(): Promise<void> {
    await this.proposerProcess.kill();
  }

  async proposerStatus(): Promise<ProposerStatusJson | undefined> {
    const r = await httpGet(`${this.proposerUrl}/v1/status`);
    return r.status === 200 ? (JSON.parse(r.text) as ProposerStatusJson) : undefined;
  }

  async waitForQuorum(timeoutMs = 60_000): Promise<void> {
    await waitFor('a healthy quorum (proposer streaming to a majority)', timeoutMs, async () => (await this.proposerStatus())?.quorum_healthy === true, () => this.proposerProcess.running, this.proposerProcess.logFile);
  }

  /** Brings everything up in dependency order, reporting each step. */
  async start(progress: Progress = () => {}): Promise<void> {
    const busy = await this.busyPorts();
    if (busy.length) throw new Error(`port${busy.length > 1 ? 's' : ''} in use: ${busy.join(', ')}; stop what holds ${busy.length > 1 ? 'them' : 'it'}, or re-create the cluster with "walctl init --port-base N"`);
    for (const sk of this.config.safekeepers) {
      progress(`starting safekeeper ${sk.id} on ${this.config.host}:${sk.pg_port} (HTTP ${sk.http_port})`);
      await this.startSafekeeper(sk.id);
      await this.registerTimeline(sk.id);
    }
    progress(this.postgres.initialized ? `starting PostgreSQL on port ${this.config.postgres.port}` : `initializing and starting PostgreSQL on port ${this.config.postgres.port}`);
    await this.startPostgres();
    progress('starting the proposer');
    await this.startProposer();
    progress('waiting for the quorum');
    await this.waitForQuorum();
  }

  async stop(progress: Progress = () => {}): Promise<void> {
    progress('stopping the proposer');
    await this.stopProposer();
    progress('stopping PostgreSQL');
    await this.postgres.stop('fast');
    for (const sk of this.config.safekeepers) {
      progress(`stopping safekeeper ${sk.id}`);
      await this.stopSafekeeper(sk.id);
    }
  }
}

export async function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

export interface HttpResult {
  status: number;
  text: string;
}

/** fetch with a timeout; a refused connection is status 0 rather than an exception. */
export async function httpGet(url: string, timeoutMs = 3000, headers: Record<string, string> = {}): Promise<HttpResult> {
  return httpRequest('GET', url, undefined, timeoutMs, headers);
}

export async function httpPost(url: string, body: unknown, timeoutMs = 5000, headers: Record<string, string> = {}): Promise<HttpResult> {
  return httpRequest('POST', url, body, timeoutMs, headers);
}

export async function httpRequest(method: string, url: string, body: unknown, timeoutMs: number, headers: Record<string, string> = {}): Promise<HttpResult> {
  try {
    const res = await fetch(url, {
      method,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: res.status, text: await res.text() };
  } catch (err) {
    return { status: 0, text: (err as Error).message };
  }
}

/** Polls until check() is true; fails early with the log's tail if the process died. */
export async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>, alive?: () => boolean, logFile?: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    if (alive && !alive()) throw new Error(`gave up waiting for ${what}: the process exited${logFile ? `; last lines of ${logFile}:\n${logTail(logFile)}` : ''}`);
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${logFile ? `; last lines of ${logFile}:\n${logTail(logFile)}` : ''}`);
}

function logTail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
