// The chart's CRDs: its copy (helm/walkeeper/files/crds) equals the generated crds/, the rendered
// CRDs equal that source apart from the chart's labels and the keep annotation, and crds.create
// turns them off.
import fs from 'node:fs';
import path from 'node:path';
import { load } from 'js-yaml';
import { CHART_DIR, ROOT, findAll, render, type KubeObject } from '../../src/chart/helm.js';
import { validateBuiltin } from '../../src/chart/validate.js';
import { operatorModule, type OperatorSchemaModule } from './operator-source.js';

const SOURCE = path.join(ROOT, 'crds');
const COPY = path.join(CHART_DIR, 'files', 'crds');
const yamlFiles = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();

test('the chart copy of the CRDs equals crds/ (run `bash helm/walkeeper/sync-crds.sh` after regenerating)', () => {
  expect(yamlFiles(COPY)).toEqual(yamlFiles(SOURCE));
  expect(yamlFiles(SOURCE).length).toBeGreaterThanOrEqual(2);
  for (const f of yamlFiles(SOURCE)) {
    const same = fs.readFileSync(path.join(COPY, f), 'utf8') === fs.readFileSync(path.join(SOURCE, f), 'utf8');
    expect({ file: f, identical: same }).toEqual({ file: f, identical: true });
  }
});

describe('rendered CRDs', () => {
  const crds = findAll(render(), 'CustomResourceDefinition');
  const source = yamlFiles(SOURCE).map((f) => load(fs.readFileSync(path.join(SOURCE, f), 'utf8')) as KubeObject);

  test('one per source file, identical apart from metadata labels and annotations', () => {
    expect(crds.map((c) => c.metadata.name).sort()).toEqual(source.map((c) => c.metadata.name).sort());
    for (const src of source) {
      const out = crds.find((c) => c.metadata.name === src.metadata.name)!;
      const strip = (o: KubeObject) => ({ ...o, metadata: { name: o.metadata.name } });
      expect(strip(out)).toEqual(strip(src));
      // Labels of the source are kept; the chart adds its own.
      expect(out.metadata.labels).toMatchObject(src.metadata.labels ?? {});
      expect(out.metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'Helm' });
    }
  });

  test('kept on uninstall (helm.sh/resource-policy: keep) and valid CustomResourceDefinitions', () => {
    for (const c of crds) {
      expect(c.metadata.annotations).toEqual({ 'helm.sh/resource-policy': 'keep' });
      expect(() => validateBuiltin(c)).not.toThrow();
    }
  });

  test('the group, version and kinds the operator expects', async () => {
    const { GROUP, VERSION } = await operatorModule<OperatorSchemaModule>('api/schema.ts');
    const byKind = Object.fromEntries(crds.map((c) => [(c.spec as { names: { kind: string } }).names.kind, c.spec as { group: string; scope: string; versions: Array<{ name: string; storage: boolean; subresources?: { status?: object } }> }]));
    expect(Object.keys(byKind).sort()).toEqual(['Safekeeper', 'Tenant']);
    for (const spec of Object.values(byKind)) {
      expect(spec.group).toBe(GROUP);
      expect(spec.scope).toBe('Namespaced');
      expect(spec.versions.find((v) => v.storage)?.name).toBe(VERSION);
      expect(spec.versions.find((v) => v.storage)?.subresources?.status).toEqual({});
    }
  });
});

test('crds.keep=false drops the annotation; crds.create=false renders no CRD', () => {
  for (const c of findAll(render({ crds: { create: true, keep: false } }), 'CustomResourceDefinition')) {
    expect(c.metadata.annotations?.['helm.sh/resource-policy']).toBeUndefined();
  }
  expect(findAll(render({ crds: { create: false, keep: true } }), 'CustomResourceDefinition')).toEqual([]);
});
