// Init containers in the process runtime, as the kubelet runs them: one at a time, in order, each
// to exit 0 before the next and before any container starts; a failing one is restarted with
// back-off and holds the pod Pending (Initialized False, containers waiting PodInitializing).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startHarness, type Harness } from '../../src/harness/index.js';
import { ProcessRuntime } from '../../src/runtime/process-runtime.js';
import { req, until } from './helpers.js';

type Status = {
  phase?: string;
  conditions?: { type: string; status: string }[];
  initContainerStatuses?: { name: string; restartCount: number; ready: boolean; state: { terminated?: { exitCode: number; reason: string }; waiting?: { reason: string } } }[];
  containerStatuses?: { name: string; ready: boolean; state: { running?: unknown; waiting?: { reason: string } } }[];
};

let h: Harness;
let runtime: ProcessRuntime;
let dir: string;
let kubeconfig: string;
const PODS = '/api/v1/namespaces/default/pods';

function pod(name: string, init: string[][]) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name },
    spec: {
      initContainers: init.map((command, i) => ({ name: `init-${i}`, image: 'walkeeper', command })),
      containers: [{
        name: 'safekeeper',
        image: 'walkeeper',
        command: ['walkeeper', 'safekeeper', '--id', '1', '--datadir', '/data', '--listen-pg', '0.0.0.0:5454', '--listen-http', '0.0.0.0:7676'],
        readinessProbe: { httpGet: { path: '/readyz', port: 7676 }, periodSeconds: 1 },
        volumeMounts: [{ name: 'data', mountPath: '/data' }],
      }],
      volumes: [{ name: 'data', emptyDir: {} }],
    },
  };
}

const status = async (name: string) => (await req<{ status?: Status }>(h, 'GET', `${PODS}/${name}`)).body.status ?? {};
const condition = (s: Status, type: string) => s.conditions?.find((c) => c.type === type)?.status;
// async: the harness answers from this process
const kubectl = async (...args: string[]) => (await promisify(execFile)('kubectl', ['--kubeconfig', kubeconfig, ...args], { encoding: 'utf8', timeout: 30_000 })).stdout;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'harness-init-'));
  runtime = new ProcessRuntime();
  h = await startHarness({ stateDir: dir, runtime });
  runtime.attach(h.api);
  kubeconfig = h.kubeconfigPath;
});
afterAll(async () => {
  await h?.stop();
  await runtime?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('init containers run in order to completion before the container starts', async () => {
  expect((await req(h, 'POST', PODS, pod('ok', [['walkeeper', '--help'], ['walkeeper', 'safekeeper', '--help']]))).status).toBe(201);
  const s = await until(async () => {
    const st = await status('ok');
    return st.containerStatuses?.[0]?.ready ? st : undefined;
  }, 60_000, 'the container to be ready');
  expect(s.initContainerStatuses?.map((c) => [c.name, c.state.terminated?.exitCode, c.state.terminated?.reason, c.ready])).toEqual([['init-0', 0, 'Completed', true], ['init-1', 0, 'Completed', true]]);
  expect([condition(s, 'Initialized'), condition(s, 'Ready'), s.phase]).toEqual(['True', 'True', 'Running']);
  // each ran its own command (its own log), the second one after the first
  expect(runtime.logs('default', 'ok', 'init-0')).toMatch(/Usage: walkeeper/);
  expect(runtime.logs('default', 'ok', 'init-1')).toMatch(/Usage: walkeeper safekeeper/);
  expect(await kubectl('get', 'pod', 'ok', '--no-headers')).toMatch(/^ok\s+1\/1\s+Running/);
});

test('a failing init container is restarted with back-off and the container never starts', async () => {
  // `walkeeper restore` without flags exits 1 naming what is missing
  expect((await req(h, 'POST', PODS, pod('stuck', [['walkeeper', '--help'], ['walkeeper', 'restore']]))).status).toBe(201);
  const s = await until(async () => {
    const st = await status('stuck');
    return (st.initContainerStatuses?.[1]?.restartCount ?? 0) >= 1 ? st : undefined;
  }, 60_000, 'the failing init container to be restarted');
  expect(s.initContainerStatuses?.[0]?.state.terminated?.exitCode).toBe(0);
  expect([condition(s, 'Initialized'), condition(s, 'Ready'), s.phase]).toEqual(['False', 'False', 'Pending']);
  expect(s.containerStatuses?.[0]?.state.waiting?.reason).toBe('PodInitializing');
  expect(runtime.logs('default', 'stuck', 'safekeeper')).toBe('');
  expect(runtime.logs('default', 'stuck', 'init-1')).toMatch(/--tenant-id|tenant_id/);
  expect(await kubectl('get', 'pod', 'stuck', '--no-headers')).toMatch(/^stuck\s+0\/1\s+Init:(Error|1\/2)/);
  // deleting the pod stops the init container's retries with it
  expect((await req(h, 'DELETE', `${PODS}/stuck?gracePeriodSeconds=0`)).status).toBe(200);
  await until(async () => !runtime.running().includes('default/stuck'), 30_000, 'the pod to stop');
});
