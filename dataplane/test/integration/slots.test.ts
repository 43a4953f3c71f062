// Stock readers' replication slots on the safekeepers of a real cluster (PostgreSQL 15 +
// proposer + 3 safekeepers): pg_receivewal --create-slot / --slot resumes from the slot's
// restart LSN after pg_receivewal and the safekeeper restarted, with segments byte-identical
// to the primary's; a hot standby's primary_slot_name advances its slot on the safekeeper;
// a stopped reader's slot holds its restart LSN while WAL advances, and past
// --max-slot-wal-keep-size it is invalidated, reported, and the reader gets a clear error.
import { jest } from '@jest/globals';
import type pg from 'pg';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalCluster } from '../../src/local/cluster.js';
import { httpGet } from '../../src/local/cluster.js';
import { DEFAULT_WAL_SEG_SIZE, formatLsn, parseLsn, parseWalFileName, segmentStart, type Lsn } from '../../src/common/lsn.js';
import type { PostgresServer } from '../../src/local/postgres.js';
import { createStandby } from '@walkeeper/testkit/standby';
import { connectPg } from '../../src/protocol/pgClient.js';
import { newTestCluster, destroyTestCluster, freePortBase, readRange } from '../helpers/cluster.js';
import { pgConnect } from '../helpers/pg.js';

const run = promisify(execFile);
jest.setTimeout(240_000);

const SEG = BigInt(DEFAULT_WAL_SEG_SIZE);
let cluster: LocalCluster;
let client: pg.Client;
let standby: PostgresServer | undefined;
const receivers = new Set<ChildProcess>();

interface SlotJson {
  slot_name: string;
  restart_lsn: string | null;
  active: boolean;
  active_client: string | null;
  wal_status: 'reserved' | 'lost';
  retained_bytes: string;
  invalidation_reason: string | null;
}

async function timeline(sk: number): Promise<{ commit_lsn: string; slots: SlotJson[] }> {
  const c = cluster.config;
  const r = await httpGet(`${cluster.httpUrl(sk)}/v1/tenants/${c.tenant_id}/timelines/${c.timeline_id}`);
  if (r.status !== 200) throw new Error(`safekeeper ${sk} timeline status ${r.status}: ${r.text}`);
  return JSON.parse(r.text);
}

