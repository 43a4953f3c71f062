// WAL segment storage for one timeline directory: PostgreSQL-named 16 MiB segments (the open
// one ends in `.partial`), sequential appends, group-committed fdatasync, crash-safe
// truncation, removal of old segments (recycled, see segmentPool.ts), reads for replication,
// and start-up recovery of the end of valid WAL from the first segment still held.
//
// Durability rules: a flush LSN is acknowledged only after fdatasync and only at a record
// end (the ingest decoder tracks them). Any failed fsync fails the store for good, as
// PostgreSQL PANICs: the page cache may have dropped the dirty pages, so retrying would lie.
// (Over 400 lines: the write, flush, truncate and removal paths share one ordering argument for
// crash safety, which splitting the class would spread across files.)

import { fdatasyncSync, writeSync } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { formatLsn, walFileName, XLOG_BLCKSZ, type Lsn } from '../common/lsn.js';
import { errnoCode, StorageError } from './errors.js';
import { findEndOfWal, listSegments, PARTIAL_SUFFIX, removeStaleTemp, SEGMENT_TMP_NAME, type EndOfWal } from './recovery.js';
import { WalRecordDecoder } from './walRecords.js';
import { SegmentPool } from './segmentPool.js';
import type { SyncPolicy } from './syncPolicy.js';

export type SyncMode = 'fsync' | 'none';

/** What an fsync is for; passed to the fsync hook. */
export type FsyncKind = 'wal_flush' | 'segment_full' | 'segment_create' | 'truncate' | 'recovery' | 'directory';

export interface WalStoreOptions {
  walSegSize: number;
  pgTimeline: number;
  /** First LSN of the timeline (persisted in the control file); 0 if no WAL was ever written. */
  timelineStartLsn: Lsn;
  /** A known record boundary to decode from at start-up (e.g. persisted commitLsn). */
  recoverFrom: Lsn;
  /**
   * First LSN held locally (persisted walStartLsn; a segment start; 0 = nothing removed).
   * Segments below it are left-overs of an interrupted removal and are removed again at open;
   * reads below it fail with `wal_removed`.
   */
  walStartLsn?: Lsn;
  /**
   * Segment recycling (segmentPool.ts): how many removed segment files to keep for reuse
   * (default 0: removed segments are unlinked), and whether the next segment is prepared in
   * the background before it is needed (default false).
   */
  recycle?: { maxRecycled: number; prepareAhead: boolean };
  /**
   * WAL known to have been acknowledged (e.g. persisted commitLsn). If valid WAL ends before
   * it, open fails with `wal_corrupt` / `wal_missing` naming file and offset. Defaults to
   * recoverFrom.
   */
  requiredEnd?: Lsn;
  syncMode?: SyncMode;
  /** Called before every fsync/fdatasync; may throw to inject a failure (tests). */
  fsyncHook?: (kind: FsyncKind, path: string) => void | Promise<void>;
  /** Latency of each WAL fdatasync done by flush(), in seconds (metrics). */
  onFsync?: (seconds: number) => void;
  /**
   * Decides, per flush, whether its fdatasync runs on the event loop (see syncPolicy.ts);
   * shared by every store of a process. Without one, every fdatasync goes to the thread pool.
   */
  syncPolicy?: SyncPolicy;
}

interface Segment {
  segNo: bigint;
  fh: FileHandle;
  path: string;
  partial: boolean;
  pins: number;
  closing: boolean;
}

const ZEROS = Buffer.alloc(1 << 20);

export class WalStore {
  readonly dir: string;
  readonly walSegSize: number;
  readonly pgTimeline: number;
  private readonly segBytes: bigint;
  private readonly syncMode: SyncMode;
  private readonly fsyncHook: WalStoreOptions['fsyncHook'];
  private readonly onFsync: WalStoreOptions['onFsync'];
  private readonly syncPolicy: SyncPolicy | undefined;

  private startLsn: Lsn;
  /** First LSN whose segment is still here (segment-aligned, or startLsn). */
  private localStart: Lsn;
  private readonly pool: SegmentPool;
  private empty: boolean;
  private writePos: Lsn;
  private flushPos: Lsn;
  /** Bytes below this are on disk (fdatasync'd). */
  private durablePos: Lsn;
  /** Highest byte ever written (a failed write may leave bytes past writePos). */
  private dirtyEnd: Lsn;
  private tracker: WalRecordDecoder;
  private current: Segment | null = null;

