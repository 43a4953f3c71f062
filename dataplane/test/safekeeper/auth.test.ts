// Optional JWT auth (ARCHITECTURE.md §7): with a public key configured, every tenant route and
// every Postgres-port connection needs a token; an admin token reaches everything, a tenant
// token only its own tenant — on both ports — and refusals never reveal another tenant's id.
// Probes, metrics and /v1/status stay open for kubelet and Prometheus.
import { jest } from '@jest/globals';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { signToken } from '../../src/auth/jwt.js';
import { newId } from '../../src/common/ids.js';
import { formatLsn } from '../../src/common/lsn.js';
import { PgServerError, connectPg } from '../../src/protocol/pgClient.js';
import {
  FakeProposer,
  START_LSN,
  SYSTEM_ID,
  buildWal,
  connectReplication,
  http,
  readWal,
  removeDir,
  startTestSafekeeper,
  tempDir,
  type HttpReply,
  type TestSafekeeper,
} from '@walkeeper/testkit/safekeeperHarness';

jest.setTimeout(40_000);

const A = newId();
const B = newId();
const LA = newId();
const LB = newId();
const wal = buildWal(50);

let dir: string;
let ts: TestSafekeeper;
let privatePem: string;
const tokens: Record<string, string | undefined> = {};

type TokenName = 'none' | 'expired' | 'badSignature' | 'algNone' | 'badClaims' | 'admin' | 'tenantA' | 'tenantB';
const TOKEN_NAMES: TokenName[] = ['none', 'expired', 'badSignature', 'algNone', 'badClaims', 'admin', 'tenantA', 'tenantB'];
const UNAUTHENTICATED: TokenName[] = ['none', 'expired', 'badSignature', 'algNone', 'badClaims'];

async function rawSign(key: KeyObject, payload: Record<string, unknown>, exp?: number): Promise<string> {
  let jwt = new SignJWT(payload).setProtectedHeader({ alg: 'EdDSA' }).setIssuedAt();
  if (exp !== undefined) jwt = jwt.setExpirationTime(exp);
  return jwt.sign(key);
}

beforeAll(async () => {
  dir = tempDir('auth');
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const other = generateKeyPairSync('ed25519');
  privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const pubPath = join(dir, 'auth.pub.pem');
  writeFileSync(pubPath, publicKey.export({ type: 'spki', format: 'pem' }));

  tokens.none = undefined;
  tokens.admin = await signToken(privatePem, { scope: 'admin' }, '1h');
  tokens.tenantA = await signToken(privatePem, { scope: 'tenant', tenant_id: A }, '1h');
  tokens.tenantB = await signToken(privatePem, { scope: 'tenant', tenant_id: B });
  tokens.expired = await rawSign(privateKey, { scope: 'admin' }, Math.floor(Date.now() / 1000) - 120);
  tokens.badSignature = await rawSign(other.privateKey, { scope: 'admin' });
  tokens.badClaims = await rawSign(privateKey, { scope: 'tenant' }); // no tenant_id
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  tokens.algNone = `${b64({ alg: 'none' })}.${b64({ scope: 'admin' })}.`;

  ts = await startTestSafekeeper(join(dir, 'data'), { authPublicKey: pubPath });
  for (const [t, l] of [
    [A, LA],
    [B, LB],
  ]) {
    expect((await http(ts.httpUrl, 'POST', '/v1/tenants', { token: tokens.admin, body: { tenant_id: t } })).status).toBe(201);
    expect((await http(ts.httpUrl, 'POST', `/v1/tenants/${t}/timelines`, { token: tokens.admin, body: { timeline_id: l } })).status).toBe(201);
  }
  // WAL on A's timeline, pushed with A's own token
  const p = await FakeProposer.connect(ts.pgPort, A, LA, tokens.tenantA);
  await p.elect(A, LA, 1n, START_LSN);
  await p.pushWal(1n, START_LSN, wal.bytes);
  await p.close();
});

afterAll(async () => {
  await ts?.sk.stop().catch(() => undefined);
  removeDir(dir);
});

/** The route is refused with 401 (no valid token) or 403 (valid but not allowed), JSON, without A's ids. */
function expectRefused(r: HttpReply, token: TokenName, secret: string[]): void {
  const status = UNAUTHENTICATED.includes(token) ? 401 : 403;
  expect({ token, status: r.status, code: r.json?.code }).toEqual({ token, status, code: status === 401 ? 'unauthorized' : 'forbidden' });
  expect(typeof r.json.error).toBe('string');
  for (const s of secret) expect(r.text).not.toContain(s);
}

