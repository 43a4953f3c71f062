// The proposer's /v1/backups routes with a real PostgreSQL, the real pg_basebackup and a
// file:// bucket: a backup started over HTTP lands complete in the bucket, one at a time; a
// failure is reported with its reason; the retention keeps what it is told and the newest; the
// tenant token guards the routes that change the bucket; bad requests change nothing.
import { jest } from '@jest/globals';
import { chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/common/log.js';
import { parseConnInfo } from '../../src/common/conninfo.js';
import { listen } from '../../src/http/server.js';
import { proposerApp, ProposerMetrics } from '../../src/http/proposerApi.js';
import { backupFailureKeys, backupManifestKeys, backupRunKeys, backupsKeys, retentionKeys, type ProposerStatusJson } from '../../src/api/index.js';
import { wireKeyProblems, wireListProblems } from '../helpers/wireKeys.js';
import { findPgClientBinDir, postgresIdentity, PostgresServer } from '../../src/local/postgres.js';
import { BackupRunner } from '../../src/proposer/backupRunner.js';
import { openRemoteStorage, parseRemoteStorageUrl } from '../../src/remote/url.js';
import type { RemoteStorage } from '../../src/remote/remoteStorage.js';
import { listBackups } from '../../src/backup/catalog.js';
import { waitFor } from '../../src/local/cluster.js';
import { freePortBase } from '../helpers/cluster.js';

jest.setTimeout(180_000);
const TENANT = 'ab'.repeat(16);
const TIMELINE = 'cd'.repeat(16);
const TOKEN = 'tenant-token-for-tests';

let dir: string;
let pgServer: PostgresServer;
let store: RemoteStorage;
let base: string;
let stopHttp: () => Promise<void>;
let failNextWith: string | undefined;

const status = (): ProposerStatusJson => ({
  tenant_id: TENANT, timeline_id: TIMELINE, state: 'streaming', term: '1', commit_lsn: '0/0', term_start_lsn: '0/0', quorum_healthy: true, postgres: { connected: true }, safekeepers: [],
});

async function call(method: string, path: string, body?: unknown, token: string | null = TOKEN): Promise<{ status: number; json: Record<string, unknown> }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(base + path, { method, headers, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}) });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

async function backupOnce(): Promise<string> {
  const started = await call('POST', '/v1/backups', {});
  expect(started.status).toBe(202);
  const id = started.json.id as string;
  await waitFor(`backup ${id} to end`, 120_000, async () => (await call('GET', '/v1/backups')).json.running === null);
  return id;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'walkeeper-proposer-backup-'));
  const who = postgresIdentity();
  if (who) chownSync(dir, who.uid, who.gid);
  pgServer = new PostgresServer({ dataDir: join(dir, 'pgdata'), port: await freePortBase() });
  pgServer.initdb({ wal_level: 'replica', max_wal_senders: 4 });
  await pgServer.start();
  pgServer.psql('CREATE TABLE t AS SELECT g FROM generate_series(1, 10000) g');
  mkdirSync(join(dir, 'bucket'));
  store = await openRemoteStorage(parseRemoteStorageUrl(`file://${join(dir, 'bucket')}`, {}));
  const log = createLogger({ name: 'proposer-test', level: 'silent' });
  const pg = parseConnInfo(pgServer.connString());
  const runner = new BackupRunner({
    store, tenantId: TENANT, timelineId: TIMELINE, pg, log,
    binDir: () => {
      if (failNextWith) {
        const m = failNextWith;
        failNextWith = undefined;
        return m;
      }
      return findPgClientBinDir();
    },
  });
  const http = await listen(proposerApp(status, new ProposerMetrics(), log, { backups: runner, token: TOKEN }), '127.0.0.1:0');
  base = `http://127.0.0.1:${(http.server.address() as AddressInfo).port}`;
  stopHttp = () => new Promise<void>((resolve) => http.server.close(() => resolve()));
});