  private lock: Promise<void> = Promise.resolve();
  private syncInFlight: Promise<void> | null = null;
  /** Bumped by truncate so an fdatasync started before it cannot publish stale positions. */
  private epoch = 0;
  private truncationPending = false;
  private failure: StorageError | null = null;
  private closed = false;
  /** Last failure of a background segment preparation (the append path then creates it itself). */
  prepareError: unknown = null;
  /** Segments zero-filled by append itself (neither prepared nor recycled): the cost recycling removes. */
  private zeroFilledOnAppend = 0;

  /** How the last open() ended recovery; for logs. */
  readonly recovery: EndOfWal | null;

  private constructor(dir: string, options: WalStoreOptions, endLsn: Lsn, empty: boolean, recovery: EndOfWal | null) {
    this.dir = dir;
    this.walSegSize = options.walSegSize;
    this.pgTimeline = options.pgTimeline;
    this.segBytes = BigInt(options.walSegSize);
    this.syncMode = options.syncMode ?? 'fsync';
    this.fsyncHook = options.fsyncHook;
    this.onFsync = options.onFsync;
    this.syncPolicy = options.syncPolicy;
    this.startLsn = options.timelineStartLsn;
    this.localStart = maxOf(options.walStartLsn ?? 0n, options.timelineStartLsn);
    this.pool = new SegmentPool(
      { dir, walSegSize: options.walSegSize, pgTimeline: options.pgTimeline, maxRecycled: options.recycle?.maxRecycled ?? 0, prepareAhead: options.recycle?.prepareAhead ?? false },
      {
        fsyncDir: () => this.fsyncDir(),
        zeroFill: (path) => this.zeroFilledFile(path),
        segmentExists: async (segNo) => (await listSegments(this.dir, this.walSegSize, this.pgTimeline)).has(segNo),
        onError: (err) => {
          this.prepareError = err;
        },
      },
    );
    this.empty = empty;
    this.writePos = endLsn;
    this.flushPos = endLsn;
    this.durablePos = endLsn;
    this.dirtyEnd = endLsn;
    this.tracker = new WalRecordDecoder({ startLsn: endLsn, walSegSize: options.walSegSize });
    this.recovery = recovery;
  }

