// The CRD probes of issue #13 through the real `kubectl apply -f`: the harness refuses each broken
// shape with the real kube-apiserver's answer, verbatim, stores nothing, and accepts the project's
// CRDs (crds/ and the chart's copy) with a Safekeeper and a Tenant applied after them.
//
// The answers mirror those of a real kube-apiserver recorded in issue #13 and in
// ../shared/reference/kube-apiserver-answers.txt ("CRD validation by a real kube-apiserver"):
//   ...additionalProperties.anyOf[0].type: Forbidden: must be empty to be structural
//   ...properties[storage].default.size: Required value
//   compilation failed: ERROR: <input>:1:9: undeclared reference to '...'
// and, for the other shapes, the texts of apiextensions-apiserver's validation (see
// docs/operations.md, "What the harness checks in a CRD").
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHarness, type Harness } from '../../src/harness/index.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
type Json = Record<string, unknown>;
interface Run { code: number; out: string }

let h: Harness;
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'harness-crd-'));
  h = await startHarness({ stateDir: path.join(dir, 'state') });
});
afterAll(async () => {
  await h?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The real kubectl against the harness (asynchronous: the harness answers from this process). */
function kubectl(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('kubectl', args, { env: { ...process.env, HOME: dir, KUBECONFIG: h.kubeconfigPath }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

let n = 0;
function apply(obj: Json): Promise<Run> {
  const file = path.join(dir, `probe-${n++}.json`);
  fs.writeFileSync(file, JSON.stringify(obj));
  return kubectl('apply', '-f', file);
}

const NAME = 'probes.fidelity.test';
function probe(spec: Json, root: Json = { type: 'object', properties: { spec } }): Json {
  return {
    apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: NAME },
    spec: { group: 'fidelity.test', scope: 'Namespaced', names: { kind: 'Probe', plural: 'probes' }, versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: root } }] },
  };
}
const S = 'spec.validation.openAPIV3Schema.properties[spec]';
const refused = (...causes: string[]) =>
  causes.length === 1 ? `The CustomResourceDefinition "${NAME}" is invalid: ${causes[0]}\n` : `The CustomResourceDefinition "${NAME}" is invalid: \n${causes.map((c) => `* ${c}\n`).join('')}`;
const CEL_HINT = '(try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)';

const shapes: [string, Json, string][] = [
  ['int-or-string anyOf with a pattern inside (issue #13, safekeepers.walkeeper.io)',
    probe({ type: 'object', properties: { limits: { type: 'object', additionalProperties: { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string', pattern: '^[0-9]+$' }] } } } }),
    refused(`${S}.properties[limits].additionalProperties.anyOf[0].type: Forbidden: must be empty to be structural`,
      `${S}.properties[limits].additionalProperties.anyOf[1].type: Forbidden: must be empty to be structural`)],
  ['default {} on an object with required fields (issue #13)',
    probe({ type: 'object', properties: { storage: { type: 'object', default: {}, required: ['size'], properties: { size: { type: 'string', default: '10Gi' } } } } }),
    refused(`${S}.properties[storage].default.size: Required value`)],
  ['additionalProperties beside properties',
    probe({ type: 'object', properties: { a: { type: 'string' } }, additionalProperties: { type: 'string' } }),
    refused(`${S}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive`)],
  ['an untyped node', probe({ type: 'object', properties: { size: { minimum: 1 } } }),
    refused(`${S}.properties[size].type: Required value: must not be empty for specified object fields`)],
  ['metadata with fields other than name and generateName',
    probe({}, { type: 'object', properties: { metadata: { type: 'object', properties: { labels: { type: 'object' } } }, spec: { type: 'object' } } }),
    refused('spec.validation.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified')],
  ['a CEL rule that does not compile',
    probe({ type: 'object', properties: { id: { type: 'string', 'x-kubernetes-validations': [{ rule: 'self == olderSelf' }] } } }),
    refused(`${S}.properties[id].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:"self == olderSelf", Message:"", MessageExpression:"", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:9: undeclared reference to 'olderSelf' (in container '')\n | self == olderSelf\n | ........^`)],
  ['a CEL rule over its cost limit (all() over an unbounded list of unbounded strings)',
    probe({ type: 'object', properties: { tags: { type: 'array', items: { type: 'string' }, 'x-kubernetes-validations': [{ rule: "self.all(t, t.contains('x'))" }] } } }),
    refused(`${S}.properties[tags].x-kubernetes-validations[0].rule: Forbidden: estimated rule cost exceeds budget by factor of more than 100x ${CEL_HINT}`,
      `${S}.properties[tags].x-kubernetes-validations[0].rule: Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema`,
      `spec.validation.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of more than 100x ${CEL_HINT}`)],
];

describe('kubectl apply of a broken CRD', () => {
  test.each(shapes)('%s is refused with the real answer and nothing is stored', async (_name, crd, want) => {
    const r = await apply(crd);
    expect(r).toEqual({ code: 1, out: want });
    expect((await kubectl('get', 'crd', NAME)).out).toBe(`Error from server (NotFound): customresourcedefinitions.apiextensions.k8s.io "${NAME}" not found\n`);
  }, 60_000);

  test('an update that breaks a stored CRD is refused and the stored one stays', async () => {
    const good = probe({ type: 'object', properties: { size: { type: 'integer' } } });
    expect(await apply(good)).toEqual({ code: 0, out: `customresourcedefinition.apiextensions.k8s.io/${NAME} created\n` });
    const before = (await kubectl('get', 'crd', NAME, '-o', 'json')).out;
    const r = await apply(probe({ type: 'object', properties: { size: {} } }));
    expect(r).toEqual({ code: 1, out: `The CustomResourceDefinition "${NAME}" is invalid: ${S}.properties[size].type: Required value: must not be empty for specified object fields\n` });
    const after = (await kubectl('get', 'crd', NAME, '-o', 'json')).out;
    expect(JSON.parse(after).metadata.resourceVersion).toBe(JSON.parse(before).metadata.resourceVersion);
    expect(JSON.parse(after).spec).toEqual(JSON.parse(before).spec);
    expect((await kubectl('delete', 'crd', NAME)).code).toBe(0);
  }, 60_000);
});

describe("the project's CRDs", () => {
  test('crds/ and the chart\'s copy are accepted, and a Safekeeper and a Tenant apply after them', async () => {
    const crds = await kubectl('apply', '-f', path.join(repoRoot, 'crds'));
    expect(crds).toEqual({ code: 0, out: 'customresourcedefinition.apiextensions.k8s.io/safekeepers.walkeeper.io created\ncustomresourcedefinition.apiextensions.k8s.io/tenants.walkeeper.io created\n' });
    const chart = await kubectl('apply', '-f', path.join(repoRoot, 'helm/walkeeper/files/crds'));
    expect(chart.code).toBe(0);
    expect(chart.out).toMatch(/^customresourcedefinition\.apiextensions\.k8s\.io\/safekeepers\.walkeeper\.io (unchanged|configured)\ncustomresourcedefinition\.apiextensions\.k8s\.io\/tenants\.walkeeper\.io (unchanged|configured)\n$/);
    const examples = await kubectl('apply', '-f', path.join(repoRoot, 'examples'));
    expect(examples).toEqual({ code: 0, out: 'safekeeper.walkeeper.io/main created\ntenant.walkeeper.io/demo created\n' });
  }, 60_000);
});
