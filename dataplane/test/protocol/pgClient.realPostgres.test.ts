// pgClient against a real PostgreSQL 15: authentication methods, queries and errors, and a
// physical replication stream through a slot, as the proposer uses it.
import net from 'node:net';
import { formatLsn, parseLsn, segmentStart } from '../../src/common/lsn.js';
import { PgConnectionError, PgServerError, connectPg, type PgConnection } from '../../src/protocol/pgClient.js';
import { decodeSenderMessage, encodeStandbyStatusUpdate, pgNowMicros, type XLogData } from '../../src/protocol/replicationMessages.js';
import { type RealPostgres, startPostgres } from './helpers/realPostgres.js';

let pg: RealPostgres;
const opened: PgConnection[] = [];

async function connect(options: Partial<Parameters<typeof connectPg>[0]> = {}): Promise<PgConnection> {
  const conn = await connectPg({ host: '127.0.0.1', port: pg.port, user: 'postgres', database: 'postgres', ...options });
  opened.push(conn);
  return conn;
}

beforeAll(async () => {
  pg = await startPostgres({
    hba: [
      'host all scram_user 127.0.0.1/32 scram-sha-256',
      'host all md5_user 127.0.0.1/32 md5',
      'host all clear_user 127.0.0.1/32 password',
    ],
  });
  const admin = await connect();
  await admin.query("CREATE ROLE scram_user LOGIN PASSWORD 'scr@m-secret'");
  await admin.query("SET password_encryption = 'md5'; CREATE ROLE md5_user LOGIN PASSWORD 'md5-secret'");
  await admin.query("CREATE ROLE clear_user LOGIN PASSWORD 'clear-secret'");
  await admin.close();
}, 120_000);

afterAll(async () => {
  for (const c of opened) c.destroy();
  await pg?.stop();
});

describe('startup and authentication', () => {
  test('trust over TCP reports server_version and integer_datetimes', async () => {
    const conn = await connect({ applicationName: 'walkeeper_test' });
    expect(conn.serverVersion).toMatch(/^15\./);
    expect(conn.serverVersionNum).toBeGreaterThanOrEqual(150000);
    expect(conn.parameters.get('integer_datetimes')).toBe('on');
    expect(conn.parameters.get('application_name')).toBe('walkeeper_test');
    expect(conn.backendProcessId).toBeGreaterThan(0);
    await conn.close();
  });

  test('trust over the unix socket, given its directory as host', async () => {
    const conn = await connect({ host: pg.socketDir });
    expect((await conn.query('SELECT 1 AS one')).rows).toEqual([['1']]);
    await conn.close();
  });

  test('SCRAM-SHA-256 with the right password', async () => {
    const conn = await connect({ user: 'scram_user', password: 'scr@m-secret' });
    expect((await conn.query('SELECT current_user')).rows).toEqual([['scram_user']]);
    await conn.close();
  });

  test('SCRAM-SHA-256 with a wrong password fails with 28P01', async () => {
    await expect(connect({ user: 'scram_user', password: 'wrong' })).rejects.toMatchObject({ name: 'PgServerError', code: '28P01' });
  });

  test('md5 and cleartext password authentication', async () => {
    const md5 = await connect({ user: 'md5_user', password: 'md5-secret' });
    expect((await md5.query('SELECT current_user')).rows).toEqual([['md5_user']]);
    await md5.close();
    const clear = await connect({ user: 'clear_user', password: 'clear-secret' });
    expect((await clear.query('SELECT current_user')).rows).toEqual([['clear_user']]);
    await clear.close();
  });

  test('a password request without a password is a clear client error', async () => {
    await expect(connect({ user: 'scram_user' })).rejects.toThrow(/requested SCRAM-SHA-256 password authentication for user "scram_user" but no password was given/);
  });

  test('options reach the server as startup parameters', async () => {
    const conn = await connect({ options: '-c statement_timeout=1234' });
    expect((await conn.query('SHOW statement_timeout')).rows).toEqual([['1234ms']]);
    await conn.close();
  });
});

describe('queries', () => {
  test('fields, rows with NULLs and the command tag', async () => {
    const conn = await connect();
    const r = await conn.query("SELECT 1::int4 AS a, NULL::text AS b, 'x' AS c UNION ALL SELECT 2, 'y', NULL");
    expect(r.fields.map((f) => [f.name, f.typeOid])).toEqual([['a', 23], ['b', 25], ['c', 25]]);
    expect(r.rows).toEqual([['1', null, 'x'], ['2', 'y', null]]);
    expect(r.commandTag).toBe('SELECT 2');
    await conn.close();
  });

  test('an ErrorResponse becomes PgServerError and the connection stays usable', async () => {
    const conn = await connect();
    const err = await conn.query('SELECT * FROM no_such_table').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PgServerError);
    expect(err).toMatchObject({ code: '42P01', severity: 'ERROR', message: 'relation "no_such_table" does not exist' });
    expect((await conn.query('SELECT 2')).rows).toEqual([['2']]);
    await conn.close();
  });

  test('notices reach onNotice', async () => {
    const notices: string[] = [];
    const conn = await connect({ onNotice: (n) => notices.push(n.message) });
    await conn.query("DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; END $$");
    expect(notices).toEqual(['hello from plpgsql']);
    await conn.close();
  });

  test('queries issued concurrently run one after the other', async () => {
    const conn = await connect();
    const results = await Promise.all([1, 2, 3].map((i) => conn.query(`SELECT ${i}`)));
    expect(results.map((r) => r.rows[0][0])).toEqual(['1', '2', '3']);
    await conn.close();
  });
});

