// The safekeeper's HTTP API (ARCHITECTURE.md §7), route by route: status codes, the JSON
// error shape {error, code}, LSNs written X/X, probes, and the Prometheus metrics a timeline
// that received WAL shows (bytes received and flushed, fsync latency, proposers, readers,
// per-timeline flush and commit LSN).
import { jest } from '@jest/globals';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { newId } from '../../src/common/ids.js';
import { formatLsn } from '../../src/common/lsn.js';
import { encodeStandbyStatusUpdate } from '../../src/protocol/replicationMessages.js';
import { connectReplication, FakeProposer, START_LSN, buildWal, http, removeDir, sleep, startTestSafekeeper, tempDir, type TestSafekeeper } from '@walkeeper/testkit/safekeeperHarness';

jest.setTimeout(30_000);

let dir: string;
let ts: TestSafekeeper;
const get = (path: string) => http(ts.httpUrl, 'GET', path);
const post = (path: string, body?: unknown) => http(ts.httpUrl, 'POST', path, body === undefined ? {} : { body });
const del = (path: string) => http(ts.httpUrl, 'DELETE', path);

/** Every error is JSON {error: string, code: string} with the given status and code. */
function expectError(r: Awaited<ReturnType<typeof get>>, status: number, code: string): void {
  expect({ status: r.status, code: r.json?.code }).toEqual({ status, code });
  expect(r.contentType).toMatch(/application\/json/);
  expect(typeof r.json.error).toBe('string');
  expect(r.json.error.length).toBeGreaterThan(0);
  expect(Object.keys(r.json).sort()).toEqual(['code', 'error']);
}

beforeAll(async () => {
  dir = tempDir('httpapi');
  ts = await startTestSafekeeper(dir, { id: 3 });
});

afterAll(async () => {
  await ts?.sk.stop().catch(() => undefined);
  removeDir(dir);
});

describe('probes and status', () => {
  test('GET /healthz and /readyz answer 200 JSON', async () => {
    const h = await get('/healthz');
    expect(h.status).toBe(200);
    expect(h.json).toEqual({ status: 'ok' });
    const r = await get('/readyz');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ status: 'ready' });
  });

  test('GET /v1/status gives id, version and uptime', async () => {
    const r = await get('/v1/status');
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ id: 3, version: expect.any(String) });
    expect(r.json.uptime_seconds).toBeGreaterThanOrEqual(0);
  });
});

