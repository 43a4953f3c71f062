// Scheduled base backups on the harness with the real operator: a Safekeeper with a file://
// bucket and a Tenant whose spec.backup fires every minute. The operator starts each backup on
// the proposer sidecar (real pg_basebackup against the compute's real PostgreSQL), reports it in
// status.backup with Events, and after the second one the retention (keep 1) deletes the first
// from the bucket, leaving the newest complete backup.
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
