// Recent WAL received from PostgreSQL, kept in memory so every safekeeper can be fed from
// its own position without re-reading. Bytes below the slowest member's acknowledgement are
// dropped; a member that falls further behind is caught up from a peer safekeeper instead.
import { formatLsn, type Lsn } from '../common/lsn.js';

interface Chunk {
  start: Lsn;
  data: Buffer;
}

export class WalBuffer {
  private chunks: Chunk[] = [];
  private startLsn: Lsn;
  private endLsn: Lsn;
  private bytes = 0;

  constructor(start: Lsn) {
    this.startLsn = start;
    this.endLsn = start;
  }

  get start(): Lsn {
    return this.startLsn;
  }

  get end(): Lsn {
    return this.endLsn;
  }

  get size(): number {
    return this.bytes;
  }

  /** Appends bytes that must start exactly at the current end. */
  append(at: Lsn, data: Buffer): void {
    if (at !== this.endLsn) throw new Error(`WAL from PostgreSQL is not contiguous: got ${formatLsn(at)}, expected ${formatLsn(this.endLsn)}`);
    if (data.length === 0) return;
    this.chunks.push({ start: at, data });
    this.endLsn += BigInt(data.length);
    this.bytes += data.length;
  }

  /** Up to maxBytes from `from`, never crossing `limit`; a copy-free view where possible. */
  read(from: Lsn, maxBytes: number, limit: Lsn = this.endLsn): Buffer {
    if (from < this.startLsn) throw new Error(`WAL at ${formatLsn(from)} is no longer buffered (buffer starts at ${formatLsn(this.startLsn)})`);
    const end = [from + BigInt(maxBytes), limit, this.endLsn].reduce((a, b) => (a < b ? a : b));
    if (end <= from) return Buffer.alloc(0);
    const parts: Buffer[] = [];
    // chunks are sorted; find the first one that covers `from`
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.chunks[mid].start <= from) lo = mid;
      else hi = mid - 1;
    }
    for (let i = lo; i < this.chunks.length; i++) {
      const c = this.chunks[i];
      if (c.start >= end) break;
      const s = from > c.start ? Number(from - c.start) : 0;
      const e = Math.min(c.data.length, Number(end - c.start));
      if (e > s) parts.push(c.data.subarray(s, e));
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** Drops everything below lsn (whole chunks only, so views handed out stay valid). */
  trimTo(lsn: Lsn): void {
    while (this.chunks.length) {
      const c = this.chunks[0];
      const cEnd = c.start + BigInt(c.data.length);
      if (cEnd > lsn) break;
      this.chunks.shift();
      this.bytes -= c.data.length;
      this.startLsn = cEnd;
    }
  }
}
