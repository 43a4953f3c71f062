// Recycled WAL segment files, as PostgreSQL recycles pg_wal: a segment removed below the
// horizon is renamed to a future segment name (`<name>.recycled`) instead of being deleted,
// and the segment after the one being written is prepared in the background as
// `<name>.prepared` (a recycled file renamed, or a zero-filled one), so the append path only
// renames it to `<name>.partial` when it needs it: no zero-fill, no file creation. Neither
// suffix is a segment name, so recovery never looks at these files.
//
// Why stale bytes are harmless: a recycled file only ever becomes a segment with a higher
// number than the one whose WAL it holds (removal takes segments below the commit LSN, and
// WAL is never written below it again), so every old page header carries an xlp_pageaddr
// of another segment and every old record an xl_prev of another chain. Recovery
// (recovery.ts, walRecords.ts validate mode) checks both and stops at the first old byte.
import { access, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { parseWalFileName, walFileName } from '../common/lsn.js';
import { errnoCode } from './errors.js';
import { PARTIAL_SUFFIX } from './recovery.js';

export const RECYCLED_SUFFIX = '.recycled';
export const PREPARED_SUFFIX = '.prepared';
/** Temp file of a background zero-fill (the foreground one is recovery.ts SEGMENT_TMP_NAME). */
export const PREPARE_TMP_NAME = 'waltmp.next';

export interface SegmentPoolIo {
  /** Makes renames in the directory durable. */
  fsyncDir(): Promise<void>;
  /** Creates `path` as a zero-filled, fsynced segment-sized file. */
  zeroFill(path: string): Promise<void>;
  /** Whether segment segNo exists (open or complete). */
  segmentExists(segNo: bigint): Promise<boolean>;
  /** A background preparation failed (the foreground path then creates the segment itself). */
  onError(err: unknown): void;
}

export interface SegmentPoolOptions {
  dir: string;
  walSegSize: number;
  pgTimeline: number;
  /** Files kept for reuse; beyond it removed segments are unlinked. 0 = never recycle. */
  maxRecycled: number;
  /** Prepare the next segment before it is needed. */
  prepareAhead: boolean;
}

export class SegmentPool {
  /** Future segment numbers of the `.recycled` files, ascending. */
  private readonly pooled: bigint[] = [];
  private preparing: Promise<void> | null = null;
  /** Counters for tests and the benchmark. */
  readonly stats = { recycled: 0, unlinked: 0, preparedFromPool: 0, preparedZeroFilled: 0 };

  constructor(
    private readonly options: SegmentPoolOptions,
    private readonly io: SegmentPoolIo,
  ) {}

  get size(): number {
    return this.pooled.length;
  }

  get prepareAhead(): boolean {
    return this.options.prepareAhead;
  }

  /**
   * Finds the recycled files left by an earlier run; removes those beyond the limit and a
   * stale temp. A prepared file stays where it is: it is still the next segment's (WAL is
   * never written past a segment that does not exist yet).
   */
  async load(): Promise<void> {
    await unlinkIfExists(join(this.options.dir, PREPARE_TMP_NAME));
    const found: bigint[] = [];
    for (const name of await readdir(this.options.dir)) {
      if (!name.endsWith(RECYCLED_SUFFIX)) continue;
      const parsed = parseWalFileName(name.slice(0, -RECYCLED_SUFFIX.length), this.options.walSegSize);
      if (!parsed || parsed.pgTimeline !== this.options.pgTimeline) continue;
      found.push(parsed.segNo);
    }
    found.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const segNo of found) {
      if (this.pooled.length < this.options.maxRecycled) this.pooled.push(segNo);
      else await unlinkIfExists(this.path(segNo));
    }
  }

  /**
   * Takes a removed segment file out of the timeline: renamed to a future name above
   * `highestSegNo` if the pool has room, unlinked otherwise. The caller fsyncs the directory.
   */
  async retire(name: string, highestSegNo: bigint): Promise<'recycled' | 'unlinked'> {
    const from = join(this.options.dir, name);
    if (this.pooled.length < this.options.maxRecycled) {
      const last = this.pooled.length > 0 ? this.pooled[this.pooled.length - 1] : -1n;
      const future = (last > highestSegNo ? last : highestSegNo) + 1n;
      await rename(from, this.path(future));
      this.pooled.push(future);
      this.stats.recycled++;
      return 'recycled';
    }
    await unlink(from);
    this.stats.unlinked++;
    return 'unlinked';
  }

  /** Starts preparing `<segNo>.partial` in the background unless it exists or one is in flight. */
  prepare(segNo: bigint): void {
    if (!this.options.prepareAhead || this.preparing) return;
    this.preparing = this.prepareNow(segNo)
      .catch((err) => this.io.onError(err))
      .finally(() => {
        this.preparing = null;
      });
  }

  /**
   * In the foreground, for a segment about to be written that does not exist: renames the
   * prepared file, or else a recycled one, to `<segNo>.partial` (durably). Returns false
   * when there is neither (the caller zero-fills).
   */
  async takeFor(segNo: bigint): Promise<boolean> {
    await this.settle();
    const target = this.segmentPath(segNo, PARTIAL_SUFFIX);
    try {
      await rename(this.segmentPath(segNo, PREPARED_SUFFIX), target);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      const pick = this.pooled.shift();
      if (pick === undefined) return false;
      try {
        await rename(this.path(pick), target);
      } catch (err2) {
        this.pooled.unshift(pick);
        throw err2;
      }
      this.stats.preparedFromPool++;
    }
    // Durable before any WAL goes in: acknowledged bytes must never sit in a file whose
    // name a crash could undo.
    await this.io.fsyncDir();
    return true;
  }

  /** Waits for a background preparation to finish (before the segment is opened, truncation, close). */
  async settle(): Promise<void> {
    while (this.preparing) await this.preparing;
  }

  private async prepareNow(segNo: bigint): Promise<void> {
    if (await this.io.segmentExists(segNo)) return;
    const target = this.segmentPath(segNo, PREPARED_SUFFIX);
    if (await exists(target)) return;
    const pick = this.pooled.shift();
    if (pick !== undefined) {
      try {
        await rename(this.path(pick), target);
      } catch (err) {
        this.pooled.unshift(pick);
        throw err;
      }
      this.stats.preparedFromPool++;
    } else {
      const tmp = join(this.options.dir, PREPARE_TMP_NAME);
      try {
        await this.io.zeroFill(tmp);
        await rename(tmp, target);
      } catch (err) {
        await unlinkIfExists(tmp).catch(() => undefined);
        throw err;
      }
      this.stats.preparedZeroFilled++;
    }
  }

  private segmentPath(segNo: bigint, suffix: string): string {
    return join(this.options.dir, walFileName(this.options.pgTimeline, segNo, this.options.walSegSize) + suffix);
  }

  private path(futureSegNo: bigint): string {
    return join(this.options.dir, walFileName(this.options.pgTimeline, futureSegNo, this.options.walSegSize) + RECYCLED_SUFFIX);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

async function unlinkIfExists(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
}
