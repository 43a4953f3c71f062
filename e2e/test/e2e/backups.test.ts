// Scheduled base backups on the harness with the real operator: a Safekeeper with a file://
// bucket and a Tenant whose spec.backup fires every minute. The operator starts each backup on
// the proposer sidecar (real pg_basebackup against the compute's real PostgreSQL), reports it in
// status.backup with Events, and after the second one the retention (keep 1) deletes the first
// from the bucket, leaving the newest complete backup. A compute whose volume is deleted comes
// back on its own; a new Tenant with spec.bootstrap.recovery starts as a copy of the first one
// at a point in time, on its own timeline, leaving the source as it was.
import fs from 'node:fs';
import path from 'node:path';
import { listBackups } from '@walkeeper/dataplane/backup/catalog';
import { openRemoteStorage, parseRemoteStorageUrl } from '@walkeeper/dataplane/remote/url';
import { Scenario, safekeeperYaml, tenantYaml, waitFor } from './helpers.js';

const s = new Scenario('bkp');

beforeAll(() => s.start(), 90_000);
afterAll(() => s.stop(), 90_000);

interface BackupStatus {
  lastScheduleTime?: string;
  running?: string;
  lastSuccessful?: { id: string; startLsn: string; stopLsn: string; completedAt: string; sizeBytes: number };
  firstRecoverablePoint?: { time: string; lsn: string };
  backups?: number;
  lastFailure?: { reason: string; message: string };
}

it('takes scheduled backups through the proposer and applies the retention', s.step(async () => {
  const bucket = path.join(s.dir, 'bucket');
  fs.mkdirSync(bucket, { mode: 0o1777 });
  fs.chmodSync(bucket, 0o1777); // the safekeepers and the compute's proposer run as different users
  await s.applyOk(safekeeperYaml('main', 3, `  remoteStorage:\n    url: file://${bucket}\n`));
  await s.applyOk(tenantYaml('demo', 'main', '  backup:\n    schedule: "* * * * *"\n    retention:\n      keep: 1\n'));
  await s.waitTenantReady('demo', 150);
  const client = await s.connect('demo');
  await client.query("CREATE TABLE ledger AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 20000) g");
  await client.end();
  const { tenantId, timelineId } = await s.tenantStatus('demo');
  const backup = async () => ((await s.tenantStatus('demo')) as { backup?: BackupStatus }).backup ?? {};

  let first: BackupStatus['lastSuccessful'];
  await waitFor('the first scheduled backup', 150_000, async () => {
    first = (await backup()).lastSuccessful;
    return first !== undefined;
  }, 1000);
  expect(first!.sizeBytes).toBeGreaterThan(0);
  const store = await openRemoteStorage(parseRemoteStorageUrl(`file://${bucket}`, {}));
  try {
    expect((await listBackups(store, tenantId!, timelineId!)).complete.map((m) => m.backup_id)).toContain(first!.id);

    let second: BackupStatus['lastSuccessful'];
    await waitFor('a second scheduled backup', 150_000, async () => {
      second = (await backup()).lastSuccessful;
      return second !== undefined && second.id !== first!.id;
    }, 1000);
    // keep: 1 — the first is deleted once the second is complete; the newest always stays
    await waitFor('the retention to delete the first backup', 60_000, async () => {
      const ids = (await listBackups(store, tenantId!, timelineId!)).complete.map((m) => m.backup_id);
      return !ids.includes(first!.id) && ids.includes(second!.id);
    }, 1000);
    const st = await backup();
    expect(st.lastFailure).toBeUndefined();
    expect(st.lastScheduleTime).toBeDefined();
    const events = JSON.parse(await s.env.kubectlOk(['get', 'events', '--field-selector', 'involvedObject.name=demo', '-o', 'json'])) as { items: { reason: string; message: string }[] };
    const reasons = events.items.map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['BackupStarted', 'BackupSucceeded', 'BackupsDeleted']));
    // kubectl shows when the last backup completed
    expect(await s.env.kubectlOk(['get', 'tenant', 'demo', '-o', 'wide'])).toMatch(/LAST BACKUP/);
  } finally {
    await store.close();
  }
}), 420_000);

