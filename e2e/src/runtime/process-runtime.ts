// A PodRuntime (stand-in kubelet) that runs the data plane's containers as real local processes:
// a container whose command is `walkeeper ...` becomes `node dataplane/bin/walkeeper.js ...` bound to
// the pod's own loopback address, with its volumes mapped to the harness's directories. Readiness
// comes from the container's HTTP readinessProbe. Containers it cannot run (e.g. postgres images)
// stay Waiting. Test infrastructure only.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Api } from '../harness/api.js';
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
  periodSeconds?: number;
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

/** How a container is run here: the argv to spawn, or why it cannot be run. */
export type ContainerPlan = { argv: string[]; env: Record<string, string> } | { unsupported: string };

export interface ProcessRuntimeOptions {
  /** Longest interval between readiness probes (default 500 ms; the probe's periodSeconds when shorter). */
  maxProbeIntervalMs?: number;
  /** Grace before SIGKILL when the pod's own grace period is 0 (default 2000 ms). */
  minGraceMs?: number;
  /** Extra environment for every process (on top of PATH and the container's env). */
  env?: Record<string, string>;
  log?: (msg: string) => void;
}

interface RunningContainer {
  spec: Container;
  child?: ChildProcess;
  ready: boolean;
  state: 'waiting' | 'running' | 'terminated';
  restartCount: number;
  exitCode?: number;
  reason?: string;
  message?: string;
  logFile: string;
  restartTimer?: NodeJS.Timeout;
  probeTimer?: NodeJS.Timeout;
}

interface RunningPod {
  pod: KObject;
  ctx: PodContext;
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
    const c = p?.containers.find((x) => !container || x.spec.name === container);
    if (!c) return '';
    try {
      return fs.readFileSync(c.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  start(pod: KObject, ctx: PodContext): void {
    if (this.closed) return;
    const specs = ((pod.spec as { containers?: Container[] }).containers ?? []);
    const rp: RunningPod = {
      pod,
      ctx,
      stopping: false,
      containers: specs.map((spec) => ({ spec, ready: false, state: 'waiting', restartCount: 0, logFile: path.join(ctx.podDir, `${spec.name}.log`) })),
    };
    this.pods.set(podKey(pod), rp);
    // All or nothing: a pod whose PostgreSQL container cannot run here does not get a half-started
    // sidecar either (it would only fail to reach its neighbour); the pod stays Pending.
    const blocked = rp.containers.map((c) => this.plan(pod, c.spec, ctx)).find((p): p is { unsupported: string } => 'unsupported' in p);
    if (blocked) {
      for (const c of rp.containers) {
        c.reason = 'NotRunnableLocally';
        c.message = blocked.unsupported;
      }
    } else for (const c of rp.containers) this.launch(rp, c);
    this.report(rp);
  }

  async stop(pod: KObject, graceSeconds: number): Promise<void> {
    const rp = this.pods.get(podKey(pod));
    if (!rp || rp.pod.metadata.uid !== pod.metadata.uid) return;
    rp.stopping = true;
    const graceMs = Math.max(graceSeconds * 1000, this.opts.minGraceMs ?? 2000);
    await Promise.all(rp.containers.map((c) => this.kill(c, graceMs)));
    if (this.pods.get(podKey(pod)) === rp) this.pods.delete(podKey(pod));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.pods.values()].map((rp) => this.stop(rp.pod, 0)));
  }

