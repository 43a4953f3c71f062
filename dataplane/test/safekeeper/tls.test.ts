// Optional TLS (issue 6): with --tls-cert/--tls-key the HTTP API is HTTPS only and the
// Postgres port answers SSLRequest with 'S' and refuses a plaintext startup, so TLS cannot be
// bypassed. Clients: walkeeper's own pgClient (the proposer's links) and stock pg_receivewal.
// Certificates are made at test time with the openssl CLI: a CA and a server certificate for
// 127.0.0.1 and localhost.
import { jest } from '@jest/globals';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { newId } from '../../src/common/ids.js';
import { DEFAULT_WAL_SEG_SIZE } from '../../src/common/lsn.js';
import { LEGACY_MCONF, MAX_APPEND_PAYLOAD, type AcceptorMessage } from '../../src/consensus/messages.js';
import { SafekeeperLink, parseSafekeeperList } from '../../src/proposer/safekeeperLink.js';
import { connectPg, type PgConnectOptions } from '../../src/protocol/pgClient.js';
import { PG_VERSION, START_LSN, SYSTEM_ID, buildWal, http, rawExchange, removeDir, replicationStartup, startTestSafekeeper, tempDir, type TestSafekeeper } from '@walkeeper/testkit/safekeeperHarness';

jest.setTimeout(40_000);

const run = promisify(execFile);
const PG_BIN = '/usr/lib/postgresql/15/bin';
const T = newId();
const L = newId();
/** the timeline WAL is pushed to; L stays empty */
const L2 = newId();

let dir: string;
let ts: TestSafekeeper;
let ca: Buffer;
let otherCaPath: string;
let caPath: string;

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe', timeout: 20_000 });
}

/** A CA (`<name>.crt`/`.key`) valid for a day. */
function makeCa(name: string): void {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '1', '-subj', `/CN=${name}`]);
}

/** GET over HTTPS with an optional CA; resolves with the status or rejects with the TLS error. */
function httpsGet(url: string, caCert?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca: caCert, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function sslRequest(): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32BE(8, 0);
  b.writeInt32BE(80877103, 4);
  return b;
}

function replicationOptions(extra: Partial<PgConnectOptions> = {}): PgConnectOptions {
  return { host: '127.0.0.1', port: ts.pgPort, user: 'walkeeper', replication: 'true', options: `-c tenant_id=${T} -c timeline_id=${L}`, connectTimeoutMs: 5000, ...extra };
}

