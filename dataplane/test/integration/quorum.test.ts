// Scenarios 1-3 of the data plane: a stock PostgreSQL 15 commits only on a quorum of three
// safekeepers, blocks without one, and a kill -9 of a safekeeper loses nothing it acknowledged.
import { jest } from '@jest/globals';
import type pg from 'pg';
import type { LocalCluster } from '../../src/local/cluster.js';
import { parseLsn, formatLsn, type Lsn } from '../../src/common/lsn.js';
import { newTestCluster, destroyTestCluster, timelineStatus as memberTimeline } from '../helpers/cluster.js';
import { pgConnect, settlesWithin } from '../helpers/pg.js';

jest.setTimeout(180_000);

let cluster: LocalCluster;
let client: pg.Client;

const timelineStatus = (id: number) => memberTimeline(cluster, id);

beforeAll(async () => {
  cluster = await newTestCluster();
  await cluster.start();
  client = await pgConnect(cluster.config.postgres.port);
  await client.query('CREATE TABLE ledger (id bigint PRIMARY KEY, payload text)');
});

afterAll(async () => {
  await client?.end().catch(() => undefined);
  await destroyTestCluster(cluster);
});

test('PostgreSQL lists walkeeper_proposer as its synchronous standby', async () => {
  const r = await client.query(`SELECT application_name, state, sync_state FROM pg_stat_replication WHERE application_name = 'walkeeper_proposer'`);
  expect(r.rows).toEqual([{ application_name: 'walkeeper_proposer', state: 'streaming', sync_state: 'sync' }]);
});

test('a COMMIT that returned has its commit record flushed on at least two safekeepers', async () => {
  await client.query('CREATE EXTENSION IF NOT EXISTS pg_walinspect');
  for (let i = 0; i < 5; i++) {
    const before = (await client.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn')).rows[0].lsn;
    await client.query('BEGIN');
    const xid = (await client.query<{ xid: string }>('SELECT txid_current()::text AS xid')).rows[0].xid;
    await client.query('INSERT INTO ledger VALUES ($1, $2)', [1000 + i, 'x'.repeat(100)]);
    await client.query('COMMIT');
    const flushes = await Promise.all(cluster.config.safekeepers.map((s) => timelineStatus(s.id).then((t) => parseLsn(t.flush_lsn))));
    const after = (await client.query<{ lsn: string }>('SELECT pg_current_wal_flush_lsn()::text AS lsn')).rows[0].lsn;
    const rec = await client.query<{ end_lsn: string }>(
      `SELECT end_lsn::text FROM pg_get_wal_records_info($1, $2) WHERE resource_manager = 'Transaction' AND record_type = 'COMMIT' AND xid::text = $3`,
      [before, after, xid],
    );
    expect(rec.rows).toHaveLength(1);
    const commitEnd = parseLsn(rec.rows[0].end_lsn);
    const holding = flushes.filter((f) => f >= commitEnd).length;
    expect({ commit: formatLsn(commitEnd), holding }).toEqual({ commit: formatLsn(commitEnd), holding: expect.any(Number) });
    expect(holding).toBeGreaterThanOrEqual(2);
  }
});

test('with two of three safekeepers stopped COMMIT blocks, and completes when one returns', async () => {
  await cluster.stopSafekeeper(1);
  await client.query('INSERT INTO ledger VALUES (1, $1)', ['one of three down']);
  await cluster.stopSafekeeper(2);
  const blocked = client.query('INSERT INTO ledger VALUES (2, $1)', ['two of three down']);
  expect(await settlesWithin(blocked, 4000)).toBe('pending');
  await cluster.startSafekeeper(1);
  await blocked;
  await cluster.startSafekeeper(2);
  const rows = await client.query('SELECT id FROM ledger WHERE id IN (1, 2) ORDER BY id');
  expect(rows.rows.map((r) => Number(r.id))).toEqual([1, 2]);
});

test('kill -9 of a safekeeper under load: after restart its flush LSN covers everything it acknowledged', async () => {
  const victim = 3;
  let maxAcked: Lsn = 0n;
  let stop = false;
  const load = (async () => {
    let id = 10_000;
    while (!stop) await client.query('INSERT INTO ledger VALUES ($1, $2)', [id++, 'y'.repeat(500)]);
  })();
  const sampler = (async () => {
    while (!stop) {
      const t = await timelineStatus(victim).catch(() => undefined);
      if (t) {
        const f = parseLsn(t.flush_lsn);
        if (f > maxAcked) maxAcked = f;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  await new Promise((r) => setTimeout(r, 1500));
  // sample once more right before the kill so the bound is as tight as we can observe
  const last = await timelineStatus(victim);
  if (parseLsn(last.flush_lsn) > maxAcked) maxAcked = parseLsn(last.flush_lsn);
  await cluster.killSafekeeper(victim);
  stop = true;
  await load;
  await sampler;
  expect(maxAcked).toBeGreaterThan(0n);
  await cluster.startSafekeeper(victim);
  const after = parseLsn((await timelineStatus(victim)).flush_lsn);
  expect(after >= maxAcked).toBe(true);
});
