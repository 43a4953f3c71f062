import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { renderCrdFiles } from '../../src/api/render.js';
import { validateResource } from '../../src/api/validation.js';
import { safekeeperCrd, tenantCrd } from '../../src/api/crds.js';
import { DEFAULT_IMAGE } from '../../src/api/schema.js';
import type { Safekeeper, Tenant } from '../../src/api/schema.js';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));

const sk = (spec: Record<string, unknown>) => ({ apiVersion: 'walkeeper.io/v1alpha1', kind: 'Safekeeper', metadata: { name: 'wal' }, spec });
const tenant = (spec: Record<string, unknown>) => ({ apiVersion: 'walkeeper.io/v1alpha1', kind: 'Tenant', metadata: { name: 'app' }, spec });

describe('CRDs generated from the schema source', () => {
  test('crds/ on disk matches the generator output (run node operator/dist/src/api/generate-crds.js)', () => {
    for (const [file, text] of Object.entries(renderCrdFiles())) {
      expect(readFileSync(join(repoRoot, 'crds', file), 'utf8')).toBe(text);
    }
  });

  test('the schema is structural: no additionalProperties:false, every property typed', () => {
    const walk = (node: unknown, path: string): void => {
      if (!node || typeof node !== 'object') return;
      const n = node as Record<string, unknown>;
      expect(n.additionalProperties).not.toBe(false);
      if (n.properties) {
        for (const [k, v] of Object.entries(n.properties as Record<string, Record<string, unknown>>)) {
          const typed = v.type !== undefined || v['x-kubernetes-int-or-string'] === true;
          if (!typed) throw new Error(`${path}.${k} has no type`);
          walk(v, `${path}.${k}`);
        }
      }
      if (n.items) walk(n.items, `${path}[]`);
      if (n.additionalProperties && typeof n.additionalProperties === 'object') walk(n.additionalProperties, `${path}{}`);
    };
    walk(safekeeperCrd().spec.versions[0].schema.openAPIV3Schema, 'Safekeeper');
    walk(tenantCrd().spec.versions[0].schema.openAPIV3Schema, 'Tenant');
  });

  test('status subresource, short names and printer columns are declared', () => {
    const s = safekeeperCrd();
    const t = tenantCrd();
    expect(s.spec.versions[0].subresources).toEqual({ status: {} });
    expect(s.spec.names.shortNames).toContain('sk');
    expect(t.spec.names.shortNames).toContain('wkt');
    expect(s.spec.versions[0].additionalPrinterColumns.map((c) => c.name)).toEqual(['Replicas', 'Ready', 'Quorum', 'Age']);
    expect(t.spec.versions[0].additionalPrinterColumns.map((c) => c.name)).toEqual(['Tenant ID', 'Safekeeper', 'Quorum', 'Commit LSN', 'Ready', 'Last Backup', 'Age']);
  });

  test('immutability is expressed as CEL transition rules with clear messages', () => {
    const text = renderCrdFiles();
    const skDoc = load(text['safekeepers.walkeeper.io.yaml']) as ReturnType<typeof safekeeperCrd>;
    const spec = (skDoc.spec.versions[0].schema.openAPIV3Schema.properties as Record<string, { properties: Record<string, Record<string, unknown>> }>).spec;
    expect(spec.properties.replicas['x-kubernetes-validations']).toEqual([{ rule: 'self == oldSelf', message: expect.stringMatching(/replicas is immutable/) }]);
    const tSpec = (tenantCrd().spec.versions[0].schema.openAPIV3Schema.properties as Record<string, Record<string, unknown>>).spec as Record<string, unknown> & {
      properties: Record<string, Record<string, unknown>>;
    };
    expect(JSON.stringify(tSpec['x-kubernetes-validations'])).toMatch(/tenantId is immutable/);
    expect(tSpec.properties.safekeeperRef['x-kubernetes-validations']).toEqual([{ rule: 'self == oldSelf', message: 'safekeeperRef is immutable' }]);
  });
});

describe('validation and defaults (ajv against the generated openAPIV3Schema)', () => {
  test('given an empty Safekeeper spec, defaults fill replicas, image and storage size', () => {
    const r = validateResource<Safekeeper>('Safekeeper', sk({}));
    expect(r.errors).toEqual([]);
    expect(r.value.spec).toEqual({ replicas: 3, image: DEFAULT_IMAGE, storage: { size: '10Gi' } });
  });

  test.each([2, 4, 9, 0])('replicas %d is rejected with a message naming spec.replicas', (replicas) => {
    const r = validateResource('Safekeeper', sk({ replicas }));
    expect(r.valid).toBe(false);
    expect(r.errors).toContain('spec.replicas: must be one of 1, 3, 5, 7');
  });

  test('a tenantId that is not 32 lowercase hex is rejected naming spec.tenantId', () => {
    const r = validateResource('Tenant', tenant({ tenantId: 'ABC', safekeeperRef: { name: 'wal' } }));
    expect(r.valid).toBe(false);
    expect(r.errors.join('\n')).toMatch(/^spec\.tenantId: must match pattern/m);
  });

  test('a Tenant without safekeeperRef is rejected naming spec.safekeeperRef', () => {
    const r = validateResource('Tenant', tenant({}));
    expect(r.errors).toContain('spec.safekeeperRef: required value');
  });

  test('a Tenant gets compute defaults: enabled, postgres:15, 10Gi', () => {
    const r = validateResource<Tenant>('Tenant', tenant({ safekeeperRef: { name: 'wal' } }));
    expect(r.valid).toBe(true);
    expect(r.value.spec.compute).toEqual({ enabled: true, image: 'postgres:15', storage: { size: '10Gi' } });
  });

  test('resource quantities accept strings and integers, reject garbage', () => {
    expect(validateResource('Safekeeper', sk({ resources: { limits: { cpu: '500m', memory: '1Gi' }, requests: { cpu: 1 } } })).valid).toBe(true);
    const bad = validateResource('Safekeeper', sk({ resources: { limits: { cpu: 'lots' } } }));
    expect(bad.valid).toBe(false);
    expect(bad.errors.join('\n')).toMatch(/spec\.resources\.limits\.cpu/);
  });
});
