// The real walkeeper-operator (child process, leader election on) against the local API harness,
// driven with the real kubectl, with real safekeeper processes run by the ProcessRuntime: children
// of a Safekeeper, Tenant registration on every member, printer columns, admission errors, a small
// scale run, zero writes on an idle resync, and deletion through the finalizer.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type OperatorEnv, startOperatorEnv, waitFor } from '../../src/runtime/index.js';

const RESYNC = '2s';
const RESYNC_MS = 2000;

interface Obj {
  metadata: { name: string; namespace?: string; uid?: string; finalizers?: string[]; deletionTimestamp?: string; ownerReferences?: { kind: string; name: string; controller?: boolean }[] };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  data?: Record<string, string>;
}
interface TenantStatusView {
  tenantId?: string;
  timelineId?: string;
  members?: { name: string; registered: boolean }[];
  conditions?: { type: string; status: string; reason: string }[];
}

const safekeeperYaml = (name: string, replicas: number) => `apiVersion: walkeeper.io/v1alpha1
kind: Safekeeper
metadata:
  name: ${name}
spec:
  replicas: ${replicas}
  image: ghcr.io/walkeeper/walkeeper:dev
  storage:
    size: 1Gi
`;
const tenantYaml = (name: string, opts: { compute?: boolean; tenantId?: string; extra?: string } = {}) => `apiVersion: walkeeper.io/v1alpha1
kind: Tenant
metadata:
  name: ${name}
spec:
${opts.tenantId ? `  tenantId: ${opts.tenantId}\n` : ''}  safekeeperRef:
    name: main
  compute:
    enabled: ${opts.compute ? 'true' : 'false'}
${opts.compute ? '    image: postgres:16\n    storage:\n      size: 1Gi\n' : ''}${opts.extra ?? ''}`;
const recoveryYaml = (target: string) => `  bootstrap:\n    recovery:\n      source:\n        tenantRef:\n          name: alpha\n${target}`;

const condition = (s: TenantStatusView | undefined, type: string) => s?.conditions?.find((c) => c.type === type)?.status;

