// PostgreSQL WAL record-boundary decoder. Fed consecutive chunks of the WAL byte stream, it
// follows page headers and XLogRecord headers to know where every record ends. Two modes:
// ingest (cheap: only boundaries, self-resynchronising on page headers) and recovery
// (validate: page addresses, continuation lengths, xl_prev and every record's CRC-32C,
// stopping at the first zero, torn or invalid record). Pure: no I/O.
// (Over 400 lines: one incremental decoder of PostgreSQL's page and record layout; its two modes
// share every boundary rule.)

import { formatLsn, XLOG_BLCKSZ, type Lsn } from '../common/lsn.js';
import { CRC32C_INIT, crc32cFinish, crc32cUpdate } from './crc32c.js';

export const XLP_FIRST_IS_CONTRECORD = 0x0001;
export const XLP_LONG_HEADER = 0x0002;
export const XLP_BKP_REMOVABLE = 0x0004;
export const XLP_FIRST_IS_OVERWRITE_CONTRECORD = 0x0008;
const XLP_ALL_FLAGS = 0x000f;

export const SIZE_OF_SHORT_PAGE_HEADER = 24;
export const SIZE_OF_LONG_PAGE_HEADER = 40;
export const SIZE_OF_XLOG_RECORD = 24;
/** PostgreSQL refuses records longer than this (AllocSizeIsValid / XLogRecordMaxSize). */
const MAX_RECORD_LENGTH = 0x3fffffff;

const RM_XLOG_ID = 0;
const XLOG_SWITCH = 0x40;

/** Why decoding stopped. `zero`: a clean end (zeros where a record or page would begin). */
export type WalDecodeStopReason = 'zero' | 'incomplete' | 'invalid';

export interface WalDecodeStop {
  reason: WalDecodeStopReason;
  /** Start of the record (or page) that could not be decoded. */
  lsn: Lsn;
  detail: string;
}

export interface WalDecoderOptions {
  /** A record boundary, or any page boundary (a continuation found there is skipped). */
  startLsn: Lsn;
  walSegSize: number;
  /** Recovery mode: check page headers, xl_prev and CRCs, and stop at the first bad record. */
  validate?: boolean;
  /** Called for every complete (and, in validate mode, valid) record. */
  onRecord?: (start: Lsn, totalLength: number, end: Lsn) => void;
}

// Phases of the state machine (plain numbers: this runs once per record on the hot path).
const PAGE_HEADER = 0;
const ALIGN = 1; // padding up to MAXALIGN before the next record
const REC_HEADER = 2; // collecting the 24-byte XLogRecord header (may cross a page)
const REC_BODY = 3;
const CONT_SKIP = 4; // skipping the tail of a record that began before we did
const SWITCH_PAD = 5; // rest of the segment after XLOG_SWITCH
const RESYNC = 6; // lost: skip to the next page header and pick up from xlp_rem_len
const STOPPED = 7;

const PAGE_MASK = XLOG_BLCKSZ - 1;

/**
 * Tracks record boundaries over a WAL byte stream.
 *
 * `lastRecordEnd` is the end LSN of the last complete record seen, MAXALIGNed as PostgreSQL
 * reports record ends (a COMMIT waits for exactly that LSN) once the padding has been fed, the
 * exact end before that; after an
 * XLOG_SWITCH it becomes the next segment boundary once the padding has been fed (in validate
 * mode immediately, since the padding is zeros by definition).
 */
export class WalRecordDecoder {
  readonly walSegSize: number;
  readonly validate: boolean;
  private readonly onRecord: WalDecoderOptions['onRecord'];

  private segBase: bigint;
  private segOff: number;
  private phase: number;
  private afterPage: number = ALIGN;
  private firstPage: boolean;

  private readonly pageHdr = new Uint8Array(SIZE_OF_LONG_PAGE_HEADER);
  private pageHdrLen = 0;
  private pageHdrNeed = 0;

  private readonly recHdr = new Uint8Array(SIZE_OF_XLOG_RECORD);
  private recHdrLen = 0;
  private recTotLen = 0;
  private recRemaining = 0; // body bytes still to come
  private recStartBase = 0n;
  private recStartOff = 0;
  private crcRegister = CRC32C_INIT;
  private contRemaining = 0;

  private endBase: bigint;
  private endOff: number;
  private prevRecordStart: Lsn | null = null;

  private stopInfo: WalDecodeStop | null = null;
  /** How many times ingest lost track and re-synchronised on a page header. */
  resyncs = 0;
  /** Complete records decoded. */
  records = 0;

