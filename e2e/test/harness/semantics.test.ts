// API semantics an operator depends on: optimistic concurrency, watches, generation, status,
// finalizers, garbage collection, request counting.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startHarness, type Harness } from '../../src/harness/index.js';
import { req, until, watchEvents, widgetCrd } from './helpers.js';

type Obj = { metadata: { name: string; resourceVersion: string; generation?: number; uid: string; deletionTimestamp?: string; finalizers?: string[] }; spec?: Record<string, unknown>; status?: Record<string, unknown>; data?: Record<string, string> };

let h: Harness;
let dir: string;
const W = '/apis/test.io/v1/namespaces/default/widgets';
const CM = '/api/v1/namespaces/default/configmaps';

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'harness-sem-'));
  h = await startHarness({ stateDir: dir, watchHistory: 50 });
  expect((await req(h, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', widgetCrd)).status).toBe(201);
});
afterAll(async () => {
  await h?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a stale update is refused with 409 Conflict', async () => {
  const c = await req<Obj>(h, 'POST', CM, { metadata: { name: 'stale' }, data: { a: '1' } });
  const stale = c.body;
  expect((await req(h, 'PUT', `${CM}/stale`, { ...stale, data: { a: '2' } })).status).toBe(200);
  const r = await req(h, 'PUT', `${CM}/stale`, { ...stale, data: { a: '3' } });
  expect(r.status).toBe(409);
  expect(r.body).toMatchObject({ kind: 'Status', reason: 'Conflict', code: 409, message: 'Operation cannot be fulfilled on configmaps "stale": the object has been modified; please apply your changes to the latest version and try again' });
});

test('watches resume from a resourceVersion and answer 410 Expired when it is too old', async () => {
  const c = await req<Obj>(h, 'POST', CM, { metadata: { name: 'watched' }, data: { v: '0' } });
  const rv = c.body.metadata.resourceVersion;
  await req(h, 'PATCH', `${CM}/watched`, { data: { v: '1' } }, 'application/merge-patch+json');
  await req(h, 'PATCH', `${CM}/watched`, { data: { v: '2' } }, 'application/merge-patch+json');
  const evs = await watchEvents(h, `${CM}?watch=true&resourceVersion=${rv}&fieldSelector=metadata.name%3Dwatched`, 2);
  expect(evs.map((e) => [e.type, (e.object as Obj).data?.v])).toEqual([['MODIFIED', '1'], ['MODIFIED', '2']]);
  // the harness keeps 50 events: push the old version out of the window
  for (let i = 0; i < 60; i++) await req(h, 'PATCH', `${CM}/watched`, { data: { v: `x${i}` } }, 'application/merge-patch+json');
  const gone = await watchEvents(h, `${CM}?watch=true&resourceVersion=${rv}`, 1);
  expect(gone[0]).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
  // a watch without resourceVersion starts with synthetic ADDED events
  const fresh = await watchEvents(h, `${CM}?watch=true&labelSelector=&fieldSelector=metadata.name%3Dwatched`, 1);
  expect(fresh[0]?.type).toBe('ADDED');
});

test('generation moves on spec changes only; the status subresource is separate', async () => {
  const c = await req<Obj>(h, 'POST', W, { apiVersion: 'test.io/v1', kind: 'Widget', metadata: { name: 'gen' }, spec: { mode: 'a' }, status: { phase: 'ignored' } });
  expect(c.status).toBe(201);
  expect(c.body.metadata.generation).toBe(1);
  expect(c.body.spec).toEqual({ mode: 'a', size: 3 }); // defaulted
  expect(c.body.status).toBeUndefined(); // status is not set on create
  const labels = await req<Obj>(h, 'PATCH', `${W}/gen`, { metadata: { labels: { x: 'y' } } }, 'application/merge-patch+json');
  expect(labels.body.metadata.generation).toBe(1);
  const viaMain = await req<Obj>(h, 'PATCH', `${W}/gen`, { status: { phase: 'main' } }, 'application/merge-patch+json');
  expect(viaMain.body.status).toBeUndefined();
  expect(viaMain.body.metadata.resourceVersion).toBe(labels.body.metadata.resourceVersion); // no-op: not written
  const st = await req<Obj>(h, 'PATCH', `${W}/gen/status`, { spec: { size: 5 }, status: { phase: 'Ready', observedGeneration: 1 } }, 'application/merge-patch+json');
  expect(st.body.status).toEqual({ phase: 'Ready', observedGeneration: 1 });
  expect(st.body.spec).toEqual({ mode: 'a', size: 3 }); // status endpoint ignores spec
  expect(st.body.metadata.generation).toBe(1);
  const spec = await req<Obj>(h, 'PATCH', `${W}/gen`, { spec: { size: 4 } }, 'application/merge-patch+json');
  expect(spec.body.metadata.generation).toBe(2);
  const bad = await req(h, 'PATCH', `${W}/gen`, { spec: { mode: 'A1' } }, 'application/merge-patch+json');
  expect(bad.status).toBe(422);
  expect(bad.body.message).toBe('Widget.test.io "gen" is invalid: spec.mode: Invalid value: "A1": spec.mode in body should match \'^[a-z]+$\'');
  const smp = await req(h, 'PATCH', `${W}/gen`, { spec: { size: 4 } }, 'application/strategic-merge-patch+json');
  expect(smp.status).toBe(415);
});

test('finalizers hold a deleted object until they are removed', async () => {
  await req(h, 'POST', W, { apiVersion: 'test.io/v1', kind: 'Widget', metadata: { name: 'fin', finalizers: ['test.io/hold'] }, spec: {} });
  const d = await req<Obj>(h, 'DELETE', `${W}/fin`);
  expect(d.status).toBe(200);
  const held = await req<Obj>(h, 'GET', `${W}/fin`);
  expect(held.body.metadata.deletionTimestamp).toBeDefined();
  const add = await req(h, 'PATCH', `${W}/fin`, { metadata: { finalizers: ['test.io/hold', 'test.io/other'] } }, 'application/merge-patch+json');
  expect(add.status).toBe(422); // no new finalizers while deleting
  expect((await req(h, 'PATCH', `${W}/fin`, { metadata: { finalizers: null } }, 'application/merge-patch+json')).status).toBe(200);
  expect((await req(h, 'GET', `${W}/fin`)).status).toBe(404);
});

test('dependents are garbage collected when their owner goes (background and foreground)', async () => {
  const owner = (await req<Obj>(h, 'POST', W, { apiVersion: 'test.io/v1', kind: 'Widget', metadata: { name: 'owner' }, spec: {} })).body;
  const ref = { apiVersion: 'test.io/v1', kind: 'Widget', name: 'owner', uid: owner.metadata.uid, controller: true, blockOwnerDeletion: true };
  await req(h, 'POST', CM, { metadata: { name: 'dep', ownerReferences: [ref] } });
  await req(h, 'DELETE', `${W}/owner`);
  await until(async () => (await req(h, 'GET', `${CM}/dep`)).status === 404, 5000, 'dependent collected');

  const fg = (await req<Obj>(h, 'POST', W, { apiVersion: 'test.io/v1', kind: 'Widget', metadata: { name: 'fg' }, spec: {} })).body;
  await req(h, 'POST', CM, { metadata: { name: 'fgdep', finalizers: ['test.io/slow'], ownerReferences: [{ ...ref, name: 'fg', uid: fg.metadata.uid }] } });
  await req(h, 'DELETE', `${W}/fg`, { propagationPolicy: 'Foreground' });
  await until(async () => (await req<Obj>(h, 'GET', `${CM}/fgdep`)).body.metadata.deletionTimestamp, 5000, 'dependent marked');
  expect((await req<Obj>(h, 'GET', `${W}/fg`)).body.metadata.finalizers).toContain('foregroundDeletion');
  await req(h, 'PATCH', `${CM}/fgdep`, { metadata: { finalizers: null } }, 'application/merge-patch+json');
  await until(async () => (await req(h, 'GET', `${W}/fg`)).status === 404, 5000, 'owner gone after dependents');
});

test('requests are counted by verb and resource', async () => {
  h.resetRequests();
  await req(h, 'GET', CM);
  await req(h, 'GET', `${W}/gen`);
  const c = h.requests();
  expect(c.byVerbResource).toEqual({ 'list configmaps': 1, 'get widgets.test.io': 1 });
  expect(c.writes).toBe(0);
  const viaHttp = await req<{ total: number }>(h, 'GET', '/_harness/requests');
  expect(viaHttp.body.total).toBe(2);
});
