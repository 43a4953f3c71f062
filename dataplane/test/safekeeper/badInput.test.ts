// Bad input on the safekeeper's Postgres-protocol port: garbage, oversized and truncated
// messages, malformed consensus messages, wrong or unknown ids, LSNs that go backwards or
// skip ahead, stale terms and foreign system ids. Each gets an ErrorResponse naming what was
// wrong, the server stays up and keeps serving, and not one byte of stored WAL or control
// file changes. Then a corrupt control file: reported, isolated, never rewritten.
import { jest } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newId } from '../../src/common/ids.js';
import { formatLsn } from '../../src/common/lsn.js';
import { CONTROL_FILE_NAME } from '../../src/storage/controlFile.js';
import { PgServerError } from '../../src/protocol/pgClient.js';
import { encodeProposerMessage } from '../../src/protocol/consensusCodec.js';
import type { ProposerMessage } from '../../src/consensus/messages.js';
import {
  FakeProposer,
  START_LSN,
  SYSTEM_ID,
  buildWal,
  connectReplication,
  copyData,
  hashTree,
  http,
  queryMessage,
  rawExchange,
  readWal,
  removeDir,
  replicationStartup,
  sleep,
  startTestSafekeeper,
  startupPacket,
  tempDir,
  typedMessage,
  type TestSafekeeper,
} from '@walkeeper/testkit/safekeeperHarness';

jest.setTimeout(30_000);

const TENANT = newId();
const TIMELINE = newId();
/** a second timeline with WAL: the one whose control file gets corrupted at the end */
const OTHER = newId();
const TERM = 2n;

let dir: string;
let ts: TestSafekeeper;
const wal = buildWal(300); // ~600 KB: several AppendRequests, within one segment
let baseline: Record<string, string>;

const timelineDir = (t: string) => join(dir, 'tenants', TENANT, t);

async function pushInitialWal(timelineId: string): Promise<void> {
  const p = await FakeProposer.connect(ts.pgPort, TENANT, timelineId);
  try {
    const vote = await p.elect(TENANT, timelineId, TERM, START_LSN);
    expect(vote).toMatchObject({ tag: 'vote_response', voteGiven: true, term: TERM });
    const r = await p.pushWal(TERM, START_LSN, wal.bytes);
    expect(r.flushLsn).toBe(wal.end);
    expect(r.commitLsn).toBe(wal.end);
  } finally {
    await p.close();
  }
}

/** The server still answers HTTP and a fresh reader, and nothing on disk changed. */
async function expectHealthyAndUnchanged(): Promise<void> {
  const h = await http(ts.httpUrl, 'GET', '/healthz');
  expect(h.status).toBe(200);
  const c = await connectReplication(ts.pgPort, TENANT, TIMELINE);
  try {
    const r = await c.query('IDENTIFY_SYSTEM');
    expect(r.rows[0][0]).toBe(SYSTEM_ID.toString());
    expect(r.rows[0][2]).toBe(formatLsn(wal.end));
  } finally {
    c.destroy();
  }
  expect(hashTree(timelineDir(TIMELINE))).toEqual(baseline);
}

beforeAll(async () => {
  dir = tempDir('badinput');
  ts = await startTestSafekeeper(dir);
  expect((await http(ts.httpUrl, 'POST', '/v1/tenants', { body: { tenant_id: TENANT } })).status).toBe(201);
  for (const t of [TIMELINE, OTHER]) {
    expect((await http(ts.httpUrl, 'POST', `/v1/tenants/${TENANT}/timelines`, { body: { timeline_id: t } })).status).toBe(201);
    await pushInitialWal(t);
  }
  // let the lazily kept commit LSN reach the control file (checkpoint runs every second)
  await sleep(1500);
  baseline = hashTree(timelineDir(TIMELINE));
  expect(Object.keys(baseline)).toEqual(expect.arrayContaining([CONTROL_FILE_NAME, '000000010000000000000001.partial']));
});

afterAll(async () => {
  await ts?.sk.stop().catch(() => undefined);
  removeDir(dir);
});

