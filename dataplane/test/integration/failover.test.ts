// Failover to a new primary: a hot standby that follows a safekeeper is promoted by a
// proposer started with --promote, which makes a PostgreSQL timeline switch (TLI 1 -> 2).
// Stock readers following a safekeeper cross the switch: pg_receivewal writes the TLI 1
// segments, 00000002.history and the TLI 2 segments byte-identical to the new primary's for
// the committed range, and a second hot standby keeps replaying on TLI 2. The old primary's
// proposer, restarted, is fenced with the reason, and changes nothing on the safekeepers. First, a
// --promote proposer beside an empty timeline leaves a standby alone (a recovery promotes itself).
import { jest } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { LocalCluster, httpGet, httpPost } from '../../src/local/cluster.js';
import { newId } from '../../src/common/ids.js';
import { ManagedProcess } from '../../src/local/process.js';
import { PostgresServer } from '../../src/local/postgres.js';
import { createStandby } from '@walkeeper/testkit/standby';
import { DEFAULT_WAL_SEG_SIZE, formatLsn, parseLsn, parseWalFileName, type Lsn } from '../../src/common/lsn.js';
import { connectPg, PgServerError } from '../../src/protocol/pgClient.js';
import { destroyTestCluster, freePortBase, newTestCluster, readRange } from '../helpers/cluster.js';
import { safekeeperTimeline, type TimelineStatus } from '@walkeeper/testkit/torture/env';
import { pgConnect } from '../helpers/pg.js';
import { until } from '../helpers/until.js';

jest.setTimeout(240_000);

let cluster: LocalCluster;
let pg1: pg.Client | undefined;
let newPrimary: PostgresServer | undefined;
let readerStandby: PostgresServer | undefined;
let proposer2: ManagedProcess | undefined;
let receiver: ChildProcess | undefined;
let ports: number;
let receiveDir: string;
/** F: where timeline 2 starts */
let switchpoint: Lsn;
/** the new primary's commit LSN after its rows */
let commitOnTli2: Lsn;

async function timelineOn(id: number): Promise<TimelineStatus> {
  const st = await safekeeperTimeline(cluster, id);
  if (!st) throw new Error(`safekeeper ${id} did not report the timeline`);
  return st;
}

async function proposer2Status(): Promise<Record<string, unknown> | undefined> {
  const r = await httpGet(`http://127.0.0.1:${ports + 5}/v1/status`).catch(() => undefined);
  return r?.status === 200 ? (JSON.parse(r.text) as Record<string, unknown>) : undefined;
}

function psql(server: PostgresServer, sql: string): string | undefined {
  try {
    return server.psql(sql);
  } catch {
    return undefined;
  }
}

function replicationConn(id: number) {
  const c = cluster.config;
  return connectPg({
    host: '127.0.0.1',
    port: cluster.safekeeperAddr(id).pg_port,
    user: 'postgres',
    replication: 'true',
    options: `-c tenant_id=${c.tenant_id} -c timeline_id=${c.timeline_id}`,
  });
}

