import { reconcileSafekeeper } from '../../src/controllers/safekeeper/reconcile.js';
import { reconcileTenant } from '../../src/controllers/tenant/reconcile.js';
import { defaultControllerOptions, type ControllerContext } from '../../src/controllers/context.js';
import { MemoryEventRecorder } from '../../src/runtime/events.js';
import { silentLogger } from '../../src/runtime/log.js';
import { kinds } from '../../src/runtime/kube.js';
import { buildStatefulSet, revisionOf } from '../../src/specs/safekeeper.js';
import { coarseUsedBytes } from '../../src/controllers/safekeeper/observe.js';
import type { KubeObject } from '../../src/specs/types.js';
import type { Safekeeper, SafekeeperStatus, TenantStatus } from '../../src/api/schema.js';
import { validateResource } from '../../src/api/validation.js';
import { FakeKube } from '../helpers/fake-kube.js';
import { fakeFetch, type Route } from '../helpers/fake-fetch.js';
import { apiError, backupManifestJson, backupsJson, proposerStatusJson, retentionJson, safekeeperStatusJson, timelineStatusJson } from '../helpers/wire.js';
import type { BackupManifestJson, BackupRunJson, RetentionRequestJson, TenantCreatedJson, TimelineCreatedJson } from '@walkeeper/dataplane/api';

const NS = 'db';

interface MemberState {
  up: boolean;
  tenants: Map<string, Set<string>>;
  flush: string;
  commit: string;
  /** backup_lsn the member reports (absent: 0/0, nothing offloaded, as a safekeeper without remote storage sends) */
  backup?: string;
  disk?: { used: number; total: number; highWater: boolean };
}

/** Three canned safekeepers at 10.0.0.{1,2,3}:7676 following the HTTP contract. */
function dataPlane(members: MemberState[]): Route {
  return (method, url, body) => {
    const u = new URL(url);
    const idx = Number(u.hostname.split('.')[3]) - 1;
    const m = members[idx];
    if (!m || !m.up) return undefined;
    const p = u.pathname;
    if (method === 'GET' && p === '/v1/status') {
      const disk = m.disk ? { disk_used_bytes: String(m.disk.used), disk_total_bytes: String(m.disk.total), disk_high_water: m.disk.highWater } : {};
      return { status: 200, body: safekeeperStatusJson(idx + 1, disk) };
    }
    if (method === 'GET' && p === '/v1/tenants') return { status: 200, body: { tenants: [...m.tenants].map(([t, tls]) => ({ tenant_id: t, timelines: [...tls] })) } };
    if (method === 'POST' && p === '/v1/tenants') {
      const t = (body as { tenant_id: string }).tenant_id;
      if (m.tenants.has(t)) return { status: 409, body: apiError('tenant_exists') };
      m.tenants.set(t, new Set());
      return { status: 201, body: { tenant_id: t } satisfies TenantCreatedJson };
    }
    let r = /^\/v1\/tenants\/([0-9a-f]{32})\/timelines$/.exec(p);
    if (method === 'POST' && r) {
      const tls = m.tenants.get(r[1]);
      if (!tls) return { status: 404, body: apiError('tenant_not_found') };
      const tl = (body as { timeline_id: string }).timeline_id;
      if (tls.has(tl)) return { status: 409, body: apiError('timeline_exists') };
      tls.add(tl);
      return { status: 201, body: { tenant_id: r[1], timeline_id: tl } satisfies TimelineCreatedJson };
    }
    r = /^\/v1\/tenants\/([0-9a-f]{32})\/timelines\/([0-9a-f]{32})$/.exec(p);
    if (method === 'GET' && r) {
      if (!m.tenants.get(r[1])?.has(r[2])) return { status: 404, body: apiError('timeline_not_found') };
      return { status: 200, body: timelineStatusJson(r[1], r[2], { flush_lsn: m.flush, write_lsn: m.flush, commit_lsn: m.commit, ...(m.backup ? { backup_lsn: m.backup } : {}) }) };
    }
    r = /^\/v1\/tenants\/([0-9a-f]{32})$/.exec(p);
    if (method === 'DELETE' && r) return m.tenants.delete(r[1]) ? { status: 200, body: { tenant_id: r[1], deleted: true } } : { status: 404, body: apiError('tenant_not_found') };
    return { status: 404, body: apiError('not_found') };
  };
}

