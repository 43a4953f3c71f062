// Quick start without a cluster: the shell blocks of docs/quickstart.md's section "The operator
// without a Kubernetes cluster", run as one bash script from the repository root, as a user would
// paste them: the real harness CLI (`up --run-pods --operator`, pods as real local processes), the
// real /usr/bin/kubectl applying the repository's crds/ and examples/, `kubectl wait` for
// tenant/demo and the real /usr/bin/psql through the tenant's Service with the Secret's
// credentials, then `down`, after which no process of the harness may be left. The only changes
// to the documented text: `npm run harness --` runs the built CLI (npm test has just built it)
// with a temporary --state-dir, and psql gets a query instead of an interactive session.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { leftoverProcesses, killLeftovers } from '../../src/harness/leftovers.js';
import { REPO_ROOT } from '../../src/runtime/index.js';

const DOC = path.join(REPO_ROOT, 'docs', 'quickstart.md');
const SECTION = '## The operator without a Kubernetes cluster';
const CLI = path.join(REPO_ROOT, 'e2e', 'dist', 'src', 'harness', 'cli.js');
const KUBECTL = '/usr/bin/kubectl';
const PSQL = '/usr/bin/psql';
/** kubectl wait in the docs gives 5 minutes; everything else takes seconds. */
const SCRIPT_TIMEOUT_MS = 420_000;
const QUERY = [
  'CREATE TABLE quickstart (id int PRIMARY KEY, note text)',
  "INSERT INTO quickstart VALUES (1, 'through the quorum')",
  "SELECT 'rows=' || count(*) FROM quickstart",
  "SELECT 'sync=' || sync_state FROM pg_stat_replication WHERE application_name = 'walkeeper_proposer'",
].join('; ');

/** The `sh` code blocks of the section, in order, as lines. */
function documentedCommands(): string[] {
  const text = fs.readFileSync(DOC, 'utf8');
  const start = text.indexOf(`${SECTION}\n`);
  if (start < 0) throw new Error(`${DOC} has no section "${SECTION}"`);
  const end = text.indexOf('\n## ', start + SECTION.length);
  const section = text.slice(start, end < 0 ? undefined : end);
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  return blocks.join('').split('\n').filter((l) => l.trim() !== '');
}

/** The documented lines as a script; $STATE is this run's state directory (see the header). */
function scriptOf(lines: string[]): string {
  const out = lines
    // Running the operator by hand is the alternative to --operator, which the first line uses.
    .filter((l) => !l.includes('npx walkeeper-operator'))
    .map((l) => l.replace(/\s+#\s.*$/, ''))
    .map((l) => l.replace(/^npm run harness -- (.*)$/, `node ${CLI} $1 --state-dir "$STATE"`))
    .map((l) => l.replaceAll('$PWD/.walkeeper/harness', '$STATE'))
    .map((l) => (/^psql /.test(l) ? `${l} -v ON_ERROR_STOP=1 -At -c "${QUERY.replaceAll('"', '\\"')}"` : l))
    .map((l, i) => `echo "+++ ${i + 1}: ${l.replace(/["\\$`]/g, '\\$&')}"\n${l}`);
  return [
    'set -euo pipefail',
    `kubectl() { ${KUBECTL} "$@"; }`,
    `psql() { ${PSQL} "$@"; }`,
    ...out,
    '',
  ].join('\n');
}

function runScript(script: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const child = spawn('/bin/bash', ['-c', script], { cwd: REPO_ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, SCRIPT_TIMEOUT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, timedOut });
    });
  });
}

function cleanEnv(stateDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, STATE: stateDir };
  delete env.NODE_OPTIONS; // jest's --experimental-vm-modules is not for the user's commands
  delete env.KUBECONFIG; // only the documented export may point kubectl anywhere
  return env;
}

function harnessPid(stateDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(stateDir, 'harness.pid'), 'utf8'));
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

const tail = (file: string, n = 4000) => {
  try {
    return fs.readFileSync(file, 'utf8').slice(-n);
  } catch {
    return '<none>';
  }
};

let stateDir = '';
let passed = false;

afterAll(async () => {
  if (!stateDir) return;
  // Always torn down, whatever failed: the CLI's own down, then anything still running.
  await runScript(`node ${CLI} down --state-dir "$STATE"`, cleanEnv(stateDir));
  const pid = harnessPid(stateDir);
  if (pid) process.kill(pid, 'SIGKILL');
  await killLeftovers(stateDir, 2000);
  if (passed) fs.rmSync(stateDir, { recursive: true, force: true });
  else console.log(`quickstart state kept in ${stateDir}\nharness.log (tail):\n${tail(path.join(stateDir, 'harness.log'))}\noperator.log (tail):\n${tail(path.join(stateDir, 'operator.log'))}`);
}, 90_000);

it('docs/quickstart.md without a cluster: up --run-pods, kubectl apply crds/ and examples/, wait, psql, down', async () => {
  expect(fs.existsSync(CLI)).toBe(true); // built by npm test's `npm run build`
  const lines = documentedCommands();
  // The path the issue promises, in the documented order.
  const order = ['npm run harness -- up --run-pods', 'export KUBECONFIG=', 'kubectl apply -f crds/', 'kubectl apply -f examples/', 'kubectl wait --for=condition=Ready tenant/demo', 'psql ', 'npm run harness -- down'];
  const at = order.map((o) => lines.findIndex((l) => l.startsWith(o)));
  expect(Object.fromEntries(order.map((o, i) => [o, at[i]! >= 0]))).toEqual(Object.fromEntries(order.map((o) => [o, true])));
  expect([...at].sort((x, y) => x - y)).toEqual(at);

  // Short: PostgreSQL's Unix socket path lives under it (at most 107 bytes).
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wk-quickstart-'));
  const started = Date.now();
  const r = await runScript(scriptOf(lines), cleanEnv(stateDir));
  console.log(`quickstart commands took ${((Date.now() - started) / 1000).toFixed(1)} s (exit ${r.code}${r.timedOut ? ', killed at the time limit' : ''})\n${r.output.slice(-6000)}`);
  expect({ timedOut: r.timedOut, code: r.code }).toEqual({ timedOut: false, code: 0 });

  expect(r.output).toMatch(/export KUBECONFIG=\S+\/kubeconfig/);
  expect(r.output).toContain('customresourcedefinition.apiextensions.k8s.io/tenants.walkeeper.io created');
  expect(r.output).toContain('tenant.walkeeper.io/demo condition met');
  // The row went through the tenant's PostgreSQL, whose commits wait for the proposer (the quorum).
  expect(r.output).toMatch(/^rows=1$/m);
  expect(r.output).toMatch(/^sync=sync$/m);
  // `down` stopped everything it started: the server, the operator and every pod's processes.
  expect(r.output).toMatch(/harness stopped \(pid \d+\)/);
  expect(harnessPid(stateDir)).toBeUndefined();
  expect(leftoverProcesses(stateDir)).toEqual([]);
  passed = true;
}, SCRIPT_TIMEOUT_MS + 30_000);