describe('tenants', () => {
  const T = newId();

  test('POST /v1/tenants with an id creates it: 201', async () => {
    const r = await post('/v1/tenants', { tenant_id: T });
    expect(r.status).toBe(201);
    expect(r.json).toEqual({ tenant_id: T });
    expect(existsSync(join(dir, 'tenants', T))).toBe(true);
  });

  test('POST /v1/tenants without an id generates one', async () => {
    const r = await post('/v1/tenants', {});
    expect(r.status).toBe(201);
    expect(r.json.tenant_id).toMatch(/^[0-9a-f]{32}$/);
    const bare = await http(ts.httpUrl, 'POST', '/v1/tenants'); // no body at all
    expect(bare.status).toBe(201);
    expect(bare.json.tenant_id).toMatch(/^[0-9a-f]{32}$/);
  });

  test('creating an existing tenant is 409 tenant_exists', async () => {
    expectError(await post('/v1/tenants', { tenant_id: T }), 409, 'tenant_exists');
  });

  test('invalid tenant ids are 400 invalid_tenant_id', async () => {
    for (const bad of ['abc', T.toUpperCase(), 42, `${T}00`, '']) {
      const r = await post('/v1/tenants', { tenant_id: bad });
      expectError(r, 400, 'invalid_tenant_id');
    }
  });

  test('a body that is not a JSON object is 400', async () => {
    expectError(await post('/v1/tenants', [T]), 400, 'bad_body');
    expectError(await http(ts.httpUrl, 'POST', '/v1/tenants', { rawBody: '{"tenant_id": ' }), 400, 'bad_json');
    expectError(await http(ts.httpUrl, 'POST', '/v1/tenants', { rawBody: 'null' }), 400, 'bad_json');
  });

  test('a path parameter that is not valid percent-encoding is 400 bad_url', async () => {
    const r = await get('/v1/tenants/%zz');
    expectError(r, 400, 'bad_url');
    expect(r.json.error).toContain('%zz');
  });

  test('a body over 64 KiB is 413', async () => {
    expectError(await post('/v1/tenants', { tenant_id: T, pad: 'x'.repeat(70_000) }), 413, 'body_too_large');
  });

  test('GET /v1/tenants lists tenants with their timelines', async () => {
    const r = await get('/v1/tenants');
    expect(r.status).toBe(200);
    expect(r.json.tenants).toEqual(expect.arrayContaining([{ tenant_id: T, timelines: [] }]));
  });

  test('DELETE /v1/tenants/:id removes the tenant and its data; again is 404', async () => {
    const D = newId();
    const L = newId();
    expect((await post('/v1/tenants', { tenant_id: D })).status).toBe(201);
    expect((await post(`/v1/tenants/${D}/timelines`, { timeline_id: L })).status).toBe(201);
    expect(existsSync(join(dir, 'tenants', D, L))).toBe(true);
    const r = await del(`/v1/tenants/${D}`);
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ tenant_id: D, deleted: true });
    expect(existsSync(join(dir, 'tenants', D))).toBe(false);
    expect((await get('/v1/tenants')).json.tenants.map((t: { tenant_id: string }) => t.tenant_id)).not.toContain(D);
    expectError(await del(`/v1/tenants/${D}`), 404, 'tenant_not_found');
    expectError(await get(`/v1/tenants/${D}/timelines`), 404, 'tenant_not_found');
    // and the Postgres port no longer accepts it
    const err = await connectReplication(ts.pgPort, D, L).catch((e: unknown) => e);
    expect((err as Error).message).toContain(`tenant ${D} does not exist`);
    // it can be created again, empty
    expect((await post('/v1/tenants', { tenant_id: D })).status).toBe(201);
    expect((await get(`/v1/tenants/${D}/timelines`)).json.timelines).toEqual([]);
  });

  test('DELETE ends the proposer and reader connections of the tenant', async () => {
    const D = newId();
    const L = newId();
    const w = buildWal(20);
    expect((await post('/v1/tenants', { tenant_id: D })).status).toBe(201);
    expect((await post(`/v1/tenants/${D}/timelines`, { timeline_id: L })).status).toBe(201);
    const p = await FakeProposer.connect(ts.pgPort, D, L);
    await p.elect(D, L, 1n, START_LSN);
    await p.pushWal(1n, START_LSN, w.bytes);
    const reader = await connectReplication(ts.pgPort, D, L);
    const stream = await reader.startCopyBoth(`START_REPLICATION PHYSICAL ${formatLsn(START_LSN)}`);
    const readerEnd = (async () => {
      for (;;) {
        if ((await stream.next()) === null) return 'ended';
      }
    })().catch((e: Error) => e);
    await sleep(100);
    expect((await del(`/v1/tenants/${D}`)).status).toBe(200);
    const perr = await p.expectError();
    expect(perr.message).toContain(L);
    let timer: NodeJS.Timeout | undefined;
    const rend = await Promise.race([readerEnd, new Promise((r) => (timer = setTimeout(() => r('still streaming'), 3000)))]);
    clearTimeout(timer);
    reader.destroy();
    expect(rend).toBeInstanceOf(Error);
    expect((rend as Error).message).toMatch(new RegExp(`timeline ${L} of tenant ${D} is no longer served`));
    expect(metric((await get('/metrics')).text, 'walkeeper_connected_readers')).toBe(0);
    expect(existsSync(join(dir, 'tenants', D))).toBe(false);
  });

  test('DELETE with an invalid id is 400', async () => {
    expectError(await del('/v1/tenants/..%2F..%2Fetc'), 400, 'invalid_tenant_id');
    expectError(await del('/v1/tenants/xyz'), 400, 'invalid_tenant_id');
  });
});

