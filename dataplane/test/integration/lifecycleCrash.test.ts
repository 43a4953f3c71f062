// kill -9 of safekeepers while they upload and remove WAL, with real processes: PostgreSQL 15
// (archiving every segment, the reference copy), 3 safekeepers offloading to the embedded
// file:// bucket with a 16MB --wal-keep-size (so every completed segment is uploaded and then
// removed within moments), a ledger workload and a segment switcher. At seeded random points a
// member is killed (the designated uploader every other round) and restarted. Afterwards:
// every store opens, every object the bucket lists as complete has the checksum recorded for
// it and the primary's exact bytes, the bucket has no gap, and a server restored from a base
// backup plus WAL streamed from one member (crossing WAL it removed) holds every acknowledged row.
import { jest } from '@jest/globals';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalCluster } from '../../src/local/cluster.js';
import { waitFor } from '../../src/local/cluster.js';
import { sleep } from '../../src/local/postgres.js';
import { DEFAULT_WAL_SEG_SIZE, formatLsn, parseLsn, parseWalFileName, segmentStart, walFileName } from '../../src/common/lsn.js';
import { Prng } from '../../src/common/prng.js';
import { FileStore, sha256Hex } from '../../src/remote/fileStore.js';
import { timelineKeyPrefix, walObjectKey } from '../../src/remote/remoteStorage.js';
import { designatedUploader } from '../../src/safekeeper/walBackup.js';
import { LedgerRecord } from '@walkeeper/testkit/torture/ledger';
import { Workload } from '@walkeeper/testkit/torture/workload';
import { prepareLedger, sql, verifyLedger, waitForCommit } from '@walkeeper/testkit/chaos/ledgerCheck';
import type { BaseBackup } from '@walkeeper/testkit/torture/restore';
import { newTestCluster, destroyTestCluster, freePortBase, initArchivingPrimary, timelineStatus } from '../helpers/cluster.js';

jest.setTimeout(420_000);

const SEG = BigInt(DEFAULT_WAL_SEG_SIZE);
const ROUNDS = Number(process.env.WALKEEPER_LIFECYCLE_KILL_ROUNDS ?? '6');
const SEED = Number(process.env.WALKEEPER_LIFECYCLE_SEED ?? '20261203');

let cluster: LocalCluster;
let archiveDir: string;
let backup: BaseBackup;
let workload: Workload | undefined;
let stopSwitching = false;
let switching: Promise<void> | undefined;
const record = new LedgerRecord();

const status = (id: number) => timelineStatus(cluster, id);

/** Completes a segment every few hundred ms, so that uploads and removals never stop. */
async function switchSegments(): Promise<void> {
  const { host, postgres } = cluster.config;
  while (!stopSwitching) {
    await sql(host, postgres.port, `SELECT pg_switch_wal()`).catch(() => undefined);
    await sleep(250);
  }
}

beforeAll(async () => {
  cluster = await newTestCluster();
  cluster.config.remote_storage = { url: `file://${cluster.defaultBucketDir}`, flags: { 'grace-ms': '300' } };
  cluster.config.safekeeper_flags = { 'wal-keep-size': '16MB' };
  cluster.saveConfig();
  archiveDir = initArchivingPrimary(cluster);
  mkdirSync(cluster.defaultBucketDir, { recursive: true });
  await cluster.start();
  backup = await prepareLedger(cluster, 'restore', cluster.postgres.runAs);
});

afterAll(async () => {
  stopSwitching = true;
  await workload?.stop(5_000).catch(() => undefined);
  await switching?.catch(() => undefined);
  await destroyTestCluster(cluster);
});