  /**
   * Opens a timeline directory: finds the end of valid WAL from `recoverFrom`, zeroes any
   * garbage after it and removes segments past it, so appends continue on a clean tail.
   */
  static async open(dir: string, options: WalStoreOptions): Promise<WalStore> {
    const { walSegSize, pgTimeline, timelineStartLsn } = options;
    const walStartLsn = options.walStartLsn ?? 0n;
    if (walStartLsn % BigInt(walSegSize) !== 0n) {
      throw new StorageError('invalid_argument', `${dir}: the first local LSN ${formatLsn(walStartLsn)} is not at a segment start`);
    }
    // Recovery never starts below the first segment held: restart time is bounded by what
    // is retained, not by the history.
    const recoverFrom = maxOf(options.recoverFrom, walStartLsn);
    const requiredEnd = maxOf(options.requiredEnd ?? options.recoverFrom, recoverFrom);
    await removeStaleTemp(dir);
    // Left-overs of a removal interrupted by a crash: the persisted start says they are gone.
    const removedStray = await removeBelow(dir, walSegSize, pgTimeline, walStartLsn, {});
    const segments = await listSegments(dir, walSegSize, pgTimeline);
    const startLsn = recoverFrom > timelineStartLsn ? recoverFrom : timelineStartLsn;

    if (segments.size === 0 && walStartLsn > 0n && walStartLsn >= requiredEnd) {
      // Everything up to a segment boundary was removed and nothing written after it yet.
      const store = new WalStore(dir, options, walStartLsn, false, null);
      await store.pool.load();
      if (removedStray) await store.fsyncDir();
      return store;
    }
    if (segments.size === 0) {
      if (requiredEnd > timelineStartLsn || recoverFrom > timelineStartLsn) {
        throw new StorageError(
          'wal_missing',
          `no WAL segments in ${dir}, but WAL up to ${formatLsn(requiredEnd > recoverFrom ? requiredEnd : recoverFrom)} ` +
            `was acknowledged (timeline starts at ${formatLsn(timelineStartLsn)})`,
        );
      }
      return new WalStore(dir, options, timelineStartLsn, true, null);
    }
    if (startLsn === 0n) {
      throw new StorageError(
        'invalid_argument',
        `${dir} holds WAL segments but neither timelineStartLsn nor recoverFrom is known; cannot find a record boundary`,
      );
    }

    const seg = BigInt(walSegSize);
    if (startLsn % seg !== 0n && !segments.has(startLsn / seg)) {
      throw new StorageError(
        'wal_missing',
        `WAL segment ${join(dir, walFileName(pgTimeline, startLsn / seg, walSegSize))} is missing: it holds the recovery start ${formatLsn(startLsn)}`,
      );
    }
    const end = await findEndOfWal({ dir, walSegSize, pgTimeline, startLsn, segments });
    if (end.endLsn < requiredEnd) {
      const where = end.stop
        ? `${end.stopFile} at offset ${end.stopOffset}: ${end.stop.detail}`
        : `a segment after ${formatLsn(end.endLsn)} is missing`;
      throw new StorageError(
        end.stop ? 'wal_corrupt' : 'wal_missing',
        `valid WAL in ${dir} ends at ${formatLsn(end.endLsn)}, before acknowledged ${formatLsn(requiredEnd)}: ${where}`,
      );
    }
    const store = new WalStore(dir, options, end.endLsn, false, end);
    await store.pool.load();
    if (removedStray) await store.fsyncDir();
    await store.cleanTail(end.endLsn);
    await store.syncSegments(startLsn, end.endLsn);
    return store;
  }

  get writeLsn(): Lsn {
    return this.writePos;
  }

  /** Record-aligned end of WAL known to be on disk. */
  get flushLsn(): Lsn {
    return this.flushPos;
  }

  get timelineStartLsn(): Lsn {
    return this.startLsn;
  }

  /** First LSN still held in this directory (below it the WAL was removed). */
  get localStartLsn(): Lsn {
    return maxOf(this.localStart, this.startLsn);
  }

  /** Recycling counters and the number of files kept for reuse (tests, benchmark). */
  get recycling(): SegmentPool['stats'] & { pooled: number; zeroFilledOnAppend: number } {
    return { ...this.pool.stats, pooled: this.pool.size, zeroFilledOnAppend: this.zeroFilledOnAppend };
  }

  /** Waits until a background preparation of the next segment has finished (tests, benchmark). */
  async settlePreparation(): Promise<void> {
    await this.pool.settle();
  }

  /** End of the last complete record written (not necessarily flushed). */
  get lastRecordEnd(): Lsn {
    return this.tracker.lastRecordEnd;
  }

  /** Set once an fsync failed; the store then refuses everything. */
  get failed(): StorageError | null {
    return this.failure;
  }

  // ---------------------------------------------------------------- appends

  /** Writes `data` at `beginLsn`, which must equal writeLsn. Does not fsync (see flush). */
  async append(beginLsn: Lsn, data: Uint8Array): Promise<void> {
    await this.exclusive(async () => {
      this.checkUsable();
      if (this.truncationPending) {
        throw new StorageError('invalid_argument', `${this.dir}: a truncation is pending; appends are refused until it completes`);
      }
      const anyStart = this.empty && this.startLsn === 0n;
      if (!anyStart && beginLsn !== this.writePos) {
        throw new StorageError(
          'invalid_argument',
          `${this.dir}: non-sequential append at ${formatLsn(beginLsn)}, write position is ${formatLsn(this.writePos)}`,
        );
      }
      if (data.length === 0) return;
      let pos = beginLsn;
      let off = 0;
      while (off < data.length) {
        const segNo = pos / this.segBytes;
        const segOff = Number(pos % this.segBytes);
        const n = Math.min(data.length - off, this.walSegSize - segOff);
        const segment = await this.segmentForWrite(segNo);
        await this.writeAt(segment, data.subarray(off, off + n), segOff);
        pos += BigInt(n);
        if (pos > this.dirtyEnd) this.dirtyEnd = pos;
        off += n;
        if (segOff + n === this.walSegSize) await this.completeSegment(segment);
      }

      // Fed only once every byte is written: a failed write leaves the tracker where the
      // write position is, so a retry re-feeds the same bytes (no per-append clone needed).
      const tracker = anyStart ? new WalRecordDecoder({ startLsn: beginLsn, walSegSize: this.walSegSize }) : this.tracker;
      tracker.feed(data);
      if (anyStart) {
        this.startLsn = beginLsn;
        this.flushPos = beginLsn;
        this.durablePos = beginLsn;
      }
      this.empty = false;
      this.writePos = pos;
      this.tracker = tracker;
    });
  }

