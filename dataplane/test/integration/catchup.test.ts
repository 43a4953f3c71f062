// A member that lost its volume comes back empty: once the timeline is registered again, the
// proposer catches it up from the most advanced safekeeper (the WAL it lacks is older than
// what the proposer keeps from PostgreSQL), and its WAL is byte-identical to its peers'.
import { jest } from '@jest/globals';
import { rmSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { LocalCluster, httpGet, waitFor } from '../../src/local/cluster.js';
import { parseLsn, DEFAULT_WAL_SEG_SIZE, parseWalFileName } from '../../src/common/lsn.js';
import { newTestCluster, destroyTestCluster } from '../helpers/cluster.js';
import { pgConnect } from '../helpers/pg.js';

jest.setTimeout(240_000);
let cluster: LocalCluster;

afterAll(() => destroyTestCluster(cluster));

async function timeline(id: number): Promise<{ flush_lsn: string; commit_lsn: string; timeline_start_lsn: string }> {
  const c = cluster.config;
  const r = await httpGet(`${cluster.httpUrl(id)}/v1/tenants/${c.tenant_id}/timelines/${c.timeline_id}`);
  if (r.status !== 200) throw new Error(`safekeeper ${id}: ${r.status} ${r.text}`);
  return JSON.parse(r.text);
}

function timelineDir(id: number): string {
  const c = cluster.config;
  return join(cluster.baseDir, 'safekeepers', `sk${id}`, 'tenants', c.tenant_id, c.timeline_id);
}

test('an empty replacement member is caught up from its peers, byte for byte', async () => {
  cluster = await newTestCluster();
  await cluster.start();
  const client = await pgConnect(cluster.config.postgres.port);
  try {
    await client.query('CREATE TABLE t (id int, v text)');
    // more than a segment, so the catch-up crosses segment files
    await client.query(`INSERT INTO t SELECT g, repeat('x', 300) FROM generate_series(1, 80000) g`);

    await cluster.stopSafekeeper(3);
    rmSync(join(cluster.baseDir, 'safekeepers', 'sk3'), { recursive: true, force: true });
    await cluster.startSafekeeper(3);
    await cluster.registerTimeline(3);

    await client.query(`INSERT INTO t VALUES (-1, 'after the replacement')`);
    const target = parseLsn((await timeline(1)).commit_lsn);
    await waitFor('safekeeper 3 to catch up', 120_000, async () => parseLsn((await timeline(3)).flush_lsn) >= target);
  } finally {
    await client.end();
  }

  const [t1, t3] = [await timeline(1), await timeline(3)];
  expect(t3.timeline_start_lsn).toBe(t1.timeline_start_lsn);
  const upTo = parseLsn(t3.flush_lsn) < parseLsn(t1.flush_lsn) ? parseLsn(t3.flush_lsn) : parseLsn(t1.flush_lsn);
  let compared = 0;
  for (const name of readdirSync(timelineDir(3)).filter((f) => /^[0-9A-F]{24}(\.partial)?$/.test(f))) {
    const base = name.replace('.partial', '');
    const segStart = parseWalFileName(base)!.segNo * BigInt(DEFAULT_WAL_SEG_SIZE);
    const len = Number((upTo - segStart < BigInt(DEFAULT_WAL_SEG_SIZE) ? upTo - segStart : BigInt(DEFAULT_WAL_SEG_SIZE)));
    if (len <= 0) continue;
    const peerName = readdirSync(timelineDir(1)).find((f) => f.startsWith(base))!;
    const mine = readFileSync(join(timelineDir(3), name)).subarray(0, len);
    const theirs = readFileSync(join(timelineDir(1), peerName)).subarray(0, len);
    expect(mine.equals(theirs)).toBe(true);
    compared += len;
  }
  expect(compared).toBeGreaterThan(DEFAULT_WAL_SEG_SIZE);

  // The WAL came from a peer (no reader was connected, so only catch-up sends WAL).
  let servedByPeers = 0;
  for (const id of [1, 2]) {
    const m = /^walkeeper_wal_sent_bytes_total (\d+)/m.exec((await httpGet(`${cluster.httpUrl(id)}/metrics`)).text);
    servedByPeers += Number(m?.[1] ?? 0);
  }
  expect(servedByPeers).toBeGreaterThan(DEFAULT_WAL_SEG_SIZE);
});