  constructor(options: WalDecoderOptions) {
    const { startLsn, walSegSize } = options;
    if (walSegSize % XLOG_BLCKSZ !== 0 || walSegSize <= 0) {
      throw new RangeError(`wal segment size ${walSegSize} is not a positive multiple of ${XLOG_BLCKSZ}`);
    }
    this.walSegSize = walSegSize;
    this.validate = options.validate ?? false;
    this.onRecord = options.onRecord;
    const seg = BigInt(walSegSize);
    this.segBase = startLsn - (startLsn % seg);
    this.segOff = Number(startLsn % seg);
    this.endBase = this.segBase;
    this.endOff = this.segOff;
    const pageOff = this.segOff & PAGE_MASK;
    const headerSize = this.segOff < XLOG_BLCKSZ ? SIZE_OF_LONG_PAGE_HEADER : SIZE_OF_SHORT_PAGE_HEADER;
    this.firstPage = pageOff === 0;
    if (pageOff !== 0 && pageOff < headerSize) {
      // Inside a page header: no record can start here. Pick up at the next page.
      if (this.validate) {
        throw new RangeError(`WAL decoding cannot start at ${formatLsn(startLsn)}: inside a page header`);
      }
      this.phase = RESYNC;
    } else {
      this.phase = ALIGN;
    }
  }

  /** The LSN of the next byte this decoder expects. */
  get position(): Lsn {
    return this.segBase + BigInt(this.segOff);
  }

  get lastRecordEnd(): Lsn {
    const exact = this.endBase + BigInt(this.endOff);
    const fed = this.position;
    if (exact >= fed) return exact; // XLOG_SWITCH in recovery: the padding is implied
    const aligned = maxAlign(exact);
    return aligned <= fed ? aligned : exact;
  }

  /** Start of the last complete record, or null if none has been decoded from its start. */
  get lastRecordStart(): Lsn | null {
    return this.prevRecordStart;
  }

  /** Set once decoding stopped (validate mode only). */
  get stopped(): WalDecodeStop | null {
    return this.stopInfo;
  }

  /** A copy that can be fed speculatively without disturbing this one. */
  clone(): WalRecordDecoder {
    const copy = Object.create(WalRecordDecoder.prototype) as WalRecordDecoder;
    Object.assign(copy, this);
    const writable = copy as unknown as { pageHdr: Uint8Array; recHdr: Uint8Array };
    writable.pageHdr = this.pageHdr.slice();
    writable.recHdr = this.recHdr.slice();
    return copy;
  }

  /**
   * Consumes `chunk`, the bytes at `position`. Returns how many bytes were consumed: all of
   * them unless decoding stopped (validate mode) inside this chunk.
   */
  feed(chunk: Uint8Array): number {
    const n = chunk.length;
    let i = 0;
    while (i < n && this.phase !== STOPPED) {
      const pageOff = this.segOff & PAGE_MASK;
      if (pageOff === 0 && this.phase !== PAGE_HEADER && this.phase !== SWITCH_PAD) {
        this.afterPage = this.phase;
        this.phase = PAGE_HEADER;
        this.pageHdrLen = 0;
        this.pageHdrNeed = this.segOff === 0 ? SIZE_OF_LONG_PAGE_HEADER : SIZE_OF_SHORT_PAGE_HEADER;
      }
      switch (this.phase) {
        case PAGE_HEADER: {
          const take = Math.min(this.pageHdrNeed - this.pageHdrLen, n - i);
          for (let k = 0; k < take; k++) this.pageHdr[this.pageHdrLen + k] = chunk[i + k];
          this.pageHdrLen += take;
          i += take;
          this.advance(take);
          if (this.pageHdrLen === this.pageHdrNeed) this.onPageHeader();
          break;
        }
        case ALIGN: {
          const pad = (8 - (this.segOff & 7)) & 7;
          if (pad === 0) {
            this.phase = REC_HEADER;
            this.recHdrLen = 0;
            this.recStartBase = this.segBase;
            this.recStartOff = this.segOff;
          } else {
            const take = Math.min(pad, n - i);
            i += take;
            this.advance(take);
          }
          break;
        }
        case REC_HEADER: {
          const take = Math.min(SIZE_OF_XLOG_RECORD - this.recHdrLen, XLOG_BLCKSZ - pageOff, n - i);
          const had = this.recHdrLen;
          for (let k = 0; k < take; k++) this.recHdr[had + k] = chunk[i + k];
          this.recHdrLen += take;
          i += take;
          this.advance(take);
          if (had < 4 && this.recHdrLen >= 4) this.onRecordLength();
          if (this.phase === REC_HEADER && this.recHdrLen === SIZE_OF_XLOG_RECORD) this.onRecordHeader();
          break;
        }
        case REC_BODY: {
          const take = Math.min(this.recRemaining, XLOG_BLCKSZ - pageOff, n - i);
          if (this.validate) this.crcRegister = crc32cUpdate(this.crcRegister, chunk, i, i + take);
          this.recRemaining -= take;
          i += take;
          this.advance(take);
          if (this.recRemaining === 0) this.onRecordComplete();
          break;
        }
        case CONT_SKIP: {
          const take = Math.min(this.contRemaining, XLOG_BLCKSZ - pageOff, n - i);
          this.contRemaining -= take;
          i += take;
          this.advance(take);
          if (this.contRemaining === 0) {
            this.markEnd();
            this.prevRecordStart = null;
            this.phase = ALIGN;
          }
          break;
        }
        case SWITCH_PAD: {
          const take = Math.min(this.walSegSize - this.segOff, n - i);
          i += take;
          this.advance(take);
          if (this.segOff === 0) {
            this.markEnd();
            this.phase = ALIGN;
          }
          break;
        }
        case RESYNC: {
          const take = Math.min(XLOG_BLCKSZ - pageOff, n - i);
          i += take;
          this.advance(take);
          break;
        }
        default:
          throw new Error(`WAL decoder in unknown phase ${this.phase}`);
      }
    }
    return i;
  }

