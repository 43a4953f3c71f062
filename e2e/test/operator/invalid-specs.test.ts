// Every field of both custom resources refuses a bad value at `kubectl apply` time, with an
// error that names the field (schema validation and CEL rules of the CRDs in crds/, served by
// the harness the way a kube-apiserver serves them).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startHarness, type Harness } from '../../src/harness/index.js';
import { KUBECTL, REPO_ROOT } from '../../src/runtime/index.js';

let dir: string;
let h: Harness;

function kubectl(args: string[], stdin?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(KUBECTL, ['--kubeconfig', h.kubeconfigPath, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` });
    });
    if (stdin !== undefined) child.stdin!.end(stdin);
  });
}

const apply = (doc: object) => kubectl(['apply', '-f', '-'], JSON.stringify(doc));

const safekeeper = (spec: Record<string, unknown>, name = 'sk') => ({
  apiVersion: 'walkeeper.io/v1alpha1',
  kind: 'Safekeeper',
  metadata: { name, namespace: 'default' },
  spec: { replicas: 3, storage: { size: '1Gi' }, ...spec },
});
const tenant = (spec: Record<string, unknown>, name = 'tn') => ({
  apiVersion: 'walkeeper.io/v1alpha1',
  kind: 'Tenant',
  metadata: { name, namespace: 'default' },
  spec: { safekeeperRef: { name: 'sk' }, compute: { enabled: false }, ...spec },
});

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'invalid-specs-'));
  h = await startHarness({ stateDir: path.join(dir, 'state') });
  const r = await kubectl(['apply', '-f', path.join(REPO_ROOT, 'crds')]);
  if (r.code !== 0) throw new Error(r.out);
  await kubectl(['wait', '--for=condition=Established', 'crd/safekeepers.walkeeper.io', 'crd/tenants.walkeeper.io', '--timeout=30s']);
}, 60_000);

afterAll(async () => {
  await h?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const badSafekeepers: [string, Record<string, unknown>, string][] = [
  ['even replicas', { replicas: 4 }, 'spec.replicas'],
  ['replicas not a number', { replicas: 'three' }, 'spec.replicas'],
  ['image not a string', { image: 5 }, 'spec.image'],
  ['storage size not a quantity', { storage: { size: 'ten gigs' } }, 'spec.storage.size'],
  ['storage class not a string', { storage: { size: '1Gi', storageClassName: 7 } }, 'spec.storage.storageClassName'],
  ['resources not an object', { resources: 'big' }, 'spec.resources'],
  ['auth secret name not a string', { auth: { secretRef: { name: 5 } } }, 'spec.auth.secretRef.name'],
  ['tls secret name not a string', { tls: { secretRef: { name: 5 } } }, 'spec.tls.secretRef.name'],
  ['nodeSelector not an object', { nodeSelector: 'fast' }, 'spec.nodeSelector'],
  ['toleration operator unknown', { tolerations: [{ key: 'k', operator: 'Sometimes' }] }, 'spec.tolerations[0].operator'],
  ['toleration effect unknown', { tolerations: [{ key: 'k', effect: 'Maybe' }] }, 'spec.tolerations[0].effect'],
  ['toleration seconds not a number', { tolerations: [{ key: 'k', tolerationSeconds: 'soon' }] }, 'spec.tolerations[0].tolerationSeconds'],
  ['affinity not an object', { affinity: 'close' }, 'spec.affinity'],
  ['remote storage url missing', { remoteStorage: { region: 'eu-west-1' } }, 'spec.remoteStorage.url'],
  ['remote storage url of an unknown scheme', { remoteStorage: { url: 'gs://bucket/wal' } }, 'spec.remoteStorage.url'],
  ['remote storage bucket name invalid', { remoteStorage: { url: 's3://B/wal' } }, 'spec.remoteStorage.url'],
  ['remote storage endpoint not a URL', { remoteStorage: { url: 's3://wal-bucket', endpoint: 'minio:9000' } }, 'spec.remoteStorage.endpoint'],
  ['remote storage checksum unknown', { remoteStorage: { url: 's3://wal-bucket', checksum: 'always' } }, 'spec.remoteStorage.checksum'],
  ['S3 options on a file:// store', { remoteStorage: { url: 'file:///mnt/wal', region: 'eu-west-1' } }, 'spec.remoteStorage'],
  ['remote storage secret name not a string', { remoteStorage: { url: 's3://wal-bucket', credentials: { secretRef: { name: 5 } } } }, 'spec.remoteStorage.credentials.secretRef.name'],
  ['walKeepSize without a PostgreSQL unit', { walKeepSize: '64' }, 'spec.walKeepSize'],
  ['walKeepSize in Kubernetes units', { walKeepSize: '1Gi' }, 'spec.walKeepSize'],
  ['maxSlotWalKeepSize not a size', { maxSlotWalKeepSize: 'lots' }, 'spec.maxSlotWalKeepSize'],
];

const badTenants: [string, Record<string, unknown>, string][] = [
  ['tenantId not 32 hex', { tenantId: 'xyz' }, 'spec.tenantId'],
  ['safekeeperRef missing', { safekeeperRef: undefined }, 'spec.safekeeperRef'],
  ['safekeeperRef name not a string', { safekeeperRef: { name: 5 } }, 'spec.safekeeperRef.name'],
  ['compute.enabled not a boolean', { compute: { enabled: 'yes' } }, 'spec.compute.enabled'],
  ['compute.image not a string', { compute: { enabled: true, image: 15 } }, 'spec.compute.image'],
  ['compute storage size not a quantity', { compute: { enabled: true, storage: { size: 'lots' } } }, 'spec.compute.storage.size'],
  ['compute resources not an object', { compute: { enabled: true, resources: 'big' } }, 'spec.compute.resources'],
  ['postgresParameters not an object', { compute: { enabled: true, postgresParameters: 'fsync=off' } }, 'spec.compute.postgresParameters'],
  ['backup without a schedule', { backup: { retention: { keep: 3 } } }, 'spec.backup.schedule'],
  ['backup schedule not five cron fields', { backup: { schedule: 'every day' } }, 'spec.backup.schedule'],
  ['backup schedule with a seconds field', { backup: { schedule: '0 0 3 * * *' } }, 'spec.backup.schedule'],
  ['backup retention keep 0', { backup: { schedule: '@daily', retention: { keep: 0 } } }, 'spec.backup.retention.keep'],
  ['backup retention maxAgeDays not a number', { backup: { schedule: '@daily', retention: { maxAgeDays: 'month' } } }, 'spec.backup.retention.maxAgeDays'],
  ['backup suspend not a boolean', { backup: { schedule: '@daily', suspend: 'yes' } }, 'spec.backup.suspend'],
];

describe('a bad value in any field is refused at apply time, naming the field', () => {
  test.each(badSafekeepers)('Safekeeper: %s', async (_what, spec, field) => {
    const r = await apply(safekeeper(spec, `sk-${Math.random().toString(36).slice(2, 8)}`));
    expect(r.code).not.toBe(0);
    expect(r.out).toContain(field);
  });
  test.each(badTenants)('Tenant: %s', async (_what, spec, field) => {
    const r = await apply(tenant(spec, `tn-${Math.random().toString(36).slice(2, 8)}`));
    expect(r.code).not.toBe(0);
    expect(r.out).toContain(field);
  });
});

test('a Safekeeper with every WAL lifecycle field set is accepted as written', async () => {
  const spec = { remoteStorage: { url: 's3://wal-bucket/prod', endpoint: 'http://127.0.0.1:9000', region: 'eu-west-1', pathStyle: true, checksum: 'when_required', credentials: { secretRef: { name: 'wal-bucket' } } }, walKeepSize: '1GB', maxSlotWalKeepSize: '-1' };
  expect((await apply(safekeeper(spec, 'lifecycle'))).code).toBe(0);
  const got = await kubectl(['get', 'safekeeper', 'lifecycle', '-o', 'json']);
  expect(JSON.parse(got.out).spec).toMatchObject(spec);
});

describe('immutable fields are refused on change, naming the field', () => {
  test('Safekeeper replicas and storage', async () => {
    expect((await apply(safekeeper({}, 'fixed'))).code).toBe(0);
    const replicas = await apply(safekeeper({ replicas: 5 }, 'fixed'));
    expect(replicas.code).not.toBe(0);
    expect(replicas.out).toMatch(/spec\.replicas.*immutable/);
    const storage = await apply(safekeeper({ storage: { size: '2Gi' } }, 'fixed'));
    expect(storage.code).not.toBe(0);
    expect(storage.out).toMatch(/spec\.storage.*immutable|immutable.*storage/);
  });
  test('Tenant tenantId and safekeeperRef', async () => {
    const id = 'a'.repeat(32);
    expect((await apply(tenant({ tenantId: id }, 'kept'))).code).toBe(0);
    const changed = await apply(tenant({ tenantId: 'b'.repeat(32) }, 'kept'));
    expect(changed.code).not.toBe(0);
    expect(changed.out).toMatch(/tenantId.*immutable|immutable.*tenantId/);
    const moved = await apply(tenant({ tenantId: id, safekeeperRef: { name: 'other' } }, 'kept'));
    expect(moved.code).not.toBe(0);
    expect(moved.out).toMatch(/safekeeperRef.*immutable|immutable.*safekeeperRef/);
  });
});