describe('malformed bytes on a new connection', () => {
  afterEach(expectHealthyAndUnchanged);

  test('random garbage is refused as an invalid startup packet', async () => {
    // deterministic "random" bytes whose first int32 is negative
    let seed = 42;
    const garbage = Buffer.alloc(256);
    for (let i = 0; i < garbage.length; i++) garbage[i] = ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) >> 16) & 0xff;
    garbage[0] |= 0x80;
    const r = await rawExchange(ts.pgPort, [garbage]);
    expect(r.error).toMatchObject({ severity: 'FATAL', code: '08P01', message: expect.stringMatching(/invalid length of startup packet: -\d+/) });
    expect(r.closedByServer).toBe(true);
  });

  test('an HTTP request on the Postgres port is refused naming the bad length', async () => {
    const r = await rawExchange(ts.pgPort, [Buffer.from('GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n')]);
    expect(r.error?.message).toMatch(/invalid length of startup packet: 1195725856 \(at most 10000 bytes\)/);
    expect(r.closedByServer).toBe(true);
  });

  test('an oversized startup length is refused before any body is read', async () => {
    const head = Buffer.alloc(8);
    head.writeInt32BE(50_000_000, 0);
    head.writeInt32BE(196608, 4);
    const r = await rawExchange(ts.pgPort, [head]);
    expect(r.error?.message).toMatch(/invalid length of startup packet: 50000000/);
    expect(r.closedByServer).toBe(true);
  });

  test('an unsupported protocol version is named', async () => {
    const p = startupPacket({ user: 'x' });
    p.writeInt32BE(0x00020000, 4);
    const r = await rawExchange(ts.pgPort, [p]);
    expect(r.error).toMatchObject({ code: '0A000', message: expect.stringContaining('unsupported frontend protocol 2.0') });
  });

  test('a startup packet without its terminator is refused', async () => {
    const good = replicationStartup(TENANT, TIMELINE);
    const bad = Buffer.from(good);
    bad[bad.length - 1] = 0x41; // last byte should be the NUL terminator
    const r = await rawExchange(ts.pgPort, [bad]);
    expect(r.error?.message).toMatch(/invalid startup packet layout/);
  });

  test('an oversized message length after startup is refused', async () => {
    const head = Buffer.alloc(5);
    head[0] = 0x64; // 'd'
    head.writeInt32BE(0x7ffffff0, 1);
    const r = await rawExchange(ts.pgPort, [replicationStartup(TENANT, TIMELINE), head]);
    expect(r.error).toMatchObject({ code: '08P01', message: expect.stringMatching(/message 'd' of 2147483633 bytes exceeds the limit/) });
    expect(r.closedByServer).toBe(true);
  });

  test('a message length shorter than its own field is refused', async () => {
    const head = Buffer.from([0x51, 0, 0, 0, 2]);
    const r = await rawExchange(ts.pgPort, [replicationStartup(TENANT, TIMELINE), head]);
    expect(r.error?.message).toMatch(/invalid message length 2 for message 'Q'/);
  });

  test('an unknown frontend message type is named', async () => {
    const r = await rawExchange(ts.pgPort, [replicationStartup(TENANT, TIMELINE), typedMessage('P', Buffer.from('x\0SELECT 1\0\0\0'))]);
    expect(r.error?.message).toMatch(/invalid frontend message type 'P'/);
  });

  test('CopyData outside of COPY is refused', async () => {
    const r = await rawExchange(ts.pgPort, [replicationStartup(TENANT, TIMELINE), copyData(Buffer.from('a'))]);
    expect(r.error?.message).toMatch(/unexpected CopyData outside of COPY/);
  });

  test('a truncated startup packet followed by close leaves the server unharmed', async () => {
    const p = replicationStartup(TENANT, TIMELINE);
    const r = await rawExchange(ts.pgPort, [p.subarray(0, 11)], { endAfterWrite: true, waitMs: 1000 });
    expect(r.messages).toEqual([]);
  });

  test('a truncated typed message followed by close leaves the server unharmed', async () => {
    const q = queryMessage('IDENTIFY_SYSTEM');
    const r = await rawExchange(ts.pgPort, [replicationStartup(TENANT, TIMELINE), q.subarray(0, 8)], { endAfterWrite: true, waitMs: 1000 });
    expect(r.messages.some((m) => m.type === 'Z')).toBe(true); // startup completed, query never did
    expect(r.error).toBeUndefined();
  });
});

