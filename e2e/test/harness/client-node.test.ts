// The operator's client library (@kubernetes/client-node 1.4) works against the harness unchanged.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, Watch, setHeaderOptions } from '@kubernetes/client-node';
import { startHarness, type Harness } from '../../src/harness/index.js';
import { req, until, widgetCrd } from './helpers.js';

let h: Harness;
let dir: string;
let kc: KubeConfig;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'harness-client-'));
  h = await startHarness({ stateDir: dir });
  kc = new KubeConfig();
  kc.loadFromFile(h.kubeconfigPath);
  await req(h, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', widgetCrd);
});
afterAll(async () => {
  await h?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('CustomObjectsApi and Watch', async () => {
  const co = kc.makeApiClient(CustomObjectsApi);
  const events: [string, string, unknown][] = [];
  const w = new Watch(kc);
  const ctl = await w.watch('/apis/test.io/v1/namespaces/default/widgets', {}, (type, obj: { metadata: { name: string }; spec?: { size?: number } }) => {
    events.push([type, obj.metadata.name, obj.spec?.size]);
  }, () => {});
  const created = (await co.createNamespacedCustomObject({ group: 'test.io', version: 'v1', namespace: 'default', plural: 'widgets', body: { apiVersion: 'test.io/v1', kind: 'Widget', metadata: { name: 'cn' }, spec: {} } })) as { spec: { size: number } };
  expect(created.spec.size).toBe(3);
  await co.patchNamespacedCustomObject({ group: 'test.io', version: 'v1', namespace: 'default', plural: 'widgets', name: 'cn', body: { spec: { size: 4 } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  await co.patchNamespacedCustomObjectStatus({ group: 'test.io', version: 'v1', namespace: 'default', plural: 'widgets', name: 'cn', body: { status: { phase: 'Ready' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  const got = (await co.getNamespacedCustomObject({ group: 'test.io', version: 'v1', namespace: 'default', plural: 'widgets', name: 'cn' })) as { spec: { size: number }; status: { phase: string }; metadata: { generation: number } };
  expect(got).toMatchObject({ spec: { size: 4 }, status: { phase: 'Ready' }, metadata: { generation: 2 } });
  const list = (await co.listNamespacedCustomObject({ group: 'test.io', version: 'v1', namespace: 'default', plural: 'widgets' })) as { items: unknown[] };
  expect(list.items).toHaveLength(1);
  await co.deleteNamespacedCustomObject({ group: 'test.io', version: 'v1', namespace: 'default', plural: 'widgets', name: 'cn' });
  await until(async () => events.length >= 4, 5000, 'watch events');
  ctl.abort();
  expect(events).toEqual([['ADDED', 'cn', 3], ['MODIFIED', 'cn', 4], ['MODIFIED', 'cn', 4], ['DELETED', 'cn', 4]]);
  let status = 0;
  try {
    await co.getNamespacedCustomObject({ group: 'test.io', version: 'v1', namespace: 'default', plural: 'widgets', name: 'cn' });
  } catch (e) {
    status = (e as { code?: number }).code ?? 0;
  }
  expect(status).toBe(404);
});

test('CoreV1Api typed calls', async () => {
  const core = kc.makeApiClient(CoreV1Api);
  const ns = await core.listNamespace();
  expect(ns.items.map((n) => n.metadata?.name)).toEqual(expect.arrayContaining(['default', 'kube-system']));
  await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'cm1' }, data: { a: 'b' } } });
  const cm = await core.readNamespacedConfigMap({ namespace: 'default', name: 'cm1' });
  expect(cm.data).toEqual({ a: 'b' });
  const stale = { ...cm, data: { a: 'c' } };
  await core.replaceNamespacedConfigMap({ namespace: 'default', name: 'cm1', body: stale });
  await expect(core.replaceNamespacedConfigMap({ namespace: 'default', name: 'cm1', body: { ...cm, data: { a: 'd' } } })).rejects.toMatchObject({ code: 409 });
});
