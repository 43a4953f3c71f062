// Payloads of CopyData messages in physical streaming replication: XLogData and keepalives
// from the sender, status updates and hot-standby feedback from the receiver.
// Timestamps are PostgreSQL's: microseconds since 2000-01-01 00:00:00 UTC, as bigint.
import type { Lsn } from '../common/lsn.js';
import { formatLsn } from '../common/lsn.js';
import { ProtocolError } from './errors.js';

/** 2000-01-01T00:00:00Z in microseconds since the Unix epoch */
const PG_EPOCH_UNIX_MICROS = 946_684_800_000_000n;

/** Now, in PostgreSQL epoch microseconds. */
export function pgNowMicros(): bigint {
  return unixMillisToPgMicros(Date.now());
}

export function unixMillisToPgMicros(ms: number): bigint {
  return BigInt(Math.trunc(ms)) * 1000n - PG_EPOCH_UNIX_MICROS;
}

export function pgMicrosToDate(micros: bigint): Date {
  return new Date(Number((micros + PG_EPOCH_UNIX_MICROS) / 1000n));
}

export const XLOG_DATA_HEADER_SIZE = 25;
export const PRIMARY_KEEPALIVE_SIZE = 18;
export const STANDBY_STATUS_UPDATE_SIZE = 34;
export const HOT_STANDBY_FEEDBACK_SIZE = 25;

export interface XLogData {
  tag: 'xlog_data';
  dataStart: Lsn;
  walEnd: Lsn;
  sendTime: bigint;
  /** a view into the received buffer, not a copy */
  data: Uint8Array;
}

export interface PrimaryKeepalive {
  tag: 'keepalive';
  walEnd: Lsn;
  sendTime: bigint;
  replyRequested: boolean;
}

export interface StandbyStatusUpdate {
  tag: 'status_update';
  writeLsn: Lsn;
  flushLsn: Lsn;
  applyLsn: Lsn;
  sendTime: bigint;
  replyRequested: boolean;
}

/** Hot-standby feedback as PostgreSQL sends it: 32-bit xids with their epochs. */
export interface HotStandbyFeedbackMessage {
  tag: 'hs_feedback';
  sendTime: bigint;
  xmin: number;
  xminEpoch: number;
  catalogXmin: number;
  catalogXminEpoch: number;
}

export type SenderMessage = XLogData | PrimaryKeepalive;
export type ReceiverMessage = StandbyStatusUpdate | HotStandbyFeedbackMessage;

/** The header of an XLogData message; send it followed by the WAL bytes to avoid a copy. */
export function encodeXLogDataHeader(dataStart: Lsn, walEnd: Lsn, sendTime: bigint): Buffer {
  const b = Buffer.allocUnsafe(XLOG_DATA_HEADER_SIZE);
  b[0] = 0x77; // 'w'
  b.writeBigUInt64BE(dataStart, 1);
  b.writeBigUInt64BE(walEnd, 9);
  b.writeBigInt64BE(sendTime, 17);
  return b;
}

export function encodeXLogData(dataStart: Lsn, walEnd: Lsn, sendTime: bigint, data: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(XLOG_DATA_HEADER_SIZE + data.length);
  encodeXLogDataHeader(dataStart, walEnd, sendTime).copy(b, 0);
  b.set(data, XLOG_DATA_HEADER_SIZE);
  return b;
}

export function encodePrimaryKeepalive(walEnd: Lsn, sendTime: bigint, replyRequested: boolean): Buffer {
  const b = Buffer.allocUnsafe(PRIMARY_KEEPALIVE_SIZE);
  b[0] = 0x6b; // 'k'
  b.writeBigUInt64BE(walEnd, 1);
  b.writeBigInt64BE(sendTime, 9);
  b[17] = replyRequested ? 1 : 0;
  return b;
}

export function encodeStandbyStatusUpdate(m: Omit<StandbyStatusUpdate, 'tag'>): Buffer {
  const b = Buffer.allocUnsafe(STANDBY_STATUS_UPDATE_SIZE);
  b[0] = 0x72; // 'r'
  b.writeBigUInt64BE(m.writeLsn, 1);
  b.writeBigUInt64BE(m.flushLsn, 9);
  b.writeBigUInt64BE(m.applyLsn, 17);
  b.writeBigInt64BE(m.sendTime, 25);
  b[33] = m.replyRequested ? 1 : 0;
  return b;
}