async function slot(sk: number, name: string): Promise<SlotJson | undefined> {
  return (await timeline(sk)).slots.find((s) => s.slot_name === name);
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const bin = (name: string) => join(cluster.postgres.binDir, name);

/** Writes some WAL and ends the segment, so the commit LSN moves into the next one. */
async function switchSegment(): Promise<void> {
  await client.query(`INSERT INTO t SELECT g, repeat('w', 100) FROM generate_series(1, 200) g`);
  await client.query('SELECT pg_switch_wal()');
  await client.query(`INSERT INTO t VALUES (0, 'after the switch')`);
}

/** The commit LSN safekeeper `sk` reports once it has reached what the primary flushed. */
async function commitCaughtUp(sk: number): Promise<Lsn> {
  const r = await client.query<{ lsn: string }>('SELECT pg_current_wal_flush_lsn()::text AS lsn');
  const target = parseLsn(r.rows[0].lsn);
  await client.query(`INSERT INTO t VALUES (-1, 'heartbeat')`); // carries the commit LSN
  return waitFor(`safekeeper ${sk} commit LSN at ${formatLsn(target)}`, async () => {
    const commit = parseLsn((await timeline(sk)).commit_lsn);
    return commit >= target ? commit : undefined;
  });
}

/** pg_receivewal --synchronous --slot into dir, in the background (stopped with SIGINT). */
function startReceiver(sk: number, slotName: string, dir: string): ChildProcess {
  const child = spawn(bin('pg_receivewal'), ['--synchronous', '--slot', slotName, '-D', dir, '-d', cluster.readerConnInfo(sk), '-n'], { stdio: ['ignore', 'ignore', 'pipe'] });
  receivers.add(child);
  child.on('exit', () => receivers.delete(child));
  return child;
}

async function stopReceiver(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGINT');
  await exited;
}

/** Every segment file in dir, compared with the primary's for [its start, endpos). Returns the segment numbers. */
function expectIdenticalToPrimary(dir: string, endpos: Lsn): bigint[] {
  const files = readdirSync(dir).filter((f) => /^[0-9A-F]{24}(\.partial)?$/.test(f)).sort();
  const segs: bigint[] = [];
  for (const f of files) {
    const seg = parseWalFileName(f.replace('.partial', ''))!;
    segs.push(seg.segNo);
    const start = seg.segNo * SEG;
    const length = Number((endpos < start + SEG ? endpos : start + SEG) - start);
    if (length <= 0) continue;
    const mine = readRange(join(dir, f), 0, length);
    const primary = readRange(join(cluster.postgres.dataDir, 'pg_wal', f.replace('.partial', '')), 0, length);
    expect({ file: f, length: mine.length }).toEqual({ file: f, length });
    expect({ file: f, identical: mine.equals(primary) }).toEqual({ file: f, identical: true });
  }
  return segs;
}

beforeAll(async () => {
  cluster = await newTestCluster();
  await cluster.start();
  client = await pgConnect(cluster.config.postgres.port);
  await client.query('CREATE TABLE t (id int, v text)');
  await client.query(`INSERT INTO t SELECT g, repeat('v', 200) FROM generate_series(1, 5000) g`);
});

afterAll(async () => {
  for (const r of [...receivers]) await stopReceiver(r).catch(() => undefined);
  await standby?.stop('immediate').catch(() => undefined);
  await client?.end().catch(() => undefined);
  delete process.env.WALKEEPER_MAX_SLOT_WAL_KEEP_SIZE;
  await destroyTestCluster(cluster);
});

test('pg_receivewal --slot resumes from the slot after it and the safekeeper restart; its segments are the primary\'s', async () => {
  const sk = 2;
  await run(bin('pg_receivewal'), ['--slot', 'recv', '--create-slot', '-d', cluster.readerConnInfo(sk), '-n'], { timeout: 30_000 });
  expect(await slot(sk, 'recv')).toMatchObject({ restart_lsn: null, active: false, wal_status: 'reserved' });
  // --create-slot again: PostgreSQL's 42710 for an existing slot is an error without --if-not-exists
  await expect(run(bin('pg_receivewal'), ['--slot', 'recv', '--create-slot', '-d', cluster.readerConnInfo(sk), '-n'], { timeout: 30_000 })).rejects.toMatchObject({ stderr: expect.stringContaining('replication slot "recv" already exists') });
  await run(bin('pg_receivewal'), ['--slot', 'recv', '--create-slot', '--if-not-exists', '-d', cluster.readerConnInfo(sk), '-n'], { timeout: 30_000 });

  // first run: streams, and the slot follows what it flushed
  const dirA = join(cluster.baseDir, 'recv-a');
  mkdirSync(dirA);
  const first = startReceiver(sk, 'recv', dirA);
  await switchSegment();
  const reached = await commitCaughtUp(sk);
  const held = await waitFor('the slot at the commit LSN', async () => {
    const s = await slot(sk, 'recv');
    return s?.active && s.restart_lsn && parseLsn(s.restart_lsn) >= reached ? s : undefined;
  });
  expect(held.active_client).toContain('pg_receivewal');
  await stopReceiver(first);
  const restart = parseLsn((await waitFor('the slot let go', async () => {
    const s = await slot(sk, 'recv');
    return s && !s.active ? s : undefined;
  })).restart_lsn!);
  expect(restart).toBeGreaterThanOrEqual(reached);

  // WAL moves on two segments while nobody reads; the slot stays where it was
  await switchSegment();
  await switchSegment();
  const commit = await commitCaughtUp(sk);
  expect(segmentStart(commit)).toBeGreaterThanOrEqual(segmentStart(restart) + 2n * SEG);
  expect(parseLsn((await slot(sk, 'recv'))!.restart_lsn!)).toBe(restart);

  // the safekeeper restarts: the slot and its restart LSN are still there
  await cluster.stopSafekeeper(sk);
  await cluster.startSafekeeper(sk);
  expect(await slot(sk, 'recv')).toMatchObject({ restart_lsn: formatLsn(restart), active: false, wal_status: 'reserved' });
  const endpos = await commitCaughtUp(sk);

  // a fresh directory: pg_receivewal asks READ_REPLICATION_SLOT and starts at the slot's segment, not at the current one
  const dirB = join(cluster.baseDir, 'recv-b');
  mkdirSync(dirB);
  await run(bin('pg_receivewal'), ['--slot', 'recv', '-D', dirB, '-d', cluster.readerConnInfo(sk), '--endpos', formatLsn(endpos), '--no-loop', '-n'], { timeout: 60_000 });
  const segsB = expectIdenticalToPrimary(dirB, endpos);
  expect(segsB[0]).toBe(restart / SEG);
  expect(segsB[segsB.length - 1]).toBe(endpos / SEG);
  // and the first directory resumes from its own files, through the same slot
  await run(bin('pg_receivewal'), ['--slot', 'recv', '--synchronous', '-D', dirA, '-d', cluster.readerConnInfo(sk), '--endpos', formatLsn(endpos), '--no-loop', '-n'], { timeout: 60_000 });
  const segsA = expectIdenticalToPrimary(dirA, endpos);
  expect(segsA[segsA.length - 1]).toBe(endpos / SEG);
  expect(parseLsn((await slot(sk, 'recv'))!.restart_lsn!)).toBeGreaterThan(restart);

  // --drop-slot goes through DROP_REPLICATION_SLOT
  await run(bin('pg_receivewal'), ['--slot', 'recv', '--drop-slot', '-d', cluster.readerConnInfo(sk), '-n'], { timeout: 30_000 });
  expect(await slot(sk, 'recv')).toBeUndefined();
});

test('a hot standby with primary_slot_name pointing at a safekeeper advances its slot there', async () => {
  const sk = 1;
  const admin = await connectPg({ host: '127.0.0.1', port: cluster.safekeeperAddr(sk).pg_port, user: 'postgres', replication: 'true', options: `-c tenant_id=${cluster.config.tenant_id} -c timeline_id=${cluster.config.timeline_id}` });
  try {
    await admin.query('CREATE_REPLICATION_SLOT "standby_slot" PHYSICAL (RESERVE_WAL)');
  } finally {
    admin.destroy();
  }
  const reserved = parseLsn((await slot(sk, 'standby_slot'))!.restart_lsn!);
  const base = await freePortBase();
  standby = await createStandby({
    primaryHost: '127.0.0.1',
    primaryPort: cluster.config.postgres.port,
    dir: join(cluster.baseDir, 'standby'),
    host: '127.0.0.1',
    port: base,
    binDir: cluster.postgres.binDir,
    safekeeperConnInfo: cluster.readerConnInfo(sk),
    applicationName: 'standby1',
    settings: { primary_slot_name: `'standby_slot'`, synchronous_standby_names: `''` },
  });
  await standby.start();
  await switchSegment();
  await client.query(`INSERT INTO t VALUES (-2, 'for the standby')`);
  const commit = await commitCaughtUp(sk);
  await waitFor('the row on the standby', async () => {
    try {
      return standby!.psql('SELECT v FROM t WHERE id = -2') === 'for the standby' ? true : undefined;
    } catch {
      return undefined;
    }
  });
  const s = await waitFor('the standby\'s slot at the commit LSN', async () => {
    const v = await slot(sk, 'standby_slot');
    return v?.active && v.restart_lsn && parseLsn(v.restart_lsn) >= commit ? v : undefined;
  });
  expect(s.active_client).toContain('standby1');
  expect(parseLsn(s.restart_lsn!)).toBeGreaterThan(reserved);
  await standby.stop('fast');
  standby = undefined;
  expect(await waitFor('the slot let go', async () => ((await slot(sk, 'standby_slot'))?.active === false ? true : undefined))).toBe(true);
});

test('a stopped reader\'s slot holds its restart LSN while WAL advances; past --max-slot-wal-keep-size it is invalidated and the reader told why', async () => {
  const sk = 3;
  process.env.WALKEEPER_MAX_SLOT_WAL_KEEP_SIZE = '40MB';
  await cluster.stopSafekeeper(sk);
  await cluster.startSafekeeper(sk);
  delete process.env.WALKEEPER_MAX_SLOT_WAL_KEEP_SIZE;
  await cluster.waitForQuorum();

  await run(bin('pg_receivewal'), ['--slot', 'stale', '--create-slot', '-d', cluster.readerConnInfo(sk), '-n'], { timeout: 30_000 });
  const dir = join(cluster.baseDir, 'recv-stale');
  mkdirSync(dir);
  const reader = startReceiver(sk, 'stale', dir);
  const reached = await commitCaughtUp(sk);
  await waitFor('the slot at the commit LSN', async () => {
    const s = await slot(sk, 'stale');
    return s?.restart_lsn && parseLsn(s.restart_lsn) >= reached ? s : undefined;
  });
  await stopReceiver(reader);
  const restart = parseLsn((await waitFor('the slot let go', async () => {
    const s = await slot(sk, 'stale');
    return s && !s.active ? s : undefined;
  })).restart_lsn!);

  // one segment on: within the limit, the slot holds it
  await switchSegment();
  const within = await commitCaughtUp(sk);
  const holding = (await slot(sk, 'stale'))!;
  expect(holding).toMatchObject({ restart_lsn: formatLsn(restart), wal_status: 'reserved', invalidation_reason: null });
  expect(BigInt(holding.retained_bytes)).toBeGreaterThanOrEqual(within - restart);

  // past 40MB behind: invalidated
  for (let i = 0; i < 3; i++) await switchSegment();
  const beyond = await commitCaughtUp(sk);
  expect(beyond - restart).toBeGreaterThan(40n * 1024n * 1024n);
  const lost = await waitFor('the slot lost', async () => {
    const s = await slot(sk, 'stale');
    return s?.wal_status === 'lost' ? s : undefined;
  });
  expect(lost).toMatchObject({ restart_lsn: null, retained_bytes: '0', invalidation_reason: expect.stringMatching(new RegExp(`restart LSN ${formatLsn(restart)} .*more than max_slot_wal_keep_size \\(41943040 bytes\\)`)) });
  const metrics = (await httpGet(`${cluster.httpUrl(sk)}/metrics`)).text;
  expect(metrics).toMatch(/walkeeper_slot_invalidations_total\{[^}]*slot_name="stale"[^}]*\} 1/);
  expect(metrics).toMatch(/walkeeper_slot_lost\{[^}]*slot_name="stale"[^}]*\} 1/);
  // other safekeepers have no such slot: a slot lives where it was created
  expect(await slot(1, 'stale')).toBeUndefined();

  // the reader comes back: a clear error naming the slot and why, not a silent gap
  const again = await run(bin('pg_receivewal'), ['--slot', 'stale', '-D', dir, '-d', cluster.readerConnInfo(sk), '--no-loop', '-n'], { timeout: 30_000 }).then(
    () => undefined,
    (e: { stderr: string }) => e,
  );
  expect(again?.stderr).toMatch(/can no longer access replication slot "stale": it was invalidated: its restart LSN .* more than max_slot_wal_keep_size/);
});
