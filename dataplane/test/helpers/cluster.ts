// Test clusters: a LocalCluster in a temp directory on free loopback ports, always torn
// down (processes killed, directory removed) even when a test fails.
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster, PRIMARY_SETTINGS, defaultConfig, httpGet, portFree } from '../../src/local/cluster.js';
import { chownSync } from 'node:fs';
import { ensureDirFor, postgresIdentity } from '../../src/local/postgres.js';
import type { OffloadStatusJson, TimelineStatusJson } from '../../src/api/index.js';

let nextBase = 20000 + (process.pid % 200) * 100;

/** A port base whose 30 ports are all free right now. */
export async function freePortBase(): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    const base = nextBase;
    nextBase += 50;
    if (nextBase > 60000) nextBase = 20000;
    let ok = true;
    for (let p = base; p < base + 30 && ok; p++) ok = await portFree('127.0.0.1', p);
    if (ok) return base;
  }
  throw new Error('no free loopback port range found');
}

export async function newTestCluster(opts: { safekeepers?: number } = {}): Promise<LocalCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'walkeeper-test-'));
  const runAs = postgresIdentity();
  if (runAs) chownSync(dir, runAs.uid, runAs.gid);
  const config = defaultConfig({ portBase: await freePortBase(), safekeepers: opts.safekeepers ?? 3 });
  const cluster = new LocalCluster(dir, config);
  cluster.saveConfig();
  return cluster;
}

/** Stops everything the cluster started, as hard as needed, and removes its directory. */
export async function destroyTestCluster(cluster: LocalCluster | undefined): Promise<void> {
  if (!cluster) return;
  await cluster.killProposer().catch(() => undefined);
  await cluster.postgres.stop('immediate').catch(() => undefined);
  for (const sk of cluster.config.safekeepers) await cluster.killSafekeeper(sk.id).catch(() => undefined);
  if (!process.env.WALKEEPER_KEEP_TEST_DIRS) rmSync(cluster.baseDir, { recursive: true, force: true });
}

/** Up to `length` bytes of `file` from `offset` (fewer at its end): WAL files compared byte for byte. */
export function readRange(file: string, offset: number, length: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const n = readSync(fd, buf, 0, length, offset);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/**
 * Initializes the cluster's primary (before cluster.start()) with its usual settings, also
 * archiving every segment it completes to `<base dir>/archive`: the reference copy of the
 * primary's WAL after pg_wal recycled it. Returns that directory.
 */
export function initArchivingPrimary(cluster: LocalCluster): string {
  const archiveDir = join(cluster.baseDir, 'archive');
  ensureDirFor(archiveDir, cluster.postgres.runAs);
  cluster.postgres.initdb({ ...PRIMARY_SETTINGS, archive_mode: 'on', archive_command: `'test ! -f ${archiveDir}/%f && cp %p ${archiveDir}/%f'` });
  return archiveDir;
}

/**
 * GET /v1/tenants/:t/timelines/:l of a test cluster: its safekeepers offload to a bucket (the
 * embedded file:// one unless a test says otherwise), so `offload` is the enabled variant.
 */
export type OffloadingTimelineStatusJson = TimelineStatusJson & { offload: OffloadStatusJson };

/** The cluster's timeline on safekeeper `id`; any answer but 200 fails the test with its text. */
export async function timelineStatus(cluster: LocalCluster, id: number): Promise<OffloadingTimelineStatusJson> {
  const c = cluster.config;
  const r = await httpGet(`${cluster.httpUrl(id)}/v1/tenants/${c.tenant_id}/timelines/${c.timeline_id}`);
  if (r.status !== 200) throw new Error(`safekeeper ${id}: ${r.status} ${r.text}`);
  return JSON.parse(r.text) as OffloadingTimelineStatusJson;
}