describe('physical replication through a slot', () => {
  test('IDENTIFY_SYSTEM then START_REPLICATION streams contiguous XLogData from the requested LSN', async () => {
    const admin = await connect();
    await admin.query("SELECT pg_create_physical_replication_slot('walkeeper_proposer', true)");
    const repl = await connect({ replication: 'true', applicationName: 'walkeeper_proposer', database: undefined });
    const ident = await repl.query('IDENTIFY_SYSTEM');
    expect(ident.fields.map((f) => f.name)).toEqual(['systemid', 'timeline', 'xlogpos', 'dbname']);
    const [systemId, timeline, xlogpos, dbname] = ident.rows[0];
    expect(systemId).toMatch(/^\d+$/);
    expect(timeline).toBe('1');
    expect(dbname).toBeNull();
    const start = segmentStart(parseLsn(xlogpos!));

    const stream = await repl.startCopyBoth(`START_REPLICATION SLOT "walkeeper_proposer" PHYSICAL ${formatLsn(start)} TIMELINE 1`);
    stream.sendCopyData(encodeStandbyStatusUpdate({ writeLsn: start, flushLsn: start, applyLsn: 0n, sendTime: pgNowMicros(), replyRequested: false }));
    await admin.query('CREATE TABLE t AS SELECT g AS x, repeat(\'w\', 100) AS pad FROM generate_series(1, 5000) g');

    const received: XLogData[] = [];
    let expectedNext = start;
    for await (const payload of stream) {
      const msg = decodeSenderMessage(payload);
      if (msg.tag !== 'xlog_data') continue;
      expect(msg.dataStart).toBe(expectedNext);
      expectedNext += BigInt(msg.data.length);
      received.push(msg);
      if (received.length >= 3 && expectedNext > parseLsn(xlogpos!)) break;
    }
    expect(received.length).toBeGreaterThanOrEqual(3);
    expect(received[0].dataStart).toBe(start);
    // the first WAL page of a segment starts with a long page header: magic 0xD110 (PG15), then info
    expect(Buffer.from(received[0].data).readUInt16LE(0)).toBe(0xd110);

    stream.sendCopyData(encodeStandbyStatusUpdate({ writeLsn: expectedNext, flushLsn: expectedNext, applyLsn: 0n, sendTime: pgNowMicros(), replyRequested: false }));
    stream.sendCopyDone();
    // drain what the server still sends until its CopyDone
    for await (const _payload of stream) {
      /* discard */
    }
    const end = await stream.end;
    expect(end.results.map((r) => r.commandTag)).toContain('START_STREAMING');
    // the connection is usable again after the stream
    expect((await repl.query('IDENTIFY_SYSTEM')).rows[0][0]).toBe(systemId);

    const slot = await admin.query("SELECT active, restart_lsn FROM pg_replication_slots WHERE slot_name = 'walkeeper_proposer'");
    expect(slot.rows[0][0]).toBe('f');
    await repl.close();
    await admin.close();
  });

  test('START_REPLICATION of an unknown slot rejects with the server error', async () => {
    const repl = await connect({ replication: 'true', database: undefined });
    await expect(repl.startCopyBoth('START_REPLICATION SLOT "nope" 0/1000000 TIMELINE 1')).rejects.toMatchObject({ code: '42704' });
    expect((await repl.query('IDENTIFY_SYSTEM')).rows).toHaveLength(1);
    await repl.close();
  });
});

describe('connection failures', () => {
  test('a server that accepts and never answers times out', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
    const started = Date.now();
    await expect(connectPg({ host: '127.0.0.1', port, user: 'x', connectTimeoutMs: 300 })).rejects.toThrow(PgConnectionError);
    expect(Date.now() - started).toBeLessThan(5000);
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  });

  test('a closed port is a connection error naming the address', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    await expect(connectPg({ host: '127.0.0.1', port, user: 'x' })).rejects.toThrow(new RegExp(`127\\.0\\.0\\.1:${port}`));
  });

  test('a server-side termination fails the pending query', async () => {
    const victim = await connect();
    const admin = await connect();
    const pending = victim.query('SELECT pg_sleep(30)');
    await new Promise((r) => setTimeout(r, 200));
    await admin.query(`SELECT pg_terminate_backend(${victim.backendProcessId})`);
    await expect(pending).rejects.toThrow(/terminating connection due to administrator command|closed/);
    await admin.close();
  });
});
