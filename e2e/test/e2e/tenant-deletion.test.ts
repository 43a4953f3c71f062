// Tenant deletion: the finalizer first makes the compute gone (its StatefulSet deleted, its pod
// and processes gone), then removes the tenant's directories from every safekeeper's volume
// (checked on the PVC directories), and only then lets the Tenant disappear.
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

  // Observe every 20 ms: the Tenant must never be gone while a volume still holds its data, and no
  // volume may lose the data while any of the compute (StatefulSet, pod, processes) is still there.
  const tenantsT = s.env.harness.api.type('walkeeper.io', 'v1alpha1', 'tenants')!;
  const stsT = s.env.harness.api.type('apps', 'v1', 'statefulsets')!;
  const podsT = s.env.harness.api.type('', 'v1', 'pods')!;
  const observations: { at: number; exists: boolean; onVolumes: number; compute: string[] }[] = [];
  let proposerLog = '';
  await s.env.kubectlOk(['delete', 'tenant', 'demo', '--wait=false']);
  await waitFor('tenant demo to disappear', 60_000, async () => {
    const exists = s.env.harness.api.tryGet(tenantsT, 'default', 'demo') !== undefined;
    const compute = [
      ...(s.env.harness.api.tryGet(stsT, 'default', 'demo-compute') ? ['statefulset'] : []),
      ...(s.env.harness.api.tryGet(podsT, 'default', 'demo-compute-0') ? ['pod'] : []),
      ...(s.env.runtime.pids('default', 'demo-compute-0').length > 0 ? ['processes'] : []),
    ];
    const onVolumes = dirs.filter((d) => fs.existsSync(path.join(d, 'tenants', tenantId!))).length;
    proposerLog = s.env.runtime.logs('default', 'demo-compute-0', 'proposer') || proposerLog;
    observations.push({ at: Date.now(), exists, onVolumes, compute });
    return !exists;
  }, 20);
  const whileExisting = observations.filter((o) => o.exists).map((o) => o.onVolumes);
  const computeGoneAt = observations.find((o) => o.compute.length === 0)?.at;
  const firstRemovalAt = observations.find((o) => o.onVolumes < dirs.length)?.at;
  console.log(
    `tenant deletion: ${observations.length} observations; volumes holding the tenant while the Tenant existed: ${[...new Set(whileExisting)].join(' → ')}; ` +
      `compute gone ${computeGoneAt! - observations[0]!.at} ms after the delete, first volume cleaned ${firstRemovalAt! - observations[0]!.at} ms after`,
  );
  expect(observations.filter((o) => !o.exists && o.onVolumes > 0)).toEqual([]);
  // The compute went first: while any part of it was still there, every volume held the tenant.
  expect(observations.filter((o) => o.compute.length > 0 && o.onVolumes < dirs.length)).toEqual([]);
  expect(observations[0]!.compute).toContain('processes'); // the observation really saw the compute running
  // ... so its proposer never found the tenant gone.
  expect(proposerLog).not.toBe('');
  expect(proposerLog).not.toMatch(/does not exist/);
  for (const d of dirs) {
    expect(fs.existsSync(path.join(d, 'tenants', tenantId!))).toBe(false);
    expect(fs.existsSync(path.join(d, 'tenants', otherId))).toBe(true); // the other tenant is untouched
  }
  // The compute is gone, and its PostgreSQL stopped.
  expect((await s.env.kubectl(['get', 'pod', 'demo-compute-0'])).code).not.toBe(0);
  expect(s.env.runtime.running()).not.toContain('default/demo-compute-0');
  expect((await s.tenantStatus('other')).quorum).toMatchObject({ healthy: true });
}), 200_000);
