// The WAL lifecycle end to end, with real processes: PostgreSQL 15 (archiving every segment to
// a test directory, the reference copy of the primary's WAL), 3 safekeepers offloading to the
// embedded file:// bucket with a small --wal-keep-size, and the proposer. A member whose volume
// is wiped, and a brand-new member, are caught up byte for byte although the peers removed the
// old WAL. Then several GB of WAL go through (WALKEEPER_LIFECYCLE_GB, default 2): throughout,
// each member's WAL on disk stays near the keep size; every segment a member removed is in the
// bucket, byte-identical to the primary's; and a stock pg_receivewal from the timeline's first
// segment receives all of it (the removed part served from the bucket).
//
// The bucket is file:// because the bound on disk use holds only while offload keeps up with
// ingest: s3rver on this 2-core machine uploaded slower than PostgreSQL wrote (members then
// rightly kept the WAL not yet in the bucket). offload.test.ts covers the S3 store.
import { jest } from '@jest/globals';
import type pg from 'pg';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalCluster } from '../../src/local/cluster.js';
import { waitFor } from '../../src/local/cluster.js';
import { DEFAULT_WAL_SEG_SIZE, formatLsn, parseLsn, segmentStart, walFileName, type Lsn } from '../../src/common/lsn.js';
import { FileStore } from '../../src/remote/fileStore.js';
import { walObjectKey } from '../../src/remote/remoteStorage.js';
import { newTestCluster, destroyTestCluster, initArchivingPrimary, readRange, timelineStatus } from '../helpers/cluster.js';
import { currentFlushLsn, pgConnect } from '../helpers/pg.js';

const run = promisify(execFile);
jest.setTimeout(600_000);

const SEG = BigInt(DEFAULT_WAL_SEG_SIZE);
const GB = Number(process.env.WALKEEPER_LIFECYCLE_GB ?? '2');
const SEGMENTS = Math.max(32, Math.round((GB * 1024) / 16));
/** segments written before the catch-up tests: enough that every member removed some */
const FIRST_SEGMENTS = 16;
const KEEP_SIZE = 64n << 20n;
/**
 * Segments a member may hold beyond the keep size: the one being written, the prepared next
 * one, the one holding the keep floor, and the uploads not yet confirmed by the non-designated
 * members (their grace is 1 s per rank here) at LOAD_MB_PER_SECOND.
 */
const SLACK_SEGMENTS = 10n;
/** Several times pgbench's WAL rate on this machine (about 5 MB/s), and steady enough to bound. */
const LOAD_MB_PER_SECOND = 32;

let cluster: LocalCluster;
let client: pg.Client;
let bucket: FileStore;
let archiveDir: string;
let timelineStart: Lsn;

const status = (id: number) => timelineStatus(cluster, id);

function skDataDir(id: number): string {
  return join(cluster.baseDir, 'safekeepers', `sk${id}`);
}

function skTimelineDir(id: number): string {
  return join(skDataDir(id), 'tenants', cluster.config.tenant_id, cluster.config.timeline_id);
}

const SEGMENT_FILE = /^[0-9A-F]{24}(\.partial|\.prepared)?$/;

/** Bytes of WAL segment files (complete, partial and prepared) in a member's timeline directory. */
function walBytesOnDisk(id: number): bigint {
  let total = 0n;
  let names: string[];
  try {
    names = readdirSync(skTimelineDir(id));
  } catch {
    return 0n;
  }
  for (const name of names) {
    if (!SEGMENT_FILE.test(name)) continue;
    try {
      total += BigInt(statSync(join(skTimelineDir(id), name)).size);
    } catch {
      // removed between readdir and stat
    }
  }
  return total;
}

function archived(segNo: bigint): Buffer {
  return readFileSync(join(archiveDir, walFileName(1, segNo)));
}

function segKey(segNo: bigint): string {
  return walObjectKey(cluster.config.tenant_id, cluster.config.timeline_id, walFileName(1, segNo));
}

/** Waits until PostgreSQL has archived every segment below `end`. */
async function waitArchived(end: Lsn): Promise<void> {
  const last = walFileName(1, end / SEG - 1n);
  await waitFor(`PostgreSQL to archive ${last}`, 120_000, async () => existsSync(join(archiveDir, last)));
}

/** Waits until every listed member knows a commit LSN at or past what the primary flushed now. */
async function waitCommitted(ids: number[]): Promise<Lsn> {
  const flushed = await currentFlushLsn(client);
  await client.query(`INSERT INTO t VALUES (-2, 'carries the commit LSN')`);
  for (const id of ids) await waitFor(`safekeeper ${id} to learn commit LSN ${formatLsn(flushed)}`, 60_000, async () => parseLsn((await status(id)).commit_lsn) >= flushed);
  return flushed;
}

