// pgClient against a tiny server made of walkeeper's own server codec: proves the client and
// the codecs agree, including a full proposer exchange inside START_WAL_PUSH and flow control.
import type { AcceptorMessage, AppendResponse } from '../../src/consensus/messages.js';
import { MAX_APPEND_PAYLOAD } from '../../src/consensus/messages.js';
import { decodeAcceptorMessage, encodeProposerMessage } from '../../src/protocol/consensusCodec.js';
import { PgServerError, connectPg, type PgConnection } from '../../src/protocol/pgClient.js';
import { decodeSenderMessage } from '../../src/protocol/replicationMessages.js';
import { type CodecServer, STREAM_CHUNK, STREAM_MESSAGES, SYSTEM_ID, startCodecServer } from './helpers/codecServer.js';

const TENANT = '0123456789abcdef0123456789abcdef';
const TIMELINE = 'fedcba9876543210fedcba9876543210';
const JWT = 'eyJhbGciOiJFZERTQSJ9.eyJzY29wZSI6InRlbmFudCJ9.c2lnbmF0dXJl';

let server: CodecServer;
const opened: PgConnection[] = [];

async function connect(password: string = JWT): Promise<PgConnection> {
  const conn = await connectPg({
    host: '127.0.0.1',
    port: server.port,
    user: 'walkeeper',
    password,
    replication: 'true',
    applicationName: 'walkeeper_proposer',
    options: `-c tenant_id=${TENANT} -c timeline_id=${TIMELINE}`,
    connectTimeoutMs: 5000,
  });
  opened.push(conn);
  return conn;
}

beforeAll(async () => {
  server = await startCodecServer({ password: JWT });
});

afterAll(async () => {
  for (const c of opened) c.destroy();
  await server.close();
});

test('startup parameters and the JWT password arrive as sent', async () => {
  const conn = await connect();
  expect(server.startups.at(-1)).toEqual({
    user: 'walkeeper',
    database: 'replication',
    replication: 'true',
    application_name: 'walkeeper_proposer',
    options: `-c tenant_id=${TENANT} -c timeline_id=${TIMELINE}`,
    // always added by pg-protocol's serializer; text is decoded as UTF-8
    client_encoding: 'UTF8',
  });
  expect(conn.serverVersion).toBe('15.0');
  expect(conn.serverVersionNum).toBe(150000);
  expect(conn.backendProcessId).toBe(4242);
  await conn.close();
});

test('a wrong password is refused with the server FATAL error', async () => {
  await expect(connect('not-the-token')).rejects.toMatchObject({ name: 'PgServerError', code: '28P01', severity: 'FATAL' });
});

test('IDENTIFY_SYSTEM answers four columns with a NULL dbname', async () => {
  const conn = await connect();
  const r = await conn.query('IDENTIFY_SYSTEM');
  expect(r.fields).toEqual([
    { name: 'systemid', typeOid: 25, typeLen: -1 },
    { name: 'timeline', typeOid: 23, typeLen: 4 },
    { name: 'xlogpos', typeOid: 25, typeLen: -1 },
    { name: 'dbname', typeOid: 25, typeLen: -1 },
  ]);
  expect(r.rows).toEqual([[SYSTEM_ID, '1', '0/0', null]]);
  expect(r.commandTag).toBe('IDENTIFY_SYSTEM');
  await conn.close();
});

test('an unknown command comes back as a syntax error naming it, and the connection goes on', async () => {
  const conn = await connect();
  const err = await conn.query('FROBNICATE now').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(PgServerError);
  expect(err).toMatchObject({ code: '42601', message: expect.stringContaining('FROBNICATE now') });
  const bad = await conn.query('START_REPLICATION 0/XYZ').catch((e: unknown) => e);
  expect(bad).toMatchObject({ code: '42601', message: expect.stringContaining('0/XYZ') });
  expect((await conn.query('IDENTIFY_SYSTEM')).rows).toHaveLength(1);
  await conn.close();
});

