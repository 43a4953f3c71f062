// The StatefulSet controller: ordinals, PVC directories, loopback pod IPs, OnDelete vs RollingUpdate.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HOST_PATH_ANNOTATION, NullRuntime, startHarness, type Harness } from '../../src/harness/index.js';
import { req, until } from './helpers.js';

type Pod = { metadata: { name: string; uid: string; labels: Record<string, string>; annotations?: Record<string, string> }; status?: { podIP?: string; phase?: string }; spec: { containers: { image: string }[] } };
type Sts = { status?: { replicas?: number; readyReplicas?: number; updatedReplicas?: number; currentRevision?: string; updateRevision?: string; observedGeneration?: number } };

let h: Harness;
let dir: string;
const NS = '/api/v1/namespaces/default';
const STS = '/apis/apps/v1/namespaces/default/statefulsets';

function sts(name: string, strategy: 'OnDelete' | 'RollingUpdate', policy = 'Parallel') {
  return {
    apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name },
    spec: {
      replicas: 3, serviceName: name, podManagementPolicy: policy, updateStrategy: { type: strategy },
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'c', image: 'img:1' }] } },
      volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } }],
    },
  };
}

async function pods(app: string): Promise<Pod[]> {
  return (await req<{ items: Pod[] }>(h, 'GET', `${NS}/pods?labelSelector=app%3D${app}`)).body.items;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'harness-sts-'));
  h = await startHarness({ stateDir: dir, runtime: new NullRuntime(true) });
});
afterAll(async () => {
  await h?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('pods get ordinals, loopback IPs and PVCs backed by directories', async () => {
  expect((await req(h, 'POST', STS, sts('ord', 'RollingUpdate', 'OrderedReady'))).status).toBe(201);
  const ps = await until(async () => { const p = await pods('ord'); return p.length === 3 && p.every((x) => x.status?.podIP) && p; }, 10_000, '3 pods');
  expect(ps.map((p) => p.metadata.name)).toEqual(['ord-0', 'ord-1', 'ord-2']);
  for (const p of ps) expect(p.status!.podIP).toMatch(/^127\.\d+\.\d+\.\d+$/);
  expect(new Set(ps.map((p) => p.status!.podIP)).size).toBe(3);
  const pvc = (await req<{ metadata: { annotations: Record<string, string> }; status: { phase: string } }>(h, 'GET', `${NS}/persistentvolumeclaims/data-ord-1`)).body;
  expect(pvc.status.phase).toBe('Bound');
  expect(fs.statSync(pvc.metadata.annotations[HOST_PATH_ANNOTATION]!).isDirectory()).toBe(true);
  const st = await until(async () => { const s = (await req<Sts>(h, 'GET', `${STS}/ord`)).body; return s.status?.readyReplicas === 3 && s; }, 10_000, 'ready');
  expect(st.status).toMatchObject({ replicas: 3, readyReplicas: 3, updatedReplicas: 3, observedGeneration: 1 });
  const svc = await req<{ spec: { clusterIP: string } }>(h, 'POST', `${NS}/services`, { metadata: { name: 'ord' }, spec: { selector: { app: 'ord' }, ports: [{ port: 5432 }] } });
  expect(svc.body.spec.clusterIP).toMatch(/^127\./);
});

test('OnDelete: a template change only reaches pods that are deleted', async () => {
  await req(h, 'POST', STS, sts('od', 'OnDelete'));
  await until(async () => (await req<Sts>(h, 'GET', `${STS}/od`)).body.status?.readyReplicas === 3, 10_000, 'ready');
  const before = await pods('od');
  await req(h, 'PATCH', `${STS}/od`, { spec: { template: { spec: { containers: [{ name: 'c', image: 'img:2' }] } } } }, 'application/strategic-merge-patch+json');
  const s = await until(async () => { const x = (await req<Sts>(h, 'GET', `${STS}/od`)).body; return x.status?.observedGeneration === 2 && x; }, 5000, 'observed');
  expect(s.status!.updateRevision).not.toBe(s.status!.currentRevision);
  await new Promise((r) => setTimeout(r, 1500));
  const same = await pods('od');
  expect(same.map((p) => p.metadata.uid)).toEqual(before.map((p) => p.metadata.uid));
  expect(same.every((p) => p.spec.containers[0]!.image === 'img:1')).toBe(true);
  await req(h, 'DELETE', `${NS}/pods/od-1`);
  const after = await until(async () => { const p = await pods('od'); const p1 = p.find((x) => x.metadata.name === 'od-1'); return p1 && p1.metadata.uid !== before[1]!.metadata.uid && p; }, 10_000, 'od-1 recreated');
  expect(after.map((p) => p.spec.containers[0]!.image)).toEqual(['img:1', 'img:2', 'img:1']);
  expect(after[1]!.metadata.labels['controller-revision-hash']).toBe(s.status!.updateRevision);
});

test('RollingUpdate: pods are replaced one at a time, highest ordinal first', async () => {
  await req(h, 'POST', STS, sts('ru', 'RollingUpdate'));
  await until(async () => (await req<Sts>(h, 'GET', `${STS}/ru`)).body.status?.readyReplicas === 3, 10_000, 'ready');
  const order: string[] = [];
  const unsub = h.api.store.subscribe((e) => {
    const p = e.object as unknown as Pod;
    if (e.key === '/pods' && e.type === 'ADDED' && p.metadata.labels.app === 'ru' && p.spec.containers[0]!.image === 'img:2') order.push(p.metadata.name);
  });
  await req(h, 'PATCH', `${STS}/ru`, { spec: { template: { spec: { containers: [{ name: 'c', image: 'img:2' }] } } } }, 'application/strategic-merge-patch+json');
  await until(async () => order.length === 3, 20_000, 'all updated');
  unsub();
  expect(order).toEqual(['ru-2', 'ru-1', 'ru-0']);
  const s = await until(async () => { const x = (await req<Sts>(h, 'GET', `${STS}/ru`)).body; return x.status?.currentRevision === x.status?.updateRevision && x.status?.readyReplicas === 3 && x; }, 10_000, 'rollout complete');
  expect(s.status).toMatchObject({ replicas: 3, updatedReplicas: 3 });
});

test('OrderedReady waits for readiness; scale down removes the highest ordinal', async () => {
  const rt = h.runtime as NullRuntime;
  await req(h, 'POST', `${NS}/configmaps`, { metadata: { name: 'marker' } });
  await req(h, 'PATCH', `${STS}/ord/scale`, { spec: { replicas: 2 } }, 'application/merge-patch+json');
  await until(async () => (await pods('ord')).length === 2, 10_000, 'scaled down');
  expect((await pods('ord')).map((p) => p.metadata.name)).toEqual(['ord-0', 'ord-1']);
  rt.setReady('default', 'ord-1', false);
  await req(h, 'PATCH', `${STS}/ord`, { spec: { replicas: 3 } }, 'application/merge-patch+json');
  await new Promise((r) => setTimeout(r, 1200));
  expect((await pods('ord')).length).toBe(2); // ord-1 is not ready: ord-2 waits
  rt.setReady('default', 'ord-1', true);
  await until(async () => (await pods('ord')).length === 3, 10_000, 'ord-2 created');
});
