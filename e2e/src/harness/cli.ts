#!/usr/bin/env node
// harness CLI: `up` (background), `serve` (foreground), `down`, `status`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHarness } from './harness.js';

interface Args { cmd: string; stateDir: string; port: number; snapshot: boolean; readyPods: boolean }

function parseArgs(argv: string[]): Args {
  const a: Args = { cmd: argv[0] ?? 'status', stateDir: path.resolve('.walkeeper/harness'), port: 0, snapshot: false, readyPods: false };
  for (let i = 1; i < argv.length; i++) {
    const v = argv[i]!;
    if (v === '--state-dir') a.stateDir = path.resolve(argv[++i]!);
    else if (v === '--port') a.port = Number(argv[++i]);
    else if (v === '--snapshot') a.snapshot = true;
    else if (v === '--ready-pods') a.readyPods = true;
    else throw new Error(`unknown option ${v}`);
  }
  return a;
}

const pidFile = (a: Args) => path.join(a.stateDir, 'harness.pid');
const urlFile = (a: Args) => path.join(a.stateDir, 'harness.url');

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

async function serve(a: Args): Promise<void> {
  const { NullRuntime } = await import('./runtime.js');
  const h = await startHarness({ stateDir: a.stateDir, port: a.port, snapshot: a.snapshot, runtime: new NullRuntime(a.readyPods), log: (m) => console.error(`[harness] ${m}`) });
  fs.writeFileSync(pidFile(a), String(process.pid));
  fs.writeFileSync(urlFile(a), h.url);
  console.log(`harness listening on ${h.url}; kubeconfig ${h.kubeconfigPath}`);
  const shutdown = () => {
    h.stop().finally(() => {
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
    console.log(`harness already running (pid ${running}) at ${fs.readFileSync(urlFile(a), 'utf8')}; KUBECONFIG=${path.join(a.stateDir, 'kubeconfig')}`);
    return;
  }
  fs.mkdirSync(a.stateDir, { recursive: true });
  try { fs.unlinkSync(urlFile(a)); } catch { /* none */ }
  const log = fs.openSync(path.join(a.stateDir, 'harness.log'), 'a');
  const args = [fileURLToPath(import.meta.url), 'serve', '--state-dir', a.stateDir, '--port', String(a.port)];
  if (a.snapshot) args.push('--snapshot');
  if (a.readyPods) args.push('--ready-pods');
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', log, log] });
  child.unref();
  for (let i = 0; i < 100; i++) {
    if (fs.existsSync(urlFile(a))) {
      console.log(`harness up (pid ${child.pid}) at ${fs.readFileSync(urlFile(a), 'utf8')}`);
      console.log(`export KUBECONFIG=${path.join(a.stateDir, 'kubeconfig')}`);
      return;
    }
    if (child.exitCode !== null) break;
    await sleep(100);
  }
  throw new Error(`harness did not start; see ${path.join(a.stateDir, 'harness.log')}`);
}

async function down(a: Args): Promise<void> {
  const pid = readPid(a);
  if (!pid) {
    console.log('harness not running');
    return;
  }
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && alive(pid); i++) await sleep(100);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  try { fs.unlinkSync(pidFile(a)); } catch { /* removed by the server */ }
  console.log(`harness stopped (pid ${pid})`);
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
  console.log(`harness running (pid ${pid}) at ${url}; ${counts.total} requests (${counts.writes} writes); KUBECONFIG=${path.join(a.stateDir, 'kubeconfig')}`);
}

const a = parseArgs(process.argv.slice(2));
const cmds: Record<string, (a: Args) => Promise<void>> = { up, down, status, serve };
const f = cmds[a.cmd];
if (!f) {
  console.error('usage: harness up|down|status|serve [--state-dir DIR] [--port N] [--snapshot] [--ready-pods]');
  process.exit(2);
}
f(a).catch((e: unknown) => {
  console.error((e as Error).message);
  process.exit(1);
});