beforeAll(async () => {
  dir = tempDir('tls');
  makeCa('ca');
  makeCa('other-ca');
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(dir, 'san.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '1', '-extfile', 'san.cnf']);
  caPath = join(dir, 'ca.crt');
  otherCaPath = join(dir, 'other-ca.crt');
  ca = readFileSync(caPath);
  ts = await startTestSafekeeper(join(dir, 'data'), { tlsCert: join(dir, 'server.crt'), tlsKey: join(dir, 'server.key') });
  const base = `https://${ts.sk.httpAddress}`;
  for (const [path, body] of [
    ['/v1/tenants', { tenant_id: T }],
    [`/v1/tenants/${T}/timelines`, { timeline_id: L }],
    [`/v1/tenants/${T}/timelines`, { timeline_id: L2 }],
  ] as const) {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest(`${base}${path}`, { method: 'POST', ca, headers: { 'content-type': 'application/json' }, timeout: 5000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
    expect(status).toBe(201);
  }
});

afterAll(async () => {
  await ts?.sk.stop();
  removeDir(dir);
});

describe('HTTP API', () => {
  test('HTTPS with the CA works', async () => {
    const r = await httpsGet(`https://${ts.sk.httpAddress}/v1/status`, ca);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ id: 1 });
  });

  test('HTTPS without the CA fails certificate verification', async () => {
    await expect(httpsGet(`https://${ts.sk.httpAddress}/v1/status`)).rejects.toThrow(/certificate/i);
  });

  test('plain HTTP gets no API answer', async () => {
    await expect(http(`http://${ts.sk.httpAddress}`, 'GET', '/v1/status')).rejects.toThrow();
  });
});

describe('Postgres port', () => {
  test('pgClient with tls and the CA connects and runs IDENTIFY_SYSTEM', async () => {
    const conn = await connectPg(replicationOptions({ tls: { ca } }));
    try {
      const r = await conn.query('IDENTIFY_SYSTEM');
      expect(r.commandTag).toBe('IDENTIFY_SYSTEM');
      expect(r.rows).toHaveLength(1);
    } finally {
      conn.destroy();
    }
  });

  test('the proposer\'s link (--tls-ca) pushes WAL over TLS and the safekeeper flushes it', async () => {
    const [target] = parseSafekeeperList(`localhost:${ts.pgPort}`, T, L2);
    target.tls = { ca };
    const replies: AcceptorMessage[] = [];
    const { link } = await SafekeeperLink.open(target, (m) => replies.push(m));
    const next = async (): Promise<AcceptorMessage> => {
      for (let i = 0; i < 100 && replies.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      const m = replies.shift();
      if (!m) throw new Error('no reply from the safekeeper');
      return m;
    };
    try {
      link.send({ tag: 'proposer_greeting', tenantId: T, timelineId: L2, mconf: LEGACY_MCONF, pgVersion: PG_VERSION, systemId: SYSTEM_ID, walSegSize: DEFAULT_WAL_SEG_SIZE });
      expect((await next()).tag).toBe('acceptor_greeting');
      link.send({ tag: 'vote_request', generation: 0, term: 1n });
      expect(await next()).toMatchObject({ tag: 'vote_response', voteGiven: true });
      link.send({ tag: 'proposer_elected', generation: 0, term: 1n, startStreamingAt: START_LSN, termHistory: [{ term: 1n, lsn: START_LSN }] });
      const wal = buildWal(200).bytes; // ~400 KB: several TLS records and AppendRequests
      const end = START_LSN + BigInt(wal.length);
      for (let off = 0; off < wal.length; off += MAX_APPEND_PAYLOAD) {
        const chunk = wal.subarray(off, Math.min(wal.length, off + MAX_APPEND_PAYLOAD));
        const begin = START_LSN + BigInt(off);
        link.send({ tag: 'append_request', generation: 0, term: 1n, beginLsn: begin, endLsn: begin + BigInt(chunk.length), commitLsn: end, truncateLsn: 0n, walData: chunk });
      }
      for (;;) {
        const r = await next();
        if (r.tag === 'append_response' && r.flushLsn >= end) break;
      }
    } finally {
      link.close();
    }
  });

  test('pgClient with tls but without the CA is refused by certificate verification', async () => {
    await expect(connectPg(replicationOptions({ tls: {} }))).rejects.toThrow(/TLS connection to .* failed: .*certificate/i);
  });

  test('pgClient checks the host name: a name the certificate does not carry fails', async () => {
    await expect(connectPg(replicationOptions({ tls: { ca, servername: 'elsewhere.example' } }))).rejects.toThrow(/elsewhere\.example/);
  });

  test('a plaintext client is refused with a clear FATAL', async () => {
    await expect(connectPg(replicationOptions())).rejects.toMatchObject({ severity: 'FATAL', code: '28000', message: 'this safekeeper requires TLS: connect with sslmode=require' });
  });

  test('SSLRequest is answered S', async () => {
    const socket = netConnect({ host: '127.0.0.1', port: ts.pgPort });
    try {
      const answer = await new Promise<Buffer>((resolve, reject) => {
        socket.once('data', resolve);
        socket.once('error', reject);
        socket.write(sslRequest());
      });
      expect(answer.toString('latin1')).toBe('S');
    } finally {
      socket.destroy();
    }
  });

  test('plaintext bytes sent right after SSLRequest are refused, not read', async () => {
    const r = await rawExchange(ts.pgPort, [Buffer.concat([sslRequest(), replicationStartup(T, L)])], { waitMs: 2000 });
    expect(r.error).toMatchObject({ severity: 'FATAL', code: '08P01', message: 'received unencrypted data after SSL request' });
    expect(r.closedByServer).toBe(true);
  });

  test('a pgClient requiring TLS refuses a server that answers N', async () => {
    const plain = await startTestSafekeeper(join(dir, 'plain'), { id: 2 });
    try {
      await expect(connectPg({ ...replicationOptions({ tls: { ca } }), port: plain.pgPort })).rejects.toThrow(/TLS is required but .* refused it: the server does not support TLS/);
    } finally {
      await plain.sk.stop();
    }
  });
});

const havePg = existsSync(join(PG_BIN, 'pg_receivewal'));
(havePg ? describe : describe.skip)('stock pg_receivewal', () => {
  /** pg_receivewal's stderr (its messages), whether it succeeds or not */
  async function receivewal(conn: string): Promise<string> {
    const out = join(dir, `recv-${newId().slice(0, 8)}`);
    execFileSync('mkdir', ['-p', out]);
    try {
      const r = await run(join(PG_BIN, 'pg_receivewal'), ['-D', out, '-d', conn, '--endpos', '0/1000100', '--no-loop', '-n', '-v'], { timeout: 15_000, env: { ...process.env, PGCONNECT_TIMEOUT: '5' } });
      return r.stderr;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      return e.stderr || e.message;
    }
  }
  const conn = (extra: string) => `host=127.0.0.1 port=${ts.pgPort} user=walkeeper ${extra} options='-c tenant_id=${T} -c timeline_id=${L}'`;

  test('connects with sslmode=verify-ca against the CA', async () => {
    const out = await receivewal(conn(`sslmode=verify-ca sslrootcert=${caPath}`));
    // Past the TLS handshake and startup: the safekeeper answered IDENTIFY_SYSTEM and the
    // rest; the empty timeline then refuses START_REPLICATION, which is fine here.
    expect(out).not.toMatch(/SSL|certificate|requires TLS|could not connect/i);
    expect(out).toMatch(/starting log streaming at/);
    expect(out).toMatch(/START_REPLICATION.*holds no WAL yet/);
  });

  test('fails verification with another CA (so the check above is meaningful)', async () => {
    const out = await receivewal(conn(`sslmode=verify-ca sslrootcert=${otherCaPath}`));
    expect(out).toMatch(/certificate verify failed|SSL error/i);
  });

  test('sslmode=disable is refused with the clear message', async () => {
    const out = await receivewal(conn('sslmode=disable'));
    expect(out).toMatch(/this safekeeper requires TLS: connect with sslmode=require/);
  });
});
