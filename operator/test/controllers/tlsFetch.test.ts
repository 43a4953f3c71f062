// The operator's HTTPS client for safekeepers with TLS on: verified against the TLS Secret's CA
// and the member's DNS name, while the URL holds the pod IP (here 127.0.0.1).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataPlaneClient, tlsFetch } from '../../src/controllers/common/dataplane.js';

const NAME = 'wal-0.wal-headless.db.svc.cluster.local';
let dir: string;
let server: Server;
let base: string;
let ca: string;
let otherCa: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'walkeeper-op-tls-'));
  const ssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe', timeout: 20_000 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=test-ca']);
  ssl(['req', '-x509', ...ec, '-keyout', 'other.key', '-out', 'other.crt', '-days', '1', '-subj', '/CN=other-ca']);
  ssl(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${NAME}`]);
  writeFileSync(join(dir, 'san.cnf'), 'subjectAltName=DNS:*.wal-headless.db.svc.cluster.local\n');
  ssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '1', '-extfile', 'san.cnf']);
  ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
  otherCa = readFileSync(join(dir, 'other.crt'), 'utf8');
  server = createServer({ cert: readFileSync(join(dir, 'server.crt')), key: readFileSync(join(dir, 'server.key')) }, (req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ id: 1, version: 'test', uptime_seconds: 1, method: req.method }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  rmSync(dir, { recursive: true, force: true });
});

test('verifies against the CA and the member name, not the URL host', async () => {
  const client = new DataPlaneClient(base, { fetch: tlsFetch({ ca, servername: NAME }), timeoutMs: 3000 });
  await expect(client.status()).resolves.toMatchObject({ id: 1 });
});

test('another CA is refused', async () => {
  const client = new DataPlaneClient(base, { fetch: tlsFetch({ ca: otherCa, servername: NAME }), timeoutMs: 3000 });
  await expect(client.status()).rejects.toThrow(/certificate/i);
});

test('a name the certificate does not carry is refused', async () => {
  const client = new DataPlaneClient(base, { fetch: tlsFetch({ ca, servername: 'wal-0.other.db.svc.cluster.local' }), timeoutMs: 3000 });
  await expect(client.status()).rejects.toThrow(/wal-0\.other/);
});

test('a missing CA fails with the given message', async () => {
  const client = new DataPlaneClient(base, { fetch: tlsFetch({ ca: undefined, missingCa: 'Secret wal-tls has no ca.crt' }), timeoutMs: 3000 });
  await expect(client.status()).rejects.toThrow(/Secret wal-tls has no ca\.crt/);
});
