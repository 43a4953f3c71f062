// Streaming-replication CopyData payloads: layouts as PostgreSQL writes them, strict lengths.
import { ProtocolError } from '../../src/protocol/errors.js';
import {
  decodeReceiverMessage,
  decodeSenderMessage,
  encodeHotStandbyFeedback,
  encodePrimaryKeepalive,
  encodeStandbyStatusUpdate,
  encodeXLogData,
  encodeXLogDataHeader,
  fullXid,
  pgMicrosToDate,
  pgNowMicros,
  unixMillisToPgMicros,
} from '../../src/protocol/replicationMessages.js';

describe('sender messages', () => {
  test('XLogData: w, start, end, time, then the WAL bytes', () => {
    const wire = encodeXLogData(0x12000000n, 0x1259ac68n, 1234n, Buffer.from([9, 8, 7]));
    expect(wire.toString('hex')).toBe('77' + '0000000012000000' + '000000001259ac68' + '00000000000004d2' + '090807');
    expect(encodeXLogDataHeader(0x12000000n, 0x1259ac68n, 1234n)).toEqual(wire.subarray(0, 25));
    const m = decodeSenderMessage(wire);
    expect(m).toEqual({ tag: 'xlog_data', dataStart: 0x12000000n, walEnd: 0x1259ac68n, sendTime: 1234n, data: Buffer.from([9, 8, 7]) });
  });

  test('keepalive: k, end, time, replyRequested', () => {
    const wire = encodePrimaryKeepalive(0x100n, -5n, true);
    expect(wire.length).toBe(18);
    expect(decodeSenderMessage(wire)).toEqual({ tag: 'keepalive', walEnd: 0x100n, sendTime: -5n, replyRequested: true });
  });

  test('truncated XLogData and a keepalive of the wrong length are refused', () => {
    expect(() => decodeSenderMessage(Buffer.from('w0000'))).toThrow(/truncated XLogData/);
    expect(() => decodeSenderMessage(Buffer.concat([encodePrimaryKeepalive(1n, 1n, false), Buffer.from([0])]))).toThrow(/PrimaryKeepalive length 19/);
    expect(() => decodeSenderMessage(Buffer.from('r'))).toThrow(ProtocolError);
  });
});

describe('receiver messages', () => {
  test('StandbyStatusUpdate as pg_receivewal sends it right after CopyBothResponse (34 bytes)', () => {
    const wire = encodeStandbyStatusUpdate({ writeLsn: 0x12000000n, flushLsn: 0x12000000n, applyLsn: 0n, sendTime: 777n, replyRequested: false });
    expect(wire.length).toBe(34);
    expect(decodeReceiverMessage(wire)).toEqual({ tag: 'status_update', writeLsn: 0x12000000n, flushLsn: 0x12000000n, applyLsn: 0n, sendTime: 777n, replyRequested: false });
  });

  test('HotStandbyFeedback as the walreceiver sends it (25 bytes, xids with epochs)', () => {
    const wire = encodeHotStandbyFeedback({ sendTime: 1n, xmin: 0, xminEpoch: 0, catalogXmin: 0, catalogXminEpoch: 0 });
    expect(wire.length).toBe(25);
    const full = encodeHotStandbyFeedback({ sendTime: 2n, xmin: 0xfffffff0, xminEpoch: 3, catalogXmin: 17, catalogXminEpoch: 4 });
    expect(decodeReceiverMessage(full)).toEqual({ tag: 'hs_feedback', sendTime: 2n, xmin: 0xfffffff0, xminEpoch: 3, catalogXmin: 17, catalogXminEpoch: 4 });
    expect(fullXid(0xfffffff0, 3)).toBe(0x3fffffff0n);
    expect(fullXid(0, 3)).toBe(0n);
  });

  test('wrong lengths and unknown tags are refused with ProtocolError', () => {
    const r = encodeStandbyStatusUpdate({ writeLsn: 1n, flushLsn: 1n, applyLsn: 1n, sendTime: 1n, replyRequested: false });
    expect(() => decodeReceiverMessage(r.subarray(0, 33))).toThrow(/StandbyStatusUpdate length 33 \(expected 34\)/);
    expect(() => decodeReceiverMessage(Buffer.concat([r, Buffer.from([0])]))).toThrow(ProtocolError);
    const h = encodeHotStandbyFeedback({ sendTime: 1n, xmin: 0, xminEpoch: 0, catalogXmin: 0, catalogXminEpoch: 0 });
    expect(() => decodeReceiverMessage(h.subarray(0, 17))).toThrow(/HotStandbyFeedback length 17 \(expected 25\)/);
    expect(() => decodeReceiverMessage(Buffer.from('z123456789'))).toThrow(/unexpected replication message from client: 'z'/);
    expect(() => decodeReceiverMessage(Buffer.alloc(0))).toThrow(ProtocolError);
  });
});

describe('PostgreSQL timestamps', () => {
  test('2000-01-01 is zero and now is about a quarter century of microseconds later', () => {
    expect(unixMillisToPgMicros(Date.UTC(2000, 0, 1))).toBe(0n);
    expect(pgMicrosToDate(0n).toISOString()).toBe('2000-01-01T00:00:00.000Z');
    const now = pgNowMicros();
    expect(Math.abs(pgMicrosToDate(now).getTime() - Date.now())).toBeLessThan(1000);
  });
});