test('START_WAL_PUSH carries a whole proposer exchange, with backpressure on 16 MiB of WAL', async () => {
  const conn = await connect();
  const push = await conn.startCopyBoth("START_WAL_PUSH (proto_version '3', allow_timeline_creation 'true')");
  const replies: AcceptorMessage[] = [];
  const reader = (async () => {
    for await (const payload of push) replies.push(decodeAcceptorMessage(payload));
  })();

  push.sendCopyData(
    encodeProposerMessage({ tag: 'proposer_greeting', tenantId: TENANT, timelineId: TIMELINE, mconf: { generation: 0, members: [], newMembers: null }, pgVersion: 150004, systemId: 1n, walSegSize: 16 << 20 }),
  );
  push.sendCopyData(encodeProposerMessage({ tag: 'vote_request', generation: 0, term: 1n }));
  push.sendCopyData(encodeProposerMessage({ tag: 'proposer_elected', generation: 0, term: 1n, startStreamingAt: 0x1000000n, termHistory: [{ term: 1n, lsn: 0x1000000n }] }));
  const wal = Buffer.alloc(MAX_APPEND_PAYLOAD, 0x5a);
  let lsn = 0x1000000n;
  let sawBackpressure = false;
  for (let i = 0; i < 128; i++) {
    const ok = push.sendCopyData(encodeProposerMessage({ tag: 'append_request', generation: 0, term: 1n, beginLsn: lsn, endLsn: lsn + BigInt(wal.length), commitLsn: lsn, truncateLsn: 0n, walData: wal }));
    lsn += BigInt(wal.length);
    if (!ok) {
      sawBackpressure = true;
      await push.drain();
    }
  }
  // wait for the last acknowledgement, then end our half
  while (!replies.some((r) => r.tag === 'append_response' && r.flushLsn === lsn)) await new Promise((r) => setTimeout(r, 10));
  push.sendCopyDone();
  await reader;
  const end = await push.end;

  expect(sawBackpressure).toBe(true);
  expect(replies[0]).toEqual({ tag: 'acceptor_greeting', nodeId: 1n, mconf: { generation: 0, members: [], newMembers: null }, term: 0n });
  expect(replies[1]).toMatchObject({ tag: 'vote_response', term: 1n, voteGiven: true });
  const appends = replies.filter((r): r is AppendResponse => r.tag === 'append_response');
  expect(appends).toHaveLength(128);
  expect(server.walReceived).toBe(128 * MAX_APPEND_PAYLOAD);
  expect(end.results.map((r) => r.commandTag)).toEqual(['START_WAL_PUSH']);
  expect((await conn.query('IDENTIFY_SYSTEM')).rows[0][2]).toBe('0/2000000');
  await conn.close();
});

test('a malformed message inside the stream ends it with the server error; the connection stays usable', async () => {
  const conn = await connect();
  const push = await conn.startCopyBoth('START_WAL_PUSH');
  push.sendCopyData(Buffer.from('zzz'));
  const err = await (async () => {
    for await (const _payload of push) {
      /* none expected */
    }
  })().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(PgServerError);
  expect(err).toMatchObject({ code: '08P01', message: expect.stringContaining("unknown proposer message tag 'z'") });
  await expect(push.end).rejects.toBe(err);
  expect((await conn.query('IDENTIFY_SYSTEM')).rows).toHaveLength(1);
  await conn.close();
});

test('a slow consumer of 12.5 MiB of XLogData gets every message, in order (socket paused, then resumed)', async () => {
  const conn = await connect();
  const stream = await conn.startCopyBoth('START_REPLICATION PHYSICAL 0/3000000 TIMELINE 1');
  await new Promise((r) => setTimeout(r, 300)); // let the server fill our buffers
  let expected = 0x3000000n;
  let count = 0;
  for await (const payload of stream) {
    const m = decodeSenderMessage(payload);
    if (m.tag === 'keepalive') {
      expect(m.replyRequested).toBe(true);
      break;
    }
    expect(m.dataStart).toBe(expected);
    expect(m.data[0]).toBe(count % 256);
    expected += BigInt(m.data.length);
    count++;
  }
  expect(count).toBe(STREAM_MESSAGES);
  expect(expected).toBe(0x3000000n + BigInt(STREAM_MESSAGES * STREAM_CHUNK));
  stream.sendCopyDone();
  for await (const _payload of stream) {
    /* nothing left */
  }
  expect((await stream.end).results.map((r) => r.commandTag)).toEqual(['START_STREAMING']);
  await conn.close();
});

test('onData delivers payloads by callback', async () => {
  const conn = await connect();
  const stream = await conn.startCopyBoth('START_REPLICATION 0/0');
  let count = 0;
  await new Promise<void>((resolve) => {
    stream.onData((payload) => {
      if (decodeSenderMessage(payload).tag === 'keepalive') resolve();
      else count++;
    });
  });
  expect(count).toBe(STREAM_MESSAGES);
  stream.sendCopyDone();
  await stream.end;
  await conn.close();
});
