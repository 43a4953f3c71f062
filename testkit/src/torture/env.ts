// Shared by torture and bench: a LocalCluster in a fresh temp directory on free loopback
// ports, child processes run as the PostgreSQL identity with a time limit, and timestamps.
import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { LocalCluster, defaultConfig, portFree, httpGet, type LocalClusterConfig } from '@walkeeper/dataplane/local/cluster';
import { postgresIdentity, type RunAs } from '@walkeeper/dataplane/local/postgres';

/** Ports the LocalCluster uses (base..base+21) plus a few for torture/bench extras. */
export const PORT_SPAN = 30;
/** offsets from the port base of the extra listeners (restored server, ingest safekeeper) */
export const EXTRA_PORT = { restoredPostgres: 25, ingestPg: 26, ingestHttp: 27 } as const;

let nextBase = 30000 + (process.pid % 300) * 100;

/** A port base whose PORT_SPAN ports are all free right now. */
export async function freePortBase(host = '127.0.0.1'): Promise<number> {
  for (let tries = 0; tries < 300; tries++) {
    const base = nextBase;
    nextBase += PORT_SPAN + 20;
    if (nextBase > 60000) nextBase = 20000;
    let ok = true;
    for (let p = base; p < base + PORT_SPAN && ok; p++) ok = await portFree(host, p);
    if (ok) return base;
  }
  throw new Error('no free range of loopback ports found');
}

export interface TempCluster {
  cluster: LocalCluster;
  portBase: number;
  runAs: RunAs | undefined;
}

/** A LocalCluster (not started) in a new temp directory that the PostgreSQL user can enter. */
export async function newTempCluster(prefix: string, parentDir = tmpdir(), opts: { entrypoint?: string } = {}): Promise<TempCluster> {
  const dir = mkdtempSync(join(parentDir, prefix));
  const runAs = postgresIdentity();
  if (runAs) chownSync(dir, runAs.uid, runAs.gid);
  const portBase = await freePortBase();
  const cluster = new LocalCluster(dir, defaultConfig({ portBase, safekeepers: 3 }), opts.entrypoint);
  cluster.saveConfig();
  return { cluster, portBase, runAs };
}

/** Kills whatever the cluster started (hard), ignoring what is already gone. */
export async function killCluster(cluster: LocalCluster): Promise<void> {
  await cluster.killProposer().catch(() => undefined);
  await cluster.postgres.stop('immediate').catch(() => undefined);
  for (const sk of cluster.config.safekeepers) await cluster.killSafekeeper(sk.id).catch(() => undefined);
}

export interface RunResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Runs a program (optionally as runAs) and resolves with its output; never throws on exit status. */
export function run(file: string, args: string[], opts: { runAs?: RunAs; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      {
        uid: opts.runAs?.uid,
        gid: opts.runAs?.gid,
        cwd: '/',
        timeout: opts.timeoutMs ?? 120_000,
        killSignal: 'SIGKILL',
        maxBuffer: 64 * 1024 * 1024,
        env: { ...process.env, ...opts.env },
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: string }) | null;
        const code = e ? (typeof e.code === 'number' ? e.code : null) : 0;
        const signal = e?.signal ?? null;
        const extra = e && typeof e.code === 'string' ? `\n${e.message}` : '';
        resolve({ code, signal, stdout: String(stdout), stderr: String(stderr) + extra });
      },
    );
  });
}

/** Throws with the program's stderr unless it exited 0. */
export async function runOk(what: string, file: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<RunResult> {
  const r = await run(file, args, opts);
  if (r.code !== 0) {
    throw new Error(`${what} failed (${r.signal ? `killed by ${r.signal}` : `exit ${r.code}`}): ${file} ${args.join(' ')}\n${(r.stderr || r.stdout).trim().slice(-4000)}`);
  }
  return r;
}

/** A logger that prefixes each line with the time since `t0`. */
export function timestamped(t0: number, sink: (line: string) => void): (line: string) => void {
  return (line: string) => sink(`[+${((Date.now() - t0) / 1000).toFixed(3).padStart(8)}s] ${line}`);
}

export interface TimelineStatus {
  flush_lsn?: string;
  commit_lsn?: string;
  term?: string | number;
  [key: string]: unknown;
}

/** GET /v1/tenants/:t/timelines/:l of one safekeeper; undefined if it does not answer 200. */
export async function safekeeperTimeline(cluster: LocalCluster, id: number): Promise<TimelineStatus | undefined> {
  const c = cluster.config;
  const r = await httpGet(`${cluster.httpUrl(id)}/v1/tenants/${c.tenant_id}/timelines/${c.timeline_id}`);
  if (r.status !== 200) return undefined;
  try {
    return JSON.parse(r.text) as TimelineStatus;
  } catch {
    return undefined;
  }
}

/**
 * Offload to the embedded file:// bucket `<baseDir>/bucket` with a short takeover grace, and a
 * 16MB --wal-keep-size: members remove WAL a few segments behind the commit LSN, so a restore
 * from one of them reads WAL it no longer holds (served from the bucket).
 */
export function walRemovalConfig(baseDir: string): Pick<LocalClusterConfig, 'remote_storage' | 'safekeeper_flags'> {
  return { remote_storage: { url: `file://${resolve(baseDir, 'bucket')}`, flags: { 'grace-ms': '1000' } }, safekeeper_flags: { 'wal-keep-size': '16MB' } };
}

/** walRemovalConfig applied to a cluster not yet started. */
export function withWalRemoval(cluster: LocalCluster): void {
  Object.assign(cluster.config, walRemovalConfig(cluster.baseDir));
  cluster.saveConfig();
}