describe('wrong ids in the startup options', () => {
  afterEach(expectHealthyAndUnchanged);

  test('an invalid tenant_id is named', async () => {
    const r = await rawExchange(ts.pgPort, [replicationStartup('not-a-tenant', TIMELINE)]);
    expect(r.error).toMatchObject({ severity: 'FATAL', code: '22023', message: expect.stringContaining('invalid tenant_id "not-a-tenant"') });
  });

  test('an invalid timeline_id (upper case hex) is named', async () => {
    const bad = TIMELINE.toUpperCase();
    const r = await rawExchange(ts.pgPort, [replicationStartup(TENANT, bad)]);
    expect(r.error?.message).toContain(`invalid timeline_id "${bad}"`);
  });

  test('an unknown tenant is refused at startup, naming it', async () => {
    const unknown = newId();
    const err = await connectReplication(ts.pgPort, unknown, TIMELINE).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PgServerError);
    expect(err).toMatchObject({ code: '42704', message: expect.stringContaining(`tenant ${unknown} does not exist`) });
  });

  test('an unknown timeline of a known tenant is an ERROR naming it; the connection stays usable', async () => {
    const unknown = newId();
    const c = await connectReplication(ts.pgPort, TENANT, unknown);
    try {
      const err = await c.query('IDENTIFY_SYSTEM').catch((e: unknown) => e);
      expect(err).toMatchObject({ code: '42704', severity: 'ERROR', message: expect.stringContaining(`timeline ${unknown} of tenant ${TENANT} does not exist`) });
      const err2 = await c.query('START_REPLICATION PHYSICAL 0/1000000').catch((e: unknown) => e);
      expect(err2).toMatchObject({ code: '42704', message: expect.stringContaining(unknown) });
      expect((await c.query('SHOW wal_segment_size')).rows).toEqual([['16MB']]);
    } finally {
      c.destroy();
    }
  });

  test('commands that need a timeline say which options are missing', async () => {
    const c = await connectReplication(ts.pgPort, undefined, undefined);
    try {
      const err = await c.query('IDENTIFY_SYSTEM').catch((e: unknown) => e);
      expect(err).toMatchObject({ code: '22023', message: expect.stringContaining('tenant_id and timeline_id are required') });
    } finally {
      c.destroy();
    }
  });
});