afterAll(async () => {
  await stopHttp?.();
  await store?.close();
  await pgServer?.stop('immediate').catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

test('a backup started over HTTP lands complete in the bucket and is listed', async () => {
  const id = await backupOnce();
  const listed = await call('GET', '/v1/backups');
  expect(listed.json).toMatchObject({ remote_storage: true, running: null, last_failure: null, incomplete: 0 });
  const backups = listed.json.backups as Array<Record<string, unknown>>;
  expect(backups.map((b) => b.id)).toEqual([id]);
  expect(backups[0]).toMatchObject({ pg_timeline: 1, pg_version_num: expect.any(Number) });
  expect(Number(backups[0].size_bytes)).toBeGreaterThan(0);
  expect([...wireKeyProblems('backups', listed.json, backupsKeys), ...wireListProblems('backups.backups', backups, backupManifestKeys)]).toEqual([]);
  const catalog = await listBackups(store, TENANT, TIMELINE);
  expect(catalog.complete.map((m) => m.backup_id)).toEqual([id]);
});

test('one backup at a time: a second start while one runs is refused with 409', async () => {
  const first = await call('POST', '/v1/backups', {});
  expect(first.status).toBe(202);
  expect(wireKeyProblems('backup started', first.json, backupRunKeys)).toEqual([]);
  const second = await call('POST', '/v1/backups', {});
  expect(second.status).toBe(409);
  expect(second.json).toMatchObject({ code: 'backup_in_progress' });
  expect(String(second.json.error)).toContain(String(first.json.id));
  await waitFor('backup to end', 120_000, async () => (await call('GET', '/v1/backups')).json.running === null);
});

test('a failed backup is reported with its reason and leaves nothing that looks complete', async () => {
  const before = (await listBackups(store, TENANT, TIMELINE)).complete.length;
  failNextWith = join(dir, 'no-such-bin');
  const started = await call('POST', '/v1/backups', {});
  await waitFor('failed backup to end', 60_000, async () => (await call('GET', '/v1/backups')).json.running === null);
  const listed = await call('GET', '/v1/backups');
  expect(listed.json.last_failure).toMatchObject({ id: started.json.id, code: 'backup_failed' });
  expect(String((listed.json.last_failure as { message: string }).message)).toMatch(/pg_basebackup|ENOENT/);
  expect(wireKeyProblems('backups.last_failure', listed.json.last_failure, backupFailureKeys)).toEqual([]);
  expect((await listBackups(store, TENANT, TIMELINE)).complete.length).toBe(before);
});

test('the routes that change the bucket need the tenant token', async () => {
  const none = await call('POST', '/v1/backups', {}, null);
  expect(none.status).toBe(401);
  const wrong = await call('POST', '/v1/backups/retention', { keep: 1 }, 'not-the-token');
  expect(wrong.status).toBe(403);
  expect((await call('GET', '/v1/backups', undefined, null)).status).toBe(200);
  expect((await listBackups(store, TENANT, TIMELINE)).complete.length).toBe(2);
});

test('bad retention requests are refused naming the field, and change nothing', async () => {
  for (const [body, text] of [
    [{}, 'retention needs'],
    [{ keep: 0 }, 'invalid keep 0'],
    [{ keep: 'two' }, 'keep must be a number'],
    [{ keep: 1, backup_lsn: 'x' }, 'invalid LSN'],
    ['{not json', 'not valid JSON'],
  ] as const) {
    const r = await call('POST', '/v1/backups/retention', body);
    expect(r.status).toBe(400);
    expect(String(r.json.error)).toContain(text);
  }
  expect((await listBackups(store, TENANT, TIMELINE)).complete.length).toBe(2);
});

test('the retention keeps the newest N', async () => {
  const third = await backupOnce();
  const r = await call('POST', '/v1/backups/retention', { keep: 1 });
  expect(r.status).toBe(200);
  expect(r.json.kept).toEqual([third]);
  expect(wireKeyProblems('retention', r.json, retentionKeys)).toEqual([]);
  expect((r.json.deleted as string[]).length).toBe(2);
  expect((await listBackups(store, TENANT, TIMELINE)).complete.map((m) => m.backup_id)).toEqual([third]);
});
