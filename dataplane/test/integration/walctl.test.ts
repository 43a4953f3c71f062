// walctl as a user drives it: init, start, status, one safekeeper down (commits go on), two
// down (commits block), one back (they complete), stop and start again (data kept), and
// errors that say what to do.
import { jest } from '@jest/globals';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePortBase } from '../helpers/cluster.js';
import { pgConnect, settlesWithin } from '../helpers/pg.js';
import { findPgBinDir } from '../../src/local/postgres.js';

const run = promisify(execFile);
const WALCTL = fileURLToPath(new URL('../../bin/walctl.js', import.meta.url));
jest.setTimeout(240_000);

let dir: string;
let portBase: number;

async function walctl(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [WALCTL, ...args], { cwd: dir, timeout: 120_000 });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'walctl-test-'));
  chmodSync(dir, 0o755);
  portBase = await freePortBase();
});

afterAll(async () => {
  await walctl('stop').catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

test('init, start, status, failures by hand, stop and resume', async () => {
  const init = await walctl('init', '--port-base', String(portBase));
  expect(init.stdout).toMatch(/default tenant:\s+[0-9a-f]{32}/);

  const start = await walctl('start');
  expect(start.stderr).toMatch(/starting safekeeper 1/);
  expect(start.stderr).toMatch(/waiting for the quorum/);
  expect(start.stdout).toContain(`psql "postgresql://postgres@127.0.0.1:${portBase + 20}/postgres"`);

  const status = JSON.parse((await walctl('status', '--json')).stdout);
  expect(status.quorum_healthy).toBe(true);
  expect(status.postgres.connstr).toBe(`postgresql://postgres@127.0.0.1:${portBase + 20}/postgres`);
  expect(status.components.filter((c: { name: string; state: string }) => c.name.startsWith('safekeeper') && c.state === 'running')).toHaveLength(3);
  expect((await walctl('status')).stdout).toMatch(/quorum healthy/);

  const client = await pgConnect(portBase + 20);
  try {
    await client.query('CREATE TABLE ledger (id int PRIMARY KEY)');
    await walctl('safekeeper', 'stop', '1');
    await client.query('INSERT INTO ledger VALUES (1)');
    await walctl('safekeeper', 'stop', '2');
    const blocked = client.query('INSERT INTO ledger VALUES (2)');
    expect(await settlesWithin(blocked, 4000)).toBe('pending');
    await walctl('safekeeper', 'start', '1');
    await blocked;
    await walctl('safekeeper', 'start', '2');
  } finally {
    await client.end();
  }

  const tl = JSON.parse((await walctl('timeline', 'status', '--json')).stdout);
  expect(tl).toHaveLength(3);
  for (const row of tl) expect(row.flush_lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);

  const created = (await walctl('tenant', 'create')).stdout;
  const newTenant = /([0-9a-f]{32})/.exec(created)![1];
  const list = JSON.parse((await walctl('tenant', 'list', '--json')).stdout);
  expect(list).toEqual(expect.arrayContaining([{ tenant_id: newTenant, safekeepers: 3 }, { tenant_id: status.tenant_id, safekeepers: 3 }]));

  await walctl('stop');
  expect(JSON.parse((await walctl('status', '--json')).stdout).components.every((c: { state: string }) => c.state === 'stopped')).toBe(true);
  await walctl('start');
  const again = await pgConnect(portBase + 20);
  try {
    const rows = await again.query('SELECT id FROM ledger ORDER BY id');
    expect(rows.rows.map((r) => r.id)).toEqual([1, 2]);
  } finally {
    await again.end();
  }
  await walctl('stop');
});

test('a port in use is named, with what to do', async () => {
  const busyDir = mkdtempSync(join(tmpdir(), 'walctl-busy-'));
  const base = await freePortBase();
  const blocker: Server = createServer();
  await new Promise<void>((resolve) => blocker.listen(base + 20, '127.0.0.1', () => resolve()));
  try {
    await run(process.execPath, [WALCTL, 'init', '--port-base', String(base)], { cwd: busyDir });
    const err = await run(process.execPath, [WALCTL, 'start'], { cwd: busyDir }).then(
      () => undefined,
      (e: { stderr: string; code: number }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stderr).toContain(`port in use: 127.0.0.1:${base + 20} (PostgreSQL)`);
    expect(err?.stderr).toContain('walctl init --port-base');
  } finally {
    blocker.close();
    rmSync(busyDir, { recursive: true, force: true });
  }
});

test('without PostgreSQL installed the error gives the apt command', () => {
  expect(() => findPgBinDir(['/nonexistent/bin'], false)).toThrow(/sudo apt-get install -y postgresql-15/);
});

test('commands on a directory without a cluster say how to create one', async () => {
  const empty = mkdtempSync(join(tmpdir(), 'walctl-empty-'));
  try {
    const err = await run(process.execPath, [WALCTL, 'status'], { cwd: empty }).then(
      () => undefined,
      (e: { stderr: string }) => e,
    );
    expect(err?.stderr).toMatch(/no walkeeper cluster in .*: run "walctl init" first/);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});
