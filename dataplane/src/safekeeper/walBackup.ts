// The WAL offloader: copies every complete, committed segment of each timeline (and the
// PostgreSQL `.history` file, first) to remote storage under
// `tenants/<t>/<tl>/wal/<segment name>`, in order, and after each verified upload moves the
// timeline's backupLsn forward (durably, in the control file). It runs beside the WAL path:
// object storage being slow, down or refusing never delays a commit; it retries with
// exponential backoff and keeps the last error for status and metrics.
//
// Who uploads (no broker, so each member decides alone and deterministically): members have
// ids 1..N (`--remote-storage-members N`, the cluster size; StatefulSet ordinal + 1, walctl
// 1..3). The timeline's designated uploader is id `1 + (h mod N)`, h = the first 32 bits of
// SHA-256(tenant_id/timeline_id): timelines spread over members. The designated member uploads a
// segment as soon as it is committed. Every other member has rank r = (id - designated) mod N
// (1..N-1) and, r × grace after it saw the segment committed, looks in the bucket: there with
// its own bytes' checksum → it advances its backupLsn too; missing → it uploads it (takeover).
// So when the designated member dies, rank 1 carries on within one grace period, rank 2 if both
// are gone, and so on; a member coming back just finds the segments present. Two members
// uploading the same segment is harmless: writes are create-only and equal bytes are `exists`;
// different bytes are a `checksum_conflict` that stops offload of that timeline, loudly.
import { createHash } from 'node:crypto';
import { formatLsn, maxLsn, segmentStart, walFileName, type Lsn } from '../common/lsn.js';
import type { Logger } from '../common/log.js';
import type { OffloadStatusJson } from '../api/index.js';
import type { SafekeeperMetrics } from './metrics.js';
import { currentPgTimeline, pgTimelineOfSegment } from '../consensus/pgTimeline.js';
import { isRemoteStorageError, walObjectKey, type RemoteStorage } from '../remote/remoteStorage.js';
import { sha256Hex } from '../remote/fileStore.js';
import type { Registry } from './registry.js';
import type { Timeline } from './timeline.js';
import { RemoteWalReader } from './remoteWal.js';

export interface WalBackupOptions {
  store: RemoteStorage;
  nodeId: number;
  /** cluster size N: member ids are 1..N */
  members: number;
  /** how long a non-designated member waits (per rank) before it uploads a missing segment */
  graceMs: number;
  log: Logger;
  metrics: SafekeeperMetrics;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 30_000;
const SCAN_INTERVAL_MS = 1_000;

/** The member that uploads a timeline's WAL first (1-based id). */
export function designatedUploader(tenantId: string, timelineId: string, members: number): number {
  const h = createHash('sha256').update(`${tenantId}/${timelineId}`).digest().readUInt32BE(0);
  return 1 + (h % members);
}

/** 0 for the designated member, else how many grace periods this member waits before a takeover. */
export function uploaderRank(nodeId: number, tenantId: string, timelineId: string, members: number): number {
  const d = designatedUploader(tenantId, timelineId, members);
  if (nodeId < 1 || nodeId > members) return members; // outside 1..N: last in line
  return (((nodeId - d) % members) + members) % members;
}

/** The name of a PostgreSQL timeline history file, as PostgreSQL names it. */
export function historyFileName(tli: number): string {
  return `${tli.toString(16).toUpperCase().padStart(8, '0')}.history`;
}

interface OffloadState {
  lastError?: string;
  lastErrorCode?: string;
  lastErrorAt?: number;
  lastSuccessAt?: number;
  /** why offload of this timeline is waiting, when it is (for status) */
  waiting?: string;
}

/** One timeline's upload loop. */
class TimelineOffloader {
  readonly state: OffloadState = {};
  readonly rank: number;
  private stopped = false;
  private wake: (() => void) | undefined;
  /** ends any wait, backoff included (stop, store usable again) */
  private abort: (() => void) | undefined;
  private readonly onAdvance = () => this.wake?.();
  /** segment number → when this member first saw it committed (grace for non-designated) */
  private readonly committedAt = new Map<bigint, number>();
  private historyUploaded = '';
  private backoffMs = 0;
  readonly done: Promise<void>;