  private advance(bytes: number): void {
    this.segOff += bytes;
    if (this.segOff === this.walSegSize) {
      this.segBase += BigInt(this.walSegSize);
      this.segOff = 0;
    }
  }

  private markEnd(): void {
    this.endBase = this.segBase;
    this.endOff = this.segOff;
  }

  private stop(reason: WalDecodeStopReason, lsn: Lsn, detail: string): void {
    this.phase = STOPPED;
    this.stopInfo = { reason, lsn, detail };
  }

  private recordStart(): Lsn {
    return this.recStartBase + BigInt(this.recStartOff);
  }

  /** Lost track (ingest only): skip to the next page header and restart from its xlp_rem_len. */
  private lose(): void {
    this.resyncs++;
    this.prevRecordStart = null;
    this.phase = RESYNC;
  }

  private resyncFromPage(cont: boolean, remLen: number): void {
    this.prevRecordStart = null;
    if (cont && remLen > 0) {
      this.contRemaining = remLen;
      this.phase = CONT_SKIP;
    } else {
      this.phase = ALIGN;
    }
  }

  private onPageHeader(): void {
    const h = this.pageHdr;
    const view = new DataView(h.buffer, h.byteOffset, this.pageHdrNeed);
    const magic = view.getUint16(0, true);
    const info = view.getUint16(2, true);
    const pageAddr = view.getBigUint64(8, true);
    const remLen = view.getUint32(16, true);
    const pageLsn = this.position - BigInt(this.pageHdrNeed);
    const after = this.afterPage;
    const wasFirst = this.firstPage;
    this.firstPage = false;
    const inRecord = after === REC_BODY || (after === REC_HEADER && this.recHdrLen > 0);
    const expectingRecord = after === ALIGN || (after === REC_HEADER && this.recHdrLen === 0);
    const cont = (info & XLP_FIRST_IS_CONTRECORD) !== 0;

    if (this.validate) {
      if (magic === 0 && info === 0 && pageAddr === 0n && remLen === 0) {
        const where = inRecord ? ` (record at ${formatLsn(this.recordStart())} is incomplete)` : '';
        this.stop(expectingRecord ? 'zero' : 'incomplete', pageLsn, `page at ${formatLsn(pageLsn)} is zeros${where}`);
        return;
      }
      const fail = (detail: string) => this.stop('invalid', pageLsn, `page header at ${formatLsn(pageLsn)}: ${detail}`);
      if (pageAddr !== pageLsn) return fail(`xlp_pageaddr is ${formatLsn(pageAddr)}, expected ${formatLsn(pageLsn)}`);
      if ((info & ~XLP_ALL_FLAGS) !== 0) return fail(`unknown xlp_info flags 0x${info.toString(16)}`);
      const isLong = (info & XLP_LONG_HEADER) !== 0;
      const segmentStart = this.pageHdrNeed === SIZE_OF_LONG_PAGE_HEADER;
      if (isLong !== segmentStart) {
        return fail(segmentStart ? 'first page of a segment lacks XLP_LONG_HEADER' : 'unexpected XLP_LONG_HEADER');
      }
      if (isLong) {
        const segSize = view.getUint32(32, true);
        const blcksz = view.getUint32(36, true);
        if (segSize !== this.walSegSize) return fail(`xlp_seg_size ${segSize}, expected ${this.walSegSize}`);
        if (blcksz !== XLOG_BLCKSZ) return fail(`xlp_xlog_blcksz ${blcksz}, expected ${XLOG_BLCKSZ}`);
      }
      if (remLen > MAX_RECORD_LENGTH) return fail(`xlp_rem_len ${remLen} is too large`);
    }

    const mismatch = (detail: string) => {
      if (this.validate) this.stop('invalid', pageLsn, `page header at ${formatLsn(pageLsn)}: ${detail}`);
      else {
        this.resyncs++;
        this.resyncFromPage(cont, remLen);
      }
    };

    if (inRecord) {
      const expected = after === REC_BODY ? this.recRemaining : this.recTotLen - this.recHdrLen;
      if (cont && remLen === expected) {
        this.phase = after;
      } else if (!cont && (info & XLP_FIRST_IS_OVERWRITE_CONTRECORD) !== 0) {
        // The primary abandoned the record in flight and wrote new WAL from this page.
        this.prevRecordStart = null;
        this.phase = ALIGN;
      } else {
        mismatch(
          `record at ${formatLsn(this.recordStart())} needs a continuation of ${expected} bytes, ` +
            `page has ${cont ? `xlp_rem_len ${remLen}` : 'no XLP_FIRST_IS_CONTRECORD'}`,
        );
      }
    } else if (after === CONT_SKIP) {
      if (cont && remLen === this.contRemaining) this.phase = CONT_SKIP;
      else mismatch(`continuation of ${this.contRemaining} bytes expected, page has xlp_rem_len ${cont ? remLen : 0}`);
    } else if (expectingRecord) {
      if (!cont) this.phase = ALIGN;
      else if (wasFirst) this.resyncFromPage(cont, remLen);
      else mismatch(`unexpected XLP_FIRST_IS_CONTRECORD (xlp_rem_len ${remLen}) where a record should begin`);
    } else {
      // RESYNC
      this.resyncFromPage(cont, remLen);
    }
  }

