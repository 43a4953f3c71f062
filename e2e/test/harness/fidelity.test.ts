// Runs tools/kube-fidelity.sh (real kubectl) against the harness and compares every answer with
// those of a real kube-apiserver (reference/kube-apiserver-answers.txt).
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHarness, type Harness } from '../../src/harness/index.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const shared = path.resolve(repoRoot, '../shared');
const script = path.join(shared, 'tools/kube-fidelity.sh');
const reference = path.join(shared, 'reference/kube-apiserver-answers.txt');

function normalize(line: string): string {
  return line
    .replace(/fidelity-\d+/g, 'fidelity-N')
    .replace(/"[^"]*\/stale\.json"/g, '"<tmpdir>/stale.json"')
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/g, '<timestamp>');
}

/** probe name → normalized "rc\toutput" */
function answers(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const [name, ...rest] = line.split('\t');
    m.set(name!, normalize(rest.join('\t')));
  }
  return m;
}

/** Lines cut at 160 characters by the script may differ in length when a path is embedded. */
function same(a: string, b: string): boolean {
  if (a === b) return true;
  if (!a.includes('<tmpdir>') && !b.includes('<tmpdir>')) return false;
  const n = Math.min(a.length, b.length) - 4;
  return n > 40 && a.slice(0, n) === b.slice(0, n);
}

describe('kube-fidelity.sh against the harness', () => {
  let h: Harness;
  let dir: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'harness-fidelity-'));
    h = await startHarness({ stateDir: path.join(dir, 'state') });
  });
  afterAll(async () => {
    await h?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('gives the answers of a real kube-apiserver', async () => {
    // No silent skip: CI has ../shared beside the repository and scripts/setup-debian.sh installs kubectl.
    if (!fs.existsSync(script) || !fs.existsSync(reference)) throw new Error(`missing ${script} or ${reference}: clone the repository with shared/ beside it`);
    if (spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status !== 0) throw new Error('kubectl not found on PATH: run scripts/setup-debian.sh');
    const home = path.join(dir, 'home');
    fs.mkdirSync(home, { recursive: true });
    const out = await new Promise<string>((resolve, reject) => {
      execFile('bash', [script, h.kubeconfigPath], { env: { ...process.env, HOME: home, KUBECONFIG: h.kubeconfigPath }, timeout: 110_000, maxBuffer: 1 << 20 }, (err, stdout) => {
        if (err && !stdout) reject(err);
        else resolve(stdout);
      });
    });
    const want = answers(fs.readFileSync(reference, 'utf8'));
    // omitted from the reference (see its header); a clean server answers this
    want.set('shortname', '0\twidget.fidelity.test/w1');
    const got = answers(out);
    const diff: string[] = [];
    for (const [name, w] of want) {
      const g = got.get(name);
      if (g === undefined || !same(g, w)) diff.push(`${name}\n  want: ${w}\n  got:  ${g ?? '<missing>'}`);
    }
    for (const name of got.keys()) if (!want.has(name)) diff.push(`${name}: not in the reference`);
    expect(diff).toEqual([]);
  }, 120_000);
});