  constructor(
    readonly tl: Timeline,
    private readonly backup: WalBackup,
    private readonly opts: WalBackupOptions,
  ) {
    this.rank = uploaderRank(opts.nodeId, tl.tenantId, tl.timelineId, opts.members);
    tl.on('advance', this.onAdvance);
    this.done = this.loop();
  }

  /** Look again now (the store became usable). */
  poke(): void {
    this.backoffMs = 0;
    this.abort?.();
  }

  stop(): void {
    this.stopped = true;
    this.tl.off('advance', this.onAdvance);
    this.abort?.();
  }

  private get ids() {
    return { tenant_id: this.tl.tenantId, timeline_id: this.tl.timelineId };
  }

  private async loop(): Promise<void> {
    while (!this.stopped && !this.tl.isClosed) {
      let delay: number | undefined;
      try {
        if (!this.backup.storeUsable) {
          delay = this.backup.nextCheckInMs();
          this.state.waiting = `remote storage is not usable: ${this.backup.checkError ?? 'start-up check pending'}`;
        } else {
          delay = await this.step();
          this.backoffMs = 0;
        }
      } catch (err) {
        if (this.stopped || this.tl.isClosed) return;
        const code = isRemoteStorageError(err) ? err.code : 'internal';
        this.state.lastError = (err as Error).message;
        this.state.lastErrorCode = code;
        this.state.lastErrorAt = Date.now();
        this.opts.metrics.offloadUploadErrors.inc({ code });
        this.backoffMs = Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, this.backoffMs * 2));
        delay = this.backoffMs;
        this.opts.log.warn({ ...this.ids, code, err: this.state.lastError, retry_in_ms: delay }, 'WAL offload failed; retrying (commits are not affected)');
      }
      if (this.stopped) return;
      // New WAL wakes an idle loop at once, never one backing off after a failure: an outage
      // must not turn every commit into a request to the store.
      const backingOff = this.backoffMs > 0;
      await new Promise<void>((resolve) => {
        const timer = delay === undefined ? undefined : setTimeout(resolve, delay);
        const wake = () => {
          if (timer) clearTimeout(timer);
          resolve();
        };
        this.abort = wake;
        this.wake = backingOff ? undefined : wake;
      });
      this.wake = undefined;
      this.abort = undefined;
    }
  }

  /**
   * Uploads (or, for a non-designated member, confirms) everything due now. Returns in how
   * many ms to look again (a grace period running), or undefined to wait for the WAL to advance.
   */
  private async step(): Promise<number | undefined> {
    const s = this.tl.snapshot();
    if (s.timelineStartLsn === 0n) return undefined;
    const store = this.opts.store;
    // History first: a restore needs it before any segment of the new timeline.
    if (s.pgHistoryFile !== '' && this.historyUploaded !== s.pgHistoryFile) {
      const name = historyFileName(currentPgTimeline(s.pgTimelineHistory).tli);
      const r = await store.putImmutable(walObjectKey(this.tl.tenantId, this.tl.timelineId, name), Buffer.from(s.pgHistoryFile, 'utf8'));
      this.historyUploaded = s.pgHistoryFile;
      this.opts.log.info({ ...this.ids, file: name, result: r }, 'timeline history file offloaded');
    }
    const seg = BigInt(s.walSegSize);
    const localStart = maxLsn(s.timelineStartLsn, this.tl.lifecycle.walStartLsn);
    const upTo = s.commitLsn < s.flushLsn ? s.commitLsn : s.flushLsn; // committed and on this disk
    this.noteCommitted(upTo, s.timelineStartLsn, s.walSegSize);
    for (;;) {
      if (this.stopped || this.tl.isClosed) return undefined;
      const backupLsn = this.tl.lifecycle.backupLsn;
      const segStartLsn = maxLsn(segmentStart(backupLsn, s.walSegSize), segmentStart(s.timelineStartLsn, s.walSegSize));
      const segEnd = segStartLsn + seg;
      if (segEnd > upTo) {
        this.state.waiting = undefined;
        return undefined;
      }
      const segNo = segStartLsn / seg;
      const name = walFileName(pgTimelineOfSegment(s.pgTimelineHistory, segStartLsn, s.walSegSize), segNo, s.walSegSize);
      const key = walObjectKey(this.tl.tenantId, this.tl.timelineId, name);

      if (segStartLsn < localStart) {
        // This member joined (or removed) after the segment began: only a peer can upload it.
        const there = await store.head(key);
        if (!there) {
          this.state.waiting = `segment ${name} begins at ${formatLsn(segStartLsn)}, before this member's first LSN ${formatLsn(localStart)}; waiting for a peer to upload it`;
          return this.opts.graceMs;
        }
        await this.advance(segEnd, name, 'present (uploaded by a peer)', 0);
        continue;
      }
      if (this.rank > 0) {
        const dueAt = this.committedAt.get(segNo)! + this.rank * this.opts.graceMs;
        const wait = dueAt - Date.now();
        if (wait > 0) {
          this.state.waiting = `not the designated uploader (member ${designatedUploader(this.tl.tenantId, this.tl.timelineId, this.opts.members)} is); segment ${name} is checked in the bucket ${this.rank} grace period(s) after its commit`;
          return wait;
        }
      }
      const body = await this.tl.readLocalWal(segStartLsn, s.walSegSize);
      if (body.length !== s.walSegSize) throw new Error(`segment ${name} read ${body.length} bytes, expected ${s.walSegSize}, although it is below ${formatLsn(upTo)}`);
      if (this.rank > 0) {
        const there = await store.head(key);
        if (there) {
          const mine = sha256Hex(body);
          if (there.sha256 !== mine) {
            // put reports the conflict with both checksums
            await store.putImmutable(key, body);
          }
          await this.advance(segEnd, name, 'present (uploaded by a peer, same checksum)', 0);
          continue;
        }
        this.opts.log.warn({ ...this.ids, segment: name, rank: this.rank }, 'segment still missing from the bucket after the grace period: taking over its upload');
      }
      const result = await store.putImmutable(key, body);
      await this.advance(segEnd, name, result, result === 'created' ? body.length : 0);
    }
  }

  /**
   * Stamps every segment that became complete and committed since the last look with now. The
   * grace of a non-designated member runs from a segment's commit, for all segments at once:
   * stamped only when the loop reached it, each segment would wait its own rank × grace in
   * turn, and that member would confirm one segment per grace period however fast WAL comes,
   * holding back its removal until its disk fills.
   */
  private noteCommitted(upTo: Lsn, timelineStartLsn: Lsn, walSegSize: number): void {
    const seg = BigInt(walSegSize);
    const now = Date.now();
    const first = maxLsn(segmentStart(this.tl.lifecycle.backupLsn, walSegSize), segmentStart(timelineStartLsn, walSegSize)) / seg;
    for (let segNo = first; (segNo + 1n) * seg <= upTo; segNo++) if (!this.committedAt.has(segNo)) this.committedAt.set(segNo, now);
  }

  private async advance(segEnd: Lsn, name: string, result: string, uploadedBytes: number): Promise<void> {
    await this.tl.advanceLifecycle({ backupLsn: segEnd });
    this.committedAt.delete(segEnd / BigInt(this.tl.snapshot().walSegSize) - 1n);
    this.state.lastSuccessAt = Date.now();
    this.state.waiting = undefined;
    if (uploadedBytes > 0) this.opts.metrics.offloadUploadedBytes.inc(uploadedBytes);
    this.opts.log.debug({ ...this.ids, segment: name, result, backup_lsn: formatLsn(segEnd) }, 'segment offloaded');
  }
}