function setup(memberStates?: MemberState[]) {
  const kube = new FakeKube();
  const events = new MemoryEventRecorder();
  const members: MemberState[] = memberStates ?? [0, 1, 2].map(() => ({ up: true, tenants: new Map<string, Set<string>>(), flush: '0/16B3F28', commit: '0/16B3F28' }));
  const calls: string[] = [];
  let n = 0;
  const ctx: ControllerContext = {
    client: kube,
    events,
    log: silentLogger(),
    fetch: fakeFetch(dataPlane(members), calls),
    now: () => new Date('2026-01-01T00:00:00Z'),
    randomHex: (bytes) => String(++n % 10).repeat(bytes * 2),
    options: { ...defaultControllerOptions, pollIntervalMs: 30_000 },
  };
  const sk = kube.seed(kinds.Safekeeper, { apiVersion: 'walkeeper.io/v1alpha1', kind: 'Safekeeper', metadata: { name: 'wal', namespace: NS }, spec: { replicas: 3 } });
  return { kube, events, members, ctx, sk, calls };
}

/** Plays the StatefulSet controller and kubelet: a ready pod per ordinal with the current template. */
function runPods(kube: FakeKube, ready = [true, true, true]) {
  const sts = kube.store.get(`StatefulSet/${NS}/wal`)!;
  const template = (sts.spec as { template: { metadata: KubeObject['metadata'] } }).template;
  ready.forEach((r, i) => {
    if (kube.store.has(`Pod/${NS}/wal-${i}`)) return;
    kube.seed(kinds.Pod, {
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name: `wal-${i}`, namespace: NS, labels: template.metadata.labels, annotations: template.metadata.annotations },
      status: { podIP: `10.0.0.${i + 1}`, conditions: [{ type: 'Ready', status: r ? 'True' : 'False' }] },
    });
  });
}