export function encodeHotStandbyFeedback(m: Omit<HotStandbyFeedbackMessage, 'tag'>): Buffer {
  const b = Buffer.allocUnsafe(HOT_STANDBY_FEEDBACK_SIZE);
  b[0] = 0x68; // 'h'
  b.writeBigInt64BE(m.sendTime, 1);
  b.writeUInt32BE(m.xmin, 9);
  b.writeUInt32BE(m.xminEpoch, 13);
  b.writeUInt32BE(m.catalogXmin, 17);
  b.writeUInt32BE(m.catalogXminEpoch, 21);
  return b;
}

function view(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

function tagName(b: Buffer): string {
  if (b.length === 0) return 'empty message';
  const t = b[0];
  return t >= 0x20 && t < 0x7f ? `'${String.fromCharCode(t)}'` : `0x${t.toString(16).padStart(2, '0')}`;
}

/** Any non-zero byte is true, as PostgreSQL reads it. */
function flag(b: Buffer, offset: number): boolean {
  return b[offset] !== 0;
}

/** Decodes what a WAL sender sends inside CopyData ('w' or 'k'). */
export function decodeSenderMessage(buf: Uint8Array): SenderMessage {
  const b = view(buf);
  switch (b[0]) {
    case 0x77: {
      if (b.length < XLOG_DATA_HEADER_SIZE) {
        throw new ProtocolError(`truncated XLogData: ${b.length} bytes, header needs ${XLOG_DATA_HEADER_SIZE}`);
      }
      const dataStart = b.readBigUInt64BE(1);
      const data = b.subarray(XLOG_DATA_HEADER_SIZE);
      if (dataStart + BigInt(data.length) > 0xffffffffffffffffn) {
        throw new ProtocolError(`invalid XLogData: ${data.length} bytes at ${formatLsn(dataStart)} overflow the LSN space`);
      }
      return { tag: 'xlog_data', dataStart, walEnd: b.readBigUInt64BE(9), sendTime: b.readBigInt64BE(17), data };
    }
    case 0x6b:
      if (b.length !== PRIMARY_KEEPALIVE_SIZE) {
        throw new ProtocolError(`invalid PrimaryKeepalive length ${b.length} (expected ${PRIMARY_KEEPALIVE_SIZE})`);
      }
      return {
        tag: 'keepalive',
        walEnd: b.readBigUInt64BE(1),
        sendTime: b.readBigInt64BE(9),
        replyRequested: flag(b, 17),
      };
    default:
      throw new ProtocolError(`unexpected replication message from sender: ${tagName(b)}`);
  }
}

/** Decodes what a replication client sends inside CopyData ('r' or 'h'). */
export function decodeReceiverMessage(buf: Uint8Array): ReceiverMessage {
  const b = view(buf);
  switch (b[0]) {
    case 0x72:
      if (b.length !== STANDBY_STATUS_UPDATE_SIZE) {
        throw new ProtocolError(`invalid StandbyStatusUpdate length ${b.length} (expected ${STANDBY_STATUS_UPDATE_SIZE})`);
      }
      return {
        tag: 'status_update',
        writeLsn: b.readBigUInt64BE(1),
        flushLsn: b.readBigUInt64BE(9),
        applyLsn: b.readBigUInt64BE(17),
        sendTime: b.readBigInt64BE(25),
        replyRequested: flag(b, 33),
      };
    case 0x68:
      if (b.length !== HOT_STANDBY_FEEDBACK_SIZE) {
        throw new ProtocolError(`invalid HotStandbyFeedback length ${b.length} (expected ${HOT_STANDBY_FEEDBACK_SIZE})`);
      }
      return {
        tag: 'hs_feedback',
        sendTime: b.readBigInt64BE(1),
        xmin: b.readUInt32BE(9),
        xminEpoch: b.readUInt32BE(13),
        catalogXmin: b.readUInt32BE(17),
        catalogXminEpoch: b.readUInt32BE(21),
      };
    default:
      throw new ProtocolError(`unexpected replication message from client: ${tagName(b)}`);
  }
}

/** A 64-bit full transaction id from PostgreSQL's (xid, epoch) pair; 0 when xid is invalid. */
export function fullXid(xid: number, epoch: number): bigint {
  if (xid === 0) return 0n;
  return (BigInt(epoch) << 32n) | BigInt(xid);
}