  /**
   * Makes everything appended so far durable and returns the new flush LSN (record-aligned).
   * Group commit: while an fdatasync is in flight, callers wait for the next one, which
   * covers every byte written before it starts.
   */
  async flush(): Promise<Lsn> {
    this.checkUsable();
    const target = this.writePos;
    const epoch = this.epoch;
    while (this.durablePos < target && this.epoch === epoch) {
      if (this.syncInFlight) {
        await this.syncInFlight.catch(() => undefined);
        this.checkUsable();
        continue;
      }
      this.syncInFlight = this.syncCurrent().finally(() => {
        this.syncInFlight = null;
      });
      await this.syncInFlight;
    }
    this.checkUsable();
    return this.flushPos;
  }

  private async syncCurrent(): Promise<void> {
    const upTo = this.writePos;
    const recordEnd = this.tracker.lastRecordEnd;
    const epoch = this.epoch;
    const segment = this.current;
    // Segments before the current one were fdatasync'd when they filled, so the open segment
    // is the only one that can hold unsynced bytes below upTo.
    if (segment) {
      segment.pins++;
      const unsynced = Number(upTo - this.durablePos);
      const inline = this.syncMode === 'fsync' && this.syncPolicy !== undefined && this.syncPolicy.syncInline(this, performance.now(), unsynced);
      const started = performance.now();
      try {
        await this.fsync(segment.fh, 'wal_flush', segment.path, true, inline);
      } finally {
        segment.pins--;
        await this.closeIfDone(segment);
      }
      const ended = performance.now();
      if (inline) this.syncPolicy!.inlineSyncTook(ended - started, ended);
      this.onFsync?.((ended - started) / 1e3);
    }
    if (this.epoch !== epoch) return;
    if (upTo > this.durablePos) this.durablePos = upTo;
    const ackable = recordEnd < upTo ? recordEnd : upTo;
    if (ackable > this.flushPos) this.flushPos = ackable;
  }

  // ---------------------------------------------------------------- truncation

  /**
   * Removes WAL at and after `lsn`; afterwards writeLsn = flushLsn = lsn and `lsn` is taken
   * as a record boundary. Crash-safe: the tail at lsn is zeroed and synced before later
   * segments are deleted, so a crash at any point leaves WAL ending at lsn or at the old end
   * (which open() then cleans), never a hole.
   */
  async truncate(lsn: Lsn): Promise<void> {
    await this.exclusive(async () => {
      this.checkUsable();
      if (lsn > this.writePos && !this.truncationPending) {
        throw new StorageError(
          'invalid_argument',
          `${this.dir}: cannot truncate at ${formatLsn(lsn)}, beyond the write position ${formatLsn(this.writePos)}`,
        );
      }
      if (lsn < this.startLsn) {
        throw new StorageError(
          'invalid_argument',
          `${this.dir}: cannot truncate at ${formatLsn(lsn)}, before the timeline start ${formatLsn(this.startLsn)}`,
        );
      }
      if (lsn < this.localStart) {
        throw new StorageError(
          'invalid_argument',
          `${this.dir}: cannot truncate at ${formatLsn(lsn)}, below the first LSN held locally ${formatLsn(this.localStart)}`,
        );
      }
      this.truncationPending = true;
      this.epoch++;
      await this.pool.settle();
      if (this.syncInFlight) await this.syncInFlight.catch(() => undefined);
      this.checkUsable();
      this.writePos = lsn;
      if (this.flushPos > lsn) this.flushPos = lsn;
      if (this.durablePos > lsn) this.durablePos = lsn;
      this.tracker = new WalRecordDecoder({ startLsn: lsn, walSegSize: this.walSegSize });
      await this.cleanTail(lsn);
      this.flushPos = lsn;
      this.durablePos = lsn;
      this.truncationPending = false;
    });
  }

