// Reading WAL back from remote storage: when a reader (a standby, pg_receivewal, a proposer
// catching a member up through this safekeeper) asks for WAL that is no longer on local disk,
// Timeline.readWal comes here. Whole segment objects are fetched (their checksum verified by
// the store) and the last few are kept in memory, since readers move through a segment in
// 128 KiB steps.
import { formatLsn, walFileName, type Lsn } from '../common/lsn.js';
import { walObjectKey, type RemoteStorage } from '../remote/remoteStorage.js';
import { StorageError } from '../storage/errors.js';
import { pgTimelineOfSegment } from '../consensus/pgTimeline.js';

const CACHED_SEGMENTS = 2;

/** What the bucket reader needs of its timeline (so the timeline and this module do not import each other). */
export interface RemoteWalTimeline {
  readonly tenantId: string;
  readonly timelineId: string;
  snapshot(): { walSegSize: number; pgTimelineHistory: Parameters<typeof pgTimelineOfSegment>[0] };
}

export class RemoteWalReader {
  /** segment number → its bytes (or the fetch in flight), most recently used last */
  private readonly cache = new Map<bigint, Promise<Buffer>>();

  constructor(
    private readonly store: RemoteStorage,
    private readonly tl: RemoteWalTimeline,
  ) {}

  /** Bytes [start, start + maxBytes) clipped to the segment holding start; throws if the bucket lacks it. */
  async read(start: Lsn, maxBytes: number): Promise<Buffer> {
    const s = this.tl.snapshot();
    const seg = BigInt(s.walSegSize);
    const segNo = start / seg;
    const body = await this.segment(segNo, pgTimelineOfSegment(s.pgTimelineHistory, segNo * seg, s.walSegSize), s.walSegSize);
    const off = Number(start % seg);
    return body.subarray(off, Math.min(body.length, off + Math.max(0, maxBytes)));
  }

  private segment(segNo: bigint, pgTimeline: number, walSegSize: number): Promise<Buffer> {
    const cached = this.cache.get(segNo);
    if (cached) {
      this.cache.delete(segNo);
      this.cache.set(segNo, cached);
      return cached;
    }
    const name = walFileName(pgTimeline, segNo, walSegSize);
    const fetch = (async () => {
      let body: Buffer | null;
      try {
        body = await this.store.get(walObjectKey(this.tl.tenantId, this.tl.timelineId, name));
      } catch (err) {
        // unreachable, refused or damaged: the reader gets the reason, the storage layer's error type
        throw new StorageError('io_error', `WAL segment ${name} is no longer on local disk and cannot be read from remote storage: ${(err as Error).message}`, { cause: err });
      }
      if (!body) {
        throw new StorageError('wal_removed', `WAL segment ${name} (from ${formatLsn(segNo * BigInt(walSegSize))}) is neither on local disk nor in remote storage ${this.store.url}`);
      }
      if (body.length !== walSegSize) throw new StorageError('wal_corrupt', `remote WAL segment ${name} in ${this.store.url} has ${body.length} bytes, expected ${walSegSize}`);
      return body;
    })();
    this.cache.set(segNo, fetch);
    fetch.catch(() => this.cache.delete(segNo));
    while (this.cache.size > CACHED_SEGMENTS) this.cache.delete(this.cache.keys().next().value!);
    return fetch;
  }
}