describe('walkeeper-operator on the harness with real safekeepers', () => {
  let dir: string;
  let env: OperatorEnv;
  let failed = false;

  const getJson = async <T = Obj>(...args: string[]): Promise<T> => JSON.parse(await env.kubectlOk(['get', ...args, '-o', 'json'])) as T;
  const memberIps = async (): Promise<string[]> => {
    const pods = await getJson<{ items: { metadata: { name: string }; status: { podIP: string } }[] }>('pods', '-l', 'walkeeper.io/safekeeper=main');
    return pods.items.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)).map((p) => p.status.podIP);
  };
  const tenantsOn = async (ip: string): Promise<{ tenant_id: string; timelines: string[] }[]> => {
    const r = await fetch(`http://${ip}:7676/v1/tenants`, { signal: AbortSignal.timeout(3000) });
    return ((await r.json()) as { tenants: { tenant_id: string; timelines: string[] }[] }).tenants;
  };
  const tenantStatus = async (name: string) => (await getJson('tenant', name)).status as TenantStatusView;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walkeeper-operator-it-'));
    env = await startOperatorEnv({ stateDir: dir, resyncPeriod: RESYNC });
  }, 60_000);

  afterAll(async () => {
    if (env && failed) console.log(`operator log (tail):\n${fs.readFileSync(env.operatorLog, 'utf8').slice(-6000)}`);
    await env?.stop();
    if (dir && !failed) fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const step = <T>(f: () => Promise<T>) => async () => {
    try {
      return await f();
    } catch (e) {
      failed = true;
      throw e;
    }
  };

  it('turns a Safekeeper into a StatefulSet, two Services, a PodDisruptionBudget and a ConfigMap, and its pods run real safekeepers', step(async () => {
    const r = await env.apply(safekeeperYaml('main', 3));
    expect(r).toMatchObject({ code: 0, stdout: expect.stringContaining('safekeeper.walkeeper.io/main created') });
    await env.kubectlOk(['wait', '--for=condition=Available', 'safekeeper/main', '--timeout=60s'], { timeoutMs: 70_000 });

    const sk = await getJson('safekeeper', 'main');
    const sts = await getJson<Obj & { spec: { replicas: number; updateStrategy: { type: string }; podManagementPolicy: string; serviceName: string; volumeClaimTemplates: { metadata: { name: string }; spec: { resources: { requests: { storage: string } } } }[]; template: { spec: { containers: { command: string[] }[] } } } }>('statefulset', 'main');
    expect(sts.spec).toMatchObject({ replicas: 3, updateStrategy: { type: 'OnDelete' }, podManagementPolicy: 'Parallel', serviceName: 'main-headless' });
    expect(sts.spec.volumeClaimTemplates[0]).toMatchObject({ metadata: { name: 'data' }, spec: { resources: { requests: { storage: '1Gi' } } } });
    expect(sts.spec.template.spec.containers[0]!.command.slice(0, 2)).toEqual(['walkeeper', 'safekeeper']);
    expect(sts.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'Safekeeper', name: 'main', controller: true })]);
    expect(sts.metadata.ownerReferences![0]).toMatchObject({ uid: sk.metadata.uid });

    const headless = await getJson<Obj & { spec: { clusterIP: string; publishNotReadyAddresses: boolean; ports: { port: number }[] } }>('service', 'main-headless');
    expect(headless.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
    expect(headless.spec.ports.map((p) => p.port)).toEqual([5454, 7676]);
    const client = await getJson<Obj & { spec: { clusterIP: string; type: string } }>('service', 'main');
    expect(client.spec.type).toBe('ClusterIP');
    expect(client.spec.clusterIP).toMatch(/^127\.20\./);

    const pdb = await getJson<Obj & { spec: { maxUnavailable: number; selector: { matchLabels: Record<string, string> } } }>('pdb', 'main');
    expect(pdb.spec.maxUnavailable).toBe(1);
    expect(pdb.spec.selector.matchLabels).toMatchObject({ 'app.kubernetes.io/instance': 'main', 'app.kubernetes.io/component': 'safekeeper' });

    const cm = await getJson('configmap', 'main-config');
    expect(cm.data!.WALKEEPER_SAFEKEEPERS).toBe([0, 1, 2].map((i) => `main-${i}.main-headless.default.svc.cluster.local:5454`).join(','));

    // Every member is a real safekeeper on its pod's address, with its own id.
    const ips = await memberIps();
    expect(ips).toHaveLength(3);
    for (const [i, ip] of ips.entries()) {
      const st = (await (await fetch(`http://${ip}:7676/v1/status`)).json()) as { id: number };
      expect(st.id).toBe(i + 1);
    }
    // Available means a quorum (2 of 3) is ready; the third member may report a moment later.
    const full = await waitFor('all three members ready in status', 30_000, async () => {
      const st = (await getJson('safekeeper', 'main')).status as { readyReplicas?: number } | undefined;
      return st?.readyReplicas === 3 ? st : undefined;
    });
    expect(full).toMatchObject({ replicas: 3, readyReplicas: 3, quorum: { size: 3, required: 2, available: 3, status: 'Healthy' } });
  }));

  it('registers a Tenant and its timeline on every safekeeper and reports Registered with the ids', step(async () => {
    expect((await env.apply(tenantYaml('alpha'))).code).toBe(0);
    const wait = await env.kubectl(['wait', '--for=condition=Registered', 'tenant/alpha', '--timeout=60s'], { timeoutMs: 70_000 });
    expect(wait).toMatchObject({ code: 0, stdout: 'tenant.walkeeper.io/alpha condition met\n' });

    const status = await tenantStatus('alpha');
    expect(status.tenantId).toMatch(/^[0-9a-f]{32}$/);
    expect(status.timelineId).toMatch(/^[0-9a-f]{32}$/);
    expect(status.members).toEqual([0, 1, 2].map((i) => expect.objectContaining({ name: `main-${i}`, registered: true })));
    for (const ip of await memberIps()) {
      expect(await tenantsOn(ip)).toContainEqual({ tenant_id: status.tenantId, timelines: [status.timelineId] });
    }
    await env.kubectlOk(['wait', '--for=condition=Ready', 'tenant/alpha', '--timeout=30s'], { timeoutMs: 40_000 });
    const t = await getJson('tenant', 'alpha');
    expect(t.metadata.finalizers).toContain('walkeeper.io/tenant-cleanup');
  }));

  it('prints the printer columns of safekeepers and tenants filled in', step(async () => {
    const sks = (await env.kubectlOk(['get', 'safekeepers'])).trim().split('\n');
    expect(sks[0]).toMatch(/^NAME\s+REPLICAS\s+READY\s+QUORUM\s+AGE$/);
    expect(sks[1]).toMatch(/^main\s+3\s+3\s+Healthy\s+\d+s$/);

    const { tenantId } = await tenantStatus('alpha');
    const tenants = (await env.kubectlOk(['get', 'tenants'])).trim().split('\n');
    expect(tenants[0]).toMatch(/^NAME\s+TENANT ID\s+SAFEKEEPER\s+QUORUM\s+COMMIT LSN\s+READY\s+AGE$/);
    expect(tenants.find((l) => l.startsWith('alpha '))).toMatch(new RegExp(`^alpha\\s+${tenantId}\\s+main\\s+True\\s+0/0\\s+True\\s+\\d+s$`));
  }));

  it('gives a Tenant with compute its credentials Secret, Service and StatefulSet', step(async () => {
    expect((await env.apply(tenantYaml('beta', { compute: true }))).code).toBe(0);
    await env.kubectlOk(['wait', '--for=condition=Registered', 'tenant/beta', '--timeout=60s'], { timeoutMs: 70_000 });
    const secret = await waitFor('Secret beta-credentials', 20_000, async () => (await env.kubectl(['get', 'secret', 'beta-credentials', '-o', 'json'])).stdout || undefined);
    const data = (JSON.parse(secret) as Obj).data!;
    expect(Object.keys(data).sort()).toEqual(['dbname', 'host', 'password', 'port', 'uri', 'username']);
    const decoded = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
    expect(decoded.port).toBe('5432');
    expect(decoded.host).toBe('beta-compute.default.svc.cluster.local');
    expect(decoded.uri).toBe(`postgresql://${decoded.username}:${decoded.password}@${decoded.host}:5432/${decoded.dbname}`);
    const svc = await waitFor('Service beta-compute', 20_000, async () => JSON.parse((await env.kubectl(['get', 'service', 'beta-compute', '-o', 'json'])).stdout || 'null') as (Obj & { spec: { ports: { port: number }[] } }) | null);
    expect(svc!.spec.ports.map((p) => p.port)).toEqual([5432]);
    const sts = await waitFor('StatefulSet beta-compute', 20_000, async () => JSON.parse((await env.kubectl(['get', 'statefulset', 'beta-compute', '-o', 'json'])).stdout || 'null') as (Obj & { spec: { template: { spec: { containers: { name: string; image: string }[] } } } }) | null);
    expect(sts!.spec.template.spec.containers.map((c) => c.image)).toEqual(expect.arrayContaining(['postgres:16', 'ghcr.io/walkeeper/walkeeper:dev']));
    // PostgreSQL cannot run here, so the compute is reported as starting, not ready.
    const status = await waitFor('ComputeReady reported', 20_000, async () => {
      const s = await tenantStatus('beta');
      return s.conditions?.find((c) => c.type === 'ComputeReady')?.reason === 'ComputeStarting' ? s : undefined;
    });
    expect(condition(status, 'ComputeReady')).toBe('False');
    expect(condition(status, 'Registered')).toBe('True');
  }));

  it('refuses invalid resources at kubectl apply with a message naming the field', step(async () => {
    const even = await env.apply(safekeeperYaml('even', 4));
    expect(even.code).not.toBe(0);
    expect(even.stderr).toContain('spec.replicas');

    const badId = await env.apply(tenantYaml('bad-id', { tenantId: 'xyz' }));
    expect(badId.code).not.toBe(0);
    expect(badId.stderr).toContain('spec.tenantId');

    const first = 'aa'.repeat(16);
    expect((await env.apply(tenantYaml('pinned', { tenantId: first }))).code).toBe(0);
    const changed = await env.apply(tenantYaml('pinned', { tenantId: 'bb'.repeat(16) }));
    expect(changed.code).not.toBe(0);
    expect(changed.stderr).toContain('tenantId is immutable');
    expect(changed.stderr).toContain('spec');
    await env.kubectlOk(['wait', '--for=condition=Registered', 'tenant/pinned', '--timeout=60s'], { timeoutMs: 70_000 });
    expect((await tenantStatus('pinned')).tenantId).toBe(first);

    // spec.bootstrap.recovery: exactly one target, a well-formed one, and fixed at creation
    const both = await env.apply(tenantYaml('fork-both', { extra: recoveryYaml('      targetTime: "2026-12-04T03:00:00Z"\n      targetLSN: 0/3000000\n') }));
    expect([both.code === 0, both.stderr]).toEqual([false, expect.stringContaining('give exactly one of targetTime and targetLSN')]);
    const none = await env.apply(tenantYaml('fork-none', { extra: recoveryYaml('') }));
    expect([none.code === 0, none.stderr]).toEqual([false, expect.stringContaining('give exactly one of targetTime and targetLSN')]);
    const badLsn = await env.apply(tenantYaml('fork-lsn', { extra: recoveryYaml('      targetLSN: "3000000"\n') }));
    expect([badLsn.code === 0, badLsn.stderr]).toEqual([false, expect.stringContaining('spec.bootstrap.recovery.targetLSN')]);
    const badTime = await env.apply(tenantYaml('fork-time', { extra: recoveryYaml('      targetTime: yesterday\n') }));
    expect([badTime.code === 0, badTime.stderr]).toEqual([false, expect.stringContaining('spec.bootstrap.recovery.targetTime')]);
    const added = await env.apply(tenantYaml('pinned', { tenantId: first, extra: recoveryYaml('      targetLSN: 0/3000000\n') }));
    expect([added.code === 0, added.stderr]).toEqual([false, expect.stringContaining('bootstrap is immutable')]);
    for (const name of ['fork-both', 'fork-none', 'fork-lsn', 'fork-time']) expect((await env.kubectl(['get', 'tenant', name])).code).not.toBe(0);
  }));

  it('reconciles 20 tenants to Registered on all three safekeepers', step(async () => {
    const n = 20;
    const docs = Array.from({ length: n }, (_, i) => tenantYaml(`bulk-${String(i).padStart(3, '0')}`)).join('---\n');
    env.harness.resetRequests();
    const started = Date.now();
    expect((await env.apply(docs)).code).toBe(0);
    await waitFor(`${n} tenants Registered`, 90_000, async () => {
      const list = await getJson<{ items: Obj[] }>('tenants');
      const bulk = list.items.filter((t) => t.metadata.name.startsWith('bulk-'));
      return bulk.length === n && bulk.every((t) => condition(t.status as TenantStatusView, 'Registered') === 'True');
    }, 250);
    const elapsed = Date.now() - started;
    const ops = env.operatorRequests();
    const total = Object.values(ops).reduce((a, b) => a + b, 0);
    console.log(`20 tenants Registered in ${elapsed} ms; operator API requests ${total} (${(total / n).toFixed(1)} per tenant): ${JSON.stringify(ops)}`);
    expect(elapsed).toBeLessThan(60_000);
    const ips = await memberIps();
    const ids = new Set((await getJson<{ items: Obj[] }>('tenants')).items.map((t) => (t.status as TenantStatusView).tenantId));
    for (const ip of ips) {
      const on = new Set((await tenantsOn(ip)).map((t) => t.tenant_id));
      for (const id of ids) expect(on.has(id!)).toBe(true);
    }
  }), 120_000);

  it('issues zero writes on an idle resync once everything is Ready and Registered', step(async () => {
    // Settle: every tenant registered and nothing written for two resync periods in a row.
    await waitFor('a quiet period', 60_000, async () => {
      env.harness.resetRequests();
      await new Promise((r) => setTimeout(r, 2 * RESYNC_MS));
      const writes = env.operatorWrites();
      if (Object.keys(writes).length > 0) console.log(`settling: operator writes ${JSON.stringify(writes)}`);
      return Object.keys(writes).length === 0;
    }, 0);
    env.harness.resetRequests();
    await new Promise((r) => setTimeout(r, RESYNC_MS * 2 + 500));
    const ops = env.operatorRequests();
    const reads = Object.entries(ops).filter(([k]) => k.startsWith('get ') || k.startsWith('list ')).reduce((a, [, v]) => a + v, 0);
    console.log(`idle resync (${RESYNC_MS * 2 + 500} ms): operator requests ${JSON.stringify(ops)}`);
    expect(reads).toBeGreaterThan(0); // the resync really ran (reads of tenants, safekeepers, pods)
    expect(ops['get tenants.walkeeper.io']).toBeGreaterThan(0);
    expect(env.operatorWrites()).toEqual({});
  }), 120_000);

  it('reports an unreachable member of a cluster without timelines as not caught up', step(async () => {
    // A one-member cluster with no tenant: the member reports no timelines at all, so "caught up on
    // every timeline" is vacuously true unless reachability counts.
    expect((await env.apply(safekeeperYaml('solo', 1))).code).toBe(0);
    await env.kubectlOk(['wait', '--for=condition=Available', 'safekeeper/solo', '--timeout=60s'], { timeoutMs: 70_000 });
    type Member = { name: string; ready: boolean; timelines: number; caughtUp: boolean; lastError?: string };
    const members = async () => ((await getJson('safekeeper', 'solo')).status as { members?: Member[] }).members ?? [];
    expect(await members()).toEqual([expect.objectContaining({ name: 'solo-0', ready: true, timelines: 0, caughtUp: true })]);
    // Freeze the safekeeper process: the pod stays, its HTTP API stops answering.
    const pids = env.runtime.pids('default', 'solo-0');
    expect(pids).toHaveLength(1);
    process.kill(pids[0]!, 'SIGSTOP');
    try {
      const seen = await waitFor('solo-0 reported unreachable', 60_000, async () => {
        const m = (await members())[0];
        return m && !m.ready && m.lastError ? m : undefined;
      }, 250);
      console.log(`unreachable member: ${JSON.stringify(seen)}`);
      expect(seen).toMatchObject({ timelines: 0, caughtUp: false });
    } finally {
      process.kill(pids[0]!, 'SIGCONT');
    }
    await waitFor('solo-0 back', 60_000, async () => (await members())[0]?.caughtUp === true, 250);
    await env.kubectlOk(['delete', 'safekeeper', 'solo', '--wait=false']);
  }), 150_000);

  it('deletes a Tenant only after the finalizer removed it from every safekeeper', step(async () => {
    const { tenantId } = await tenantStatus('alpha');
    const ips = await memberIps();
    for (const ip of ips) expect((await tenantsOn(ip)).map((t) => t.tenant_id)).toContain(tenantId);

    // Observe both sides while the deletion runs: the Tenant must never be gone while a member still has the data.
    const observations: { tenantExists: boolean; onMembers: number }[] = [];
    const r = await env.kubectl(['delete', 'tenant', 'alpha', '--wait=false']);
    expect(r.code).toBe(0);
    await waitFor('tenant alpha to disappear', 30_000, async () => {
      const got = await env.kubectl(['get', 'tenant', 'alpha', '-o', 'json']);
      const exists = got.code === 0;
      if (exists) expect((JSON.parse(got.stdout) as Obj).metadata.deletionTimestamp).toBeDefined();
      let onMembers = 0;
      for (const ip of ips) if ((await tenantsOn(ip)).some((t) => t.tenant_id === tenantId)) onMembers++;
      observations.push({ tenantExists: exists, onMembers });
      return !exists;
    }, 20);
    expect(observations.filter((o) => !o.tenantExists && o.onMembers > 0)).toEqual([]);
    for (const ip of ips) expect((await tenantsOn(ip)).map((t) => t.tenant_id)).not.toContain(tenantId);
    const events = await env.kubectlOk(['get', 'events', '--field-selector', 'involvedObject.name=alpha', '-o', 'json']);
    expect((JSON.parse(events) as { items: { reason: string }[] }).items.map((e) => e.reason)).toContain('TenantDeleted');
    // The other tenants are untouched.
    const beta = await tenantStatus('beta');
    for (const ip of ips) expect((await tenantsOn(ip)).map((t) => t.tenant_id)).toContain(beta.tenantId);
  }), 60_000);
});