describe('HTTP API', () => {
  test('probes, metrics and /v1/status need no token (and ignore a bad one)', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics', '/v1/status']) {
      for (const token of [undefined, tokens.badSignature]) {
        const r = await http(ts.httpUrl, 'GET', path, { token });
        expect({ path, status: r.status }).toEqual({ path, status: 200 });
      }
    }
  });

  test('GET /v1/tenants needs an admin token', async () => {
    for (const name of TOKEN_NAMES) {
      const r = await http(ts.httpUrl, 'GET', '/v1/tenants', { token: tokens[name] });
      if (name === 'admin') {
        expect(r.status).toBe(200);
        expect(r.json.tenants.map((t: { tenant_id: string }) => t.tenant_id).sort()).toEqual([A, B].sort());
      } else {
        expectRefused(r, name, [A, B, LA, LB]);
      }
    }
  });

  test('POST /v1/tenants needs an admin token, even for the token\'s own tenant id', async () => {
    for (const name of TOKEN_NAMES) {
      const fresh = newId();
      const r = await http(ts.httpUrl, 'POST', '/v1/tenants', { token: tokens[name], body: { tenant_id: fresh } });
      if (name === 'admin') expect(r.status).toBe(201);
      else expectRefused(r, name, [A, B]);
    }
    // a tenant token cannot (re)create its own tenant either, nor learn that it exists
    const own = await http(ts.httpUrl, 'POST', '/v1/tenants', { token: tokens.tenantA, body: { tenant_id: A } });
    expectRefused(own, 'tenantA', [B]);
  });

  test('tenant A\'s routes: admin and tenant A only', async () => {
    const routes: { method: string; path: string; body?: () => unknown; ok: number }[] = [
      { method: 'GET', path: `/v1/tenants/${A}/timelines`, ok: 200 },
      { method: 'POST', path: `/v1/tenants/${A}/timelines`, body: () => ({ timeline_id: newId() }), ok: 201 },
      { method: 'GET', path: `/v1/tenants/${A}/timelines/${LA}`, ok: 200 },
    ];
    for (const route of routes) {
      for (const name of TOKEN_NAMES) {
        const r = await http(ts.httpUrl, route.method, route.path, { token: tokens[name], body: route.body?.() });
        if (name === 'admin' || name === 'tenantA') {
          expect({ route: route.path, name, status: r.status }).toEqual({ route: route.path, name, status: route.ok });
          expect(r.text).not.toContain(B);
        } else {
          // the refused caller named A itself in the path; the answer adds nothing of A's (no timeline ids)
          expectRefused(r, name, [LA, B, LB]);
        }
      }
    }
    const st = await http(ts.httpUrl, 'GET', `/v1/tenants/${A}/timelines/${LA}`, { token: tokens.tenantA });
    expect(st.json).toMatchObject({ tenant_id: A, timeline_id: LA, flush_lsn: formatLsn(wal.end), commit_lsn: formatLsn(wal.end) });
  });

  test('a tenant token sees only its own tenant, and cannot probe whether others exist', async () => {
    const own = await http(ts.httpUrl, 'GET', `/v1/tenants/${B}/timelines`, { token: tokens.tenantB });
    expect(own.status).toBe(200);
    expect(own.json.timelines).toEqual([{ timeline_id: LB }]);
    expect(own.text).not.toContain(A);
    // existing and non-existing foreign tenants are refused alike (403, not 404)
    const existing = await http(ts.httpUrl, 'GET', `/v1/tenants/${A}/timelines/${LA}`, { token: tokens.tenantB });
    const missing = await http(ts.httpUrl, 'GET', `/v1/tenants/${newId()}/timelines/${LA}`, { token: tokens.tenantB });
    expect(existing.status).toBe(403);
    expect(missing.status).toBe(403);
    expect(existing.json.error).toBe(missing.json.error);
  });

  test('DELETE /v1/tenants/:id needs an admin token, even for the token\'s own tenant', async () => {
    const C = newId();
    const tokenC = await signToken(privatePem, { scope: 'tenant', tenant_id: C }, '1h');
    expect((await http(ts.httpUrl, 'POST', '/v1/tenants', { token: tokens.admin, body: { tenant_id: C } })).status).toBe(201);
    for (const name of TOKEN_NAMES.filter((n) => n !== 'admin')) {
      expectRefused(await http(ts.httpUrl, 'DELETE', `/v1/tenants/${C}`, { token: tokens[name] }), name, [A, B]);
    }
    expect((await http(ts.httpUrl, 'DELETE', `/v1/tenants/${C}`, { token: tokenC })).status).toBe(403);
    expect((await http(ts.httpUrl, 'DELETE', `/v1/tenants/${C}`, { token: tokens.admin })).status).toBe(200);
    const D = newId();
    expect((await http(ts.httpUrl, 'POST', '/v1/tenants', { token: tokens.admin, body: { tenant_id: D } })).status).toBe(201);
    expect((await http(ts.httpUrl, 'DELETE', `/v1/tenants/${D}`, { token: tokens.admin })).status).toBe(200);
    // A and B are untouched
    const list = await http(ts.httpUrl, 'GET', '/v1/tenants', { token: tokens.admin });
    expect(list.json.tenants.map((t: { tenant_id: string }) => t.tenant_id)).toEqual(expect.arrayContaining([A, B]));
  });

  test('a malformed Authorization header is 401', async () => {
    for (const value of ['Basic YWRtaW46YWRtaW4=', 'Bearer', `bearer ${tokens.admin}`, `Bearer ${tokens.admin}x`]) {
      const r = await http(ts.httpUrl, 'GET', '/v1/tenants', { headers: { authorization: value } });
      expect({ value, status: r.status }).toEqual({ value, status: 401 });
    }
  });
});