describe('bad consensus messages inside START_WAL_PUSH', () => {
  afterEach(expectHealthyAndUnchanged);

  async function proposer(): Promise<FakeProposer> {
    return FakeProposer.connect(ts.pgPort, TENANT, TIMELINE);
  }

  test('an empty CopyData', async () => {
    const p = await proposer();
    p.sendRaw(Buffer.alloc(0));
    expect(await p.expectError()).toMatchObject({ severity: 'FATAL', code: '08P01', message: expect.stringContaining('empty proposer message') });
  });

  test('an unknown tag is named', async () => {
    const p = await proposer();
    p.sendRaw(Buffer.from('zzzz'));
    expect((await p.expectError()).message).toMatch(/malformed message from proposer: unknown proposer message tag 'z'/);
  });

  test('a truncated ProposerGreeting names the message and field', async () => {
    const p = await proposer();
    p.sendRaw(Buffer.concat([Buffer.from('g'), Buffer.from(TENANT.slice(0, 10))]));
    expect((await p.expectError()).message).toMatch(/truncated ProposerGreeting/);
  });

  test('a ProposerGreeting with trailing garbage is refused', async () => {
    const p = await proposer();
    const good = encodeProposerMessage(p.greeting(TENANT, TIMELINE));
    p.sendRaw(Buffer.concat([good, Buffer.from([1, 2, 3])]));
    expect((await p.expectError()).message).toMatch(/ProposerGreeting/);
  });

  test('an AppendRequest whose endLsn is before its beginLsn', async () => {
    const p = await proposer();
    const b = Buffer.alloc(45);
    b[0] = 0x61;
    b.writeUInt32BE(0, 1);
    b.writeBigUInt64BE(TERM, 5);
    b.writeBigUInt64BE(wal.end, 13); // begin
    b.writeBigUInt64BE(START_LSN, 21); // end
    p.sendRaw(b);
    expect((await p.expectError()).message).toMatch(new RegExp(`endLsn ${formatLsn(START_LSN)} is before beginLsn ${formatLsn(wal.end)}`));
  });

  test('an AppendRequest whose WAL is shorter than its LSN range', async () => {
    const p = await proposer();
    const b = Buffer.alloc(45 + 100);
    b[0] = 0x61;
    b.writeBigUInt64BE(TERM, 5);
    b.writeBigUInt64BE(wal.end, 13);
    b.writeBigUInt64BE(wal.end + 1000n, 21);
    p.sendRaw(b);
    expect((await p.expectError()).message).toMatch(/truncated AppendRequest: field walData needs 1000 bytes/);
  });

  test('a greeting for another tenant names it', async () => {
    const p = await proposer();
    const other = newId();
    p.send(p.greeting(other, TIMELINE));
    expect(await p.expectError()).toMatchObject({ code: '22023', message: expect.stringMatching(new RegExp(`tenant_mismatch: .*greeting for tenant ${other}`)) });
  });

  test('a greeting for another timeline names it', async () => {
    const p = await proposer();
    p.send(p.greeting(TENANT, OTHER));
    expect((await p.expectError()).message).toMatch(new RegExp(`timeline_mismatch: .*greeting for timeline ${OTHER}`));
  });

  test('a greeting from another PostgreSQL cluster (system id) is refused', async () => {
    const p = await proposer();
    p.send(p.greeting(TENANT, TIMELINE, 1234n));
    const e = await p.expectError();
    expect(e.code).toBe('22023');
    expect(e.message).toMatch(/system_id_mismatch/);
    expect(e.message).toContain('1234');
    expect(e.message).toContain(SYSTEM_ID.toString());
  });

  test('a greeting with another WAL segment size or PostgreSQL major version is refused', async () => {
    const p = await proposer();
    p.send({ ...p.greeting(TENANT, TIMELINE), walSegSize: 1024 * 1024 } as ProposerMessage);
    expect((await p.expectError()).message).toMatch(/wal_seg_size_mismatch: .*1048576.*16777216/);
    const q = await proposer();
    q.send({ ...q.greeting(TENANT, TIMELINE), pgVersion: 160002 } as ProposerMessage);
    expect((await q.expectError()).message).toMatch(/pg_version_mismatch: .*160002.*150004/);
  });

  test('a VoteRequest before the greeting', async () => {
    const p = await proposer();
    p.send({ tag: 'vote_request', generation: 0, term: 99n });
    expect((await p.expectError()).message).toMatch(/not_greeted: .*VoteRequest before ProposerGreeting/);
  });

  test('a non-legacy membership generation is refused', async () => {
    const p = await proposer();
    p.send(p.greeting(TENANT, TIMELINE));
    await p.recv();
    p.send({ tag: 'vote_request', generation: 7, term: 99n });
    expect((await p.expectError()).message).toMatch(/generation_mismatch: .*generation 7/);
  });

  test('an AppendRequest before ProposerElected', async () => {
    const p = await proposer();
    p.send(p.greeting(TENANT, TIMELINE));
    await p.recv();
    p.append(TERM, wal.end, Buffer.alloc(8));
    expect((await p.expectError()).message).toMatch(/append_before_elected/);
  });

  test('a ProposerElected that would truncate acknowledged WAL is refused', async () => {
    const p = await proposer();
    // same term, so no vote is persisted; the vote is refused but the connection has voted
    const v = await p.elect(TENANT, TIMELINE, TERM, START_LSN);
    expect(v).toMatchObject({ voteGiven: false, term: TERM, flushLsn: wal.end });
    expect((await p.expectError()).message).toMatch(new RegExp(`common_point_mismatch: .*streams from ${formatLsn(START_LSN)} .* is ${formatLsn(wal.end)}`));
  });

  test('a ProposerElected whose history does not end in its term is refused', async () => {
    const p = await proposer();
    p.send(p.greeting(TENANT, TIMELINE));
    await p.recv();
    p.send({ tag: 'vote_request', generation: 0, term: TERM });
    await p.recv();
    p.send({ tag: 'proposer_elected', generation: 0, term: TERM, startStreamingAt: wal.end, termHistory: [{ term: 1n, lsn: START_LSN }] });
    expect((await p.expectError()).message).toMatch(/invalid_term_history/);
  });

  test('an AppendRequest whose beginLsn goes backwards is refused, naming both LSNs', async () => {
    const p = await proposer();
    await p.elect(TENANT, TIMELINE, TERM, wal.end);
    p.append(TERM, START_LSN, wal.bytes.subarray(0, 8192));
    const e = await p.expectError();
    expect(e.message).toMatch(/non_sequential_append/);
    expect(e.message).toContain(`begins at ${formatLsn(START_LSN)} but WAL is written up to ${formatLsn(wal.end)}`);
  });

  test('an AppendRequest that leaves a gap is refused, naming both LSNs', async () => {
    const p = await proposer();
    await p.elect(TENANT, TIMELINE, TERM, wal.end);
    const gapAt = wal.end + 8192n;
    p.append(TERM, gapAt, Buffer.alloc(64));
    expect((await p.expectError()).message).toContain(`begins at ${formatLsn(gapAt)} but WAL is written up to ${formatLsn(wal.end)}`);
  });

  test('a stale-term proposer is told the current term and its WAL is not taken', async () => {
    const p = await proposer();
    try {
      p.send(p.greeting(TENANT, TIMELINE));
      expect(await p.recv()).toMatchObject({ tag: 'acceptor_greeting', term: TERM });
      p.send({ tag: 'vote_request', generation: 0, term: TERM - 1n });
      expect(await p.recv()).toMatchObject({ tag: 'vote_response', voteGiven: false, term: TERM });
      // ProposerElected of an older term is ignored (the proposer learns from the replies)
      p.send({ tag: 'proposer_elected', generation: 0, term: TERM - 1n, startStreamingAt: START_LSN, termHistory: [{ term: TERM - 1n, lsn: START_LSN }] });
      // overwriting acknowledged WAL from the start: refused by term, answered with ours
      p.append(TERM - 1n, START_LSN, Buffer.alloc(8192, 0xee));
      const r = await p.recv();
      expect(r).toMatchObject({ tag: 'append_response', term: TERM, flushLsn: 0n });
    } finally {
      await p.close();
    }
  });
});

