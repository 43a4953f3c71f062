// WAL offload with real processes: PostgreSQL, 3 safekeepers and the proposer offloading to a
// real S3-compatible server (s3rver). Every complete committed segment lands in the bucket
// byte-identical to the primary's pg_wal file and backup_lsn survives a restart; WAL gone
// from a member's disk is served from the bucket to a stock pg_receivewal; a damaged object
// is refused with a clear error; and with the store down, commits go on, status says why, and
// offload catches up once the store is back.
import { jest } from '@jest/globals';
import type pg from 'pg';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalCluster } from '../../src/local/cluster.js';
import { httpGet, waitFor } from '../../src/local/cluster.js';
import { DEFAULT_WAL_SEG_SIZE, formatLsn, parseLsn, segmentStart, walFileName, type Lsn } from '../../src/common/lsn.js';
import { openRemoteStorage, parseRemoteStorageUrl } from '../../src/remote/url.js';
import { walObjectKey, type RemoteStorage } from '../../src/remote/remoteStorage.js';
import { designatedUploader } from '../../src/safekeeper/walBackup.js';
import { newTestCluster, destroyTestCluster, readRange, timelineStatus } from '../helpers/cluster.js';
import { currentFlushLsn, pgConnect } from '../helpers/pg.js';
import { TestS3Server } from '@walkeeper/testkit/s3Server';

const run = promisify(execFile);
jest.setTimeout(240_000);

const SEG = BigInt(DEFAULT_WAL_SEG_SIZE);
const PREFIX = 'offload-test';
let s3: TestS3Server;
let cluster: LocalCluster;
let client: pg.Client;
let bucket: RemoteStorage;

const status = (id: number) => timelineStatus(cluster, id);

/** Writes a little and switches segments n times; returns once every member knows it committed. */
async function switchSegments(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await client.query(`INSERT INTO t SELECT g, repeat('w', 200) FROM generate_series(1, 500) g`);
    await client.query('SELECT pg_switch_wal()');
  }
  await client.query(`INSERT INTO t VALUES (-1, 'after the switches')`); // commit lands in the next segment
  // the safekeepers learn the commit LSN with the next append: wait until they have it
  const flushed = await currentFlushLsn(client);
  await client.query(`INSERT INTO t VALUES (-2, 'carries the commit LSN')`);
  for (const id of [1, 2, 3]) await waitFor(`safekeeper ${id} to learn commit LSN ${formatLsn(flushed)}`, 30_000, async () => parseLsn((await status(id)).commit_lsn) >= flushed);
}

/** Segments [first, end) that are complete and below the commit LSN. */
function completeSegments(start: Lsn, commit: Lsn): bigint[] {
  const out: bigint[] = [];
  for (let seg = segmentStart(start) / SEG; (seg + 1n) * SEG <= commit; seg++) out.push(seg);
  return out;
}

function segKey(segNo: bigint): string {
  return walObjectKey(cluster.config.tenant_id, cluster.config.timeline_id, walFileName(1, segNo));
}

function pgWal(segNo: bigint): Buffer {
  return readFileSync(join(cluster.postgres.dataDir, 'pg_wal', walFileName(1, segNo)));
}

function skTimelineDir(id: number): string {
  return join(cluster.baseDir, 'safekeepers', `sk${id}`, 'tenants', cluster.config.tenant_id, cluster.config.timeline_id);
}

async function waitBackedUp(ids: number[], target: Lsn, what: string): Promise<void> {
  for (const id of ids) {
    await waitFor(`safekeeper ${id} ${what}: backup_lsn at ${formatLsn(target)}`, 90_000, async () => parseLsn((await status(id)).backup_lsn) >= target);
  }
}

beforeAll(async () => {
  s3 = await TestS3Server.start();
  cluster = await newTestCluster();
  const o = s3.options();
  cluster.config.remote_storage = {
    url: `s3://${s3.bucket}/${PREFIX}`,
    flags: { endpoint: o.endpoint!, region: o.region!, 'path-style': 'true', checksum: 'when_required', 'access-key-id': o.accessKeyId!, 'secret-access-key': o.secretAccessKey!, 'grace-ms': '1000' },
  };
  cluster.saveConfig();
  await cluster.start();
  client = await pgConnect(cluster.config.postgres.port, { statementTimeoutMs: 60_000 });
  await client.query('CREATE TABLE t (id int, v text)');
  bucket = await openRemoteStorage(parseRemoteStorageUrl(`s3://${s3.bucket}/${PREFIX}`, o, {}));
});

afterAll(async () => {
  await client?.end().catch(() => undefined);
  await bucket?.close().catch(() => undefined);
  await destroyTestCluster(cluster);
  await s3?.destroy();
});

