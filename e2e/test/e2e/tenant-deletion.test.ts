// Tenant deletion: the finalizer removes the tenant's directories from every safekeeper's volume
// (checked on the PVC directories) before the Tenant disappears; its compute goes with it.
import fs from 'node:fs';
import path from 'node:path';
import { Scenario, safekeeperYaml, tenantYaml, waitFor } from './helpers.js';

const s = new Scenario('del');

beforeAll(() => s.start(), 90_000);
afterAll(() => s.stop(), 90_000);

it('removes the tenant from every safekeeper volume before the Tenant disappears', s.step(async () => {
  await s.applyOk(safekeeperYaml('main'));
  await s.applyOk(tenantYaml('demo'));
  await s.applyOk(tenantYaml('other'));
  await s.waitTenantReady('demo', 150);
  await s.waitTenantReady('other', 60);
  const client = await s.connect('demo');
  await client.query("CREATE TABLE doomed AS SELECT g AS id, repeat('d', 100) AS pad FROM generate_series(1, 2000) g");
  await client.end();
  const { tenantId } = await s.tenantStatus('demo');
  const otherId = (await s.tenantStatus('other')).tenantId!;
  const dirs = await Promise.all([0, 1, 2].map((i) => s.pvcDir(`data-main-${i}`)));
  for (const d of dirs) {
    expect(fs.existsSync(path.join(d, 'tenants', tenantId!))).toBe(true);
    expect(fs.existsSync(path.join(d, 'tenants', otherId))).toBe(true);
  }

  // Observe both sides every 20 ms: the Tenant must never be gone while a volume still holds its data.
  const tenantsT = s.env.harness.api.type('walkeeper.io', 'v1alpha1', 'tenants')!;
  const observations: { exists: boolean; onVolumes: number }[] = [];
  await s.env.kubectlOk(['delete', 'tenant', 'demo', '--wait=false']);
  await waitFor('tenant demo to disappear', 60_000, async () => {
    const exists = s.env.harness.api.tryGet(tenantsT, 'default', 'demo') !== undefined;
    const onVolumes = dirs.filter((d) => fs.existsSync(path.join(d, 'tenants', tenantId!))).length;
    observations.push({ exists, onVolumes });
    return !exists;
  }, 20);
  const whileExisting = observations.filter((o) => o.exists).map((o) => o.onVolumes);
  console.log(`tenant deletion: ${observations.length} observations; volumes holding the tenant while the Tenant existed: ${[...new Set(whileExisting)].join(' → ')}`);
  expect(observations.filter((o) => !o.exists && o.onVolumes > 0)).toEqual([]);
  for (const d of dirs) {
    expect(fs.existsSync(path.join(d, 'tenants', tenantId!))).toBe(false);
    expect(fs.existsSync(path.join(d, 'tenants', otherId))).toBe(true); // the other tenant is untouched
  }
  // The compute is garbage-collected with its owner, and its PostgreSQL stops.
  await waitFor('the compute pod to go', 60_000, async () => (await s.env.kubectl(['get', 'pod', 'demo-compute-0'])).code !== 0, 250);
  expect(s.env.runtime.running()).not.toContain('default/demo-compute-0');
  expect((await s.tenantStatus('other')).quorum).toMatchObject({ healthy: true });
}), 200_000);