  /**
   * Makes `end` the end of WAL on disk: zeroes bytes after it in its segment, deletes later
   * segments (highest first), gives complete segments their final names and the segment
   * holding `end` the `.partial` suffix, and fsyncs the directory.
   */
  private async cleanTail(end: Lsn): Promise<void> {
    const segments = await listSegments(this.dir, this.walSegSize, this.pgTimeline);
    const endSeg = end / this.segBytes;
    const endOff = Number(end % this.segBytes);
    let dirChanged = false;

    // First make WAL end at `end` on disk (zeros there), then delete what lies beyond: a
    // crash in between leaves segments past a clean end, which the next open() removes.
    const target = segments.get(endSeg);
    if (target) {
      const path = join(this.dir, target.name);
      const fh = await this.openExisting(path);
      try {
        let changed = true;
        if (endOff > 0) changed = await this.zeroTail(fh, path, endOff);
        else await this.writeAt({ fh, path }, ZEROS.subarray(0, XLOG_BLCKSZ), 0);
        if (changed) await this.fsync(fh, 'truncate', path, false);
      } finally {
        await fh.close();
      }
    }

    const doomed = [...segments.values()]
      .filter((s) => s.segNo > endSeg || (s.segNo === endSeg && endOff === 0))
      .sort((a, b) => (a.segNo > b.segNo ? -1 : a.segNo < b.segNo ? 1 : 0));
    for (const s of doomed) {
      if (this.current && this.current.segNo === s.segNo) await this.dropCurrent();
      await unlink(join(this.dir, s.name));
      dirChanged = true;
    }

    for (const s of segments.values()) {
      if (s.segNo < endSeg && s.partial) {
        if (this.current && this.current.segNo === s.segNo) await this.dropCurrent();
        await rename(join(this.dir, s.name), join(this.dir, this.segmentName(s.segNo, false)));
        dirChanged = true;
      } else if (s.segNo === endSeg && endOff > 0 && !s.partial) {
        if (this.current && this.current.segNo === s.segNo) await this.dropCurrent();
        await rename(join(this.dir, s.name), join(this.dir, this.segmentName(s.segNo, true)));
        dirChanged = true;
      }
    }
    if (dirChanged) await this.fsyncDir();
    this.dirtyEnd = end;
  }

  /** fsyncs the segments holding [from, to): they may be only in the page cache after a crash of this process. */
  private async syncSegments(from: Lsn, to: Lsn): Promise<void> {
    const segments = await listSegments(this.dir, this.walSegSize, this.pgTimeline);
    const last = to > from ? (to - 1n) / this.segBytes : from / this.segBytes;
    for (let segNo = from / this.segBytes; segNo <= last; segNo++) {
      const s = segments.get(segNo);
      if (!s) continue;
      const path = join(this.dir, s.name);
      const fh = await this.openExisting(path);
      try {
        await this.fsync(fh, 'recovery', path, true);
      } finally {
        await fh.close();
      }
    }
  }

  /** Zero-fills [from, segment end) where it is not zero already; returns whether it wrote. */
  private async zeroTail(fh: FileHandle, path: string, from: number): Promise<boolean> {
    const buffer = Buffer.alloc(ZEROS.length);
    let lastDirty = -1;
    for (let off = from; off < this.walSegSize; off += buffer.length) {
      const want = Math.min(buffer.length, this.walSegSize - off);
      const { bytesRead } = await fh.read(buffer, 0, want, off);
      for (let k = 0; k < bytesRead; k++) {
        if (buffer[k] !== 0) {
          lastDirty = off + want;
          break;
        }
      }
      if (bytesRead < want) {
        lastDirty = this.walSegSize; // short file: extend it with real zeros
        break;
      }
    }
    if (lastDirty < 0) return false;
    for (let off = from; off < lastDirty; off += ZEROS.length) {
      const n = Math.min(ZEROS.length, lastDirty - off);
      await this.writeAt({ fh, path }, ZEROS.subarray(0, n), off);
    }
    return true;
  }