describe('timelines', () => {
  const T = newId();
  const L = newId();
  const wal = buildWal(100);
  let proposer: FakeProposer | undefined;

  beforeAll(async () => {
    expect((await post('/v1/tenants', { tenant_id: T })).status).toBe(201);
  });

  afterAll(async () => {
    await proposer?.close();
  });

  test('POST /v1/tenants/:t/timelines creates one: 201; again 409', async () => {
    const r = await post(`/v1/tenants/${T}/timelines`, { timeline_id: L });
    expect(r.status).toBe(201);
    expect(r.json).toEqual({ tenant_id: T, timeline_id: L });
    expect(existsSync(join(dir, 'tenants', T, L, 'safekeeper.control'))).toBe(true);
    expectError(await post(`/v1/tenants/${T}/timelines`, { timeline_id: L }), 409, 'timeline_exists');
  });

  test('POST without an id generates one', async () => {
    const r = await post(`/v1/tenants/${T}/timelines`, {});
    expect(r.status).toBe(201);
    expect(r.json.timeline_id).toMatch(/^[0-9a-f]{32}$/);
  });

  test('POST errors: unknown tenant 404, invalid ids 400', async () => {
    expectError(await post(`/v1/tenants/${newId()}/timelines`, { timeline_id: newId() }), 404, 'tenant_not_found');
    expectError(await post(`/v1/tenants/${T}/timelines`, { timeline_id: 'nope' }), 400, 'invalid_timeline_id');
    expectError(await post(`/v1/tenants/NOPE/timelines`, { timeline_id: newId() }), 400, 'invalid_tenant_id');
    expectError(await http(ts.httpUrl, 'POST', `/v1/tenants/${T}/timelines`, { rawBody: 'not json' }), 400, 'bad_json');
  });

  test('GET /v1/tenants/:t/timelines lists them; unknown tenant 404', async () => {
    const r = await get(`/v1/tenants/${T}/timelines`);
    expect(r.status).toBe(200);
    expect(r.json.tenant_id).toBe(T);
    expect(r.json.timelines).toEqual(expect.arrayContaining([{ timeline_id: L }]));
    expect(r.json.timelines).toHaveLength(2);
    expectError(await get(`/v1/tenants/${newId()}/timelines`), 404, 'tenant_not_found');
    expectError(await get(`/v1/tenants/x/timelines`), 400, 'invalid_tenant_id');
  });

  test('GET a new timeline: term 0, LSNs 0/0, nobody connected', async () => {
    const r = await get(`/v1/tenants/${T}/timelines/${L}`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ tenant_id: T, timeline_id: L, term: '0', term_history: [], flush_lsn: '0/0', commit_lsn: '0/0', proposer_connected: false, readers: [] });
  });

  test('GET timeline errors: 404 timeline_not_found / tenant_not_found, 400 invalid ids', async () => {
    expectError(await get(`/v1/tenants/${T}/timelines/${newId()}`), 404, 'timeline_not_found');
    expectError(await get(`/v1/tenants/${newId()}/timelines/${L}`), 404, 'tenant_not_found');
    expectError(await get(`/v1/tenants/${T}/timelines/xyz`), 400, 'invalid_timeline_id');
  });

  test('after WAL is pushed: term, history, flush and commit LSN as X/X, proposer and reader connected, lag', async () => {
    proposer = await FakeProposer.connect(ts.pgPort, T, L);
    await proposer.elect(T, L, 1n, START_LSN);
    await proposer.pushWal(1n, START_LSN, wal.bytes);
    const reader = await connectReplication(ts.pgPort, T, L, { applicationName: 'api_reader' });
    try {
      const stream = await reader.startCopyBoth(`START_REPLICATION PHYSICAL ${formatLsn(START_LSN)}`);
      // report a flush position behind the head so the lag is visible
      stream.sendCopyData(encodeStandbyStatusUpdate({ writeLsn: START_LSN + 8192n, flushLsn: START_LSN + 8192n, applyLsn: 0n, sendTime: 0n, replyRequested: false }));
      await sleep(200);
      const r = await get(`/v1/tenants/${T}/timelines/${L}`);
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({
        term: '1',
        term_history: [{ term: '1', lsn: formatLsn(START_LSN) }],
        flush_lsn: formatLsn(wal.end),
        commit_lsn: formatLsn(wal.end),
        timeline_start_lsn: '0/1000000',
        proposer_connected: true,
      });
      expect(r.json.flush_lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
      expect(r.json.readers).toEqual([
        expect.objectContaining({ application_name: 'api_reader', flush_lsn: formatLsn(START_LSN + 8192n), lag_bytes: String(wal.end - START_LSN - 8192n) }),
      ]);

      // metrics while a proposer and a reader are connected
      const m = (await get('/metrics')).text;
      expect(metric(m, 'walkeeper_connected_proposers')).toBe(1);
      expect(metric(m, 'walkeeper_connected_readers')).toBe(1);
    } finally {
      reader.destroy();
    }
  });

  test('/metrics has every family and per-timeline series for the timeline with WAL', async () => {
    const r = await get('/metrics');
    expect(r.status).toBe(200);
    expect(r.contentType).toMatch(/text\/plain/);
    const m = r.text;
    for (const family of [
      'walkeeper_wal_received_bytes_total',
      'walkeeper_wal_flushed_bytes_total',
      'walkeeper_wal_fsync_seconds',
      'walkeeper_connected_proposers',
      'walkeeper_connected_readers',
      'walkeeper_timeline_flush_lsn',
      'walkeeper_timeline_commit_lsn',
    ]) {
      expect(m).toContain(`# TYPE ${family} `);
    }
    expect(m).toContain('# TYPE walkeeper_wal_fsync_seconds histogram');
    expect(metric(m, 'walkeeper_wal_received_bytes_total')).toBeGreaterThanOrEqual(wal.bytes.length);
    expect(metric(m, 'walkeeper_wal_flushed_bytes_total')).toBeGreaterThanOrEqual(wal.bytes.length);
    expect(metric(m, 'walkeeper_wal_fsync_seconds_count')).toBeGreaterThan(0);
    expect(m).toMatch(/walkeeper_wal_fsync_seconds_bucket\{le="\+Inf"\} [1-9]/);
    const labels = `{tenant_id="${T}",timeline_id="${L}"}`;
    expect(metric(m, `walkeeper_timeline_flush_lsn${labels}`)).toBe(Number(wal.end));
    expect(metric(m, `walkeeper_timeline_commit_lsn${labels}`)).toBe(Number(wal.end));
    // the reader is gone; wait for the proposer to go too
    await proposer?.close();
    proposer = undefined;
    await sleep(200);
    const after = (await get('/metrics')).text;
    expect(metric(after, 'walkeeper_connected_proposers')).toBe(0);
    expect(metric(after, 'walkeeper_connected_readers')).toBe(0);
    expect((await get(`/v1/tenants/${T}/timelines/${L}`)).json).toMatchObject({ proposer_connected: false, readers: [] });
  });

  test('deleting the tenant drops its per-timeline series', async () => {
    expect((await del(`/v1/tenants/${T}`)).status).toBe(200);
    const m = (await get('/metrics')).text;
    expect(m).not.toContain(`tenant_id="${T}"`);
  });
});

describe('unknown routes', () => {
  test('an unknown path is JSON 404 not_found', async () => {
    const r = await get('/v1/nothing/here');
    expectError(r, 404, 'not_found');
    expect(r.json.error).toContain('GET /v1/nothing/here');
  });

  test('a known path with the wrong method is JSON 404', async () => {
    expectError(await http(ts.httpUrl, 'PUT', '/v1/tenants'), 404, 'not_found');
    expectError(await http(ts.httpUrl, 'DELETE', '/v1/tenants'), 404, 'not_found');
    expectError(await http(ts.httpUrl, 'POST', '/healthz'), 404, 'not_found');
  });
});

/** The value of one sample line (name with labels exactly as printed). */
function metric(text: string, name: string): number {
  for (const line of text.split('\n')) {
    if (line.startsWith(name + ' ')) return Number(line.slice(name.length + 1).split(' ')[0]);
  }
  throw new Error(`metric ${name} not found`);
}
