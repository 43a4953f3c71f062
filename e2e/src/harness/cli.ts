#!/usr/bin/env node
// harness CLI: `up` (background), `serve` (foreground), `down`, `status`. With `--run-pods` pods'
// containers run as real local processes (safekeepers, PostgreSQL, proposer: ../runtime/); with
// `--operator` the real walkeeper-operator is started against it once the CRDs are applied.
// A local stand-in for trying walkeeper without a cluster; test infrastructure, not Kubernetes.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHarness } from './harness.js';
import { STATE_DIR_ENV, killLeftovers, leftoverProcesses } from './leftovers.js';
import type { PodRuntime } from './runtime.js';

interface Args { cmd: string; stateDir: string; port: number; snapshot: boolean; readyPods: boolean; runPods: boolean; operator: boolean }

const USAGE = `usage: harness up|down|status|serve [--state-dir DIR] [--port N] [--snapshot] [--ready-pods | --run-pods [--operator]]
  --ready-pods  pods run nothing and are Ready at once
  --run-pods    pods' containers run as local processes (walkeeper commands, postgres images)
  --operator    with --run-pods: also run walkeeper-operator against the harness once the CRDs exist`;

function parseArgs(argv: string[]): Args {
  const a: Args = { cmd: argv[0] ?? 'status', stateDir: path.resolve('.walkeeper/harness'), port: 0, snapshot: false, readyPods: false, runPods: false, operator: false };
  for (let i = 1; i < argv.length; i++) {
    const v = argv[i]!;
    if (v === '--state-dir') a.stateDir = path.resolve(argv[++i]!);
    else if (v === '--port') a.port = Number(argv[++i]);
    else if (v === '--snapshot') a.snapshot = true;
    else if (v === '--ready-pods') a.readyPods = true;
    else if (v === '--run-pods') a.runPods = true;
    else if (v === '--operator') a.operator = true;
    else throw new Error(`unknown option ${v}\n${USAGE}`);
  }
  if (a.readyPods && a.runPods) throw new Error('--ready-pods and --run-pods exclude each other');
  if (a.operator && !a.runPods) throw new Error('--operator needs --run-pods (without running pods the operator has nothing to reconcile)');
  return a;
}