  // ---------------------------------------------------------------- removal

  /**
   * Removes every segment wholly below `lsn` (rounded down to a segment start; never the
   * segment being written): recycled into the pool or unlinked. Crash-safe in this order:
   * `persist(newStart)` must make the new first LSN durable (Timeline.advanceLifecycle) before
   * any file goes, so a crash at any point leaves, at worst, segments below the persisted
   * start, which open() removes again. Returns how many segments went.
   */
  async removeSegmentsBelow(lsn: Lsn, persist: (walStartLsn: Lsn) => Promise<void>): Promise<number> {
    this.checkUsable();
    let target = (lsn / this.segBytes) * this.segBytes;
    const writeSegStart = (this.writePos / this.segBytes) * this.segBytes;
    if (target > writeSegStart) target = writeSegStart;
    if (target <= this.localStartLsn) return 0;
    // Not under the store lock: persisting waits for the timeline's lock, whose holder may be
    // waiting for this store (an append).
    await persist(target);
    return this.exclusive(async () => {
      this.checkUsable();
      if (target > this.localStart) this.localStart = target;
      const removed = await removeBelow(this.dir, this.walSegSize, this.pgTimeline, target, { pool: this.pool, current: this.current?.segNo });
      if (removed > 0) await this.fsyncDir();
      return removed;
    });
  }

  // ---------------------------------------------------------------- reads

  /**
   * Reads WAL bytes [startLsn, min(startLsn + maxBytes, upTo, writeLsn)) from the segment
   * files. Throws `wal_removed` if startLsn is before the first LSN this store holds.
   */
  async read(startLsn: Lsn, maxBytes: number, upTo: Lsn): Promise<Buffer> {
    this.checkUsable();
    if (startLsn < this.localStartLsn) {
      throw new StorageError(
        'wal_removed',
        `WAL at ${formatLsn(startLsn)} is not available in ${this.dir}: ` +
          (this.localStart > this.startLsn ? 'it was removed; ' : '') +
          `the first LSN available is ${formatLsn(this.localStartLsn)}`,
      );
    }
    let end = startLsn + BigInt(Math.max(0, maxBytes));
    if (upTo < end) end = upTo;
    if (this.writePos < end) end = this.writePos;
    if (end <= startLsn) return Buffer.alloc(0);
    const out = Buffer.alloc(Number(end - startLsn));
    let pos = startLsn;
    while (pos < end) {
      const segNo = pos / this.segBytes;
      const segOff = Number(pos % this.segBytes);
      const n = Number(end - pos < this.segBytes - BigInt(segOff) ? end - pos : this.segBytes - BigInt(segOff));
      await this.readSegment(segNo, out, Number(pos - startLsn), n, segOff);
      pos += BigInt(n);
    }
    return out;
  }

  private async readSegment(segNo: bigint, out: Buffer, outOff: number, n: number, segOff: number): Promise<void> {
    // The segment may be renamed from .partial to its final name between our attempts.
    for (let attempt = 0; attempt < 3; attempt++) {
      for (const partial of [true, false]) {
        const path = join(this.dir, this.segmentName(segNo, partial));
        let fh: FileHandle;
        try {
          fh = await open(path, 'r');
        } catch (err) {
          if (errnoCode(err) === 'ENOENT') continue;
          throw new StorageError('io_error', `cannot open ${path}: ${String(err)}`, { cause: err });
        }
        try {
          let done = 0;
          while (done < n) {
            const { bytesRead } = await fh.read(out, outOff + done, n - done, segOff + done);
            if (bytesRead === 0) break;
            done += bytesRead;
          }
          if (done < n) {
            throw new StorageError('wal_corrupt', `${path} is short: wanted ${n} bytes at offset ${segOff}, got ${done}`);
          }
          return;
        } finally {
          await fh.close();
        }
      }
    }
    const name = this.segmentName(segNo, false);
    throw new StorageError('wal_removed', `WAL segment ${join(this.dir, name)} (or ${name}${PARTIAL_SUFFIX}) does not exist`);
  }