beforeAll(async () => {
  cluster = await newTestCluster();
  cluster.config.remote_storage = { url: `file://${cluster.defaultBucketDir}`, flags: { 'grace-ms': '1000' } };
  cluster.config.safekeeper_flags = { 'wal-keep-size': '64MB' };
  cluster.saveConfig();
  archiveDir = initArchivingPrimary(cluster);
  await cluster.start();
  client = await pgConnect(cluster.config.postgres.port, { statementTimeoutMs: 120_000 });
  await client.query('CREATE TABLE t (id int, v text)');
  bucket = new FileStore(cluster.defaultBucketDir);
  timelineStart = parseLsn((await status(1)).timeline_start_lsn);
});

afterAll(async () => {
  await client?.end().catch(() => undefined);
  await destroyTestCluster(cluster);
});

/**
 * Writes a little and completes a segment, n times; at most `mbPerSecond` when given. What a
 * member holds beyond its keep size is the WAL still in the offload and removal pipeline, so
 * the rate times that pipeline's latency: unpaced, the bound would depend on how fast this
 * machine happens to be today (recycling alone doubled the ingest rate).
 */
async function switchSegments(n: number, mbPerSecond?: number): Promise<void> {
  const began = Date.now();
  for (let i = 0; i < n; i++) {
    await client.query(`INSERT INTO t SELECT g, repeat('w', 100) FROM generate_series(1, 50) g`);
    await client.query('SELECT pg_switch_wal()');
    if (mbPerSecond) {
      const due = began + (((i + 1) * 16) / mbPerSecond) * 1000;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
    }
  }
}

/** Waits until member `id` removed everything below the keep floor of `commit` (the bucket confirmed it all). */
async function waitRemovedToKeepFloor(id: number, commit: Lsn): Promise<Lsn> {
  const keepFloor = segmentStart(commit - KEEP_SIZE);
  await waitFor(`safekeeper ${id} to remove everything below the keep floor ${formatLsn(keepFloor)}`, 60_000, async () => parseLsn((await status(id)).local_start_lsn) >= keepFloor);
  return parseLsn((await status(id)).local_start_lsn);
}

let commitAfterLoad: Lsn;

/** Every complete segment of member `id`'s WAL, from the timeline's first one up to `end`, is on its disk and equals the primary's. */
async function expectWholeTimelineOnDisk(id: number, end: Lsn): Promise<number> {
  let compared = 0;
  for (let segNo = timelineStart / SEG; (segNo + 1n) * SEG <= end; segNo++) {
    expect(readFileSync(join(skTimelineDir(id), walFileName(1, segNo))).equals(archived(segNo))).toBe(true);
    compared++;
  }
  return compared;
}

/** Starts with `flags` added to the safekeepers' flags, then puts them back. */
async function withFlags(flags: Record<string, string>, fn: () => Promise<void>): Promise<void> {
  const before = cluster.config.safekeeper_flags;
  cluster.config.safekeeper_flags = { ...before, ...flags };
  try {
    await fn();
  } finally {
    cluster.config.safekeeper_flags = before;
  }
}

/** Restarts member `id` on an empty data directory and waits until it holds the committed WAL. */
async function catchUpEmptyMember(id: number, empty: () => void): Promise<void> {
  await cluster.killSafekeeper(id);
  empty();
  // the member keeps all it is sent, so the comparison covers the whole timeline
  await withFlags({ 'wal-keep-size': '64GB' }, () => cluster.startSafekeeper(id));
  await cluster.registerTimeline(id);
  const target = await waitCommitted([1, 2, 3].filter((m) => m !== id));
  await waitFor(`safekeeper ${id} to be caught up to ${formatLsn(target)}`, 300_000, async () => parseLsn((await status(id)).flush_lsn) >= target);
  const st = await status(id);
  expect(parseLsn(st.timeline_start_lsn)).toBe(timelineStart);
  expect(await expectWholeTimelineOnDisk(id, segmentStart(target))).toBeGreaterThan(FIRST_SEGMENTS / 2);
  // back to the cluster's keep size for what follows
  await cluster.killSafekeeper(id);
  await cluster.startSafekeeper(id);
}

test('a member whose volume is wiped is caught up from the bucket and its peers, byte for byte, although the peers removed the old WAL', async () => {
  await switchSegments(FIRST_SEGMENTS);
  const commit = await waitCommitted([1, 2, 3]);
  await waitArchived(segmentStart(commit));
  for (const id of [1, 3]) expect(await waitRemovedToKeepFloor(id, commit)).toBeGreaterThan(timelineStart + SEG);
  await catchUpEmptyMember(2, () => rmSync(skDataDir(2), { recursive: true, force: true }));
});

test('a brand-new member on an empty volume is caught up from the bucket and its peers, byte for byte', async () => {
  await catchUpEmptyMember(3, () => renameSync(skDataDir(3), `${skDataDir(3)}.old`));
});

