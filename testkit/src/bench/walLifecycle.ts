// Benchmark rows of the WAL lifecycle (issue 10): a lone safekeeper fed by the bench's fake
// proposer (ingest.ts) with removal running, timed at start-up after 1 GB and 4 GB of history;
// and offload throughput of real segments to the file:// store and to s3rver.
import { mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_WAL_SEG_SIZE, formatLsn, parseLsn, walFileName, type Lsn } from '@walkeeper/dataplane/common/lsn';
import { httpGet, httpPost, waitFor } from '@walkeeper/dataplane/local/cluster';
import { ManagedProcess } from '@walkeeper/dataplane/local/process';
import { TestS3Server } from '../s3Server.js';
import { walObjectKey } from '@walkeeper/dataplane/remote/remoteStorage';
import { openRemoteStorage, parseRemoteStorageUrl } from '@walkeeper/dataplane/remote/url';
import { measureIngest, type IngestOptions } from './ingest.js';
import type { IngestResult, OffloadResult, StartupResult } from './parse.js';

const SEG = DEFAULT_WAL_SEG_SIZE;
const STARTUP_RESTARTS = 3;

export interface BenchSafekeeperOptions {
  /** a directory of its own: data directory, pid and log file go under it */
  dir: string;
  host: string;
  pgPort: number;
  httpPort: number;
  tenantId: string;
  timelineId: string;
  /** extra safekeeper flags (--wal-keep-size, --max-recycled-segments) */
  flags: string[];
}

/** One safekeeper process on loopback holding the bench's timeline. */
export class BenchSafekeeper {
  readonly process: ManagedProcess;
  readonly datadir: string;

  constructor(private readonly o: BenchSafekeeperOptions) {
    this.process = new ManagedProcess(`bench safekeeper ${o.dir}`, join(o.dir, 'safekeeper.pid'), join(o.dir, 'safekeeper.log'));
    this.datadir = join(o.dir, 'data');
  }

  get base(): string {
    return `http://${this.o.host}:${this.o.httpPort}`;
  }

  /** Starts it and waits until it is ready; returns the seconds that took (the start-up time). */
  async start(): Promise<number> {
    const t0 = process.hrtime.bigint();
    this.process.start(['safekeeper', '--id', '9', '--datadir', this.datadir, '--listen-pg', `${this.o.host}:${this.o.pgPort}`, '--listen-http', `${this.o.host}:${this.o.httpPort}`, ...this.o.flags]);
    await waitFor('the bench safekeeper to become ready', 600_000, async () => (await httpGet(`${this.base}/readyz`)).status === 200, () => this.process.running, this.process.logFile);
    return Number(process.hrtime.bigint() - t0) / 1e9;
  }

  async createTimeline(): Promise<void> {
    const t = await httpPost(`${this.base}/v1/tenants`, { tenant_id: this.o.tenantId });
    if (t.status !== 201) throw new Error(`tenant create answered ${t.status} ${t.text}`);
    const l = await httpPost(`${this.base}/v1/tenants/${this.o.tenantId}/timelines`, { timeline_id: this.o.timelineId });
    if (l.status !== 201) throw new Error(`timeline create answered ${l.status} ${l.text}`);
  }

  async timelineStatus(): Promise<{ local_start_lsn: string; flush_lsn: string; recycling?: { zero_filled_on_append: number } }> {
    const r = await httpGet(`${this.base}/v1/tenants/${this.o.tenantId}/timelines/${this.o.timelineId}`);
    if (r.status !== 200) throw new Error(`timeline status answered ${r.status} ${r.text}`);
    return JSON.parse(r.text);
  }