describe('Safekeeper reconcile against a fake API server and canned data plane', () => {
  test('first pass creates the children and writes status; a no-op resync issues zero writes', async () => {
    const { kube, ctx } = setup();
    await reconcileSafekeeper(ctx, `${NS}/wal`);
    expect(kube.writes.filter((w) => w.startsWith('create')).sort()).toEqual([
      `create ConfigMap/${NS}/wal-config`, `create PodDisruptionBudget/${NS}/wal`, `create Service/${NS}/wal`,
      `create Service/${NS}/wal-headless`, `create StatefulSet/${NS}/wal`,
    ]);
    runPods(kube);
    await reconcileSafekeeper(ctx, `${NS}/wal`);
    const status = (await kube.get<KubeObject & { status: SafekeeperStatus }>(kinds.Safekeeper, NS, 'wal'))!.status;
    expect(status).toMatchObject({ replicas: 3, readyReplicas: 3, updatedReplicas: 3, quorum: { size: 3, required: 2, available: 3, status: 'Healthy' } });
    expect(status.conditions!.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Available', 'True', 'QuorumAvailable'], ['Progressing', 'False', 'RolloutComplete'], ['Degraded', 'False', 'AllMembersHealthy'],
    ]);
    kube.writes.length = 0;
    await reconcileSafekeeper(ctx, `${NS}/wal`);
    await reconcileSafekeeper(ctx, `${NS}/wal`);
    expect(kube.writes).toEqual([]);
  });

  test('a member that does not answer HTTP is not ready; the quorum is Degraded, conditions say which', async () => {
    const { kube, ctx, members } = setup();
    await reconcileSafekeeper(ctx, `${NS}/wal`);
    runPods(kube);
    members[2].up = false;
    await reconcileSafekeeper(ctx, `${NS}/wal`);
    const status = (await kube.get<KubeObject & { status: SafekeeperStatus }>(kinds.Safekeeper, NS, 'wal'))!.status;
    expect(status.quorum).toEqual({ size: 3, required: 2, available: 2, status: 'Degraded' });
    expect(status.members![2]).toMatchObject({ name: 'wal-2', ready: false, lastError: expect.stringMatching(/ECONNREFUSED/) });
    expect(status.conditions!.find((c) => c.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'MembersUnhealthy' });
  });

  test('restartedAt rolls one member per pass, lowest ordinal first, waiting for it to return', async () => {
    const { kube, ctx, events } = setup();
    await reconcileSafekeeper(ctx, `${NS}/wal`);
    runPods(kube);
    await reconcileSafekeeper(ctx, `${NS}/wal`);
    const sk = kube.store.get(`Safekeeper/${NS}/wal`)!;
    sk.metadata.annotations = { 'walkeeper.io/restartedAt': '2026-01-01T00:00:00Z' };
    await reconcileSafekeeper(ctx, `${NS}/wal`); // updates the StatefulSet template, deletes wal-0
    expect(kube.writes).toContain(`delete Pod/${NS}/wal-0`);
    expect(kube.store.has(`Pod/${NS}/wal-0`)).toBe(false);
    expect(events.events.filter((e) => e.reason === 'RestartingMember').map((e) => e.message)).toEqual([expect.stringMatching(/rolling wal-0/)]);
    kube.writes.length = 0;
    await reconcileSafekeeper(ctx, `${NS}/wal`); // wal-0 missing: wait, delete nothing
    expect(kube.writes.filter((w) => w.startsWith('delete'))).toEqual([]);
    const status = (await kube.get<KubeObject & { status: SafekeeperStatus }>(kinds.Safekeeper, NS, 'wal'))!.status;
    expect(status.conditions!.find((c) => c.type === 'Progressing')).toMatchObject({ status: 'True', reason: 'RestartingMember' });
    runPods(kube); // wal-0 recreated from the new template
    await reconcileSafekeeper(ctx, `${NS}/wal`);
    expect(kube.writes).toContain(`delete Pod/${NS}/wal-1`);
  });

  test('the roll is Progressing (RestartingMember) until the last restarted member is ready, then RolloutComplete', async () => {
    const { kube, ctx } = setup();
    await reconcileSafekeeper(ctx, `${NS}/wal`);
    runPods(kube);
    await reconcileSafekeeper(ctx, `${NS}/wal`);
    kube.store.get(`Safekeeper/${NS}/wal`)!.metadata.annotations = { 'walkeeper.io/restartedAt': '2026-01-01T00:00:00Z' };
    const progressing = async () => (await kube.get<KubeObject & { status: SafekeeperStatus }>(kinds.Safekeeper, NS, 'wal'))!.status.conditions!.find((c) => c.type === 'Progressing');
    for (const i of [0, 1, 2]) {
      await reconcileSafekeeper(ctx, `${NS}/wal`); // deletes wal-i
      expect(kube.store.has(`Pod/${NS}/wal-${i}`)).toBe(false);
      runPods(kube, [0, 1, 2].map((j) => j !== i)); // wal-i comes back on the new template, not yet ready
      await reconcileSafekeeper(ctx, `${NS}/wal`);
      expect(await progressing()).toMatchObject({ status: 'True', reason: 'RestartingMember', message: expect.stringContaining(`wal-${i}`) });
      const pod = kube.store.get(`Pod/${NS}/wal-${i}`)!;
      (pod as unknown as { status: { conditions: unknown[] } }).status.conditions = [{ type: 'Ready', status: 'True' }];
    }
    await reconcileSafekeeper(ctx, `${NS}/wal`);
    expect(await progressing()).toMatchObject({ status: 'False', reason: 'RolloutComplete' });
  });

  test('a member that does not answer is never caught up, even when the cluster holds no timelines', async () => {
    const { kube, ctx, members } = setup();
    await reconcileSafekeeper(ctx, `${NS}/wal`);
    runPods(kube);
    members[1].up = false;
    await reconcileSafekeeper(ctx, `${NS}/wal`);
    const status = (await kube.get<KubeObject & { status: SafekeeperStatus }>(kinds.Safekeeper, NS, 'wal'))!.status;
    expect(status.members!.map((m) => [m.name, m.ready, m.timelines, m.caughtUp])).toEqual([
      ['wal-0', true, 0, true], ['wal-1', false, 0, false], ['wal-2', true, 0, true],
    ]);
  });
});

