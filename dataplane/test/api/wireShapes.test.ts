// The HTTP APIs answer exactly their wire types (src/api), at run time: a real cluster (three
// safekeepers offloading to a file:// bucket, PostgreSQL, its proposer) with a pg_receivewal
// reader holding a slot, every route asked, and each answer's keys, nested ones included,
// compared with the type's key list.
import { jest } from '@jest/globals';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type pg from 'pg';
import {
  apiErrorKeys, backupsKeys, healthKeys, offloadStatusKeys, pgTimelineEntryKeys, proposerMemberKeys, proposerPostgresKeys, proposerStatusKeys,
  readerKeys, readyKeys, remoteStorageStatusKeys, safekeeperStatusKeys, segmentRecyclingKeys, slotKeys, tenantCreatedKeys, tenantDeletedKeys,
  tenantEntryKeys, tenantListKeys, termHistoryEntryKeys, timelineCreatedKeys, timelineEntryKeys, timelineListKeys, timelineStatusKeys,
} from '../../src/api/index.js';
import { newId } from '../../src/common/ids.js';
import type { LocalCluster } from '../../src/local/cluster.js';
import { destroyTestCluster, newTestCluster } from '../helpers/cluster.js';
import { pgConnect } from '../helpers/pg.js';
import { until } from '../helpers/until.js';
import { wireKeyProblems, wireListProblems } from '../helpers/wireKeys.js';
import { http } from '@walkeeper/testkit/safekeeperHarness';

const run = promisify(execFile);
jest.setTimeout(180_000);

let cluster: LocalCluster;
let client: pg.Client | undefined;
let receiver: ChildProcess | undefined;
let receiverDir: string;
const SLOT = 'wire_shapes';

const sk = (method: string, path: string, body?: unknown) => http(cluster.httpUrl(1), method, path, body === undefined ? {} : { body });
const proposer = (method: string, path: string, body?: unknown) => http(cluster.proposerUrl, method, path, body === undefined ? {} : { body });
const timelinePath = () => `/v1/tenants/${cluster.config.tenant_id}/timelines/${cluster.config.timeline_id}`;

beforeAll(async () => {
  cluster = await newTestCluster();
  await cluster.start();
  client = await pgConnect(cluster.config.postgres.port);
  await client.query('CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g');
  receiverDir = mkdtempSync(join(tmpdir(), 'walkeeper-wire-shapes-'));
  const receivewal = join(cluster.postgres.binDir, 'pg_receivewal');
  await run(receivewal, ['--slot', SLOT, '--create-slot', '-d', cluster.readerConnInfo(1), '-n'], { timeout: 30_000 });
  receiver = spawn(receivewal, ['--slot', SLOT, '-D', receiverDir, '-d', cluster.readerConnInfo(1), '-n'], { stdio: 'ignore' });
});

afterAll(async () => {
  if (receiver && receiver.exitCode === null && receiver.signalCode === null) {
    const exited = new Promise((r) => receiver!.once('exit', r));
    receiver.kill('SIGINT');
    await exited;
  }
  await client?.end().catch(() => undefined);
  await destroyTestCluster(cluster);
  if (receiverDir) rmSync(receiverDir, { recursive: true, force: true });
});

describe('the key check itself', () => {
  test('names a missing required key and a key the type does not have; an optional key may be absent', () => {
    expect(wireKeyProblems('x', { tenant_id: 'a', extra: 1 }, timelineCreatedKeys)).toEqual(['x: missing timeline_id', 'x: extra is not in the wire type']);
    expect(wireKeyProblems('x', { timeline_id: 'a' }, timelineEntryKeys)).toEqual([]);
    expect(wireListProblems('x', [], readerKeys)).toEqual(['x: empty, so its entries\' keys went unchecked']);
  });
});