  /** Bytes of the timeline directory (segments, recycled and prepared files, control file). */
  timelineBytes(): number {
    const dir = join(this.datadir, 'tenants', this.o.tenantId, this.o.timelineId);
    return readdirSync(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
  }

  stop(): Promise<void> {
    return this.process.stop();
  }

  kill(): Promise<void> {
    return this.process.kill();
  }
}

export type PushOptions = Omit<IngestOptions, 'host' | 'port' | 'tenantId' | 'timelineId'> & BenchSafekeeperOptions;

/** Ingest into a fresh safekeeper; the result carries how many segments append had to zero-fill. */
export async function ingestInto(o: PushOptions): Promise<IngestResult> {
  const sk = new BenchSafekeeper(o);
  try {
    await sk.start();
    await sk.createTimeline();
    const result = await measureIngest({ ...o, port: o.pgPort });
    const st = await sk.timelineStatus();
    await sk.stop();
    return { ...result, zeroFilledOnAppend: st.recycling?.zero_filled_on_append, segments: Math.ceil(result.bytes / SEG) };
  } finally {
    await sk.kill().catch(() => undefined);
  }
}

/**
 * A member that received `historyBytes` of WAL with removal running: once removal has caught
 * up (its first local LSN within keep size + 2 segments of the end), it is stopped and its
 * restart timed until /readyz answers.
 */
export async function measureStartup(o: PushOptions & { historyBytes: number; keepBytes: number }): Promise<StartupResult> {
  const sk = new BenchSafekeeper(o);
  try {
    await sk.start();
    await sk.createTimeline();
    const start = o.startSegNo * BigInt(SEG);
    const endLsn = start + BigInt(o.historyBytes) < o.endLsn ? start + BigInt(o.historyBytes) : o.endLsn;
    const pushed = await measureIngest({ ...o, port: o.pgPort, endLsn, maxSeconds: 3600 });
    const end = start + BigInt(pushed.bytes);
    const wantStart = end - BigInt(o.keepBytes) - 2n * BigInt(SEG);
    let localStart: Lsn = 0n;
    await waitFor(`removal on the bench safekeeper to reach ${formatLsn(wantStart)}`, 120_000, async () => {
      localStart = parseLsn((await sk.timelineStatus()).local_start_lsn);
      return localStart >= wantStart;
    });
    await sk.stop();
    const retainedBytes = sk.timelineBytes();
    // the median of a few restarts: one start on a busy shared machine says little
    const times: number[] = [];
    for (let i = 0; i < STARTUP_RESTARTS; i++) {
      times.push(await sk.start());
      const after = await sk.timelineStatus();
      if (parseLsn(after.flush_lsn) < end - BigInt(SEG)) throw new Error(`after restart the flush LSN is ${after.flush_lsn}, below the ${formatLsn(end)} pushed`);
      await sk.stop();
    }
    const seconds = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)];
    o.log(`startup: ${(pushed.bytes / 1e9).toFixed(2)} GB of history, ${(retainedBytes / 1e6).toFixed(0)} MB retained from ${formatLsn(localStart)}: ready after ${times.map((t) => t.toFixed(2)).join(', ')} s`);
    return { historyBytes: pushed.bytes, retainedBytes, seconds, restarts: times.length };
  } finally {
    await sk.kill().catch(() => undefined);
  }
}

/**
 * Uploads `count` real segments (from `walDir`, from `firstSegNo`) the way the uploader does
 * (create-only put with its checksum, verified) to a file:// store under `dir` and to s3rver.
 */
export async function measureOffload(o: { dir: string; walDir: string; pgTimeline: number; firstSegNo: bigint; count: number; tenantId: string; timelineId: string; log: (l: string) => void }): Promise<OffloadResult[]> {
  const names: string[] = [];
  for (let i = 0n; i < BigInt(o.count); i++) names.push(walFileName(o.pgTimeline, o.firstSegNo + i));
  const segments = names.map((name) => ({ name, body: readFileSync(join(o.walDir, name)) }));
  const s3 = await TestS3Server.start('walkeeper-bench');
  try {
    const stores = [
      { label: 'file://', url: `file://${join(o.dir, 'bucket')}`, options: {} },
      { label: 's3rver (S3 API on loopback)', url: `s3://${s3.bucket}/bench`, options: s3.options() },
    ];
    mkdirSync(join(o.dir, 'bucket'), { recursive: true });
    const out: OffloadResult[] = [];
    for (const s of stores) {
      const store = await openRemoteStorage(parseRemoteStorageUrl(s.url, s.options));
      try {
        await store.check();
        const t0 = process.hrtime.bigint();
        for (const seg of segments) {
          const r = await store.putImmutable(walObjectKey(o.tenantId, o.timelineId, seg.name), seg.body);
          if (r !== 'created') throw new Error(`${s.label}: ${seg.name} already in the bench bucket`);
        }
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        const bytes = segments.reduce((a, x) => a + x.body.length, 0);
        o.log(`offload: ${segments.length} segments to ${s.label} in ${seconds.toFixed(2)} s`);
        out.push({ store: s.label, bytes, seconds, objects: segments.length });
      } finally {
        await store.close();
      }
    }
    return out;
  } finally {
    await s3.destroy();
  }
}
