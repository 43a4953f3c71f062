// Test helper: builds a synthetic but valid PostgreSQL WAL byte stream (page headers,
// continuation records, MAXALIGN padding, xl_prev chains, CRC-32C), for any segment size.

import { XLOG_BLCKSZ, type Lsn } from '@walkeeper/dataplane/common/lsn';
import { CRC32C_INIT, crc32cFinish, crc32cUpdate } from '@walkeeper/dataplane/storage/crc32c';
import {
  SIZE_OF_LONG_PAGE_HEADER,
  SIZE_OF_SHORT_PAGE_HEADER,
  XLP_FIRST_IS_CONTRECORD,
  XLP_LONG_HEADER,
} from '@walkeeper/dataplane/storage/walRecords';

export interface BuiltRecord {
  start: Lsn;
  /** MAXALIGNed end, as PostgreSQL reports it */
  end: Lsn;
  /** end of the record's last byte, before padding */
  exactEnd: Lsn;
  totalLength: number;
}

export class WalBuilder {
  readonly startLsn: Lsn;
  readonly walSegSize: number;
  private readonly chunks: Buffer[] = [];
  private pos: Lsn;
  private prev: Lsn = 0n;
  readonly records: BuiltRecord[] = [];
  private seed = 12345;

  constructor(startLsn: Lsn, walSegSize: number) {
    if (startLsn % BigInt(XLOG_BLCKSZ) !== 0n) throw new Error('WalBuilder starts on a page boundary');
    this.startLsn = startLsn;
    this.walSegSize = walSegSize;
    this.pos = startLsn;
  }

  get position(): Lsn {
    return this.pos;
  }

  /** Appends one record with `payloadLength` pseudo-random bytes after the 24-byte header. */
  addRecord(payloadLength: number, rmid = 10, info = 0): BuiltRecord {
    this.pad8();
    const total = 24 + payloadLength;
    const payload = Buffer.alloc(payloadLength);
    for (let k = 0; k < payloadLength; k++) payload[k] = this.nextByte();
    const header = Buffer.alloc(24);
    header.writeUInt32LE(total, 0);
    header.writeUInt32LE(777, 4);
    header.writeBigUInt64LE(this.prev, 8);
    header[16] = info;
    header[17] = rmid;
    const crc = crc32cFinish(crc32cUpdate(crc32cUpdate(CRC32C_INIT, payload), header, 0, 20));
    header.writeUInt32LE(crc, 20);
    const bytes = Buffer.concat([header, payload]);
    // Skip a page header if the record would begin at a page boundary.
    this.emitPageHeaderIfNeeded(0);
    const start = this.pos;
    let off = 0;
    while (off < bytes.length) {
      this.emitPageHeaderIfNeeded(bytes.length - off);
      const pageRoom = XLOG_BLCKSZ - Number(this.pos % BigInt(XLOG_BLCKSZ));
      const n = Math.min(pageRoom, bytes.length - off);
      this.raw(bytes.subarray(off, off + n));
      off += n;
    }
    this.prev = start;
    const exactEnd = this.pos;
    // PostgreSQL's end LSN of a record is MAXALIGNed, and the padding is part of the stream.
    this.pad8();
    const record = { start, end: this.pos, exactEnd, totalLength: total };
    this.records.push(record);
    return record;
  }

  /** An XLOG_SWITCH record; the rest of the segment becomes zeros. */
  addSwitch(): BuiltRecord {
    const record = this.addRecord(0, 0, 0x40);
    const seg = BigInt(this.walSegSize);
    const rest = (seg - (this.pos % seg)) % seg;
    this.raw(Buffer.alloc(Number(rest)));
    return record;
  }

  /** All bytes from startLsn to the current position. */
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  private pad8(): void {
    const pad = Number((8n - (this.pos % 8n)) % 8n);
    if (pad > 0) this.raw(Buffer.alloc(pad));
  }

  private emitPageHeaderIfNeeded(remaining: number): void {
    if (this.pos % BigInt(XLOG_BLCKSZ) !== 0n) return;
    const long = this.pos % BigInt(this.walSegSize) === 0n;
    const header = Buffer.alloc(long ? SIZE_OF_LONG_PAGE_HEADER : SIZE_OF_SHORT_PAGE_HEADER);
    header.writeUInt16LE(0xd110, 0);
    header.writeUInt16LE((long ? XLP_LONG_HEADER : 0) | (remaining > 0 ? XLP_FIRST_IS_CONTRECORD : 0), 2);
    header.writeUInt32LE(1, 4);
    header.writeBigUInt64LE(this.pos, 8);
    header.writeUInt32LE(remaining, 16);
    if (long) {
      header.writeBigUInt64LE(7000000000000000000n, 24);
      header.writeUInt32LE(this.walSegSize, 32);
      header.writeUInt32LE(XLOG_BLCKSZ, 36);
    }
    this.raw(header);
  }

  private raw(bytes: Buffer): void {
    this.chunks.push(Buffer.from(bytes));
    this.pos += BigInt(bytes.length);
  }

  private nextByte(): number {
    this.seed = (this.seed * 1103515245 + 12345) & 0x7fffffff;
    return (this.seed >> 16) & 0xff;
  }
}

/** The end of the last record ending at or before `lsn` (records sorted), else `fallback`. */
export function lastEndAtOrBefore(records: BuiltRecord[], lsn: Lsn, fallback: Lsn): Lsn {
  let lo = 0;
  let hi = records.length; // first index with end > lsn
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (records[mid].end <= lsn) lo = mid + 1;
    else hi = mid;
  }
  // fed past a record's last byte but not through its padding: the exact end is reported
  if (lo < records.length && records[lo].exactEnd <= lsn) return records[lo].exactEnd;
  return lo === 0 ? fallback : records[lo - 1].end;
}