test(`kill -9 at ${ROUNDS} seeded random points during upload and removal: every store opens, no incomplete object is taken as complete, nothing acknowledged is lost`, async () => {
  const prng = new Prng(SEED);
  const { tenant_id: tenant, timeline_id: timeline } = cluster.config;
  const designated = designatedUploader(tenant, timeline, 3);
  workload = new Workload({ host: cluster.config.host, port: cluster.config.postgres.port, clients: 4, record, log: () => undefined });
  workload.start();
  switching = switchSegments();

  const killed: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // the designated uploader every other round (it uploads at once), else another member
    const others = [1, 2, 3].filter((id) => id !== designated);
    const victim = round % 2 === 0 ? designated : others[prng.int(0, others.length - 1)];
    await sleep(prng.int(300, 2500));
    const before = await status(victim);
    await cluster.killSafekeeper(victim);
    killed.push(`sk${victim} at backup ${before.backup_lsn} local start ${before.local_start_lsn}`);
    await cluster.startSafekeeper(victim); // ready = its store opened and its WAL verified
    // caught up again before the next round: never two members down
    const target = parseLsn((await status(others.find((id) => id !== victim) ?? others[0])).commit_lsn);
    await waitFor(`safekeeper ${victim} to catch up to ${formatLsn(target)} after its kill`, 120_000, async () => parseLsn((await status(victim)).flush_lsn) >= target);
  }
  stopSwitching = true;
  await switching;
  await workload.stop();
  console.log(`lifecycle kills (seed ${SEED}): ${killed.join('; ')}; ${record.acknowledged.size} rows acknowledged`);
  expect(record.acknowledged.size).toBeGreaterThan(0);

  const commit = await waitForCommit(cluster);
  record.attempt(0);
  await sql(cluster.config.host, cluster.config.postgres.port, `INSERT INTO ledger (id, client, payload) VALUES (0, 0, 'carries the commit LSN')`);
  record.acknowledge(0);
  for (const id of [1, 2, 3]) {
    await waitFor(`safekeeper ${id} to offload up to ${formatLsn(segmentStart(commit))}`, 120_000, async () => parseLsn((await status(id)).backup_lsn) >= segmentStart(commit));
  }

  // Every store opens: each member once more killed and started.
  for (const id of [1, 2, 3]) {
    await cluster.killSafekeeper(id);
    await cluster.startSafekeeper(id);
  }

  // The bucket: what it lists as complete carries its recorded checksum and the primary's bytes,
  // without a gap from the timeline's first segment to the backup LSN.
  const store = new FileStore(cluster.defaultBucketDir);
  const listed = await store.list(walObjectKey(tenant, timeline, ''));
  const st = await status(1);
  const timelineStart = parseLsn(st.timeline_start_lsn);
  const expected: string[] = [];
  for (let segNo = timelineStart / SEG; (segNo + 1n) * SEG <= parseLsn(st.backup_lsn); segNo++) expected.push(walObjectKey(tenant, timeline, walFileName(1, segNo)));
  expect(listed.map((o) => o.key).filter((k) => !k.endsWith('.history'))).toEqual(expected);
  for (const object of listed) {
    const name = object.key.slice(object.key.lastIndexOf('/') + 1);
    parseWalFileName(name);
    const body = await store.get(object.key); // checksum_mismatch if it does not match its sidecar
    expect(sha256Hex(body!)).toBe(object.sha256);
    expect(body!.equals(readFileSync(join(archiveDir, name)))).toBe(true);
  }
  // a write interrupted by a kill leaves at most a temp file, never listed
  const leftovers = readdirSync(join(cluster.defaultBucketDir, timelineKeyPrefix(tenant, timeline), 'wal')).filter((f) => f.includes('.tmp-'));
  console.log(`lifecycle kills: ${listed.length} objects verified, ${leftovers.length} interrupted writes left as temp files`);

  // Nothing acknowledged lost: a server restored from the base backup and one member's WAL,
  // which crosses WAL that member removed (served from the bucket).
  const endLsn = await waitForCommit(cluster);
  const reader = 2;
  expect(parseLsn((await status(reader)).local_start_lsn)).toBeGreaterThan(segmentStart(backup.startLsn) + SEG);
  const check = await verifyLedger({ readerView: cluster, readerId: reader, backup, record, commitLsn: endLsn, restoredHost: cluster.config.host, restoredPort: (await freePortBase()) + 1, runAs: cluster.postgres.runAs, name: 'restore' });
  expect({ lost: check.lost.length, duplicates: check.duplicates, phantoms: check.phantoms.length }).toEqual({ lost: 0, duplicates: 0, phantoms: 0 });
  expect(check.restoredRows).toBeGreaterThanOrEqual(record.acknowledged.size);
});