  // ---------------------------------------------------------------- lifecycle

  async close(): Promise<void> {
    if (this.closed) return;
    await this.exclusive(async () => {
      if (this.syncInFlight) await this.syncInFlight.catch(() => undefined);
      await this.pool.settle();
      this.closed = true;
      this.syncPolicy?.forget(this);
      if (this.current) await this.dropCurrent();
    });
  }

  // ---------------------------------------------------------------- segment files

  private segmentName(segNo: bigint, partial: boolean): string {
    return walFileName(this.pgTimeline, segNo, this.walSegSize) + (partial ? PARTIAL_SUFFIX : '');
  }

  /** The open segment for segNo: the current one, an existing file, or a new zero-filled one. */
  private async segmentForWrite(segNo: bigint): Promise<Segment> {
    if (this.current && this.current.segNo === segNo) return this.current;
    if (this.current) await this.dropCurrent();
    await this.pool.settle();
    for (const partial of [true, false]) {
      const path = join(this.dir, this.segmentName(segNo, partial));
      try {
        const fh = await open(path, 'r+');
        this.current = { segNo, fh, path, partial, pins: 0, closing: false };
        this.pool.prepare(segNo + 1n);
        return this.current;
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw new StorageError('io_error', `cannot open ${path}: ${String(err)}`, { cause: err });
      }
    }
    const path = (await this.pool.takeFor(segNo)) ? join(this.dir, this.segmentName(segNo, true)) : await this.createSegment(segNo);
    const fh = await this.openExisting(path);
    this.current = { segNo, fh, path, partial: true, pins: 0, closing: false };
    this.pool.prepare(segNo + 1n);
    return this.current;
  }

  /** Creates `<name>.partial` zero-filled to full size via a temp file and a durable rename. */
  private async createSegment(segNo: bigint): Promise<string> {
    const tmp = join(this.dir, SEGMENT_TMP_NAME);
    const path = join(this.dir, this.segmentName(segNo, true));
    this.zeroFilledOnAppend++;
    try {
      await this.zeroFilledFile(tmp);
    } catch (err) {
      if (err instanceof StorageError && err.code === 'disk_full') {
        throw new StorageError('disk_full', `no space left on device: cannot create WAL segment ${path} (via ${tmp})`, {
          cause: err,
        });
      }
      throw err;
    }
    try {
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw this.ioError(err, path, 'rename to');
    }
    await this.fsyncDir();
    return path;
  }

