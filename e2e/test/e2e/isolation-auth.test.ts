// Two Tenants on one Safekeeper with auth on (spec.auth.secretRef: public.pem, admin-token, and a
// tenant-scoped token per compute): each compute sees only its own data, and tenant A's token
// cannot read tenant B's WAL over START_REPLICATION (nor its timeline over HTTP), while B's can.
import { generateKeyPairSync } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { signToken } from '@walkeeper/dataplane/auth/jwt';
import { connectPg } from '@walkeeper/dataplane/protocol/pgClient';
import { Scenario, safekeeperYaml, waitFor } from './helpers.js';

const s = new Scenario('auth');

beforeAll(() => s.start(), 90_000);
afterAll(() => s.stop(), 90_000);

const id = () => randomBytes(16).toString('hex');
const b64 = (x: string) => Buffer.from(x).toString('base64');
const tenantYaml = (name: string, tenantId: string) => `apiVersion: walkeeper.io/v1alpha1
kind: Tenant
metadata:
  name: ${name}
spec:
  tenantId: ${tenantId}
  safekeeperRef:
    name: main
  compute:
    enabled: true
    image: postgres:15
    storage:
      size: 1Gi
`;
const SEGMENT = 16n * 1024n * 1024n;
const lsn = (x: string) => {
  const [hi, lo] = x.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
};
const fmt = (v: bigint) => `${(v >> 32n).toString(16).toUpperCase()}/${(v & 0xffffffffn).toString(16).toUpperCase()}`;

it('keeps two tenants apart: data per compute, and WAL per tenant token', s.step(async () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const A = id();
  const B = id();
  const tokens = {
    admin: await signToken(privatePem, { scope: 'admin' }),
    alpha: await signToken(privatePem, { scope: 'tenant', tenant_id: A }),
    beta: await signToken(privatePem, { scope: 'tenant', tenant_id: B }),
  };
  await s.applyOk(`apiVersion: v1
kind: Secret
metadata:
  name: sk-auth
type: Opaque
data:
  public.pem: ${b64(publicKey.export({ type: 'spki', format: 'pem' }).toString())}
  admin-token: ${b64(tokens.admin)}
  tenant-token-alpha: ${b64(tokens.alpha)}
  tenant-token-beta: ${b64(tokens.beta)}
`);
  await s.applyOk(safekeeperYaml('main', 3, '  auth:\n    secretRef:\n      name: sk-auth\n'));
  await s.applyOk(tenantYaml('alpha', A));
  await s.applyOk(tenantYaml('beta', B));
  await s.waitTenantReady('alpha', 150);
  await s.waitTenantReady('beta', 90);

  // Each compute holds only its own rows.
  for (const [name, other] of [['alpha', 'beta'], ['beta', 'alpha']] as const) {
    const c = await s.connect(name);
    await c.query(`CREATE TABLE ${name}_rows (v text)`);
    await c.query(`INSERT INTO ${name}_rows VALUES ('${name} secret')`);
    const tables = (await c.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).rows.map((r: { tablename: string }) => r.tablename);
    expect(tables).toContain(`${name}_rows`);
    expect(tables).not.toContain(`${other}_rows`);
    await c.end();
  }

  const pod = (await s.safekeeperPods())[0]!;
  const ip = pod.status.podIP!;
  const { timelineId: LB } = await s.tenantStatus('beta');
  // Without a token, or with A's, B's timeline is refused over HTTP; B's and the admin's reach it.
  const http = (token?: string) => fetch(`http://${ip}:7676/v1/tenants/${B}/timelines/${LB}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  expect((await http()).status).toBe(401);
  expect((await http(tokens.alpha)).status).toBe(403);
  const tl = (await (await http(tokens.beta)).json()) as { flush_lsn: string; commit_lsn: string };
  const start = fmt(lsn(tl.commit_lsn) - (lsn(tl.commit_lsn) % SEGMENT));

  const replicate = async (token: string) => {
    const conn = await connectPg({ host: ip, port: 5454, user: 'reader', database: 'replication', replication: 'true', password: token, options: `-c tenant_id=${B} -c timeline_id=${LB}`, connectTimeoutMs: 5000 });
    try {
      const stream = await conn.startCopyBoth(`START_REPLICATION PHYSICAL ${start}`);
      const first = await stream.next();
      return first ? `got ${first.length} bytes, tag ${String.fromCharCode(first[0]!)}` : 'ended';
    } finally {
      conn.destroy();
    }
  };
  const refused = await replicate(tokens.alpha).then((r) => `streamed: ${r}`, (e: Error) => e.message);
  const allowed = await replicate(tokens.beta);
  console.log(`START_REPLICATION of tenant B's WAL from ${start}: with A's token → ${refused}; with B's token → ${allowed}`);
  expect(refused).toMatch(/permission denied|not valid for this tenant/);
  expect(refused).not.toContain('streamed');
  expect(allowed).toMatch(/^got \d+ bytes, tag w$/);

  // The computes' proposers authenticate with their own tenant tokens (wired by the operator).
  const sts = await s.getJson<{ spec: { template: { spec: { containers: { name: string; env?: { name: string; valueFrom?: unknown }[] }[] } } } }>('statefulset', 'alpha-compute');
  const proposer = sts.spec.template.spec.containers.find((c) => c.name === 'proposer')!;
  expect(proposer.env).toContainEqual({ name: 'WALKEEPER_AUTH_TOKEN', valueFrom: { secretKeyRef: { name: 'sk-auth', key: 'tenant-token-alpha' } } });
  await waitFor('both tenants still healthy', 20_000, async () => (await s.tenantStatus('alpha')).quorum?.healthy && (await s.tenantStatus('beta')).quorum?.healthy);
}), 220_000);
