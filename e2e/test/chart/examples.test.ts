// examples/*.yaml and the chart's optional default Safekeeper are valid custom resources: checked
// with ajv against the openAPIV3Schema of the CRDs the chart renders (defaults applied, unknown
// fields refused; CEL rules are not evaluated here).
import fs from 'node:fs';
import path from 'node:path';
import { CHART_DIR, NAMESPACE, ROOT, findAll, findOne, parseManifests, render, type KubeObject } from '../../src/chart/helm.js';
import { crValidator, type CrValidator } from '../../src/chart/validate.js';
import { operatorModule, type OperatorSchemaModule, type OperatorValidationModule } from './operator-source.js';

let v: CrValidator;
beforeAll(() => {
  v = crValidator(findAll(render(), 'CustomResourceDefinition'));
});

function example(file: string): KubeObject[] {
  return parseManifests(fs.readFileSync(path.join(ROOT, 'examples', file), 'utf8'));
}

test('the validator knows both kinds and catches mistakes', () => {
  expect(v.kinds().sort()).toEqual(['walkeeper.io/v1alpha1/Safekeeper', 'walkeeper.io/v1alpha1/Tenant']);
  const sk = (spec: object) => ({ apiVersion: 'walkeeper.io/v1alpha1', kind: 'Safekeeper', metadata: { name: 'x' }, spec });
  expect(v.errors(sk({ replicas: 3 }))).toEqual([]); // image and storage defaulted
  expect(v.errors(sk({ replicas: 4 })).join()).toMatch(/\/spec\/replicas/);
  expect(v.errors(sk({ replicas: 3, storage: { size: 'lots' } })).join()).toMatch(/\/spec\/storage\/size/);
  expect(v.errors(sk({ replicas: 3, replica: 3 })).join()).toMatch(/replica\)/); // unknown field
  const tenant = (spec: object) => ({ apiVersion: 'walkeeper.io/v1alpha1', kind: 'Tenant', metadata: { name: 't' }, spec });
  expect(v.errors(tenant({ compute: {} })).join()).toMatch(/safekeeperRef/);
  expect(v.errors(tenant({ safekeeperRef: { name: 'main' }, tenantId: 'XYZ' })).join()).toMatch(/\/spec\/tenantId/);
});

test('examples/safekeeper.yaml: a valid 3-member Safekeeper named main', () => {
  const [sk, ...rest] = example('safekeeper.yaml');
  expect(rest).toEqual([]);
  expect(v.errors(sk!)).toEqual([]);
  expect(sk!.kind).toBe('Safekeeper');
  expect(sk!.metadata).toEqual({ name: 'main' }); // namespace from kubectl -n
  expect((sk!.spec as { replicas: number }).replicas).toBe(3);
});

test('examples/tenant.yaml: a valid Tenant demo on Safekeeper main with compute enabled', () => {
  const [t, ...rest] = example('tenant.yaml');
  expect(rest).toEqual([]);
  expect(v.errors(t!)).toEqual([]);
  expect(t!.kind).toBe('Tenant');
  expect(t!.metadata).toEqual({ name: 'demo' });
  const spec = t!.spec as { safekeeperRef: { name: string }; compute: { enabled: boolean } };
  expect(spec.safekeeperRef.name).toBe(example('safekeeper.yaml')[0]!.metadata.name);
  expect(spec.compute.enabled).toBe(true);
});

test("the examples pass the operator's own validation (operator/src/api/validation.ts)", async () => {
  const { validateResource } = await operatorModule<OperatorValidationModule>('api/validation.ts');
  for (const o of [...example('safekeeper.yaml'), ...example('tenant.yaml')]) {
    const r = validateResource(o.kind as 'Safekeeper' | 'Tenant', o);
    expect({ kind: o.kind, errors: r.errors }).toEqual({ kind: o.kind, errors: [] });
    expect(r.valid).toBe(true);
  }
});

describe('the default Safekeeper (safekeeper.create)', () => {
  test('off by default', () => {
    expect(findAll(render(), 'Safekeeper')).toEqual([]);
  });

  test('defaults: "main", 3 replicas, 10Gi, the data-plane image of the chart version; valid against the CRD', () => {
    const sk = findOne(render({ safekeeper: { create: true } }), 'Safekeeper');
    expect(v.errors(structuredClone(sk))).toEqual([]);
    expect(sk.metadata.name).toBe('main');
    expect(sk.metadata.namespace).toBe(NAMESPACE);
    expect(sk.spec).toEqual({ replicas: 3, image: 'ghcr.io/walkeeper/walkeeper:0.1.0', storage: { size: '10Gi' } });
  });

  test('created once by a post-install hook and kept on uninstall (it holds WAL)', () => {
    const sk = findOne(render({ safekeeper: { create: true } }), 'Safekeeper');
    expect(sk.metadata.annotations).toMatchObject({ 'helm.sh/hook': 'post-install', 'helm.sh/resource-policy': 'keep' });
    expect(sk.metadata.annotations?.['helm.sh/hook-delete-policy']).toBeUndefined();
  });

  test('values are applied and stay valid', () => {
    const sk = findOne(
      render({ safekeeper: { create: true, name: 'wal', replicas: 5, image: 'registry.example/walkeeper:dev', storage: { size: '50Gi', storageClassName: 'fast' }, resources: { requests: { cpu: '250m', memory: '512Mi' } } }, watchNamespace: 'apps' }),
      'Safekeeper',
    );
    expect(v.errors(structuredClone(sk))).toEqual([]);
    expect(sk.metadata).toMatchObject({ name: 'wal', namespace: 'apps' }); // where the operator watches
    expect(sk.spec).toEqual({ replicas: 5, image: 'registry.example/walkeeper:dev', storage: { size: '50Gi', storageClassName: 'fast' }, resources: { requests: { cpu: '250m', memory: '512Mi' } } });
  });

  test('the chart default image matches the CRD default image', async () => {
    const { DEFAULT_IMAGE } = await operatorModule<OperatorSchemaModule>('api/schema.ts');
    const chart = fs.readFileSync(path.join(CHART_DIR, 'Chart.yaml'), 'utf8');
    const appVersion = /appVersion:\s*"?([^"\n]+)"?/.exec(chart)![1];
    expect(DEFAULT_IMAGE).toBe(`ghcr.io/walkeeper/walkeeper:${appVersion}`);
  });
});