test('WAL read back through START_REPLICATION is exactly what was pushed', async () => {
  const got = await readWal(ts.pgPort, TENANT, TIMELINE, START_LSN, wal.end);
  expect(got.length).toBe(wal.bytes.length);
  expect(got.equals(wal.bytes)).toBe(true);
});

test('a slow-drip startup is closed after the startup timeout, without blocking others', async () => {
  const packet = replicationStartup(TENANT, TIMELINE);
  // one byte a second: never completes within the 10 s startup timeout
  const drip = rawExchange(
    ts.pgPort,
    Array.from({ length: 14 }, (_, i) => packet.subarray(i, i + 1)),
    { gapMs: 1000, waitMs: 3000 },
  );
  // meanwhile everything else is served
  await sleep(1500);
  await expectHealthyAndUnchanged();
  const r = await drip;
  expect(r.closedByServer).toBe(true);
  expect(r.error).toMatchObject({ code: '08P01', message: expect.stringContaining('startup not completed within 10000 ms') });
  expect(r.elapsedMs).toBeGreaterThanOrEqual(9_500);
  expect(r.elapsedMs).toBeLessThan(16_000);
  await expectHealthyAndUnchanged();
});

test('bad input is counted in walkeeper_protocol_errors_total', async () => {
  const m = await http(ts.httpUrl, 'GET', '/metrics');
  expect(m.text).toMatch(/walkeeper_protocol_errors_total\{code="08P01"\} [1-9]/);
  expect(m.text).toMatch(/walkeeper_protocol_errors_total\{code="22023"\} [1-9]/);
});

