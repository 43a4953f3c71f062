// values.yaml and values.schema.json: every value documented, schema and defaults in step, and
// helm refusing invalid values with a message naming the field.
import fs from 'node:fs';
import path from 'node:path';
import { load } from 'js-yaml';
import { CHART_DIR, helm, lint, template } from '../../src/chart/helm.js';

type Schema = { type?: string; properties?: Record<string, Schema>; description?: string; additionalProperties?: unknown };
const schema = JSON.parse(fs.readFileSync(path.join(CHART_DIR, 'values.schema.json'), 'utf8')) as Schema;
const valuesText = fs.readFileSync(path.join(CHART_DIR, 'values.yaml'), 'utf8');
const values = load(valuesText) as Record<string, unknown>;

/** A group of values: an object schema listing properties, with no description of its own (leaf values all have one). */
const isGroup = (s: Schema | undefined) => Boolean(s?.properties && !s.description);

/** The schema node of a dotted path, or undefined. */
function schemaAt(p: string[]): Schema | undefined {
  let s: Schema | undefined = schema;
  for (const k of p) s = s?.properties?.[k];
  return s;
}

/** Key paths in values.yaml with whether a comment line sits directly above the key. */
function keyLines(text: string): Array<{ path: string[]; documented: boolean }> {
  const out: Array<{ path: string[]; documented: boolean }> = [];
  const stack: Array<{ indent: number; key: string }> = [];
  let prevComment = false;
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      prevComment = false;
      continue;
    }
    if (/^\s*#/.test(line)) {
      prevComment = true;
      continue;
    }
    const m = /^(\s*)([A-Za-z0-9_.-]+):/.exec(line);
    if (m) {
      const indent = m[1]!.length;
      while (stack.length && stack[stack.length - 1]!.indent >= indent) stack.pop();
      stack.push({ indent, key: m[2]! });
      const p = stack.map((s) => s.key);
      // Keys below a leaf (e.g. inside resources: or securityContext:) belong to the leaf's default.
      if (p.slice(0, -1).every((_, i) => isGroup(schemaAt(p.slice(0, i + 1))))) out.push({ path: p, documented: prevComment });
    }
    prevComment = false;
  }
  return out;
}

test('every value in values.yaml has a comment (groups excepted) and a schema entry with a description', () => {
  const keys = keyLines(valuesText);
  expect(keys.length).toBeGreaterThan(30);
  const problems: string[] = [];
  for (const k of keys) {
    const s = schemaAt(k.path);
    const name = k.path.join('.');
    if (!s) problems.push(`${name}: not in values.schema.json`);
    else if (isGroup(s)) continue;
    else {
      if (!k.documented) problems.push(`${name}: no comment above it in values.yaml`);
      if (!s.description) problems.push(`${name}: no description in values.schema.json`);
    }
  }
  expect(problems).toEqual([]);
});

test('every schema property has a default in values.yaml (no undocumented knobs)', () => {
  const missing: string[] = [];
  const walk = (s: Schema, v: unknown, p: string[]) => {
    for (const [k, sub] of Object.entries(s.properties ?? {})) {
      if (p.length === 0 && k === 'global') continue;
      const val = (v as Record<string, unknown> | undefined)?.[k];
      if (val === undefined) missing.push([...p, k].join('.'));
      else if (isGroup(sub)) walk(sub, val, [...p, k]);
    }
  };
  walk(schema, values, []);
  expect(missing).toEqual([]);
  // Objects with listed properties refuse unknown keys, so a typo in a values file is an error.
  const open: string[] = [];
  const strict = (s: Schema, p: string[]) => {
    if (s.properties) {
      if (s.additionalProperties !== false) open.push(p.join('.') || '<root>');
      for (const [k, sub] of Object.entries(s.properties)) strict(sub, [...p, k]);
    }
  };
  strict(schema, []);
  expect(open).toEqual([]);
});

test('the defaults pass helm lint --strict', () => {
  const r = lint();
  expect(r.stderr + r.stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  expect(r.code).toBe(0);
});

describe('invalid values are refused by values.schema.json, naming the field', () => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['operator replicas of the wrong type', { operator: { replicas: 'two' } }, /\/operator\/replicas/],
    ['an even safekeeper count', { safekeeper: { replicas: 4 } }, /\/safekeeper\/replicas/],
    ['an unknown log level', { operator: { logLevel: 'verbose' } }, /\/operator\/logLevel/],
    ['a misspelt key', { operator: { replica: 2 } }, /replica/],
    ['a namespace that is not a DNS label', { watchNamespace: 'Bad_Namespace' }, /\/watchNamespace/],
    ['a storage size that is not a quantity', { safekeeper: { storage: { size: 'ten gigs' } } }, /\/safekeeper\/storage\/size/],
    ['a port out of range', { operator: { metricsPort: 70000 } }, /\/operator\/metricsPort/],
    ['a malformed digest', { operator: { image: { digest: 'latest' } } }, /\/operator\/image\/digest/],
  ];
  test.each(cases)('%s', (_name, vals, field) => {
    const r = template(vals);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/values don't meet the specifications of the schema/);
    expect(r.stderr).toMatch(field);
    // helm lint refuses the same values.
    const l = lint(vals);
    expect(l.code).not.toBe(0);
  });
});

test('helm is the real Helm 4 binary', () => {
  const r = helm(['version', '--template', '{{.Version}}']);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^v4\.\d+\.\d+/);
});