describe('safekeeper', () => {
  test('GET /healthz, /readyz and /v1/status (with its bucket check and disk figures)', async () => {
    expect(wireKeyProblems('healthz', (await sk('GET', '/healthz')).json, healthKeys)).toEqual([]);
    expect(wireKeyProblems('readyz', (await sk('GET', '/readyz')).json, readyKeys)).toEqual([]);
    const status = await sk('GET', '/v1/status');
    expect(status.status).toBe(200);
    expect([
      ...wireKeyProblems('status', status.json, safekeeperStatusKeys),
      ...wireKeyProblems('status.remote_storage', status.json.remote_storage, remoteStorageStatusKeys),
    ]).toEqual([]);
    expect(Object.keys(status.json).filter((k) => k.startsWith('disk_')).sort()).toEqual(['disk_high_water', 'disk_reserve_bytes', 'disk_total_bytes', 'disk_used_bytes']);
  });

  test('tenants and timelines: list, create, delete', async () => {
    const list = await sk('GET', '/v1/tenants');
    expect([...wireKeyProblems('tenants', list.json, tenantListKeys), ...wireListProblems('tenants.tenants', list.json.tenants, tenantEntryKeys)]).toEqual([]);
    const tenantId = newId();
    const created = await sk('POST', '/v1/tenants', { tenant_id: tenantId });
    expect(created.status).toBe(201);
    const timeline = await sk('POST', `/v1/tenants/${tenantId}/timelines`, {});
    expect(timeline.status).toBe(201);
    const timelines = await sk('GET', `/v1/tenants/${tenantId}/timelines`);
    const deleted = await sk('DELETE', `/v1/tenants/${tenantId}`);
    expect(deleted.status).toBe(200);
    expect([
      ...wireKeyProblems('tenant created', created.json, tenantCreatedKeys),
      ...wireKeyProblems('timeline created', timeline.json, timelineCreatedKeys),
      ...wireKeyProblems('timelines', timelines.json, timelineListKeys),
      ...wireListProblems('timelines.timelines', timelines.json.timelines, timelineEntryKeys),
      ...wireKeyProblems('tenant deleted', deleted.json, tenantDeletedKeys),
    ]).toEqual([]);
  });

  test('GET a timeline with a proposer, a reader on a slot and offload on', async () => {
    const r = await until('the reader to show in the timeline status', 60_000, async () => {
      const t = await sk('GET', timelinePath());
      return t.status === 200 && t.json.readers.length > 0 && t.json.slots.length > 0 ? t : undefined;
    });
    const tl = r.json;
    expect(tl.offload.enabled).toBe(true);
    expect([
      ...wireKeyProblems('timeline', tl, timelineStatusKeys),
      ...wireListProblems('timeline.term_history', tl.term_history, termHistoryEntryKeys),
      ...wireListProblems('timeline.pg_timeline_history', tl.pg_timeline_history, pgTimelineEntryKeys),
      ...wireKeyProblems('timeline.recycling', tl.recycling, segmentRecyclingKeys),
      ...wireListProblems('timeline.readers', tl.readers, readerKeys),
      ...wireListProblems('timeline.slots', tl.slots, slotKeys),
      ...wireKeyProblems('timeline.offload', tl.offload, offloadStatusKeys),
    ]).toEqual([]);
  });

  test('errors are {error, code}: unknown timeline, invalid id, existing tenant, bad JSON, unknown route', async () => {
    const answers = [
      await sk('GET', `/v1/tenants/${cluster.config.tenant_id}/timelines/${newId()}`),
      await sk('GET', '/v1/tenants/not-an-id/timelines'),
      await sk('POST', '/v1/tenants', { tenant_id: cluster.config.tenant_id }),
      await http(cluster.httpUrl(1), 'POST', '/v1/tenants', { rawBody: '{"tenant_id":' }),
      await sk('GET', '/v1/nothing-here'),
    ];
    expect(answers.map((a) => a.status)).toEqual([404, 400, 409, 400, 404]);
    expect(answers.flatMap((a, i) => wireKeyProblems(`error ${i}`, a.json, apiErrorKeys))).toEqual([]);
  });
});

describe('proposer', () => {
  test('GET /v1/status while streaming, with PostgreSQL\'s identity and every member', async () => {
    const r = await proposer('GET', '/v1/status');
    expect(r.json.state).toBe('streaming');
    expect([
      ...wireKeyProblems('proposer status', r.json, proposerStatusKeys),
      ...wireKeyProblems('proposer status.postgres', r.json.postgres, proposerPostgresKeys),
      ...wireListProblems('proposer status.safekeepers', r.json.safekeepers, proposerMemberKeys),
    ]).toEqual([]);
    expect(Object.keys(r.json.postgres).sort()).toEqual(['connected', 'system_id', 'timeline', 'timeline_start_lsn']);
    expect(r.json.safekeepers).toHaveLength(3);
  });

  test('probes, and /v1/backups without remote storage: an empty list; starting one is a 503 error', async () => {
    expect(wireKeyProblems('healthz', (await proposer('GET', '/healthz')).json, healthKeys)).toEqual([]);
    expect(wireKeyProblems('readyz', (await proposer('GET', '/readyz')).json, readyKeys)).toEqual([]);
    const backups = await proposer('GET', '/v1/backups');
    expect(backups.json.remote_storage).toBe(false);
    const start = await proposer('POST', '/v1/backups', {});
    expect(start.status).toBe(503);
    expect([...wireKeyProblems('backups', backups.json, backupsKeys), ...wireKeyProblems('start backup', start.json, apiErrorKeys)]).toEqual([]);
  });
});
