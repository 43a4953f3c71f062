// A PodRuntime (stand-in kubelet) that runs pods' containers as real local processes, each pod on
// its own loopback address, with its volumes mapped to the harness's directories:
// - a container whose command is `walkeeper ...` becomes `node dataplane/bin/walkeeper.js ...`;
// - a `postgres:<major>` image becomes the machine's PostgreSQL of that major version, started the
//   way the official image's entrypoint does (initdb with POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB
//   when PGDATA is empty, trust for loopback and scram-sha-256 for other hosts, then `postgres` with
//   the container's args), run as the `postgres` user, listening on the pod's address.
// Every pod shares the machine's 127.0.0.1, so the pod's loopback is mapped to its own address:
// `127.0.0.1`/`localhost` in args and env become the pod IP. There is no cluster DNS either, so
// Service and pod names (`<pod>.<svc>.<ns>.svc.cluster.local`, ...) in args and env are rewritten to
// addresses when the container starts (harness/dns.ts). Readiness comes from the container's
// readinessProbe (httpGet, or exec of pg_isready). Other containers cannot run here and leave
// the pod Pending (NotRunnableLocally). Test infrastructure only.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Api } from '../harness/api.js';
import { rewriteClusterNames } from '../harness/dns.js';
import type { ContainerStatusReport, PodContext, PodRuntime } from '../harness/runtime.js';
import type { KObject } from '../harness/util.js';

/** The data plane's launcher, found from this module whether it runs from src/ (jest) or dist/src/. */
export const WALKEEPER_JS = [new URL('../../../dataplane/bin/walkeeper.js', import.meta.url), new URL('../../../../dataplane/bin/walkeeper.js', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((p) => fs.existsSync(p)) ?? fileURLToPath(new URL('../../../dataplane/bin/walkeeper.js', import.meta.url));

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    secretKeyRef?: { name: string; key: string; optional?: boolean };
  };
}
interface EnvFrom {
  prefix?: string;
  configMapRef?: { name: string; optional?: boolean };
  secretRef?: { name: string; optional?: boolean };
}
interface Probe {
  httpGet?: { path?: string; port: number | string };
  exec?: { command: string[] };
  periodSeconds?: number;
  timeoutSeconds?: number;
}
interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  envFrom?: EnvFrom[];
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string; subPath?: string }[];
}

/** A uid/gid to run a container's process as. */
export interface RunAs {
  uid: number;
  gid: number;
}

/**
 * How a container is run here: the argv to spawn; or why it cannot be run (the pod stays
 * Pending); or why it cannot start yet (e.g. a DNS name nothing answers to; retried).
 */
export type ContainerPlan =
  | {
      argv: string[];
      env: Record<string, string>;
      /** the identity to run as (PostgreSQL refuses to run as root) */
      runAs?: RunAs;
      /** the image's STOPSIGNAL, sent to the main process only (default SIGTERM to the process group) */
      stopSignal?: NodeJS.Signals;
      /** directories to hand to runAs before the start */
      chownDirs?: string[];
    }
  | { unsupported: string }
  | { retry: string };

export interface ProcessRuntimeOptions {
  /** Longest interval between readiness probes (default 500 ms; the probe's periodSeconds when shorter). */
  maxProbeIntervalMs?: number;
  /** Grace before SIGKILL when the pod's own grace period is 0 (default 2000 ms). */
  minGraceMs?: number;
  /** Extra environment for every process (on top of PATH and the container's env). */
  env?: Record<string, string>;
  /** PostgreSQL server binaries for a `postgres:<major>` image (default /usr/lib/postgresql/<major>/bin when it exists). */
  postgresBinDir?: (major: number | undefined) => string | undefined;
  log?: (msg: string) => void;
}

interface RunningContainer {
  spec: Container;
  /** an init container: runs to completion (exit 0) before the next one, and before any container */
  init?: boolean;
  child?: ChildProcess;
  ready: boolean;
  state: 'waiting' | 'running' | 'terminated';
  restartCount: number;
  exitCode?: number;
  reason?: string;
  message?: string;
  logFile: string;
  stopSignal?: NodeJS.Signals;
  restartTimer?: NodeJS.Timeout;
  probeTimer?: NodeJS.Timeout;
}