/** All timelines' offloaders of this safekeeper, the start-up check, and reading WAL back. */
export class WalBackup {
  private readonly offloaders = new Map<Timeline, TimelineOffloader>();
  private scanTimer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private checkBackoffMs = 0;
  private nextCheckAt = 0;
  /** false until the start-up check passed */
  storeUsable = false;
  checkError: string | undefined;
  checkErrorCode: string | undefined;
  private stopped = false;

  constructor(
    private readonly registry: Registry,
    readonly opts: WalBackupOptions,
  ) {}

  get url(): string {
    return this.opts.store.url;
  }

  /**
   * Runs the start-up check once (it logs, loudly, why offload is off if the store is not
   * usable, and keeps re-checking with backoff), then attaches to every timeline.
   */
  async start(): Promise<void> {
    await this.check();
    this.scan();
    this.scanTimer = setInterval(() => this.scan(), SCAN_INTERVAL_MS);
    this.scanTimer.unref();
  }

  private async check(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.opts.store.check();
      if (this.checkError) this.opts.log.info({ remote_storage: this.url }, 'remote storage is usable again: WAL offload resumes');
      else this.opts.log.info({ remote_storage: this.url, members: this.opts.members, grace_ms: this.opts.graceMs }, 'remote storage checked: WAL offload on');
      this.storeUsable = true;
      this.checkError = undefined;
      this.checkErrorCode = undefined;
      this.checkBackoffMs = 0;
      for (const o of this.offloaders.values()) o.poke();
    } catch (err) {
      this.storeUsable = false;
      this.checkError = (err as Error).message;
      this.checkErrorCode = isRemoteStorageError(err) ? err.code : 'internal';
      this.opts.metrics.offloadUploadErrors.inc({ code: this.checkErrorCode });
      this.checkBackoffMs = Math.min(BACKOFF_MAX_MS, Math.max(1_000, this.checkBackoffMs * 2));
      this.nextCheckAt = Date.now() + this.checkBackoffMs;
      this.opts.log.error(
        { remote_storage: this.url, code: this.checkErrorCode, err: this.checkError, recheck_in_ms: this.checkBackoffMs },
        'REMOTE STORAGE IS NOT USABLE: WAL offload is OFF until it is fixed (the safekeeper serves commits meanwhile; backup_lsn does not move)',
      );
      this.checkTimer = setTimeout(() => void this.check(), this.checkBackoffMs);
      this.checkTimer.unref();
    }
  }

  nextCheckInMs(): number {
    return Math.max(100, this.nextCheckAt - Date.now());
  }

  /** Starts offloaders for new timelines, drops those of closed ones. */
  private scan(): void {
    if (this.stopped) return;
    for (const tl of this.registry.allTimelines()) {
      if (tl.isClosed || this.offloaders.has(tl)) continue;
      tl.setRemoteReader(new RemoteWalReader(this.opts.store, tl));
      this.offloaders.set(tl, new TimelineOffloader(tl, this, this.opts));
    }
    for (const [tl, o] of this.offloaders) {
      if (tl.isClosed) {
        o.stop();
        this.offloaders.delete(tl);
      }
    }
  }

  /** The `offload` object of a timeline's HTTP status. */
  timelineStatus(tl: Timeline): OffloadStatusJson {
    const o = this.offloaders.get(tl);
    const s = tl.snapshot();
    const backupLsn = tl.lifecycle.backupLsn;
    const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());
    const lastError = !this.storeUsable ? this.checkError : o?.state.lastError;
    return {
      enabled: true,
      remote_storage: this.url,
      state: !this.storeUsable ? 'store_unusable' : o?.state.lastError && (o.state.lastErrorAt ?? 0) > (o.state.lastSuccessAt ?? 0) ? 'retrying' : o?.state.waiting ? 'waiting' : 'ok',
      designated_uploader: designatedUploader(tl.tenantId, tl.timelineId, this.opts.members),
      uploader_rank: o?.rank ?? uploaderRank(this.opts.nodeId, tl.tenantId, tl.timelineId, this.opts.members),
      backup_lsn: formatLsn(backupLsn),
      lag_bytes: offloadLag(s.commitLsn, backupLsn).toString(),
      last_error: lastError ?? null,
      last_error_code: (!this.storeUsable ? this.checkErrorCode : o?.state.lastErrorCode) ?? null,
      last_error_at: iso(o?.state.lastErrorAt),
      last_success_at: iso(o?.state.lastSuccessAt),
      waiting: o?.state.waiting ?? null,
    };
  }

  /** Per-timeline values for metrics, read at scrape time. */
  offloadGauges(): { tenantId: string; timelineId: string; lagBytes: bigint; lastSuccessAt: number | undefined }[] {
    return [...this.offloaders.values()].map((o) => ({
      tenantId: o.tl.tenantId,
      timelineId: o.tl.timelineId,
      lagBytes: offloadLag(o.tl.snapshot().commitLsn, o.tl.lifecycle.backupLsn),
      lastSuccessAt: o.state.lastSuccessAt,
    }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.scanTimer);
    clearTimeout(this.checkTimer);
    for (const o of this.offloaders.values()) o.stop();
    await Promise.all([...this.offloaders.values()].map((o) => o.done.catch(() => undefined)));
    this.offloaders.clear();
    await this.opts.store.close();
  }
}

/** Committed WAL not yet in the bucket. */
function offloadLag(commitLsn: Lsn, backupLsn: Lsn): bigint {
  return commitLsn > backupLsn ? commitLsn - backupLsn : 0n;
}
