// Install: the examples applied as a user would (examples/safekeeper.yaml, examples/tenant.yaml)
// against the harness with the chart's CRDs and RBAC and the real operator; the Tenant becomes
// Ready with a real PostgreSQL compute and proposer, an application reaches it through the
// Service with the Secret's credentials, and `kubectl get tenants` shows the commit LSN move.
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../../src/runtime/index.js';
import { Scenario, condition, waitFor } from './helpers.js';

const s = new Scenario('install');

beforeAll(() => s.start(), 90_000);
afterAll(() => s.stop(), 90_000);

const tenantsRow = async () => {
  const lines = (await s.env.kubectlOk(['get', 'tenants'])).trim().split('\n');
  const header = lines[0]!;
  const row = lines.find((l) => l.startsWith('demo '))!;
  // Columns are fixed-width: cut the row at the header's column starts.
  const starts = ['NAME', 'TENANT ID', 'SAFEKEEPER', 'QUORUM', 'COMMIT LSN', 'READY', 'AGE'].map((h) => header.indexOf(h));
  const cols = starts.map((st, i) => row.slice(st, starts[i + 1] ?? row.length).trim());
  return { header, row, quorum: cols[3]!, commitLsn: cols[4]!, ready: cols[5]! };
};
const lsn = (x: string) => {
  const [hi, lo] = x.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
};

it('applies the chart CRDs/RBAC and the examples; the Tenant becomes Ready', s.step(async () => {
  expect(s.env.chartApplied).toEqual(expect.arrayContaining(['CustomResourceDefinition/safekeepers.walkeeper.io', 'CustomResourceDefinition/tenants.walkeeper.io', 'Role/wk-walkeeper-operator']));
  for (const f of ['safekeeper.yaml', 'tenant.yaml']) {
    const r = await s.env.kubectl(['apply', '-f', path.join(REPO_ROOT, 'examples', f)]);
    expect(r.code).toBe(0);
  }
  const started = Date.now();
  await s.waitTenantReady('demo', 150);
  console.log(`tenant demo Ready ${((Date.now() - started) / 1000).toFixed(1)} s after kubectl apply`);
  const st = await s.tenantStatus('demo');
  expect(st.quorum).toMatchObject({ members: 3, healthy: true });
  expect(condition(st, 'ComputeReady')).toMatchObject({ status: 'True', reason: 'Streaming' });
  // The compute really is the machine's PostgreSQL 15, initialised in the PVC directory.
  const pgdata = path.join(await s.pvcDir('pgdata-demo-compute-0'), 'pgdata');
  expect(fs.readFileSync(path.join(pgdata, 'PG_VERSION'), 'utf8').trim()).toBe('15');
}), 200_000);

it('runs a transaction through the Service ClusterIP with the Secret credentials (and refuses a wrong password)', s.step(async () => {
  const ip = await s.serviceIP('demo');
  expect(ip).toMatch(/^127\.20\./);
  const client = await s.connect('demo');
  try {
    await client.query('CREATE TABLE IF NOT EXISTS install_check (id int PRIMARY KEY, note text)');
    await client.query('BEGIN');
    await client.query("INSERT INTO install_check VALUES (1, 'one'), (2, 'two')");
    await client.query('COMMIT');
    expect((await client.query('SELECT count(*)::int AS n FROM install_check')).rows[0]).toEqual({ n: 2 });
    // synchronous replication to the proposer is what made COMMIT wait for the quorum
    expect((await client.query("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'walkeeper_proposer'")).rows).toEqual([{ sync_state: 'sync' }]);
  } finally {
    await client.end();
  }
  await expect(s.connect('demo', { password: 'wrong' })).rejects.toThrow(/password authentication failed/);
}), 60_000);

it('shows a healthy quorum and a commit LSN that moves in kubectl get tenants', s.step(async () => {
  const before = await waitFor('a commit LSN in kubectl get tenants', 30_000, async () => {
    const r = await tenantsRow();
    return r.commitLsn.includes('/') && r.commitLsn !== '0/0' ? r : undefined;
  }, 500);
  expect(before.header).toMatch(/^NAME\s+TENANT ID\s+SAFEKEEPER\s+QUORUM\s+COMMIT LSN\s+READY\s+AGE$/);
  expect(before.quorum).toBe('True');
  const client = await s.connect('demo');
  try {
    await client.query('CREATE TABLE IF NOT EXISTS filler AS SELECT g AS id, repeat(\'x\', 200) AS pad FROM generate_series(1, 2000) g');
  } finally {
    await client.end();
  }
  const after = await waitFor('the commit LSN to move', 30_000, async () => {
    const r = await tenantsRow();
    return lsn(r.commitLsn) > lsn(before.commitLsn) ? r : undefined;
  }, 500);
  console.log(`kubectl get tenants:\n  ${before.header}\n  ${before.row}\n  ${after.row}`);
  expect(after.quorum).toBe('True');
  expect(after.ready).toBe('True');
}), 60_000);
