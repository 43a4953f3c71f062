// A whole local stand-in cluster for operator tests and benchmarks: the API harness with the
// ProcessRuntime (real safekeeper processes), the CRDs applied with the real kubectl, and the real
// operator (`walkeeper-operator`) as a child process. Test infrastructure only.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Harness, startHarness } from '../harness/harness.js';
import type { RequestCounts } from '../harness/server.js';
import { ProcessRuntime } from './process-runtime.js';

/** Repository root, found from this module whether it runs from src/ (jest) or dist/src/. */
export const REPO_ROOT = [new URL('../../..', import.meta.url), new URL('../../../..', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((p) => fs.existsSync(path.join(p, 'operator', 'bin', 'walkeeper-operator.js')))!;

export const OPERATOR_JS = path.join(REPO_ROOT, 'operator', 'bin', 'walkeeper-operator.js');
export const KUBECTL = process.env.KUBECTL ?? (fs.existsSync('/usr/bin/kubectl') ? '/usr/bin/kubectl' : 'kubectl');
/** The part of the operator's User-Agent the harness counts requests by. */
export const OPERATOR_AGENT = 'walkeeper-operator';
const WRITE_VERBS = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface OperatorEnvOptions {
  stateDir: string;
  /** the operator's --resync-period (default 30s) */
  resyncPeriod?: string;
  concurrency?: number;
  logLevel?: string;
  /** extra operator flags */
  operatorArgs?: string[];
  /** start the operator right away (default true) */
  startOperator?: boolean;
  /** kubectl apply -f crds/ of the repository before the operator starts (default true) */
  applyCrds?: boolean;
  log?: (msg: string) => void;
}

export interface OperatorEnv {
  harness: Harness;
  runtime: ProcessRuntime;
  kubeconfigPath: string;
  operatorLog: string;
  kubectl(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<KubectlResult>;
  /** kubectl that throws (with stderr) on a non-zero exit; returns stdout */
  kubectlOk(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<string>;
  /** kubectl apply -f of YAML text (written to a temp file) */
  apply(yaml: string): Promise<KubectlResult>;
  startOperator(): Promise<void>;
  stopOperator(): Promise<void>;
  operatorPid(): number | undefined;
  /** the operator's requests since the last harness.resetRequests(), by "verb resource" */
  operatorRequests(): Record<string, number>;
  /** the operator's write requests (create/update/patch/delete) by "verb resource"; leases excluded unless asked */
  operatorWrites(opts?: { includeLeases?: boolean }): Record<string, number>;
  stop(): Promise<void>;
}

export function writesOf(counts: Record<string, number>, includeLeases = false): Record<string, number> {
  return Object.fromEntries(
    Object.entries(counts).filter(([k]) => WRITE_VERBS.has(k.split(' ')[0]!) && (includeLeases || !k.includes('leases.coordination.k8s.io'))),
  );
}

export function agentCounts(counts: RequestCounts, agent = OPERATOR_AGENT): Record<string, number> {
  return counts.byUserAgent[agent] ?? {};
}

export async function waitFor<T>(what: string, timeoutMs: number, f: () => Promise<T | undefined | false>, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function startOperatorEnv(opts: OperatorEnvOptions): Promise<OperatorEnv> {
  fs.mkdirSync(opts.stateDir, { recursive: true });
  // PostgreSQL runs as the `postgres` user and must reach its volumes under the state directory.
  fs.chmodSync(opts.stateDir, 0o755);
  const runtime = new ProcessRuntime({ log: opts.log });
  const harness = await startHarness({ stateDir: opts.stateDir, runtime, log: opts.log });
  runtime.attach(harness.api);
  const kubeconfigPath = harness.kubeconfigPath;
  const operatorLog = path.join(opts.stateDir, 'operator.log');
  let child: ChildProcess | undefined;
  let seq = 0;

  const kubectl = (args: string[], o: { input?: string; timeoutMs?: number } = {}) =>
    new Promise<KubectlResult>((resolve) => {
      const p = execFile(KUBECTL, args, { env: { ...process.env, KUBECONFIG: kubeconfigPath }, timeout: o.timeoutMs ?? 60_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      });
      if (o.input !== undefined) p.stdin?.end(o.input);
    });
  const kubectlOk = async (args: string[], o?: { input?: string; timeoutMs?: number }) => {
    const r = await kubectl(args, o);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
    return r.stdout;
  };
  const apply = (yaml: string) => {
    const file = path.join(opts.stateDir, `apply-${++seq}.yaml`);
    fs.writeFileSync(file, yaml);
    return kubectl(['apply', '-f', file], { timeoutMs: 300_000 });
  };

  const startOperator = async () => {
    if (child && child.exitCode === null) return;
    const fd = fs.openSync(operatorLog, 'a');
    const args = [
      OPERATOR_JS,
      '--leader-elect', 'true',
      '--namespace', 'default',
      '--metrics-addr', '127.0.0.1:0',
      '--health-addr', '127.0.0.1:0',
      '--resync-period', opts.resyncPeriod ?? '30s',
      '--concurrency', String(opts.concurrency ?? 2),
      '--log-level', opts.logLevel ?? 'info',
      ...(opts.operatorArgs ?? []),
    ];
    const env: NodeJS.ProcessEnv = { ...process.env, KUBECONFIG: kubeconfigPath, POD_NAME: 'operator-under-test' };
    delete env.NODE_OPTIONS; // jest's --experimental-vm-modules is not for the child
    child = spawn(process.execPath, args, { stdio: ['ignore', fd, fd], env });
    fs.closeSync(fd);
    await waitFor('the operator to take the lease and start its controllers', 30_000, async () => {
      if (child?.exitCode !== null) throw new Error(`operator exited (${child?.exitCode}); log:\n${fs.readFileSync(operatorLog, 'utf8').slice(-3000)}`);
      return fs.readFileSync(operatorLog, 'utf8').includes('controllers started');
    });
  };
  const stopOperator = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };

  const env: OperatorEnv = {
    harness,
    runtime,
    kubeconfigPath,
    operatorLog,
    kubectl,
    kubectlOk,
    apply,
    startOperator,
    stopOperator,
    operatorPid: () => (child && child.exitCode === null ? child.pid : undefined),
    operatorRequests: () => agentCounts(harness.requests()),
    operatorWrites: (o = {}) => writesOf(agentCounts(harness.requests()), o.includeLeases),
    async stop() {
      await stopOperator().catch(() => {});
      await harness.stop();
    },
  };
  try {
    if (opts.applyCrds !== false) await kubectlOk(['apply', '-f', path.join(REPO_ROOT, 'crds')]);
    if (opts.startOperator !== false) await startOperator();
  } catch (e) {
    await env.stop();
    throw e;
  }
  return env;
}
