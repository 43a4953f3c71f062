// Scenario 4: stock PostgreSQL readers stream from a safekeeper. pg_receivewal's segments
// are byte-identical to the primary's for the committed range, and a hot standby whose
// primary_conninfo points at a safekeeper replays and answers queries.
import { jest } from '@jest/globals';
import type pg from 'pg';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, readdirSync, writeFileSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalCluster } from '../../src/local/cluster.js';
import { parseLsn, formatLsn, segmentStart, parseWalFileName, DEFAULT_WAL_SEG_SIZE } from '../../src/common/lsn.js';
import { PostgresServer } from '../../src/local/postgres.js';
import { newTestCluster, destroyTestCluster, freePortBase, readRange } from '../helpers/cluster.js';
import { safekeeperTimeline } from '@walkeeper/testkit/torture/env';
import { pgConnect } from '../helpers/pg.js';

const run = promisify(execFile);
jest.setTimeout(180_000);

let cluster: LocalCluster;
let client: pg.Client;
let standby: PostgresServer | undefined;

async function commitLsnOn(skId: number): Promise<bigint> {
  const commit = (await safekeeperTimeline(cluster, skId))?.commit_lsn;
  if (commit === undefined) throw new Error(`safekeeper ${skId} did not report its commit LSN`);
  return parseLsn(commit);
}

beforeAll(async () => {
  cluster = await newTestCluster();
  await cluster.start();
  client = await pgConnect(cluster.config.postgres.port);
  await client.query('CREATE TABLE t (id int PRIMARY KEY, v text)');
  await client.query(`INSERT INTO t SELECT g, repeat('v', 200) FROM generate_series(1, 20000) g`);
});

afterAll(async () => {
  await standby?.stop('immediate').catch(() => undefined);
  await client?.end().catch(() => undefined);
  await destroyTestCluster(cluster);
});

test('pg_receivewal writes segments byte-identical to the primary for the committed range', async () => {
  // a heartbeat append carries the proposer's commit LSN to every safekeeper
  await client.query(`INSERT INTO t VALUES (-1, 'marker')`);
  await new Promise((r) => setTimeout(r, 300));
  const endpos = await commitLsnOn(2);
  const dir = join(cluster.baseDir, 'receivewal');
  mkdirSync(dir);
  const bin = cluster.postgres.binDir;
  await run(join(bin, 'pg_receivewal'), ['-D', dir, '-d', cluster.readerConnInfo(2), '--endpos', formatLsn(endpos), '--no-loop', '-n'], { timeout: 60_000 });
  const files = readdirSync(dir).filter((f) => /^[0-9A-F]{24}(\.partial)?$/.test(f));
  expect(files.length).toBeGreaterThan(0);
  let compared = 0;
  for (const f of files) {
    const seg = parseWalFileName(f.replace('.partial', ''))!;
    const start = seg.segNo * BigInt(DEFAULT_WAL_SEG_SIZE);
    const length = Number((endpos < start + BigInt(DEFAULT_WAL_SEG_SIZE) ? endpos : start + BigInt(DEFAULT_WAL_SEG_SIZE)) - start);
    if (length <= 0) continue;
    const mine = readRange(join(dir, f), 0, length);
    const primary = readRange(join(cluster.postgres.dataDir, 'pg_wal', f.replace('.partial', '')), 0, length);
    expect(mine.length).toBe(length);
    expect(mine.equals(primary)).toBe(true);
    compared += length;
  }
  expect(compared).toBeGreaterThan(0);
  expect(segmentStart(endpos)).toBeGreaterThan(0n);
});

test('a stock hot standby streaming from a safekeeper replays the primary\'s data', async () => {
  const base = await freePortBase();
  const dataDir = join(cluster.baseDir, 'standby', 'data');
  standby = new PostgresServer({ dataDir, port: base, socketDir: join(cluster.baseDir, 'standby'), logFile: join(cluster.baseDir, 'logs', 'standby.log') });
  mkdirSync(join(cluster.baseDir, 'standby'), { recursive: true });
  const runAs = standby.runAs;
  if (runAs) chownSync(join(cluster.baseDir, 'standby'), runAs.uid, runAs.gid);
  await run(join(cluster.postgres.binDir, 'pg_basebackup'), ['-D', dataDir, '-h', '127.0.0.1', '-p', String(cluster.config.postgres.port), '-U', 'postgres', '-X', 'fetch', '-c', 'fast'], {
    timeout: 120_000,
    uid: runAs?.uid,
    gid: runAs?.gid,
  });
  standby.configure({
    port: base,
    unix_socket_directories: `'${join(cluster.baseDir, 'standby')}'`,
    hot_standby: 'on',
    synchronous_standby_names: `''`,
    primary_conninfo: `'${cluster.readerConnInfo(1).replace(/'/g, "''")} application_name=standby1'`,
  });
  writeFileSync(join(dataDir, 'standby.signal'), '');
  if (runAs) chownSync(join(dataDir, 'standby.signal'), runAs.uid, runAs.gid);
  await standby.start();
  await client.query(`INSERT INTO t VALUES (-2, 'after the standby started')`);
  const deadline = Date.now() + 60_000;
  let seen = '';
  while (Date.now() < deadline) {
    try {
      seen = standby.psql('SELECT v FROM t WHERE id = -2');
      if (seen) break;
    } catch {
      // still starting
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  expect(seen).toBe('after the standby started');
  expect(standby.psql('SELECT count(*) FROM t')).toBe(String(20002));
  expect(standby.psql('SELECT pg_is_in_recovery()')).toBe('t');
});