describe('a corrupt control file', () => {
  let corruptHash: Record<string, string>;
  const controlPath = () => join(timelineDir(OTHER), CONTROL_FILE_NAME);

  beforeAll(async () => {
    await ts.sk.stop();
    const bytes = readFileSync(controlPath());
    bytes[20] ^= 0x01; // inside the body: the checksum no longer matches
    writeFileSync(controlPath(), bytes);
    corruptHash = hashTree(timelineDir(OTHER));
    ts = await startTestSafekeeper(dir);
  });

  test('the safekeeper starts and lists the timeline with its error', async () => {
    expect((await http(ts.httpUrl, 'GET', '/readyz')).status).toBe(200);
    const r = await http(ts.httpUrl, 'GET', `/v1/tenants/${TENANT}/timelines`);
    expect(r.status).toBe(200);
    const broken = r.json.timelines.find((t: { timeline_id: string }) => t.timeline_id === OTHER);
    expect(broken.error).toMatch(/control file .*safekeeper\.control: checksum mismatch/);
    const good = r.json.timelines.find((t: { timeline_id: string }) => t.timeline_id === TIMELINE);
    expect(good.error).toBeUndefined();
  });

  test('its status route reports the error rather than "does not exist"', async () => {
    const r = await http(ts.httpUrl, 'GET', `/v1/tenants/${TENANT}/timelines/${OTHER}`);
    expect(r.status).toBe(500);
    expect(r.json).toMatchObject({ code: 'timeline_broken', error: expect.stringMatching(/checksum mismatch/) });
  });

  test('readers and proposers get an error naming the control file and checksum', async () => {
    const c = await connectReplication(ts.pgPort, TENANT, OTHER);
    try {
      const err = await c.query('IDENTIFY_SYSTEM').catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'XX000', message: expect.stringMatching(new RegExp(`timeline ${OTHER} .* is unavailable .*control file .*checksum mismatch`)) });
      const err2 = await c.query('START_REPLICATION PHYSICAL 0/1000000').catch((e: unknown) => e);
      expect((err2 as Error).message).toMatch(/checksum mismatch/);
    } finally {
      c.destroy();
    }
    const p = await FakeProposer.connect(ts.pgPort, TENANT, OTHER).catch((e: unknown) => e);
    expect((p as Error).message).toMatch(/unavailable .*checksum mismatch/);
  });

  test('it cannot be re-created over the corrupt one', async () => {
    const r = await http(ts.httpUrl, 'POST', `/v1/tenants/${TENANT}/timelines`, { body: { timeline_id: OTHER } });
    expect(r.status).toBe(409);
    expect(r.json.code).toBe('timeline_exists');
  });

  test('the other timeline still works', async () => {
    await expectHealthyAndUnchanged();
    const got = await readWal(ts.pgPort, TENANT, TIMELINE, START_LSN, wal.end);
    expect(got.equals(wal.bytes)).toBe(true);
    // and still accepts a proposer
    const p = await FakeProposer.connect(ts.pgPort, TENANT, TIMELINE);
    p.send(p.greeting(TENANT, TIMELINE));
    expect(await p.recv()).toMatchObject({ tag: 'acceptor_greeting', term: TERM });
    await p.close();
  });

  test('the corrupt file and its WAL are never rewritten', async () => {
    await sleep(1200); // past a checkpoint interval
    expect(hashTree(timelineDir(OTHER))).toEqual(corruptHash);
    await ts.sk.stop();
    expect(hashTree(timelineDir(OTHER))).toEqual(corruptHash);
    ts = await startTestSafekeeper(dir);
    expect(hashTree(timelineDir(OTHER))).toEqual(corruptHash);
  });
});