  /** Writes `path` as a zero-filled segment-sized file and fsyncs it; on failure nothing stays. */
  private async zeroFilledFile(path: string): Promise<void> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'w');
    } catch (err) {
      throw this.ioError(err, path, 'create');
    }
    try {
      // On the thread pool: this also runs in the background (segmentPool.ts) beside appends.
      for (let off = 0; off < this.walSegSize; off += ZEROS.length) {
        const n = Math.min(ZEROS.length, this.walSegSize - off);
        for (let done = 0; done < n; ) {
          try {
            done += (await fh.write(ZEROS, done, n - done, off + done)).bytesWritten;
          } catch (err) {
            throw this.ioError(err, path, 'write to');
          }
        }
      }
      await this.fsync(fh, 'segment_create', path, false);
    } catch (err) {
      await fh.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
      throw err;
    }
    await fh.close();
  }

  /** A filled segment: fdatasync it, then give it its final name. */
  private async completeSegment(segment: Segment): Promise<void> {
    await this.fsync(segment.fh, 'segment_full', segment.path, true);
    if (segment.partial) {
      const finalPath = join(this.dir, this.segmentName(segment.segNo, false));
      await rename(segment.path, finalPath);
      segment.path = finalPath;
      segment.partial = false;
    }
    if (this.current === segment) await this.dropCurrent();
  }

  private async dropCurrent(): Promise<void> {
    const segment = this.current;
    if (!segment) return;
    this.current = null;
    segment.closing = true;
    await this.closeIfDone(segment);
  }

  private async closeIfDone(segment: Segment): Promise<void> {
    if (segment.closing && segment.pins === 0) {
      segment.closing = false;
      await segment.fh.close().catch(() => undefined);
    }
  }

  private async openExisting(path: string): Promise<FileHandle> {
    try {
      return await open(path, 'r+');
    } catch (err) {
      throw this.ioError(err, path, 'open');
    }
  }

  /**
   * A write into the page cache, done synchronously: it takes microseconds, and a thread-pool
   * round trip per append cost more than the write itself. Durability comes from flush().
   */
  private async writeAt(segment: Pick<Segment, 'fh' | 'path'>, bytes: Uint8Array, offset: number): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      let written: number;
      try {
        written = writeSync(segment.fh.fd, bytes, done, bytes.length - done, offset + done);
      } catch (err) {
        throw this.ioError(err, segment.path, 'write to');
      }
      done += written;
    }
  }

  private ioError(err: unknown, path: string, verb: string): StorageError {
    if (err instanceof StorageError) return err;
    if (errnoCode(err) === 'ENOSPC') {
      return new StorageError('disk_full', `no space left on device: cannot ${verb} ${path}`, { cause: err });
    }
    return new StorageError('io_error', `cannot ${verb} ${path}: ${String(err)}`, { cause: err });
  }

  /**
   * fsync/fdatasync, on the thread pool or (`inline`, data only) blocking the event loop;
   * any failure marks the store permanently failed.
   */
  private async fsync(fh: FileHandle, kind: FsyncKind, path: string, dataOnly: boolean, inline = false): Promise<void> {
    try {
      if (this.fsyncHook) await this.fsyncHook(kind, path);
      if (this.syncMode === 'fsync') {
        if (inline && dataOnly) fdatasyncSync(fh.fd);
        else await (dataOnly ? fh.datasync() : fh.sync());
      }
    } catch (err) {
      throw this.fail(err, path);
    }
  }

  private async fsyncDir(): Promise<void> {
    try {
      if (this.fsyncHook) await this.fsyncHook('directory', this.dir);
      if (this.syncMode === 'fsync') {
        const fh = await open(this.dir, 'r');
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
      }
    } catch (err) {
      throw this.fail(err, this.dir);
    }
  }

  private fail(err: unknown, path: string): StorageError {
    if (!this.failure) {
      this.failure = new StorageError(
        'fsync_failed',
        `fsync of ${path} failed (${err instanceof Error ? err.message : String(err)}); ` +
          `the WAL store for ${this.dir} is unusable and the process must restart`,
        { cause: err },
      );
    }
    return this.failure;
  }

  private checkUsable(): void {
    if (this.failure) throw this.failure;
    if (this.closed) throw new StorageError('closed', `WAL store for ${this.dir} is closed`);
  }

  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.lock;
    let release!: () => void;
    this.lock = new Promise<void>((resolve) => (release = resolve));
    await previous;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

function maxOf(a: Lsn, b: Lsn): Lsn {
  return a > b ? a : b;
}

/**
 * Removes the segment files of `dir` wholly below `below` (lowest first): into the pool when
 * given, else unlinked. Returns how many went; the caller fsyncs the directory.
 */
async function removeBelow(
  dir: string,
  walSegSize: number,
  pgTimeline: number,
  below: Lsn,
  where: { pool?: SegmentPool; current?: bigint },
): Promise<number> {
  if (below === 0n) return 0;
  const seg = BigInt(walSegSize);
  const segments = await listSegments(dir, walSegSize, pgTimeline);
  const highest = [...segments.keys()].reduce((a, b) => (b > a ? b : a), -1n);
  const doomed = [...segments.values()].filter((s) => s.segNo < below / seg).sort((a, b) => (a.segNo < b.segNo ? -1 : 1));
  for (const s of doomed) {
    if (where.current !== undefined && s.segNo >= where.current) {
      throw new StorageError('invalid_argument', `${dir}: refusing to remove ${s.name}, the segment being written`);
    }
    try {
      if (where.pool) await where.pool.retire(s.name, highest + 1n);
      else await unlink(join(dir, s.name));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') continue;
      throw new StorageError('io_error', `cannot remove WAL segment ${join(dir, s.name)}: ${String(err)}`, { cause: err });
    }
  }
  return doomed.length;
}