const pidFile = (a: Args) => path.join(a.stateDir, 'harness.pid');
const urlFile = (a: Args) => path.join(a.stateDir, 'harness.url');
const kubeconfigFile = (a: Args) => path.join(a.stateDir, 'kubeconfig');
const operatorLog = (a: Args) => path.join(a.stateDir, 'operator.log');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function readPid(a: Args): number | undefined {
  try {
    const pid = Number(fs.readFileSync(pidFile(a), 'utf8').trim());
    return pid > 0 && alive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Running as root, PostgreSQL runs as `postgres`, which must be able to enter the state directory. */
function postgresCannotEnter(dir: string): string | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  for (let p = path.dirname(dir); p !== path.dirname(p); p = path.dirname(p)) {
    if ((fs.statSync(p).mode & 0o001) === 0) return p;
  }
  return undefined;
}

/**
 * Runs the real operator (operator/bin/walkeeper-operator.js, what `npx walkeeper-operator` runs)
 * with KUBECONFIG pointing at the harness, once the walkeeper.io CRDs are served; restarts it if it
 * exits. Its metrics and health listen on free loopback ports unless METRICS_ADDR/HEALTH_ADDR say.
 */
function superviseOperator(a: Args, url: string, log: (m: string) => void): { stop(): Promise<void> } {
  let child: ChildProcess | undefined;
  let stopping = false;
  let timer: NodeJS.Timeout | undefined;
  const crdsServed = async () => {
    const r = await fetch(`${url}/apis/walkeeper.io/v1alpha1`).catch(() => undefined);
    if (!r?.ok) return false;
    const names = ((await r.json()) as { resources?: { name: string }[] }).resources?.map((x) => x.name) ?? [];
    return names.includes('safekeepers') && names.includes('tenants');
  };
  const start = async () => {
    const { OPERATOR_JS } = await import('../runtime/operator-env.js');
    if (stopping) return;
    const fd = fs.openSync(operatorLog(a), 'a');
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      KUBECONFIG: kubeconfigFile(a),
      METRICS_ADDR: process.env.METRICS_ADDR ?? '127.0.0.1:0',
      HEALTH_ADDR: process.env.HEALTH_ADDR ?? '127.0.0.1:0',
      [STATE_DIR_ENV]: a.stateDir,
    };
    delete env.NODE_OPTIONS;
    const c = spawn(process.execPath, [OPERATOR_JS], { stdio: ['ignore', fd, fd], env, cwd: a.stateDir });
    fs.closeSync(fd);
    child = c;
    log(`operator started (pid ${c.pid}); log ${operatorLog(a)}`);
    c.on('exit', (code, sig) => {
      if (stopping) return;
      log(`operator exited (${sig ?? code}); restarting in 2 s`);
      timer = setTimeout(() => void start(), 2000);
    });
  };
  const wait = async () => {
    if (stopping) return;
    if (await crdsServed()) return start();
    timer = setTimeout(() => void wait(), 500);
  };
  log('operator: waiting for the walkeeper.io CRDs (kubectl apply -f crds/)');
  void wait();
  return {
    async stop() {
      stopping = true;
      clearTimeout(timer);
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

async function serve(a: Args): Promise<void> {
  const log = (m: string) => console.error(`[harness] ${m}`);
  if (!a.snapshot) {
    // The objects that owned an earlier run's volumes are gone with its memory: a fresh PostgreSQL
    // would find a data directory with another password, a safekeeper another cluster's WAL.
    for (const d of ['volumes', 'pods']) fs.rmSync(path.join(a.stateDir, d), { recursive: true, force: true });
  }
  let runtime: PodRuntime;
  let attach: ((h: Awaited<ReturnType<typeof startHarness>>) => void) | undefined;
  if (a.runPods) {
    fs.mkdirSync(a.stateDir, { recursive: true });
    // PostgreSQL runs as the `postgres` user and must reach its volumes under the state directory.
    fs.chmodSync(a.stateDir, 0o755);
    const { ProcessRuntime } = await import('../runtime/process-runtime.js');
    const pr = new ProcessRuntime({ log, env: { [STATE_DIR_ENV]: a.stateDir } });
    runtime = pr;
    attach = (h) => pr.attach(h.api);
  } else {
    const { NullRuntime } = await import('./runtime.js');
    runtime = new NullRuntime(a.readyPods);
  }
  const h = await startHarness({ stateDir: a.stateDir, port: a.port, snapshot: a.snapshot, runtime, log });
  attach?.(h);
  const operator = a.operator ? superviseOperator(a, h.url, log) : undefined;
  fs.writeFileSync(pidFile(a), String(process.pid));
  fs.writeFileSync(urlFile(a), h.url);
  console.log(`harness listening on ${h.url}; kubeconfig ${h.kubeconfigPath}`);
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    log('stopping: operator, then pods, then the API server');
    (operator?.stop() ?? Promise.resolve())
      .then(() => h.stop())
      .finally(() => {
        try { fs.unlinkSync(pidFile(a)); } catch { /* already gone */ }
        process.exit(0);
      });
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

async function up(a: Args): Promise<void> {
  const running = readPid(a);
  if (running) {
    console.log(`harness already running (pid ${running}) at ${fs.readFileSync(urlFile(a), 'utf8')}`);
    console.log(`export KUBECONFIG=${kubeconfigFile(a)}`);
    return;
  }
  // Created first, so the check below sees the modes the directories really get.
  fs.mkdirSync(a.stateDir, { recursive: true });
  if (a.runPods) {
    const blocked = postgresCannotEnter(a.stateDir);
    if (blocked) throw new Error(`PostgreSQL runs as the postgres user here, which cannot enter ${blocked}: chmod o+x it, or choose another --state-dir`);
    const left = leftoverProcesses(a.stateDir);
    if (left.length) throw new Error(`processes of an earlier harness in ${a.stateDir} are still running (pids ${left.join(' ')}); run \`harness down\` first`);
  }
  try { fs.unlinkSync(urlFile(a)); } catch { /* none */ }
  const log = fs.openSync(path.join(a.stateDir, 'harness.log'), 'a');
  const args = [fileURLToPath(import.meta.url), 'serve', '--state-dir', a.stateDir, '--port', String(a.port)];
  if (a.snapshot) args.push('--snapshot');
  if (a.readyPods) args.push('--ready-pods');
  if (a.runPods) args.push('--run-pods');
  if (a.operator) args.push('--operator');
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', log, log], env });
  child.unref();
  for (let i = 0; i < 100; i++) {
    if (fs.existsSync(urlFile(a))) {
      console.log(`harness up (pid ${child.pid}) at ${fs.readFileSync(urlFile(a), 'utf8')}; log ${path.join(a.stateDir, 'harness.log')}`);
      if (a.runPods) console.log("pods' containers run as local processes on loopback addresses: a local stand-in, not Kubernetes");
      if (a.operator) console.log(`walkeeper-operator starts once the CRDs are applied (kubectl apply -f crds/); log ${operatorLog(a)}`);
      console.log(`kubeconfig: ${kubeconfigFile(a)}`);
      console.log(`export KUBECONFIG=${kubeconfigFile(a)}`);
      return;
    }
    if (child.exitCode !== null) break;
    await sleep(100);
  }
  throw new Error(`harness did not start; see ${path.join(a.stateDir, 'harness.log')}`);
}

async function down(a: Args): Promise<void> {
  const pid = readPid(a);
  if (pid) {
    process.kill(pid, 'SIGTERM');
    // The server stops the operator and every pod (PostgreSQL shuts down fast) before it exits.
    for (let i = 0; i < 600 && alive(pid); i++) await sleep(100);
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    try { fs.unlinkSync(pidFile(a)); } catch { /* removed by the server */ }
    console.log(`harness stopped (pid ${pid})`);
  } else console.log('harness not running');
  const left = await killLeftovers(a.stateDir);
  if (left.length) console.log(`stopped ${left.length} leftover process(es) of its pods: ${left.join(' ')}`);
}

async function status(a: Args): Promise<void> {
  const pid = readPid(a);
  if (!pid) {
    console.log('harness not running');
    process.exitCode = 1;
    return;
  }
  const url = fs.readFileSync(urlFile(a), 'utf8');
  const counts = (await (await fetch(`${url}/_harness/requests`)).json()) as { total: number; writes: number };
  console.log(`harness running (pid ${pid}) at ${url}; ${counts.total} requests (${counts.writes} writes); KUBECONFIG=${kubeconfigFile(a)}`);
}

const cmds: Record<string, (a: Args) => Promise<void>> = { up, down, status, serve };
let a: Args;
try {
  a = parseArgs(process.argv.slice(2));
} catch (e) {
  console.error((e as Error).message);
  process.exit(2);
}
const f = cmds[a.cmd];
if (!f) {
  console.error(USAGE);
  process.exit(2);
}
f(a).catch((e: unknown) => {
  console.error((e as Error).message);
  process.exit(1);
});
