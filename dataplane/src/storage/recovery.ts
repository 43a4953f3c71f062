// Finding the end of valid WAL in a timeline directory: list the segment files and decode
// records forward from a known boundary, validating each one, until the first zero, torn or
// invalid record. Used by WalStore.open before a safekeeper accepts connections.

import { open, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { formatLsn, parseWalFileName, walFileName, type Lsn } from '../common/lsn.js';
import { errnoCode, StorageError } from './errors.js';
import { WalRecordDecoder, type WalDecodeStop } from './walRecords.js';

export const PARTIAL_SUFFIX = '.partial';
export const SEGMENT_TMP_NAME = 'waltmp';

export interface WalSegmentFile {
  segNo: bigint;
  /** File name in the timeline directory (with `.partial` if the segment is still open). */
  name: string;
  partial: boolean;
}

/** The WAL segment files of one PostgreSQL timeline in `dir`, by segment number. */
export async function listSegments(dir: string, walSegSize: number, pgTimeline: number): Promise<Map<bigint, WalSegmentFile>> {
  const segments = new Map<bigint, WalSegmentFile>();
  for (const name of await readdir(dir)) {
    const partial = name.endsWith(PARTIAL_SUFFIX);
    const parsed = parseWalFileName(partial ? name.slice(0, -PARTIAL_SUFFIX.length) : name, walSegSize);
    if (!parsed || parsed.pgTimeline !== pgTimeline) continue;
    const existing = segments.get(parsed.segNo);
    if (existing) {
      throw new StorageError(
        'wal_corrupt',
        `WAL segment ${parsed.segNo} exists twice in ${dir}: ${existing.name} and ${name}; remove the stale copy by hand`,
      );
    }
    segments.set(parsed.segNo, { segNo: parsed.segNo, name, partial });
  }
  return segments;
}

/** Removes a leftover temp segment from an interrupted segment creation. */
export async function removeStaleTemp(dir: string): Promise<void> {
  try {
    await unlink(join(dir, SEGMENT_TMP_NAME));
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
}

export interface EndOfWal {
  /** End of the last valid record (the next segment boundary after an XLOG_SWITCH). */
  endLsn: Lsn;
  /** Why decoding stopped; null when it ran out of segment files. */
  stop: WalDecodeStop | null;
  /** File and offset of the stop position (for messages). */
  stopFile: string | null;
  stopOffset: number | null;
  /** True when it stopped at something other than a clean end (zeros or missing file). */
  corrupt: boolean;
  records: number;
}

export interface FindEndOfWalOptions {
  dir: string;
  walSegSize: number;
  pgTimeline: number;
  /** A record boundary or a segment start (a continuation found there is skipped). */
  startLsn: Lsn;
  segments?: Map<bigint, WalSegmentFile>;
}

const READ_CHUNK = 1 << 20;

/** Decodes forward from startLsn and returns where valid WAL ends. */
export async function findEndOfWal(options: FindEndOfWalOptions): Promise<EndOfWal> {
  const { dir, walSegSize, pgTimeline, startLsn } = options;
  const segments = options.segments ?? (await listSegments(dir, walSegSize, pgTimeline));
  const seg = BigInt(walSegSize);
  const decoder = new WalRecordDecoder({ startLsn, walSegSize, validate: true });
  const buffer = Buffer.alloc(READ_CHUNK);
  const highest = [...segments.keys()].reduce((a, b) => (b > a ? b : a), -1n);

  let segNo = startLsn / seg;
  let offset = Number(startLsn % seg);
  for (;;) {
    const file = segments.get(segNo);
    if (!file) {
      if (segNo < highest) {
        const expected = walFileName(pgTimeline, segNo, walSegSize);
        throw new StorageError(
          'wal_missing',
          `WAL segment ${join(dir, expected)} is missing: needed to decode from ${formatLsn(decoder.position)} ` +
            `but later segments exist (up to ${walFileName(pgTimeline, highest, walSegSize)})`,
        );
      }
      break;
    }
    const path = join(dir, file.name);
    const fh = await open(path, 'r');
    try {
      while (offset < walSegSize && !decoder.stopped) {
        const want = Math.min(READ_CHUNK, walSegSize - offset);
        const { bytesRead } = await fh.read(buffer, 0, want, offset);
        if (bytesRead === 0) break; // a short file: whatever is missing counts as never written
        decoder.feed(buffer.subarray(0, bytesRead));
        offset += bytesRead;
      }
    } finally {
      await fh.close();
    }
    if (decoder.stopped || offset < walSegSize) break;
    segNo++;
    offset = 0;
  }

  const stop = decoder.stopped;
  let stopFile: string | null = null;
  let stopOffset: number | null = null;
  if (stop) {
    const stopSeg = stop.lsn / seg;
    const file = segments.get(stopSeg);
    stopFile = join(dir, file ? file.name : walFileName(pgTimeline, stopSeg, walSegSize));
    stopOffset = Number(stop.lsn % seg);
  }
  return {
    endLsn: decoder.lastRecordEnd,
    stop,
    stopFile,
    stopOffset,
    corrupt: stop !== null && stop.reason === 'invalid',
    records: decoder.records,
  };
}