describe('Postgres port', () => {
  type Command = 'IDENTIFY_SYSTEM' | 'START_REPLICATION' | 'START_WAL_PUSH';
  const COMMANDS: Command[] = ['IDENTIFY_SYSTEM', 'START_REPLICATION', 'START_WAL_PUSH'];

  async function run(command: Command, password: string): Promise<void> {
    switch (command) {
      case 'IDENTIFY_SYSTEM': {
        const c = await connectReplication(ts.pgPort, A, LA, { password });
        try {
          const r = await c.query('IDENTIFY_SYSTEM');
          expect(r.rows[0][0]).toBe(SYSTEM_ID.toString());
          expect(r.rows[0][2]).toBe(formatLsn(wal.end));
        } finally {
          c.destroy();
        }
        return;
      }
      case 'START_REPLICATION': {
        const got = await readWal(ts.pgPort, A, LA, START_LSN, wal.end, password);
        expect(got.equals(wal.bytes)).toBe(true);
        return;
      }
      case 'START_WAL_PUSH': {
        const p = await FakeProposer.connect(ts.pgPort, A, LA, password);
        try {
          p.send(p.greeting(A, LA));
          expect(await p.recv()).toMatchObject({ tag: 'acceptor_greeting', term: 1n });
        } finally {
          await p.close();
        }
        return;
      }
    }
  }

  const expectedRefusal: Record<string, RegExp> = {
    none: /authentication required: missing JWT/,
    expired: /JWT has expired/,
    badSignature: /invalid JWT/,
    algNone: /invalid JWT/,
    badClaims: /invalid JWT: scope must be/,
    tenantB: /permission denied: token is not valid for this tenant/,
  };

  for (const command of COMMANDS) {
    test(`${command} on tenant A: admin and tenant A allowed, every other token refused at startup`, async () => {
      for (const name of TOKEN_NAMES) {
        // no token: answer the password request with an empty password
        const password = tokens[name] ?? '';
        if (name === 'admin' || name === 'tenantA') {
          await run(command, password);
          continue;
        }
        const err = await run(command, password).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(PgServerError);
        const e = err as PgServerError;
        expect({ name, code: e.code, severity: e.severity }).toEqual({ name, code: '28P01', severity: 'FATAL' });
        expect(e.message).toMatch(expectedRefusal[name]);
        for (const s of [LA, B, LB]) expect(e.message).not.toContain(s);
      }
    });
  }

  test('a tenant token without tenant options needs admin; admin without options connects', async () => {
    const err = await connectReplication(ts.pgPort, undefined, undefined, { password: tokens.tenantA }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: '28P01', message: expect.stringContaining('needs an admin token') });
    const c = await connectReplication(ts.pgPort, undefined, undefined, { password: tokens.admin! });
    try {
      expect((await c.query('SHOW wal_segment_size')).rows).toEqual([['16MB']]);
    } finally {
      c.destroy();
    }
  });

  test('tenant B\'s token reaches B\'s own timeline but not A\'s, even naming A twice or differently', async () => {
    const c = await connectReplication(ts.pgPort, B, LB, { password: tokens.tenantB! });
    try {
      const r = await c.query('IDENTIFY_SYSTEM');
      expect(r.rows[0][2]).toBe('0/0');
    } finally {
      c.destroy();
    }
    for (const options of [`-c tenant_id=${B} -c tenant_id=${A} -c timeline_id=${LA}`, `--tenant-id=${A} -c timeline_id=${LA}`, `-ctenant_id=${A} -c timeline_id=${LA}`]) {
      const e = await connectPg({ host: '127.0.0.1', port: ts.pgPort, user: 'x', replication: 'true', password: tokens.tenantB, options, connectTimeoutMs: 5000 }).catch((x: unknown) => x);
      expect({ options, code: (e as PgServerError).code }).toEqual({ options, code: '28P01' });
    }
  });

  test('a token for a tenant that does not exist gets "does not exist" only for its own tenant', async () => {
    const X = newId();
    const tokenX = await signToken(privatePem, { scope: 'tenant', tenant_id: X }, '1h');
    const err = await connectReplication(ts.pgPort, X, newId(), { password: tokenX }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: '42704', message: expect.stringContaining(`tenant ${X} does not exist`) });
    // B asking about X (unknown to B): refused by permission, not told whether X exists
    const err2 = await connectReplication(ts.pgPort, X, newId(), { password: tokens.tenantB! }).catch((e: unknown) => e);
    expect(err2).toMatchObject({ code: '28P01' });
  });
});