  private onRecordLength(): void {
    const h = this.recHdr;
    const totLen = (h[0] | (h[1] << 8) | (h[2] << 16) | (h[3] << 24)) >>> 0;
    this.recTotLen = totLen;
    if (totLen >= SIZE_OF_XLOG_RECORD && totLen <= MAX_RECORD_LENGTH) return;
    if (!this.validate) return this.lose();
    const at = this.recordStart();
    if (totLen === 0) this.stop('zero', at, `no record at ${formatLsn(at)} (xl_tot_len is 0)`);
    else this.stop('invalid', at, `record at ${formatLsn(at)}: invalid xl_tot_len ${totLen}`);
  }

  private onRecordHeader(): void {
    if (this.validate && this.prevRecordStart !== null) {
      const view = new DataView(this.recHdr.buffer, this.recHdr.byteOffset, SIZE_OF_XLOG_RECORD);
      const xlPrev = view.getBigUint64(8, true);
      if (xlPrev !== this.prevRecordStart) {
        const at = this.recordStart();
        this.stop(
          'invalid',
          at,
          `record at ${formatLsn(at)}: xl_prev ${formatLsn(xlPrev)} does not point to the previous record ${formatLsn(this.prevRecordStart)}`,
        );
        return;
      }
    }
    this.crcRegister = CRC32C_INIT;
    this.recRemaining = this.recTotLen - SIZE_OF_XLOG_RECORD;
    this.phase = REC_BODY;
    if (this.recRemaining === 0) this.onRecordComplete();
  }

  private onRecordComplete(): void {
    const h = this.recHdr;
    const start = this.recordStart();
    if (this.validate) {
      const computed = crc32cFinish(crc32cUpdate(this.crcRegister, h, 0, 20));
      const stored = (h[20] | (h[21] << 8) | (h[22] << 16) | (h[23] << 24)) >>> 0;
      if (computed !== stored) {
        this.stop(
          'invalid',
          start,
          `record at ${formatLsn(start)}: checksum mismatch (stored 0x${hex32(stored)}, computed 0x${hex32(computed)})`,
        );
        return;
      }
    }
    this.records++;
    this.prevRecordStart = start;
    this.onRecord?.(start, this.recTotLen, this.position);
    const isSwitch = h[17] === RM_XLOG_ID && (h[16] & 0xf0) === XLOG_SWITCH;
    if (isSwitch && this.segOff !== 0) {
      this.phase = SWITCH_PAD;
      if (this.validate) {
        this.endBase = this.segBase + BigInt(this.walSegSize);
        this.endOff = 0;
      } else {
        this.markEnd();
      }
    } else {
      this.markEnd();
      this.phase = ALIGN;
    }
  }
}

export function hex32(v: number): string {
  return v.toString(16).toUpperCase().padStart(8, '0');
}

/** MAXALIGN (8 bytes) of an LSN. */
export function maxAlign(lsn: Lsn): Lsn {
  return (lsn + 7n) & ~7n;
}