beforeAll(async () => {
  cluster = await newTestCluster();
  await cluster.start();
  ports = await freePortBase();
  pg1 = await pgConnect(cluster.config.postgres.port);
  await pg1.query('CREATE TABLE t (id int PRIMARY KEY, v text)');
  await pg1.query(`INSERT INTO t SELECT g, 'tli 1' FROM generate_series(1, 2000) g`);

  // pg_receivewal follows safekeeper 2 for the whole test
  receiveDir = join(cluster.baseDir, 'receivewal');
  mkdirSync(receiveDir);
  const runAs = cluster.postgres.runAs;
  if (runAs) chownSync(receiveDir, runAs.uid, runAs.gid);
  const log = openSync(join(cluster.baseDir, 'logs', 'pg_receivewal.log'), 'a');
  receiver = spawn(join(cluster.postgres.binDir, 'pg_receivewal'), ['-D', receiveDir, '-d', cluster.readerConnInfo(2), '-n', '-v', '--no-password'], { uid: runAs?.uid, gid: runAs?.gid, cwd: '/', stdio: ['ignore', log, log] });
  closeSync(log);

  // the future primary follows safekeeper 1; a plain reader standby follows safekeeper 3
  newPrimary = await createStandby({
    primaryHost: '127.0.0.1', primaryPort: cluster.config.postgres.port, dir: join(cluster.baseDir, 'pg2'), host: '127.0.0.1', port: ports + 1,
    safekeeperConnInfo: cluster.readerConnInfo(1), applicationName: 'pg2',
    settings: { synchronous_standby_names: `'walkeeper_proposer'`, synchronous_commit: 'on', wal_keep_size: `'256MB'` },
  });
  readerStandby = await createStandby({
    primaryHost: '127.0.0.1', primaryPort: cluster.config.postgres.port, dir: join(cluster.baseDir, 'pg3'), host: '127.0.0.1', port: ports + 2,
    safekeeperConnInfo: cluster.readerConnInfo(3), applicationName: 'pg3', settings: { synchronous_standby_names: `''` },
  });
  await newPrimary.start();
  await readerStandby.start();
  await pg1.query(`INSERT INTO t VALUES (-1, 'last on tli 1')`);
  for (const s of [newPrimary, readerStandby]) await until('a standby to replay TLI 1', 60_000, async () => psql(s, 'SELECT v FROM t WHERE id = -1') === 'last on tli 1');
});

afterAll(async () => {
  receiver?.kill('SIGKILL');
  await proposer2?.kill().catch(() => undefined);
  await pg1?.end().catch(() => undefined);
  await newPrimary?.stop('immediate').catch(() => undefined);
  await readerStandby?.stop('immediate').catch(() => undefined);
  await destroyTestCluster(cluster);
});

function startProposer2(timelineId: string): ManagedProcess {
  const p = new ManagedProcess('proposer2', join(cluster.baseDir, 'run', 'proposer2.pid'), join(cluster.baseDir, 'logs', 'proposer2.log'));
  p.start([
    'proposer', '--pg', `host=127.0.0.1 port=${ports + 1} user=postgres dbname=postgres`,
    '--safekeepers', cluster.config.safekeepers.map((s) => `127.0.0.1:${s.pg_port}`).join(','),
    '--tenant', cluster.config.tenant_id, '--timeline', timelineId,
    '--listen-http', `127.0.0.1:${ports + 5}`, '--promote',
  ]);
  return p;
}

test('a --promote proposer beside an empty timeline leaves the standby in recovery: a recovering copy promotes itself at its target', async () => {
  // A timeline with no WAL yet, as a Tenant recovered from another one has while its standby replays
  const empty = newId();
  for (const sk of cluster.config.safekeepers) {
    expect((await httpPost(`${cluster.httpUrl(sk.id)}/v1/tenants/${cluster.config.tenant_id}/timelines`, { timeline_id: empty })).status).toBe(201);
  }
  proposer2 = startProposer2(empty);
  try {
    const st = await until('the proposer to refuse', 60_000, async () => {
      const s = await proposer2Status();
      return s?.state === 'refused' ? s : undefined;
    });
    expect(st.reason).toMatch(/is a standby and timeline [0-9a-f]{32} holds no WAL: it is not promoted into an empty timeline/);
    expect(psql(newPrimary!, 'SELECT pg_is_in_recovery()')).toBe('t');
  } finally {
    await proposer2.kill();
  }
  // it still follows the old primary's WAL
  await pg1!.query(`CREATE TABLE refusal AS SELECT 'after the refusal' AS v`);
  await until('the standby to replay on', 60_000, async () => psql(newPrimary!, 'SELECT v FROM refusal') === 'after the refusal');
});

