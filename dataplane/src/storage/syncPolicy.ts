// Where a WAL flush's fdatasync runs: on the event loop (blocking it) or on libuv's thread
// pool. The pool's round trip costs each flush two extra context switches — the pool thread
// wakes, then the event loop wakes for the completion — which on a 2-core VM are among the
// dearest things a commit does: with pgbench -N -c 8 through 3 safekeepers, syncing small
// flushes on the event loop cut walkeeper's CPU per transaction by ~15% (646 -> 550 µs,
// alternated three times in one cluster). But an event loop blocked in fdatasync serves
// nobody else: another tenant's appends, readers, /healthz all wait, and concurrent
// fdatasyncs on one device would have been merged by the block layer into fewer cache
// flushes.
//
// Bulk WAL is the other way round: with 128 KiB appends, the pool's fdatasync overlaps with
// receiving and writing the next batch, and syncing inline cut the safekeeper's ingest from
// ~275 to ~175 MB/s. So a flush syncs on the event loop only when it is small (at most
// `maxInlineBytes` to make durable: commits, not a bulk load or a catch-up) and when that
// hurts no one: no other WAL store of this process synced within `busyWindowMs` (one busy
// timeline has the process to itself), and no recent inline sync was slow (a disk stalling
// for seconds must not stall the HTTP API and liveness probes with it). Pure: the caller
// passes the clock.

export interface SyncPolicyOptions {
  /** a flush with more unsynced bytes than this goes to the pool */
  maxInlineBytes?: number;
  /** another store that synced this recently makes the process "shared": use the pool */
  busyWindowMs?: number;
  /** an inline sync slower than this sends every sync to the pool for `slowBackoffMs` */
  slowMs?: number;
  slowBackoffMs?: number;
}

export const DEFAULT_SYNC_POLICY: Required<SyncPolicyOptions> = { maxInlineBytes: 64 * 1024, busyWindowMs: 1_000, slowMs: 50, slowBackoffMs: 10_000 };

export class SyncPolicy {
  private readonly opts: Required<SyncPolicyOptions>;
  /** when each store last synced WAL (ms) */
  private readonly lastSync = new Map<object, number>();
  private inlineBarredUntil = -Infinity;

  constructor(opts: SyncPolicyOptions = {}) {
    this.opts = { ...DEFAULT_SYNC_POLICY, ...opts };
  }

  /**
   * Called right before store `owner` syncs `bytes` of WAL at time `now` (ms): true means sync
   * on the event loop. Records the sync either way, so other stores see this one as busy.
   */
  syncInline(owner: object, now: number, bytes: number): boolean {
    this.lastSync.set(owner, now);
    if (bytes > this.opts.maxInlineBytes || now < this.inlineBarredUntil) return false;
    for (const [other, at] of this.lastSync) {
      if (other === owner) continue;
      if (now - at < this.opts.busyWindowMs) return false;
      this.lastSync.delete(other); // idle long enough to be forgotten
    }
    return true;
  }

  /** How long an inline sync that ended at `now` took. */
  inlineSyncTook(ms: number, now: number): void {
    if (ms > this.opts.slowMs) this.inlineBarredUntil = now + this.opts.slowBackoffMs;
  }

  /** A store closes: it no longer counts as busy. */
  forget(owner: object): void {
    this.lastSync.delete(owner);
  }
}