it('a compute whose volume is deleted comes back on its own, Ready, with every committed row', s.step(async () => {
  // rows after the newest backup too: they exist only as WAL on the safekeepers and in the bucket
  const before = await s.connect('demo');
  await before.query("INSERT INTO ledger SELECT g, 'after the last backup' FROM generate_series(20001, 25000) g");
  const expected = (await before.query<{ n: number; s: string }>('SELECT count(*)::int AS n, sum(id)::text AS s FROM ledger')).rows[0];
  await before.end();
  // the volume claim is deleted (kept until its pod is gone), then the pod: the StatefulSet makes both anew
  await s.env.kubectlOk(['delete', 'pvc', 'pgdata-demo-compute-0', '--wait=false']);
  await s.env.kubectlOk(['delete', 'pod', 'demo-compute-0']);
  await waitFor('a new, empty volume claim', 120_000, async () => {
    const pvc = JSON.parse(await s.env.kubectlOk(['get', 'pvc', 'pgdata-demo-compute-0', '-o', 'json', '--ignore-not-found']) || '{}') as { metadata?: { deletionTimestamp?: string } };
    return pvc.metadata !== undefined && pvc.metadata.deletionTimestamp === undefined;
  }, 1000);
  await s.waitTenantReady('demo', 300);
  const after = await s.connect('demo');
  try {
    expect((await after.query<{ n: number; s: string }>('SELECT count(*)::int AS n, sum(id)::text AS s FROM ledger')).rows[0]).toEqual(expected);
    // a writable primary, whose commits reach the quorum again
    await after.query("INSERT INTO ledger VALUES (0, 'after the rebuild')");
  } finally {
    await after.end();
  }
  const pod = JSON.parse(await s.env.kubectlOk(['get', 'pod', 'demo-compute-0', '-o', 'json'])) as { status: { initContainerStatuses: { name: string; state: { terminated?: { exitCode: number } } }[] } };
  expect(pod.status.initContainerStatuses.map((c) => [c.name, c.state.terminated?.exitCode])).toEqual([['restore', 0]]);
  expect(s.env.runtime.logs('default', 'demo-compute-0', 'restore')).toMatch(/restored base backup/);
}), 420_000);

it('a Tenant with spec.bootstrap.recovery starts as a copy of another at a point in time: rows before it, none after, writable on its own timeline', s.step(async () => {
  // no new backup (and retention) of the source while the copy restores from its newest one
  await s.env.kubectlOk(['patch', 'tenant', 'demo', '--type=merge', '-p', '{"spec":{"backup":{"suspend":true}}}']);
  const src = await s.connect('demo');
  let targetMs: number;
  let atTarget: { n: number; s: string };
  try {
    await src.query("INSERT INTO ledger VALUES (-1, 'before the fork point')");
    atTarget = (await src.query<{ n: number; s: string }>('SELECT count(*)::int AS n, sum(id)::text AS s FROM ledger')).rows[0];
    // the target: a millisecond strictly after that commit, by the server's own clock
    targetMs = Number((await src.query<{ ms: string }>('SELECT (floor(extract(epoch FROM clock_timestamp()) * 1000) + 1)::bigint::text AS ms')).rows[0].ms);
    await waitFor('the server clock to pass the target', 10_000, async () => Number((await src.query<{ ms: string }>('SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint::text AS ms')).rows[0].ms) > targetMs + 1, 50);
    await src.query("INSERT INTO ledger VALUES (-2, 'after the fork point')");
  } finally {
    await src.end();
  }
  const source = await s.tenantStatus('demo');

  await s.applyOk(tenantYaml('fork', 'main', `  bootstrap:\n    recovery:\n      source:\n        tenantRef:\n          name: demo\n      targetTime: "${new Date(targetMs).toISOString()}"\n`));
  await s.waitTenantReady('fork', 300);
  const status = await s.tenantStatus('fork');
  expect(status.recoveredFrom).toEqual({ tenant: 'demo', tenantId: source.tenantId, timelineId: source.timelineId });
  expect(status.timelineId).not.toBe(source.timelineId);
  // the copy has the source's roles, so its credentials are the source's
  expect((await s.credentials('fork')).password).toBe((await s.credentials('demo')).password);
  const fork = await s.connect('fork');
  try {
    expect((await fork.query<{ n: number; s: string }>('SELECT count(*)::int AS n, sum(id)::text AS s FROM ledger')).rows[0]).toEqual(atTarget!);
    expect((await fork.query('SELECT 1 FROM ledger WHERE id = -2')).rowCount).toBe(0);
    // a writable primary on a new PostgreSQL timeline, whose commits reach its own timeline's quorum
    expect((await fork.query<{ tli: number }>("SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS tli")).rows[0].tli).toBeGreaterThan(1);
    await fork.query("INSERT INTO ledger VALUES (-3, 'on the copy')");
  } finally {
    await fork.end();
  }
  await waitFor('the copy\'s commit LSN in its status', 60_000, async () => !['0/0', undefined].includes((await s.tenantStatus('fork')).commitLsn), 1000);
  expect(s.env.runtime.logs('default', 'fork-compute-0', 'restore')).toMatch(/recovered base backup \S+ of tenant [0-9a-f]{32} timeline [0-9a-f]{32}/);
  // and the source is as it was: both of its rows, nothing of the copy's, still Ready
  const after = await s.connect('demo');
  try {
    expect((await after.query<{ id: number }>('SELECT id FROM ledger WHERE id IN (-1, -2, -3) ORDER BY id')).rows.map((r) => r.id)).toEqual([-2, -1]);
  } finally {
    await after.end();
  }
  await s.waitTenantReady('demo', 60);
}), 420_000);