  /** Maps a container to a local command: only the data plane's `walkeeper` command is runnable. */
  plan(pod: KObject, c: Container, ctx: PodContext): ContainerPlan {
    const cmd = [...(c.command ?? []), ...(c.args ?? [])];
    if (cmd[0] !== 'walkeeper') return { unsupported: `image ${c.image ?? '?'} (command ${cmd[0] ?? '<image default>'}) cannot run as a local process` };
    const mounts = (c.volumeMounts ?? [])
      .filter((m) => ctx.volumes[m.name])
      .map((m) => ({ from: m.mountPath.replace(/\/+$/, ''), to: m.subPath ? path.join(ctx.volumes[m.name]!, m.subPath) : ctx.volumes[m.name]! }))
      .sort((a, b) => b.from.length - a.from.length);
    const local = (v: string) => {
      let out = v.replace(/^(0\.0\.0\.0|\[::\]|::):/, `${ctx.podIP}:`);
      for (const m of mounts) {
        if (out === m.from || out.startsWith(`${m.from}/`)) {
          out = m.to + out.slice(m.from.length);
          break;
        }
      }
      return out;
    };
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
    const env: Record<string, string> = {};
    for (const from of c.envFrom ?? []) {
      const data = from.configMapRef ? this.data('configmaps', pod, from.configMapRef.name, false) : from.secretRef ? this.data('secrets', pod, from.secretRef.name, true) : undefined;
      if (!data && !(from.configMapRef?.optional || from.secretRef?.optional)) return { unsupported: `envFrom ${from.configMapRef?.name ?? from.secretRef?.name} not found` };
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
        if (v === undefined && !ref.optional) return { unsupported: `env ${e.name}: ${ref.name}/${ref.key} not found` };
        if (v !== undefined) env[e.name] = v;
      }
    }
    const tmp = mounts.find((m) => m.from === '/tmp');
    return {
      argv: [process.execPath, WALKEEPER_JS, ...args],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOSTNAME: pod.metadata.name ?? '', ...(tmp ? { TMPDIR: tmp.to } : {}), ...this.opts.env, ...env },
    };
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
    if ('unsupported' in plan) {
      c.state = 'waiting';
      c.reason = 'NotRunnableLocally';
      c.message = plan.unsupported;
      return;
    }
    fs.mkdirSync(path.dirname(c.logFile), { recursive: true });
    const fd = fs.openSync(c.logFile, 'a');
    // Own process group, so a stop reaches anything the container started.
    const child = spawn(plan.argv[0]!, plan.argv.slice(1), { stdio: ['ignore', fd, fd], detached: true, env: plan.env, cwd: rp.ctx.podDir });
    fs.closeSync(fd);
    c.child = child;
    c.state = 'running';
    c.ready = false;
    c.reason = undefined;
    c.message = undefined;
    this.opts.log?.(`started ${podKey(rp.pod)}/${c.spec.name} pid ${child.pid}: ${plan.argv.slice(1).join(' ')}`);
    child.on('exit', (code, signal) => {
      if (c.child !== child) return;
      clearTimeout(c.probeTimer);
      c.state = 'terminated';
      c.ready = false;
      c.exitCode = code ?? 128 + (signal ? 9 : 0);
      c.reason = code === 0 ? 'Completed' : 'Error';
      if (rp.stopping || this.closed) return;
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
    this.probe(rp, c, child);
  }

  private probe(rp: RunningPod, c: RunningContainer, child: ChildProcess): void {
    const probe = c.spec.readinessProbe?.httpGet;
    if (!probe) {
      c.ready = true;
      return;
    }
    const port = typeof probe.port === 'number' ? probe.port : (c.spec.ports ?? []).find((p) => p.name === probe.port)?.containerPort;
    const url = `http://${rp.ctx.podIP}:${port}${probe.path ?? '/'}`;
    const every = Math.min((c.spec.readinessProbe?.periodSeconds ?? 10) * 1000, this.opts.maxProbeIntervalMs ?? 500);
    const tick = async () => {
      if (c.child !== child || child.exitCode !== null || rp.stopping) return;
      let ok = false;
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
        ok = r.status >= 200 && r.status < 400;
        await r.text();
      } catch {
        ok = false;
      }
      if (c.child !== child || rp.stopping) return;
      if (ok !== c.ready) {
        c.ready = ok;
        this.report(rp);
      }
      c.probeTimer = setTimeout(() => void tick(), every);
    };
    c.probeTimer = setTimeout(() => void tick(), 100);
  }

  private report(rp: RunningPod): void {
    if (rp.stopping) return;
    const containers: ContainerStatusReport[] = rp.containers.map((c) => ({
      name: c.spec.name,
      ready: c.ready,
      state: c.state,
      restartCount: c.restartCount,
      ...(c.exitCode !== undefined && c.state === 'terminated' ? { exitCode: c.exitCode } : {}),
      ...(c.reason ? { reason: c.reason } : {}),
      ...(c.message ? { message: c.message } : {}),
    }));
    const anyRunning = rp.containers.some((c) => c.state === 'running');
    const waiting = rp.containers.find((c) => c.reason === 'NotRunnableLocally');
    rp.ctx.report({
      phase: anyRunning ? 'Running' : 'Pending',
      ready: rp.containers.every((c) => c.ready),
      containers,
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
    signal('SIGTERM');
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