test('a --promote proposer promotes a standby following a safekeeper: timeline 2 starts where the quorum\'s WAL ends', async () => {
  // the old primary's proposer is gone (killed; the chaos scenario partitions it instead)
  await cluster.killProposer();
  const before = await timelineOn(1);
  proposer2 = startProposer2(cluster.config.timeline_id);
  const st = await until('the new proposer to stream', 120_000, async () => {
    const s = await proposer2Status();
    return s?.state === 'streaming' && s.quorum_healthy === true ? s : undefined;
  });
  expect(BigInt(st.term as string)).toBeGreaterThan(BigInt(before.term as string));
  expect(psql(newPrimary!, 'SELECT pg_is_in_recovery()')).toBe('f');
  const history = readFileSync(join(newPrimary!.dataDir, 'pg_wal', '00000002.history'), 'utf8');
  const m = /^1\t([0-9A-F]+\/[0-9A-F]+)\t/.exec(history);
  expect(m).not.toBeNull();
  switchpoint = parseLsn(m![1]);
  expect((st.postgres as Record<string, unknown>).timeline).toBe(2);
  // the switch is recorded on every safekeeper, where the term started
  for (const sk of cluster.config.safekeepers) {
    const tl = await until(`safekeeper ${sk.id} to record timeline 2`, 30_000, async () => {
      const s = await timelineOn(sk.id);
      return s.pg_timeline === 2 ? s : undefined;
    });
    expect(tl.pg_timeline_history).toEqual([{ tli: 1, start_lsn: '0/0' }, { tli: 2, start_lsn: formatLsn(switchpoint) }]);
  }
  expect(st.term_start_lsn).toBe(formatLsn(switchpoint));

  // the new primary commits through the quorum
  const pg2 = await pgConnect(ports + 1);
  try {
    await pg2.query(`INSERT INTO t SELECT g, 'tli 2' FROM generate_series(100001, 102000) g`);
    await pg2.query(`INSERT INTO t VALUES (-2, 'last on tli 2')`);
    const r = await pg2.query<{ lsn: string }>('SELECT pg_current_wal_flush_lsn()::text AS lsn');
    commitOnTli2 = parseLsn(r.rows[0].lsn);
  } finally {
    await pg2.end();
  }
  await until('the commit LSN on safekeeper 2', 30_000, async () => parseLsn((await timelineOn(2)).commit_lsn as string) >= commitOnTli2);
});

test('the old primary\'s proposer, restarted, is fenced because a newer timeline exists, and changes nothing', async () => {
  const before = await timelineOn(1);
  await cluster.startProposer();
  const st = await until('the old proposer to be fenced', 60_000, async () => {
    const s = await cluster.proposerStatus();
    return s?.state === 'fenced' ? s : undefined;
  });
  expect(st.reason).toMatch(/holds PostgreSQL timeline 2 .* our PostgreSQL is on timeline 1: a newer primary was promoted/);
  const after = await timelineOn(1);
  expect(after.term).toBe(before.term);
  expect(parseLsn(after.flush_lsn as string)).toBeGreaterThanOrEqual(parseLsn(before.flush_lsn as string));
  expect((await proposer2Status())?.quorum_healthy).toBe(true);
  await cluster.killProposer();
});