test(`${GB} GB of WAL with offload on: each member's WAL on disk stays under the keep size plus a few segments, and every removed segment is in the bucket, byte-identical to the primary's`, async () => {
  // the members caught up by the tests before start from a full copy: removal first
  const before = await waitCommitted([1, 2, 3]);
  for (const id of [1, 2, 3]) await waitRemovedToKeepFloor(id, before);
  const limit = KEEP_SIZE + SLACK_SEGMENTS * SEG;
  const peak = new Map<number, bigint>([[1, 0n], [2, 0n], [3, 0n]]);
  let samples = 0;
  const sample = () => {
    samples++;
    for (const id of [1, 2, 3]) {
      const bytes = walBytesOnDisk(id);
      if (bytes > peak.get(id)!) peak.set(id, bytes);
    }
  };
  const sampler = setInterval(sample, 100);
  const began = Date.now();
  try {
    await switchSegments(SEGMENTS - FIRST_SEGMENTS, LOAD_MB_PER_SECOND);
    commitAfterLoad = await waitCommitted([1, 2, 3]);
  } finally {
    clearInterval(sampler);
  }
  sample();
  const loadMs = Date.now() - began;
  console.log(`lifecycle: ${SEGMENTS - FIRST_SEGMENTS} segments in ${loadMs} ms (${(((SEGMENTS - FIRST_SEGMENTS) * 16) / (loadMs / 1000)).toFixed(1)} MB/s), ${samples} disk samples, peak WAL on disk per member (MB): ${[...peak.values()].map((b) => (Number(b) / 2 ** 20).toFixed(0)).join(', ')}`);
  for (const id of [1, 2, 3]) expect(peak.get(id)!).toBeLessThanOrEqual(limit);
  expect(samples).toBeGreaterThan((SEGMENTS - FIRST_SEGMENTS) / 4);

  // Removal ran: each member now starts far above the timeline's start.
  await waitArchived(segmentStart(commitAfterLoad));
  for (const id of [1, 2, 3]) {
    const localStart = await waitRemovedToKeepFloor(id, commitAfterLoad);
    const st = await status(id);
    expect(parseLsn(st.backup_lsn)).toBeGreaterThanOrEqual(localStart);
    // every segment removed from this member is in the bucket and byte-identical to the primary's
    for (let segNo = timelineStart / SEG; (segNo + 1n) * SEG <= localStart; segNo++) {
      expect(existsSync(join(skTimelineDir(id), walFileName(1, segNo)))).toBe(false);
      if (id !== 1) continue; // the members share one bucket: check its objects once
      const object = await bucket.get(segKey(segNo)); // its checksum verified by the store
      expect(object).not.toBeNull();
      expect(object!.equals(archived(segNo))).toBe(true);
    }
  }
});

test('a stock pg_receivewal from the first segment of the timeline receives all of it, byte-identical (the removed part from the bucket)', async () => {
  const dir = join(cluster.baseDir, 'receivewal');
  mkdirSync(dir);
  // pg_receivewal resumes at the start of the newest partial segment in its directory: an
  // empty one named after the timeline's first segment makes it ask for the whole timeline.
  const firstSeg = timelineStart / SEG;
  writeFileSync(join(dir, `${walFileName(1, firstSeg)}.partial`), Buffer.alloc(Number(SEG)));
  const end = segmentStart(commitAfterLoad);
  const localStarts = await Promise.all([1, 2, 3].map(async (id) => parseLsn((await status(id)).local_start_lsn)));
  expect(localStarts[1]).toBeGreaterThan(timelineStart + SEG); // the reader crosses removed WAL
  // up to the commit LSN the member knows (pg_receivewal stops once it received past --endpos)
  const commit = parseLsn((await status(2)).commit_lsn);
  expect(segmentStart(commit)).toBe(end);
  await run(join(cluster.postgres.binDir, 'pg_receivewal'), ['-D', dir, '-d', cluster.readerConnInfo(2), '--endpos', formatLsn(commit), '--no-loop', '-n'], { timeout: 300_000 });
  let compared = 0;
  for (let segNo = firstSeg; (segNo + 1n) * SEG <= end; segNo++) {
    const received = readFileSync(join(dir, walFileName(1, segNo)));
    expect(received.equals(archived(segNo))).toBe(true);
    compared++;
  }
  expect(compared).toBeGreaterThanOrEqual(SEGMENTS);
  const after = readdirSync(dir).find((f) => f.startsWith(walFileName(1, end / SEG)))!;
  const tail = Number(commit - end);
  expect(readRange(join(dir, after), 0, tail).equals(readRange(join(cluster.postgres.dataDir, 'pg_wal', walFileName(1, end / SEG)), 0, tail))).toBe(true);
  rmSync(dir, { recursive: true, force: true });
});