interface RunningPod {
  pod: KObject;
  ctx: PodContext;
  initContainers: RunningContainer[];
  containers: RunningContainer[];
  stopping: boolean;
}

const podKey = (pod: KObject) => `${pod.metadata.namespace}/${pod.metadata.name}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `127.0.0.1` or `localhost` as a host in a connection string, URL or host:port. */
const LOOPBACK = /(^|[\s=@/,])(?:127\.0\.0\.1|localhost)(?=$|[\s:/,])/g;

/** The PostgreSQL major version an official `postgres[:tag]` image stands for (undefined: latest). */
export function postgresImage(c: { image?: string; command?: string[] }): { major: number | undefined } | undefined {
  const m = /^(?:[^/]+\/)*postgres(?::([^@]+))?(?:@.*)?$/.exec(c.image ?? '');
  if (!m) return undefined;
  const cmd0 = c.command?.[0];
  if (cmd0 !== undefined && cmd0 !== 'postgres' && cmd0 !== 'docker-entrypoint.sh') return undefined;
  const major = /^(\d+)/.exec(m[1] ?? '')?.[1];
  return { major: major ? Number(major) : undefined };
}

function installedPostgres(): number[] {
  try {
    return fs
      .readdirSync('/usr/lib/postgresql')
      .filter((d) => /^\d+$/.test(d) && fs.existsSync(`/usr/lib/postgresql/${d}/bin/postgres`))
      .map(Number)
      .sort((a, b) => b - a);
  } catch {
    return [];
  }
}

/** The machine's PostgreSQL of that major version (the newest one for `latest`), as Debian installs it. */
export function defaultPostgresBinDir(major: number | undefined): string | undefined {
  const v = major ?? installedPostgres()[0];
  const dir = v === undefined ? undefined : `/usr/lib/postgresql/${v}/bin`;
  return dir && fs.existsSync(path.join(dir, 'postgres')) && fs.existsSync(path.join(dir, 'initdb')) ? dir : undefined;
}

let postgresUser: RunAs | undefined | null = null;
/** PostgreSQL refuses to run as root: when we are root it runs as the `postgres` user. */
function postgresRunAs(): RunAs | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  if (postgresUser === null) {
    try {
      postgresUser = { uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()) };
    } catch {
      postgresUser = undefined;
    }
  }
  if (!postgresUser) throw new Error('running as root and there is no "postgres" user to run PostgreSQL as');
  return postgresUser;
}

const isUnder = (p: string, dir: string) => p === dir || p.startsWith(`${dir}${path.sep}`);

/** Every ancestor of dir must be enterable by runAs, or PostgreSQL cannot reach its data directory. */
function unreachableAncestor(dir: string, runAs: RunAs): string | undefined {
  for (let p = path.dirname(path.resolve(dir)); p !== path.dirname(p); p = path.dirname(p)) {
    const st = fs.statSync(p);
    const ok = (st.mode & 0o001) !== 0 || (st.uid === runAs.uid && (st.mode & 0o100) !== 0) || (st.gid === runAs.gid && (st.mode & 0o010) !== 0);
    if (!ok) return p;
  }
  return undefined;
}

/**
 * The official postgres image's docker-entrypoint.sh, in short: initdb when PGDATA holds no
 * cluster (superuser POSTGRES_USER with POSTGRES_PASSWORD; initdb's own pg_hba trusts local and
 * loopback connections, replication included; every other host needs POSTGRES_HOST_AUTH_METHOD,
 * scram-sha-256 by default); POSTGRES_DB created when it is not `postgres`; then exec postgres.
 */
const POSTGRES_ENTRYPOINT = `set -eu
bin="$WALKEEPER_PG_BIN_DIR"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  user="\${POSTGRES_USER:-postgres}"
  method="\${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
  if [ -z "\${POSTGRES_PASSWORD:-}" ] && [ "$method" != trust ]; then
    echo "Error: Database is uninitialized and superuser password is not specified." >&2
    exit 1
  fi
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA"
  "$bin/initdb" -D "$PGDATA" --username="$user" --pwfile=<(printf '%s\\n' "\${POSTGRES_PASSWORD:-}") \${POSTGRES_INITDB_ARGS:-}
  printf '\\nhost all all all %s\\n' "$method" >> "$PGDATA/pg_hba.conf"
  db="\${POSTGRES_DB:-$user}"
  if [ "$db" != postgres ]; then
    printf 'CREATE DATABASE "%s";\\n' "$db" | "$bin/postgres" --single -j -D "$PGDATA" postgres >/dev/null
  fi
  echo "PostgreSQL init process complete; ready for start up."
