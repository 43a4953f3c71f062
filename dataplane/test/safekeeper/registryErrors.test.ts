// The registry's refusals as an HTTP client sees them: every domain error (unknown tenant, one
// that exists, a storage failure under an admin call, a full disk) arrives as the same status,
// JSON code and message, and leaves the registry as it was.
import { jest } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newId } from '../../src/common/ids.js';
import { startSafekeeper } from '../../src/safekeeper/main.js';
import { http, removeDir, startTestSafekeeper, tempDir, type TestSafekeeper } from '@walkeeper/testkit/safekeeperHarness';

jest.setTimeout(30_000);

let dir: string;
let ts: TestSafekeeper;
const req = (method: string, path: string, body?: unknown) => http(ts.httpUrl, method, path, body === undefined ? {} : { body });
const answer = async (method: string, path: string, body?: unknown) => {
  const r = await req(method, path, body);
  return { status: r.status, body: r.json };
};

beforeAll(async () => {
  dir = tempDir('registry-errors');
  ts = await startTestSafekeeper(dir);
});

afterAll(async () => {
  await ts?.sk.stop().catch(() => undefined);
  removeDir(dir);
});

test('an unknown tenant is 404 tenant_not_found on delete, list and timeline create', async () => {
  const t = newId();
  const expected = { status: 404, body: { error: `tenant ${t} does not exist`, code: 'tenant_not_found' } };
  expect(await answer('DELETE', `/v1/tenants/${t}`)).toEqual(expected);
  expect(await answer('GET', `/v1/tenants/${t}/timelines`)).toEqual(expected);
  expect(await answer('POST', `/v1/tenants/${t}/timelines`, { timeline_id: newId() })).toEqual(expected);
  expect((await req('GET', '/v1/tenants')).json.tenants.map((e: { tenant_id: string }) => e.tenant_id)).not.toContain(t);
});

test('a tenant or timeline that exists is 409 tenant_exists / timeline_exists', async () => {
  const t = newId();
  const l = newId();
  expect((await req('POST', '/v1/tenants', { tenant_id: t })).status).toBe(201);
  expect((await req('POST', `/v1/tenants/${t}/timelines`, { timeline_id: l })).status).toBe(201);
  expect(await answer('POST', '/v1/tenants', { tenant_id: t })).toEqual({ status: 409, body: { error: `tenant ${t} already exists`, code: 'tenant_exists' } });
  expect(await answer('POST', `/v1/tenants/${t}/timelines`, { timeline_id: l })).toEqual({
    status: 409,
    body: { error: `timeline ${l} of tenant ${t} already exists`, code: 'timeline_exists' },
  });
  expect((await req('GET', `/v1/tenants/${t}/timelines`)).json.timelines).toEqual([{ timeline_id: l }]);
});

test('a tenant directory made behind the registry\'s back is 409 already_exists naming the directory', async () => {
  const t = newId();
  const tenantDir = join(dir, 'tenants', t);
  mkdirSync(tenantDir, { recursive: true });
  expect(await answer('POST', '/v1/tenants', { tenant_id: t })).toEqual({
    status: 409,
    body: { error: `tenant ${t} already exists (${tenantDir})`, code: 'already_exists' },
  });
  expect(await answer('GET', `/v1/tenants/${t}/timelines`)).toMatchObject({ status: 404 });
});

test('a storage failure the registry does not name is 500 with the storage code and message', async () => {
  const t = newId();
  expect((await req('POST', '/v1/tenants', { tenant_id: t })).status).toBe(201);
  rmSync(join(dir, 'tenants', t), { recursive: true });
  expect(await answer('POST', `/v1/tenants/${t}/timelines`, { timeline_id: newId() })).toEqual({
    status: 500,
    body: { error: `tenant ${t} does not exist`, code: 'not_found' },
  });
  expect((await req('GET', `/v1/tenants/${t}/timelines`)).json.timelines).toEqual([]);
});

// ENOSPC needs a file system that fills up: a tiny tmpfs, which only root can mount.
const skipDiskFull = process.getuid?.() !== 0 ? 'not running as root, cannot mount a tmpfs' : undefined;
if (skipDiskFull) console.warn(`skipping the disk_full case: ${skipDiskFull}`);

(skipDiskFull ? test.skip : test)('a full disk is 507 disk_full and the timeline is not registered', async () => {
  const root = tempDir('registry-enospc');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', root]);
  const sk = await (async () => {
    try {
      return await startSafekeeper({ id: '1', datadir: join(root, 'sk'), listenPg: '127.0.0.1:0', listenHttp: '127.0.0.1:0', diskReserve: '0MB', logFormat: 'json' });
    } catch (err) {
      execFileSync('umount', [root]);
      removeDir(root);
      throw err;
    }
  })();
  try {
    const base = `http://${sk.httpAddress}`;
    const t = newId();
    expect((await http(base, 'POST', '/v1/tenants', { body: { tenant_id: t } })).status).toBe(201);
    try {
      writeFileSync(join(root, 'filler'), Buffer.alloc(2 << 20)); // more than the tmpfs holds
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    }
    const r = await http(base, 'POST', `/v1/tenants/${t}/timelines`, { body: { timeline_id: newId() } });
    expect({ status: r.status, code: r.json.code, keys: Object.keys(r.json).sort() }).toEqual({ status: 507, code: 'disk_full', keys: ['code', 'error'] });
    expect(r.json.error).toMatch(/ENOSPC|no space left/);
    expect((await http(base, 'GET', `/v1/tenants/${t}/timelines`)).json.timelines).toEqual([]);
  } finally {
    await sk.stop();
    execFileSync('umount', [root]);
    removeDir(root);
  }
});