describe('Tenant reconcile', () => {
  async function readyCluster() {
    const env = setup();
    await reconcileSafekeeper(env.ctx, `${NS}/wal`);
    runPods(env.kube);
    env.kube.seed(kinds.Tenant, { apiVersion: 'walkeeper.io/v1alpha1', kind: 'Tenant', metadata: { name: 'app', namespace: NS }, spec: { safekeeperRef: { name: 'wal' }, compute: { enabled: true } } });
    return env;
  }
  const run = async (ctx: ControllerContext, times: number) => {
    for (let i = 0; i < times; i++) await reconcileTenant(ctx, `${NS}/app`);
  };
  const tenantStatus = async (kube: FakeKube) => (await kube.get<KubeObject & { status: TenantStatus }>(kinds.Tenant, NS, 'app'))!.status;

  test('adds the finalizer, persists generated ids, registers on every member, creates compute', async () => {
    const { kube, ctx, members } = await readyCluster();
    await run(ctx, 4);
    const t = kube.store.get(`Tenant/${NS}/app`)!;
    expect(t.metadata.finalizers).toEqual(['walkeeper.io/tenant-cleanup']);
    const status = await tenantStatus(kube);
    expect(status.tenantId).toMatch(/^[0-9a-f]{32}$/);
    expect(status.timelineId).toMatch(/^[0-9a-f]{32}$/);
    for (const m of members) expect(m.tenants.get(status.tenantId!)?.has(status.timelineId!)).toBe(true);
    expect(kube.store.has(`StatefulSet/${NS}/app-compute`)).toBe(true);
    expect(kube.store.has(`Secret/${NS}/app-credentials`)).toBe(true);
    expect(status.conditions!.find((c) => c.type === 'Registered')).toMatchObject({ status: 'True' });
    expect(status).toMatchObject({ commitLsn: '0/16B3F28', quorum: { members: 3, caughtUp: 3, healthy: true } });
    // a safekeeper always reports its backup and local start LSNs (0/0: nothing offloaded)
    expect(status.members![0]).toEqual({ name: 'wal-0', registered: true, flushLsn: '0/16B3F28', lagBytes: 0, backupLsn: '0/0', localStartLsn: '0/1000000' });
  });

  test('the password is generated once and kept; ids never change; a steady resync writes nothing', async () => {
    const { kube, ctx } = await readyCluster();
    await run(ctx, 4);
    const before = { ...kube.store.get(`Secret/${NS}/app-credentials`)!.data as Record<string, string> };
    const ids = await tenantStatus(kube);
    kube.writes.length = 0;
    await run(ctx, 3);
    expect(kube.writes).toEqual([]);
    expect(kube.store.get(`Secret/${NS}/app-credentials`)!.data).toEqual(before);
    const after = await tenantStatus(kube);
    expect([after.tenantId, after.timelineId]).toEqual([ids.tenantId, ids.timelineId]);
  });

  test('a member that is down is retried until it has the timeline; a 409 from an existing tenant is fine', async () => {
    const { kube, ctx, members } = await readyCluster();
    members[1].up = false;
    members[2].tenants.set('1'.repeat(32), new Set()); // the tenant (as the fake random will produce) already exists
    await run(ctx, 4);
    let status = await tenantStatus(kube);
    expect(status.conditions!.find((c) => c.type === 'Registered')).toMatchObject({ status: 'False', reason: 'PartiallyRegistered', message: expect.stringMatching(/2 of 3.*wal-1/) });
    members[1].up = true;
    await run(ctx, 1);
    status = await tenantStatus(kube);
    expect(status.conditions!.find((c) => c.type === 'Registered')).toMatchObject({ status: 'True' });
  });

  test('status reports lag and an unhealthy quorum when two members fall behind', async () => {
    const { kube, ctx, members } = await readyCluster();
    await run(ctx, 4);
    members[0].commit = members[1].commit = members[2].commit = '1/0';
    members[0].flush = '1/0';
    await run(ctx, 1);
    const status = await tenantStatus(kube);
    expect(status.commitLsn).toBe('1/0');
    expect(status.members![1].lagBytes).toBe(0x100000000 - 0x16b3f28);
    expect(status.quorum).toEqual({ members: 3, caughtUp: 1, healthy: false });
    expect(status.conditions!.find((c) => c.type === 'QuorumHealthy')).toMatchObject({ status: 'False', reason: 'QuorumBehind' });
  });

  test('with remote storage, status shows the offload position and lag, and each member\'s disk', async () => {
    const { kube, ctx, members } = await readyCluster();
    const skKey = `Safekeeper/${NS}/wal`;
    const sk = kube.store.get(skKey)!;
    kube.store.set(skKey, { ...sk, spec: { ...(sk.spec as object), remoteStorage: { url: 's3://wal-bucket/prod' } } });
    await run(ctx, 4);
    members.forEach((m, i) => {
      m.commit = '0/3000000';
      m.flush = '0/3000000';
      m.backup = i === 2 ? '0/2000000' : '0/1000000';
      m.disk = { used: 600 + i * 15, total: 1000, highWater: i === 1 };
    });
    await run(ctx, 1);
    const status = await tenantStatus(kube);
    // the bucket holds what any member confirmed; the lag is the committed WAL beyond it
    expect(status.offload).toEqual({ backupLsn: '0/2000000', lagBytes: 0x1000000 });
    expect(status.members!.map((m) => m.backupLsn)).toEqual(['0/1000000', '0/1000000', '0/2000000']);
    await reconcileSafekeeper(ctx, `${NS}/wal`);
    const skStatus = (kube.store.get(skKey)!.status ?? {}) as { members?: { disk?: unknown }[] };
    expect(skStatus.members!.map((m) => m.disk)).toEqual([
      { usedBytes: 600, totalBytes: 1000, highWater: false },
      { usedBytes: 610, totalBytes: 1000, highWater: true },
      { usedBytes: 630, totalBytes: 1000, highWater: false },
    ]);
  });

  test('disk use in status moves in hundredths of the volume, so steady writes cause no status writes', () => {
    expect(coarseUsedBytes(600, 1000)).toBe(600);
    expect(coarseUsedBytes(609, 1000)).toBe(600);
    expect(coarseUsedBytes(10_737_418_239, 10_737_418_240)).toBe(10_737_418_200 - (10_737_418_200 % 107_374_182));
    expect(coarseUsedBytes(5, 50)).toBe(5);
  });

  test('without remote storage, no offload status even when members report a backup LSN of 0/0', async () => {
    const { kube, ctx, members } = await readyCluster();
    members.forEach((m) => (m.backup = '0/0'));
    await run(ctx, 4);
    expect((await tenantStatus(kube)).offload).toBeUndefined();
  });

  test('scheduled backups: started on the proposer with the tenant token when due, reported on completion, then the retention', async () => {
    const { kube, ctx, members, events } = await readyCluster();
    const sk = kube.store.get(`Safekeeper/${NS}/wal`)!;
    (sk.spec as Record<string, unknown>).remoteStorage = { url: 'file:///bucket' };
    (sk.spec as Record<string, unknown>).auth = { secretRef: { name: 'wal-auth' } };
    kube.seed(kinds.Secret, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'wal-auth', namespace: NS }, data: { 'tenant-token-app': Buffer.from('tok-app').toString('base64') } });
    members.forEach((m, i) => (m.backup = ['0/1000000', '0/2000000', '0/1800000'][i]));
    const t = kube.store.get(`Tenant/${NS}/app`)!;
    (t.spec as Record<string, unknown>).backup = { schedule: '0 * * * *', retention: { keep: 1 } };
    kube.seed(kinds.Pod, {
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name: 'app-compute-0', namespace: NS, labels: { 'walkeeper.io/tenant': 'app' } },
      status: { podIP: '10.0.1.1', conditions: [{ type: 'Ready', status: 'True' }] },
    });
    // The proposer sidecar: streaming, one backup at a time, finishing when told.
    const proposer = { running: null as BackupRunJson | null, backups: [] as BackupManifestJson[], authorizations: [] as string[], retention: [] as RetentionRequestJson[] };
    const safekeepers = dataPlane(members);
    const calls: string[] = [];
    ctx.fetch = async (url, init) => {
      calls.push(`${init.method} ${url}`);
      const u = new URL(url);
      let r: { status: number; body?: unknown } | undefined;
      if (u.hostname !== '10.0.1.1') r = safekeepers(init.method, url, init.body ? JSON.parse(init.body) : undefined);
      else if (u.pathname === '/v1/status') r = { status: 200, body: proposerStatusJson({ state: 'streaming', quorum_healthy: true, commit_lsn: '0/16B3F28' }) };
      else if (u.pathname === '/v1/backups' && init.method === 'GET') r = { status: 200, body: backupsJson({ running: proposer.running, backups: proposer.backups }) };
      else if (u.pathname === '/v1/backups' && init.method === 'POST') {
        proposer.authorizations.push(init.headers.Authorization ?? '');
        proposer.running = { id: 'b1', started_at: '2026-01-01T01:00:01Z' };
        r = { status: 202, body: proposer.running };
      } else if (u.pathname === '/v1/backups/retention') {
        proposer.authorizations.push(init.headers.Authorization ?? '');
        proposer.retention.push(JSON.parse(init.body!));
        r = { status: 200, body: retentionJson({ deleted: ['b0'], wal_objects_deleted: 4, wal_horizon: '0/1000000', kept: ['b1'] }) };
      }
      if (!r) throw new Error(`connect ECONNREFUSED ${url}`);
      return { status: r.status, text: async () => JSON.stringify(r.body) };
    };
    let now = new Date('2026-01-01T00:30:00Z');
    ctx.now = () => now;
    await run(ctx, 4);
    let status = await tenantStatus(kube);
    expect(status.backup).toEqual({ nextScheduleTime: '2026-01-01T01:00:00.000Z', backups: 0 });
    expect(calls.filter((c) => c.startsWith('POST http://10.0.1.1'))).toEqual([]);

    now = new Date('2026-01-01T01:00:00Z');
    await run(ctx, 2);
    status = await tenantStatus(kube);
    expect(status.backup).toMatchObject({ lastScheduleTime: '2026-01-01T01:00:00.000Z', running: 'b1' });
    expect(proposer.authorizations).toEqual(['Bearer tok-app']);
    expect(events.events.filter((e) => e.reason === 'BackupStarted')).toHaveLength(1);

    proposer.running = null;
    proposer.backups = [
      backupManifestJson({ id: 'b0', start_lsn: '0/1000028', stop_lsn: '0/1000100', start_time: '2025-12-31T01:00:00Z', stop_time: '2025-12-31T01:00:05Z', size_bytes: 100 }),
      backupManifestJson({ id: 'b1', start_lsn: '0/3000028', stop_lsn: '0/3000100', start_time: '2026-01-01T01:00:01Z', stop_time: '2026-01-01T01:00:09Z', size_bytes: 200 }),
    ];
    now = new Date('2026-01-01T01:00:10Z');
    await run(ctx, 2);
    status = await tenantStatus(kube);
    expect(status.backup).toMatchObject({
      lastSuccessful: { id: 'b1', startLsn: '0/3000028', stopLsn: '0/3000100', completedAt: '2026-01-01T01:00:09Z', sizeBytes: 200 },
      firstRecoverablePoint: { time: '2025-12-31T01:00:05Z', lsn: '0/1000100' },
      backups: 2,
    });
    expect(status.backup!.running).toBeUndefined();
    // the retention asks to keep 1 and leaves bucket WAL at or above the lowest member's backup LSN alone
    expect(proposer.retention).toEqual([{ keep: 1, backup_lsn: '0/1000000' }]);
    expect(events.events.map((e) => e.reason).filter((r) => r.startsWith('Backup'))).toEqual(['BackupStarted', 'BackupSucceeded', 'BackupsDeleted']);
  });

  test('deletion removes the tenant from every member, then drops the finalizer', async () => {
    const { kube, ctx, members } = await readyCluster();
    await run(ctx, 4);
    const { tenantId } = await tenantStatus(kube);
    await kube.delete(kinds.Tenant, NS, 'app');
    await run(ctx, 1);
    for (const m of members) expect(m.tenants.has(tenantId!)).toBe(false);
    expect(kube.store.has(`Tenant/${NS}/app`)).toBe(false);
  });

  test('deletion stops the compute first: the tenant stays on the safekeepers until the StatefulSet and its pods are gone', async () => {
    const { kube, ctx, members } = await readyCluster();
    await run(ctx, 4);
    const { tenantId } = await tenantStatus(kube);
    expect(kube.store.has(`StatefulSet/${NS}/app-compute`)).toBe(true);
    // The compute pod, as the StatefulSet controller made it.
    kube.seed(kinds.Pod, {
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name: 'app-compute-0', namespace: NS, labels: { 'walkeeper.io/tenant': 'app' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'app-compute', uid: 'x' }] },
      status: { podIP: '10.0.1.1', conditions: [{ type: 'Ready', status: 'True' }] },
    });
    await kube.delete(kinds.Tenant, NS, 'app');
    await run(ctx, 2);
    expect(kube.store.has(`StatefulSet/${NS}/app-compute`)).toBe(false);
    for (const m of members) expect(m.tenants.has(tenantId!)).toBe(true); // its proposer may still be running
    expect(kube.store.get(`Tenant/${NS}/app`)!.metadata.finalizers).toEqual(['walkeeper.io/tenant-cleanup']);
    await kube.delete(kinds.Pod, NS, 'app-compute-0'); // the pod is gone
    await run(ctx, 1);
    for (const m of members) expect(m.tenants.has(tenantId!)).toBe(false);
    expect(kube.store.has(`Tenant/${NS}/app`)).toBe(false);
  });

  test('deletion with a member unreachable keeps the finalizer and fails for backoff', async () => {
    const { kube, ctx, members, events } = await readyCluster();
    await run(ctx, 4);
    await kube.delete(kinds.Tenant, NS, 'app');
    members[2].up = false;
    await expect(reconcileTenant(ctx, `${NS}/app`)).rejects.toThrow(/not yet removed from wal-2/);
    expect(kube.store.get(`Tenant/${NS}/app`)!.metadata.finalizers).toEqual(['walkeeper.io/tenant-cleanup']);
    expect(events.events.some((e) => e.reason === 'CleanupFailed')).toBe(true);
  });

  describe('spec.bootstrap.recovery', () => {
    const copySpec = (source: string) => ({ safekeeperRef: { name: 'wal' }, compute: { enabled: true }, bootstrap: { recovery: { source: { tenantRef: { name: source } }, targetTime: '2026-01-01T00:00:00Z' } } });
    const copyStatus = async (kube: FakeKube) => (await kube.get<KubeObject & { status: TenantStatus }>(kinds.Tenant, NS, 'copy'))!.status;
    const computeReady = async (kube: FakeKube) => (await copyStatus(kube)).conditions!.find((c) => c.type === 'ComputeReady');
    const runCopy = async (ctx: ControllerContext, times: number) => {
      for (let i = 0; i < times; i++) await reconcileTenant(ctx, `${NS}/copy`);
    };
    async function withBucket() {
      const env = await readyCluster();
      const sk = env.kube.store.get(`Safekeeper/${NS}/wal`)!;
      (sk.spec as Record<string, unknown>).remoteStorage = { url: 'file:///bucket' };
      return env;
    }

    test('resolves the source once, persists it, and restores from it with the source\'s password', async () => {
      const { kube, ctx, events } = await withBucket();
      await run(ctx, 4); // the source, "app", has its ids and credentials
      const source = await tenantStatus(kube);
      kube.seed(kinds.Tenant, { apiVersion: 'walkeeper.io/v1alpha1', kind: 'Tenant', metadata: { name: 'copy', namespace: NS }, spec: copySpec('app') });
      await runCopy(ctx, 5);
      const status = await copyStatus(kube);
      expect(status.recoveredFrom).toEqual({ tenant: 'app', tenantId: source.tenantId, timelineId: source.timelineId });
      expect(status.timelineId).not.toBe(source.timelineId);
      expect(events.events.filter((e) => e.reason === 'RecoverySourceResolved').map((e) => e.message)).toEqual([`recovering from Tenant app (tenant ${source.tenantId}, timeline ${source.timelineId})`]);
      const sts = kube.store.get(`StatefulSet/${NS}/copy-compute`)!;
      const init = (sts.spec as { template: { spec: { initContainers: { command: string[] }[] } } }).template.spec.initContainers[0];
      expect(init.command.slice(-6)).toEqual(['--recover-from-tenant-id', source.tenantId, '--recover-from-timeline-id', source.timelineId, '--target-time', '2026-01-01T00:00:00Z']);
      expect((kube.store.get(`Secret/${NS}/copy-credentials`)!.data as { password: string }).password).toBe((kube.store.get(`Secret/${NS}/app-credentials`)!.data as { password: string }).password);

      // the source deleted later: the copy keeps where it came from, and its compute is unchanged
      kube.store.delete(`Tenant/${NS}/app`);
      kube.writes.length = 0;
      await runCopy(ctx, 2);
      expect((await copyStatus(kube)).recoveredFrom).toEqual(status.recoveredFrom);
      expect(kube.writes.filter((w) => w.includes('StatefulSet'))).toEqual([]);
    });

    test.each([
      ['a source that does not exist', 'nope', true, 'RecoverySourceNotFound', /Tenant nope \(the recovery source\) not found in namespace db/],
      ['itself as the source', 'copy', true, 'RecoverySourceInvalid', /a Tenant cannot recover from itself/],
      ['a Safekeeper without remote storage', 'app', false, 'RecoveryNeedsRemoteStorage', /Safekeeper wal has no remoteStorage/],
    ])('%s: ComputeReady is False with the reason, and no compute is created', async (_what, source, bucket, reason, message) => {
      const { kube, ctx } = bucket ? await withBucket() : await readyCluster();
      await run(ctx, 4);
      kube.seed(kinds.Tenant, { apiVersion: 'walkeeper.io/v1alpha1', kind: 'Tenant', metadata: { name: 'copy', namespace: NS }, spec: copySpec(source) });
      await runCopy(ctx, 5);
      expect(await computeReady(kube)).toMatchObject({ status: 'False', reason, message: expect.stringMatching(message) });
      expect((await copyStatus(kube)).recoveredFrom).toBeUndefined();
      expect(kube.store.has(`StatefulSet/${NS}/copy-compute`)).toBe(false);
      expect(kube.store.has(`Secret/${NS}/copy-credentials`)).toBe(false);
    });

    test('a source that appears later is picked up', async () => {
      const { kube, ctx } = await withBucket();
      kube.store.delete(`Tenant/${NS}/app`);
      kube.seed(kinds.Tenant, { apiVersion: 'walkeeper.io/v1alpha1', kind: 'Tenant', metadata: { name: 'copy', namespace: NS }, spec: copySpec('app') });
      await runCopy(ctx, 4);
      expect(await computeReady(kube)).toMatchObject({ reason: 'RecoverySourceNotFound' });
      kube.seed(kinds.Tenant, { apiVersion: 'walkeeper.io/v1alpha1', kind: 'Tenant', metadata: { name: 'app', namespace: NS }, spec: { safekeeperRef: { name: 'wal' }, compute: { enabled: true } } });
      await runCopy(ctx, 1);
      // ids assigned, but no credentials yet: still waiting, with that reason
      await run(ctx, 2);
      await runCopy(ctx, 1);
      expect(await computeReady(kube)).toMatchObject({ reason: 'RecoverySourceNotReady' });
      await run(ctx, 2);
      await runCopy(ctx, 3);
      expect((await copyStatus(kube)).recoveredFrom?.tenant).toBe('app');
      expect(kube.store.has(`StatefulSet/${NS}/copy-compute`)).toBe(true);
    });
  });
});

test('revision of the applied StatefulSet equals the builder revision (rollout decisions use it)', () => {
  const sk = validateResource<Safekeeper>('Safekeeper', { apiVersion: 'walkeeper.io/v1alpha1', kind: 'Safekeeper', metadata: { name: 'wal', namespace: NS }, spec: {} }).value;
  expect(revisionOf(buildStatefulSet(sk))).toMatch(/^[0-9a-f]{12}$/);
});