fi
exec "$bin/postgres" "$@"
`;

export class ProcessRuntime implements PodRuntime {
  private readonly pods = new Map<string, RunningPod>();
  private api: Api | undefined;
  private closed = false;

  constructor(private readonly opts: ProcessRuntimeOptions = {}) {}

  /** Gives the runtime read access to ConfigMaps and Secrets (for env and envFrom); call after startHarness(). */
  attach(api: Api): void {
    this.api = api;
  }

  /** Pods with at least one live process. */
  running(): string[] {
    return [...this.pods.entries()].filter(([, p]) => p.containers.some((c) => c.child && c.child.exitCode === null)).map(([k]) => k);
  }

  /** Pids of every live container process (for tests that want to crash one). */
  pids(namespace: string, name: string): number[] {
    return (this.pods.get(`${namespace}/${name}`)?.containers ?? []).flatMap((c) => (c.child?.pid && c.child.exitCode === null ? [c.child.pid] : []));
  }

  logs(namespace: string, name: string, container?: string): string {
    const p = this.pods.get(`${namespace}/${name}`);
    const c = [...(p?.containers ?? []), ...(p?.initContainers ?? [])].find((x) => !container || x.spec.name === container);
    if (!c) return '';
    try {
      return fs.readFileSync(c.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  start(pod: KObject, ctx: PodContext): void {
    if (this.closed) return;
    const spec = pod.spec as { containers?: Container[]; initContainers?: Container[] };
    const container = (c: Container, init: boolean): RunningContainer => ({ spec: c, init, ready: false, state: 'waiting', restartCount: 0, logFile: path.join(ctx.podDir, `${c.name}.log`) });
    const rp: RunningPod = {
      pod,
      ctx,
      stopping: false,
      initContainers: (spec.initContainers ?? []).map((c) => container(c, true)),
      containers: (spec.containers ?? []).map((c) => container(c, false)),
    };
    this.pods.set(podKey(pod), rp);
    // All or nothing: a pod whose PostgreSQL container cannot run here does not get a half-started
    // sidecar either (it would only fail to reach its neighbour); the pod stays Pending.
    const all = [...rp.initContainers, ...rp.containers];
    const blocked = all.map((c) => this.plan(pod, c.spec, ctx)).find((p): p is { unsupported: string } => 'unsupported' in p);
    if (blocked) this.opts.log?.(`${podKey(pod)} cannot run here: ${blocked.unsupported}`);
    if (blocked) {
      for (const c of all) {
        c.reason = 'NotRunnableLocally';
        c.message = blocked.unsupported;
      }
    } else this.next(rp);
    this.report(rp);
  }

  /** The kubelet's order: each init container in turn until it exits 0, then every container. */
  private next(rp: RunningPod): void {
    const pending = rp.initContainers.find((c) => !(c.state === 'terminated' && c.exitCode === 0));
    if (pending) {
      if (pending.state === 'waiting') this.launch(rp, pending);
      return;
    }
    for (const c of rp.containers) if (!c.child) this.launch(rp, c);
  }

  async stop(pod: KObject, graceSeconds: number): Promise<void> {
    const rp = this.pods.get(podKey(pod));
    if (!rp || rp.pod.metadata.uid !== pod.metadata.uid) return;
    rp.stopping = true;
    const graceMs = Math.max(graceSeconds * 1000, this.opts.minGraceMs ?? 2000);
    await Promise.all([...rp.initContainers, ...rp.containers].map((c) => this.kill(c, graceMs)));
    if (this.pods.get(podKey(pod)) === rp) this.pods.delete(podKey(pod));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.pods.values()].map((rp) => this.stop(rp.pod, 0)));
  }

  /** Maps a container to a local command: the data plane's `walkeeper` command, or a `postgres` image. */
  plan(pod: KObject, c: Container, ctx: PodContext): ContainerPlan {
    const cmd = [...(c.command ?? []), ...(c.args ?? [])];
    const pgImage = postgresImage(c);
    if (cmd[0] !== 'walkeeper' && !pgImage) return { unsupported: `image ${c.image ?? '?'} (command ${cmd[0] ?? '<image default>'}) cannot run as a local process` };
    const mounts = (c.volumeMounts ?? [])
      .filter((m) => ctx.volumes[m.name])
      .map((m) => ({ from: m.mountPath.replace(/\/+$/, ''), to: m.subPath ? path.join(ctx.volumes[m.name]!, m.subPath) : ctx.volumes[m.name]! }))
      .sort((a, b) => b.from.length - a.from.length);
    const unresolved = new Set<string>();
    // Cluster DNS names become addresses (there is no DNS here); the pod's loopback is its address.
    const names = (v: string) => {
      if (!this.api) return v;
      const r = rewriteClusterNames(this.api, v);
      for (const n of r.unresolved) unresolved.add(n);
      return r.text;
    };
    const local = (v: string) => {
      let out = names(v).replace(/^(0\.0\.0\.0|\[::\]|::):/, `${ctx.podIP}:`);
      out = out.replace(LOOPBACK, (_m, pre: string) => `${pre}${ctx.podIP}`);
      for (const m of mounts) {
        if (out === m.from || out.startsWith(`${m.from}/`)) {
          out = m.to + out.slice(m.from.length);
          break;
        }
      }
      return out;
    };
    const env: Record<string, string> = {};
    for (const from of c.envFrom ?? []) {
      const data = from.configMapRef ? this.data('configmaps', pod, from.configMapRef.name, false) : from.secretRef ? this.data('secrets', pod, from.secretRef.name, true) : undefined;
      // The kubelet's CreateContainerConfigError: retried until the object exists.
      if (!data && !(from.configMapRef?.optional || from.secretRef?.optional)) return { retry: `envFrom ${from.configMapRef?.name ?? from.secretRef?.name} not found` };
      for (const [k, v] of Object.entries(data ?? {})) env[(from.prefix ?? '') + k] = local(v);
    }
    for (const e of c.env ?? []) {
      if (e.value !== undefined) env[e.name] = local(e.value);
      else if (e.valueFrom?.fieldRef) {
        const f = e.valueFrom.fieldRef.fieldPath;
        const v = f === 'metadata.name' ? pod.metadata.name : f === 'metadata.namespace' ? pod.metadata.namespace : f === 'status.podIP' ? ctx.podIP : f === 'spec.nodeName' ? 'harness-node' : undefined;
        if (v !== undefined) env[e.name] = v;
      } else if (e.valueFrom?.configMapKeyRef || e.valueFrom?.secretKeyRef) {
        const ref = (e.valueFrom.configMapKeyRef ?? e.valueFrom.secretKeyRef)!;
        const v = this.data(e.valueFrom.configMapKeyRef ? 'configmaps' : 'secrets', pod, ref.name, !e.valueFrom.configMapKeyRef)?.[ref.key];
        if (v === undefined && !ref.optional) return { retry: `env ${e.name}: ${ref.name}/${ref.key} not found` };
        // Credentials are taken verbatim; only cluster names in them are resolved.
        if (v !== undefined) env[e.name] = names(v);
      }
    }
    const tmp = mounts.find((m) => m.from === '/tmp');
    const baseEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOSTNAME: pod.metadata.name ?? '', ...(tmp ? { TMPDIR: tmp.to } : {}), ...this.opts.env };

    if (pgImage) {
      const binDir = (this.opts.postgresBinDir ?? defaultPostgresBinDir)(pgImage.major);
      if (!binDir) return { unsupported: `image ${c.image}: no PostgreSQL ${pgImage.major ?? ''} server binaries on this machine (installed: ${installedPostgres().join(', ') || 'none'})` };
      // The image's entrypoint takes `postgres ...` or bare options; an explicit command must be one of those.
      let args = cmd.map(local);
      if (args[0] === 'docker-entrypoint.sh') args = args.slice(1);
      if (args[0] === 'postgres') args = args.slice(1);
      if (unresolved.size) return { retry: `cannot resolve ${[...unresolved].join(', ')} yet` };
      if (args.some((a, i) => !a.startsWith('-') && !args[i - 1]?.startsWith('-'))) return { unsupported: `image ${c.image}: only the postgres server (command postgres with options) runs here, not ${cmd.join(' ')}` };
      const pgdata = env.PGDATA ?? local('/var/lib/postgresql/data');
      if (pgdata.startsWith('/var/lib/postgresql')) return { unsupported: `image ${c.image}: PGDATA ${pgdata} is not on a volume` };
      const runDir = mounts.find((m) => m.from === '/var/run/postgresql' || m.from === '/run/postgresql')?.to;
      // A Unix socket path has at most 107 bytes; without a short enough directory there is none (TCP only).
      const socketDir = runDir && runDir.length + '/.s.PGSQL.65535'.length < 100 ? runDir : '';
      let runAs: RunAs | undefined;
      try {
        runAs = postgresRunAs();
      } catch (e) {
        return { unsupported: (e as Error).message };
      }
      const chownDirs = [...new Set([...mounts.map((m) => m.to), path.dirname(pgdata)])].filter((d) => ctx.podDir && isUnder(d, path.dirname(path.dirname(ctx.podDir))));
      return {
        argv: ['/bin/bash', '-c', POSTGRES_ENTRYPOINT, 'postgres-entrypoint', ...args, '-c', `listen_addresses=${ctx.podIP}`, '-c', `unix_socket_directories=${socketDir}`],
        env: { ...baseEnv, HOME: path.dirname(pgdata), LC_ALL: 'C.UTF-8', ...env, PGDATA: pgdata, WALKEEPER_PG_BIN_DIR: binDir },
        runAs,
        // The official image's STOPSIGNAL: fast shutdown.
        stopSignal: 'SIGINT',
        chownDirs,
      };
    }

    const args: string[] = [];
    for (const a of cmd.slice(1)) {
      // os.hostname() cannot be set per process here: turn the StatefulSet hostname into the id it implies.
      if (a === '--id-from-hostname') {
        const host = (pod.spec as { hostname?: string }).hostname ?? pod.metadata.name ?? '';
        const m = /-(\d+)$/.exec(host);
        if (!m) return { unsupported: `--id-from-hostname: pod name ${host} has no ordinal` };
        args.push('--id', String(Number(m[1]) + 1));
      } else args.push(local(a));
    }
    if (unresolved.size) return { retry: `cannot resolve ${[...unresolved].join(', ')} yet` };
    return { argv: [process.execPath, WALKEEPER_JS, ...args], env: { ...baseEnv, ...env } };
  }

  private data(resource: 'configmaps' | 'secrets', pod: KObject, name: string, base64: boolean): Record<string, string> | undefined {
    const t = this.api?.type('', 'v1', resource);
    const obj = t ? this.api!.tryGet(t, pod.metadata.namespace, name) : undefined;
    if (!obj) return undefined;
    const data = (obj as { data?: Record<string, string> }).data ?? {};
    return base64 ? Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')])) : { ...data };
  }

  private launch(rp: RunningPod, c: RunningContainer): void {
    if (rp.stopping || this.closed) return;
    const plan = this.plan(rp.pod, c.spec, rp.ctx);
    if ('unsupported' in plan || 'retry' in plan) {
      c.state = 'waiting';
      c.reason = 'unsupported' in plan ? 'NotRunnableLocally' : 'ContainerCreating';
      c.message = 'unsupported' in plan ? plan.unsupported : plan.retry;
      if ('retry' in plan) {
        c.restartTimer = setTimeout(() => {
          this.launch(rp, c);
          this.report(rp);
        }, 1000);
      }
      return;
    }
    if (plan.runAs) {
      for (const d of plan.chownDirs ?? []) {
        fs.mkdirSync(d, { recursive: true });
        fs.chownSync(d, plan.runAs.uid, plan.runAs.gid);
      }
      const blocked = (plan.chownDirs ?? []).map((d) => unreachableAncestor(d, plan.runAs!)).find((d) => d);
      if (blocked) {
        c.state = 'waiting';
        c.reason = 'NotRunnableLocally';
        c.message = `user ${plan.runAs.uid} cannot enter ${blocked} (chmod o+x it)`;
        return;
      }
    }
    c.stopSignal = plan.stopSignal;
    fs.mkdirSync(path.dirname(c.logFile), { recursive: true });
    const fd = fs.openSync(c.logFile, 'a');
    // Own process group, so a stop reaches anything the container started.
    const child = spawn(plan.argv[0]!, plan.argv.slice(1), { stdio: ['ignore', fd, fd], detached: true, env: plan.env, cwd: plan.runAs ? '/' : rp.ctx.podDir, uid: plan.runAs?.uid, gid: plan.runAs?.gid });
    fs.closeSync(fd);
    c.child = child;
    c.state = 'running';
    c.ready = false;
    c.reason = undefined;
    c.message = undefined;
    this.opts.log?.(`started ${podKey(rp.pod)}/${c.spec.name} pid ${child.pid}: ${(plan.runAs ? plan.argv.slice(4) : plan.argv.slice(1)).join(' ')}`);
    child.on('exit', (code, signal) => {
      if (c.child !== child) return;
      clearTimeout(c.probeTimer);
      c.state = 'terminated';
      c.ready = false;
      c.exitCode = code ?? 128 + (signal ? 9 : 0);
      c.reason = code === 0 ? 'Completed' : 'Error';
      if (rp.stopping || this.closed) return;
      if (c.init && code === 0) {
        c.ready = true;
        this.opts.log?.(`${podKey(rp.pod)}/${c.spec.name} (init) completed`);
        this.next(rp);
        this.report(rp);
        return;
      }
      this.opts.log?.(`${podKey(rp.pod)}/${c.spec.name} exited (${signal ?? code}); restarting`);
      this.report(rp);
      // restartPolicy Always, with the kubelet's doubling back-off (short: this is a test machine).
      const delay = Math.min(10_000, 500 * 2 ** Math.min(c.restartCount, 5));
      c.restartCount++;
      c.restartTimer = setTimeout(() => {
        this.launch(rp, c);
        this.report(rp);
      }, delay);
    });
    // init containers have no readiness: they run to completion
    if (!c.init) this.probe(rp, c, child);
  }

  private probe(rp: RunningPod, c: RunningContainer, child: ChildProcess): void {
    const check = this.prober(rp, c);
    if (!check) {
      c.ready = true;
      return;
    }
    const every = Math.min((c.spec.readinessProbe?.periodSeconds ?? 10) * 1000, this.opts.maxProbeIntervalMs ?? 500);
    const tick = async () => {
      if (c.child !== child || child.exitCode !== null || rp.stopping) return;
      const ok = await check().catch(() => false);
      if (c.child !== child || rp.stopping) return;
      if (ok !== c.ready) {
        c.ready = ok;
        this.report(rp);
      }
      c.probeTimer = setTimeout(() => void tick(), every);
    };
    c.probeTimer = setTimeout(() => void tick(), 100);
  }

  /** The readiness check of a container: its httpGet probe, or an exec of pg_isready (the machine's, at the pod's address). */
  private prober(rp: RunningPod, c: RunningContainer): (() => Promise<boolean>) | undefined {
    const rprobe = c.spec.readinessProbe;
    const timeoutMs = Math.min((rprobe?.timeoutSeconds ?? 1) * 1000, 3000);
    if (rprobe?.httpGet) {
      const probe = rprobe.httpGet;
      const port = typeof probe.port === 'number' ? probe.port : (c.spec.ports ?? []).find((p) => p.name === probe.port)?.containerPort;
      const url = `http://${rp.ctx.podIP}:${port}${probe.path ?? '/'}`;
      return async () => {
        const r = await fetch(url, { signal: AbortSignal.timeout(Math.max(timeoutMs, 1000)) });
        await r.text();
        return r.status >= 200 && r.status < 400;
      };
    }
    const cmd = rprobe?.exec?.command;
    const bin = cmd && path.basename(cmd[0] ?? '') === 'pg_isready' ? path.join(defaultPostgresBinDir(postgresImage(c.spec)?.major) ?? defaultPostgresBinDir(undefined) ?? '/usr/bin', 'pg_isready') : undefined;
    if (!cmd || !bin) return undefined; // other exec probes cannot run here: ready once started
    const args = cmd.slice(1).map((a) => a.replace(LOOPBACK, (_m, pre: string) => `${pre}${rp.ctx.podIP}`));
    if (!args.includes('-h') && !args.some((a) => a.startsWith('--host'))) args.push('-h', rp.ctx.podIP);
    return () => new Promise<boolean>((resolve) => execFile(bin, args, { timeout: timeoutMs }, (err) => resolve(!err)));
  }

  private report(rp: RunningPod): void {
    if (rp.stopping) return;
    const initialized = rp.initContainers.every((c) => c.state === 'terminated' && c.exitCode === 0);
    const status = (c: RunningContainer): ContainerStatusReport => ({
      name: c.spec.name,
      ready: c.ready,
      state: c.state,
      restartCount: c.restartCount,
      ...(c.exitCode !== undefined && c.state === 'terminated' ? { exitCode: c.exitCode } : {}),
      // the kubelet's reason for containers held back by an init container
      ...(c.reason ? { reason: c.reason } : !c.init && !initialized ? { reason: 'PodInitializing' } : {}),
      ...(c.message ? { message: c.message } : {}),
    });
    const anyRunning = rp.containers.some((c) => c.state === 'running');
    const waiting = [...rp.initContainers, ...rp.containers].find((c) => c.reason === 'NotRunnableLocally');
    rp.ctx.report({
      phase: anyRunning ? 'Running' : 'Pending',
      ready: initialized && rp.containers.every((c) => c.ready),
      containers: rp.containers.map(status),
      ...(rp.initContainers.length ? { initContainers: rp.initContainers.map(status) } : {}),
      ...(waiting ? { reason: 'NotRunnableLocally', message: waiting.message } : {}),
    });
  }

  private async kill(c: RunningContainer, graceMs: number): Promise<void> {
    clearTimeout(c.restartTimer);
    clearTimeout(c.probeTimer);
    const child = c.child;
    const pid = child?.pid;
    if (!child || pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const signal = (s: NodeJS.Signals) => {
      try {
        process.kill(-pid, s);
      } catch {
        try {
          process.kill(pid, s);
        } catch {
          /* gone */
        }
      }
    };
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    if (c.stopSignal) {
      try {
        process.kill(pid, c.stopSignal);
      } catch {
        /* gone */
      }
    } else signal('SIGTERM');
    const deadline = Date.now() + graceMs;
    while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) await Promise.race([exited, sleep(50)]);
    if (child.exitCode === null && child.signalCode === null) {
      signal('SIGKILL');
      await Promise.race([exited, sleep(2000)]);
    }
    // The group may hold other processes the container started.
    if (alive(pid)) signal('SIGKILL');
  }
}