test('pg_receivewal crosses the switch: TLI 1 and TLI 2 segments and 00000002.history match the primaries', async () => {
  const last = await until('pg_receivewal to write the committed TLI 2 WAL', 60_000, async () => {
    const f = readdirSync(receiveDir).filter((n) => n.startsWith('00000002') && /^[0-9A-F]{24}(\.partial)?$/.test(n)).sort().at(-1);
    if (!f) return undefined;
    const seg = parseWalFileName(f.replace('.partial', ''))!;
    const start = seg.segNo * BigInt(DEFAULT_WAL_SEG_SIZE);
    if (commitOnTli2 > start + BigInt(DEFAULT_WAL_SEG_SIZE)) return undefined;
    const length = Number(commitOnTli2 - start);
    const mine = readRange(join(receiveDir, f), 0, length);
    return mine.equals(readRange(join(newPrimary!.dataDir, 'pg_wal', f.replace('.partial', '')), 0, length)) ? f : undefined;
  });
  receiver!.kill('SIGINT');
  expect(readFileSync(join(receiveDir, '00000002.history'), 'utf8')).toBe(readFileSync(join(newPrimary!.dataDir, 'pg_wal', '00000002.history'), 'utf8'));
  const files = readdirSync(receiveDir).filter((n) => /^[0-9A-F]{24}(\.partial)?$/.test(n)).sort();
  let tli1Bytes = 0;
  let tli2Bytes = 0;
  for (const f of files) {
    const seg = parseWalFileName(f.replace('.partial', ''))!;
    const start = seg.segNo * BigInt(DEFAULT_WAL_SEG_SIZE);
    const segEnd = start + BigInt(DEFAULT_WAL_SEG_SIZE);
    // TLI 1 up to the switchpoint comes from the old primary; TLI 2 up to the commit from the new one
    const end = seg.pgTimeline === 1 ? switchpoint : commitOnTli2;
    const length = Number((end < segEnd ? end : segEnd) - start);
    if (length <= 0) continue;
    const primaryDir = seg.pgTimeline === 1 ? cluster.postgres.dataDir : newPrimary!.dataDir;
    const theirs = join(primaryDir, 'pg_wal', f.replace('.partial', ''));
    if (!existsSync(theirs)) continue; // recycled on the primary
    const mine = readRange(join(receiveDir, f), 0, length);
    expect(mine.length).toBe(length);
    expect(mine.equals(readRange(theirs, 0, length))).toBe(true);
    if (seg.pgTimeline === 1) tli1Bytes += length;
    else tli2Bytes += length;
  }
  expect(last.startsWith('00000002')).toBe(true);
  expect(tli1Bytes).toBeGreaterThan(0);
  expect(tli2Bytes).toBeGreaterThan(0);
});

test('a hot standby following a safekeeper keeps replaying across the switch, on timeline 2', async () => {
  await until('the reader standby to replay the new primary\'s rows', 60_000, async () => psql(readerStandby!, 'SELECT v FROM t WHERE id = -2') === 'last on tli 2');
  expect(psql(readerStandby!, 'SELECT count(*) FROM t')).toBe('4002');
  expect(await until('the walreceiver on timeline 2', 30_000, async () => psql(readerStandby!, 'SELECT received_tli FROM pg_stat_wal_receiver') === '2')).toBe(true);
});

test('bad timeline requests get clear errors', async () => {
  const conn = await replicationConn(2);
  try {
    const ident = await conn.query('IDENTIFY_SYSTEM');
    expect(ident.rows[0][1]).toBe('2');
    await expect(conn.query('TIMELINE_HISTORY 3')).rejects.toThrow(/could not open file "pg_wal\/00000003.history".*timeline 3 is not in this server's history; it holds timelines 1, 2/);
    await expect(conn.query('TIMELINE_HISTORY 1')).rejects.toThrow(/timeline 1 is the first timeline and has no history file/);
    const past = switchpoint + 0x100000n;
    await expect(conn.query(`START_REPLICATION ${formatLsn(past)} TIMELINE 1`)).rejects.toThrow(new RegExp(`requested starting point ${formatLsn(past)} on timeline 1 is not in this server's history`));
    const err = await conn.query(`START_REPLICATION ${formatLsn(past)} TIMELINE 1`).catch((e: unknown) => e);
    expect((err as PgServerError).detail).toBe(`This server's history forked from timeline 1 at ${formatLsn(switchpoint)}.`);
    await expect(conn.query('START_REPLICATION 0/3000000 TIMELINE 5')).rejects.toThrow(/requested timeline 5 is not in this server's history/);
    // exactly at the end of timeline 1: no COPY, only the next timeline and where it starts
    const results = await conn.queryAll(`START_REPLICATION ${formatLsn(switchpoint)} TIMELINE 1`);
    expect(results[0].fields.map((f) => f.name)).toEqual(['next_tli', 'next_tli_startpos']);
    expect(results[0].rows).toEqual([['2', formatLsn(switchpoint)]]);
    expect(results.map((r) => r.commandTag)).toEqual(['START_STREAMING', 'START_REPLICATION']);
  } finally {
    conn.destroy();
  }
});