test('every complete committed segment is in the bucket, byte-identical to the primary, and backup_lsn survives a restart', async () => {
  await switchSegments(5);
  const st = await status(1);
  const commit = parseLsn(st.commit_lsn);
  const segments = completeSegments(parseLsn(st.timeline_start_lsn), commit);
  expect(segments.length).toBeGreaterThanOrEqual(5);
  const target = (segments[segments.length - 1] + 1n) * SEG;
  // the designated uploader at once, the others by confirming in the bucket after their grace
  await waitBackedUp([1, 2, 3], target, 'offloaded every complete segment');

  for (const segNo of segments) {
    const object = await bucket.get(segKey(segNo));
    expect(object).not.toBeNull();
    expect(object!.equals(pgWal(segNo))).toBe(true);
  }
  // nothing past the commit LSN's segment (the live segment never goes up)
  const listed = (await bucket.list(walObjectKey(cluster.config.tenant_id, cluster.config.timeline_id, ''))).map((o) => o.key);
  expect(listed).toEqual(segments.map(segKey));

  const offload = (await status(1)).offload;
  expect(offload).toMatchObject({ enabled: true, state: 'ok', last_error: null });
  expect(offload.last_success_at).not.toBeNull();
  // the designated member uploads; another may have taken a segment over after its grace period
  let uploaded = 0;
  let metrics = '';
  for (const id of [1, 2, 3]) {
    metrics = (await httpGet(`${cluster.httpUrl(id)}/metrics`)).text;
    uploaded += Number(/^walkeeper_offload_uploaded_bytes_total (\d+)/m.exec(metrics)?.[1]);
  }
  expect(uploaded).toBeGreaterThanOrEqual(Number(SEG) * segments.length);
  expect(metrics).toMatch(/^walkeeper_offload_lag_bytes\{tenant_id="[0-9a-f]{32}",timeline_id="[0-9a-f]{32}"\} \d+/m);

  // persisted: a restarted member reports the same backup_lsn before it uploads anything
  await cluster.stopSafekeeper(3);
  await cluster.startSafekeeper(3);
  expect(parseLsn((await status(3)).backup_lsn)).toBeGreaterThanOrEqual(target);
});

test('WAL gone from a member\'s disk is served from the bucket to a stock pg_receivewal, byte for byte', async () => {
  const st = await status(2);
  const segments = completeSegments(parseLsn(st.timeline_start_lsn), parseLsn(st.backup_lsn));
  expect(segments.length).toBeGreaterThanOrEqual(3);
  // The member lost segments 2..3 of the timeline (as removal would do once they are offloaded).
  const gone = segments.slice(1, 3);
  for (const segNo of gone) rmSync(join(skTimelineDir(2), walFileName(1, segNo)));

  // pg_receivewal continues after the last complete segment it holds: give it the first one.
  const dir = join(cluster.baseDir, 'receivewal');
  mkdirSync(dir);
  copyFileSync(join(cluster.postgres.dataDir, 'pg_wal', walFileName(1, segments[0])), join(dir, walFileName(1, segments[0])));
  const endpos = (gone[gone.length - 1] + 1n) * SEG + 1024n;
  await run(join(cluster.postgres.binDir, 'pg_receivewal'), ['-D', dir, '-d', cluster.readerConnInfo(2), '--endpos', formatLsn(endpos), '--no-loop', '-n'], { timeout: 60_000 });
  for (const segNo of gone) {
    expect(readFileSync(join(dir, walFileName(1, segNo))).equals(pgWal(segNo))).toBe(true);
  }
  const after = readdirSync(dir).find((f) => f.startsWith(walFileName(1, gone[gone.length - 1] + 1n)))!;
  expect(readRange(join(dir, after), 0, 1024).equals(pgWal(gone[gone.length - 1] + 1n).subarray(0, 1024))).toBe(true);
});

test('an object damaged in the bucket is refused to a reader with an error naming it', async () => {
  const st = await status(2);
  const segNo = completeSegments(parseLsn(st.timeline_start_lsn), parseLsn(st.backup_lsn))[3];
  rmSync(join(skTimelineDir(2), walFileName(1, segNo)));
  const damaged = pgWal(segNo);
  damaged[4096] ^= 0xff;
  writeFileSync(s3.objectPath(`${PREFIX}/${segKey(segNo)}`), damaged);

  const dir = join(cluster.baseDir, 'receivewal-damaged');
  mkdirSync(dir);
  copyFileSync(join(cluster.postgres.dataDir, 'pg_wal', walFileName(1, segNo - 1n)), join(dir, walFileName(1, segNo - 1n)));
  const failed = await run(join(cluster.postgres.binDir, 'pg_receivewal'), ['-D', dir, '-d', cluster.readerConnInfo(2), '--endpos', formatLsn((segNo + 1n) * SEG), '--no-loop', '-n'], { timeout: 60_000 }).then(
    () => null,
    (err: { stderr?: string }) => err.stderr ?? '',
  );
  expect(failed).not.toBeNull();
  expect(failed).toMatch(new RegExp(`${walFileName(1, segNo)} .*damaged`));
});

test('object storage unreachable: commits continue, status says why, and offload catches up when it returns', async () => {
  const before = parseLsn((await status(1)).backup_lsn);
  await s3.stop();
  await switchSegments(3); // each commit returns although nothing can be uploaded
  const commit = parseLsn((await status(1)).commit_lsn);
  expect(segmentStart(commit)).toBeGreaterThan(before);
  const designated = designatedUploader(cluster.config.tenant_id, cluster.config.timeline_id, 3);
  await waitFor('the designated uploader to report the outage', 60_000, async () => (await status(designated)).offload.last_error_code === 'unreachable');
  const down = (await status(designated)).offload;
  expect(down.state).toBe('retrying');
  expect(down.last_error).toMatch(/ECONNREFUSED|unreachable|socket/i);
  expect(down.last_error_at).not.toBeNull();
  expect(parseLsn(down.backup_lsn)).toBe(before);
  expect(BigInt(down.lag_bytes)).toBeGreaterThan(0n);
  expect((await httpGet(`${cluster.httpUrl(designated)}/metrics`)).text).toMatch(/^walkeeper_offload_upload_errors_total\{code="unreachable"\} [1-9]/m);

  await s3.run();
  await waitBackedUp([1, 2, 3], segmentStart(commit), 'caught up after the outage');
  expect((await status(designated)).offload.state).toBe('ok');
  for (const segNo of completeSegments(before, commit)) expect((await bucket.get(segKey(segNo)))!.equals(pgWal(segNo))).toBe(true);
});
