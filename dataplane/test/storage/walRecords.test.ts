import { WalRecordDecoder } from '../../src/storage/walRecords.js';
import { lastEndAtOrBefore, WalBuilder, type BuiltRecord } from '@walkeeper/testkit/walBuilder';

const SEG = 1 << 20; // 1 MiB segments keep the synthetic streams small
const START = 5n * BigInt(SEG);

function mixedStream(): WalBuilder {
  const b = new WalBuilder(START, SEG);
  // small records, a header split across a page (size chosen to land near a boundary),
  // records spanning several pages, an exactly page-filling one, and a segment crossing
  const sizes = [40, 100, 8100, 3, 0, 20000, 57, 8136, 1, 70000, 500];
  for (const s of sizes) b.addRecord(s);
  while (b.position < START + BigInt(SEG) - 100n) b.addRecord(777);
  b.addRecord(3000); // spans into the next segment
  for (let k = 0; k < 20; k++) b.addRecord(123 + k);
  return b;
}

function decodeAll(bytes: Buffer, start: bigint, validate: boolean, chunk: (i: number) => number) {
  const starts: bigint[] = [];
  const d = new WalRecordDecoder({ startLsn: start, walSegSize: SEG, validate, onRecord: (s) => starts.push(s) });
  const ends: [bigint, bigint][] = []; // (fed up to, lastRecordEnd)
  let off = 0;
  let i = 0;
  while (off < bytes.length) {
    const n = Math.min(chunk(i++), bytes.length - off);
    d.feed(bytes.subarray(off, off + n));
    off += n;
    ends.push([start + BigInt(off), d.lastRecordEnd]);
  }
  return { d, starts, ends };
}

function mismatches(ends: [bigint, bigint][], records: BuiltRecord[]): string[] {
  const out: string[] = [];
  for (const [fed, end] of ends) {
    const want = lastEndAtOrBefore(records, fed, START);
    if (end !== want && out.length < 5) out.push(`after ${fed}: lastRecordEnd ${end}, expected ${want}`);
  }
  return out;
}

describe('WalRecordDecoder', () => {
  it('finds every record start in a synthetic stream, in validate mode', () => {
    const b = mixedStream();
    const { d, starts } = decodeAll(b.bytes(), START, true, () => 1 << 16);
    expect(d.stopped).toBeNull();
    expect(starts).toEqual(b.records.map((r) => r.start));
    expect(d.lastRecordEnd).toBe(b.records[b.records.length - 1].end);
  });

  it('in ingest mode reports the end of the last complete record after every chunk, for any chunking', () => {
    const b = mixedStream();
    const bytes = b.bytes();
    for (const chunking of [() => 1, () => 7, () => 8192, (i: number) => ((i * 7919) % 5000) + 1]) {
      if (chunking(0) === 1 && bytes.length > 300000) {
        // byte-at-a-time over the first 40 KB only (it is slow on the whole stream)
        const head = bytes.subarray(0, 40000);
        const { ends } = decodeAll(head, START, false, chunking);
        expect(mismatches(ends, b.records)).toEqual([]);
        continue;
      }
      const { d, ends, starts } = decodeAll(bytes, START, false, chunking);
      expect(d.resyncs).toBe(0);
      expect(starts).toEqual(b.records.map((r) => r.start));
      expect(mismatches(ends, b.records)).toEqual([]);
    }
  });

  it('treats XLOG_SWITCH as ending at the next segment boundary once its padding is fed', () => {
    const b = new WalBuilder(START, SEG);
    b.addRecord(100);
    const sw = b.addSwitch();
    const after = b.addRecord(50);
    const bytes = b.bytes();
    const swEndOffset = Number(sw.end - START);
    const ingest = new WalRecordDecoder({ startLsn: START, walSegSize: SEG });
    ingest.feed(bytes.subarray(0, swEndOffset + 16));
    expect(ingest.lastRecordEnd).toBe(sw.end); // padding not all here yet
    ingest.feed(bytes.subarray(swEndOffset + 16, SEG));
    expect(ingest.lastRecordEnd).toBe(START + BigInt(SEG));
    ingest.feed(bytes.subarray(SEG));
    expect(ingest.lastRecordEnd).toBe(after.end);

    const recovery = new WalRecordDecoder({ startLsn: START, walSegSize: SEG, validate: true });
    recovery.feed(bytes.subarray(0, swEndOffset));
    expect(recovery.lastRecordEnd).toBe(START + BigInt(SEG));
  });

  it('skips a continuation when started at a segment start in the middle of a record', () => {
    const b = new WalBuilder(START, SEG);
    while (b.position < START + BigInt(SEG) - 5000n) b.addRecord(900);
    const spanning = b.addRecord(30000);
    const next = b.addRecord(10);
    const bytes = b.bytes().subarray(SEG);
    const segStart = START + BigInt(SEG);
    for (const validate of [false, true]) {
      const starts: bigint[] = [];
      const d = new WalRecordDecoder({ startLsn: segStart, walSegSize: SEG, validate, onRecord: (s) => starts.push(s) });
      d.feed(bytes);
      expect(spanning.start).toBeLessThan(segStart);
      expect(starts).toEqual([next.start]);
      expect(d.lastRecordEnd).toBe(next.end);
    }
  });

  it('stops cleanly at zeros and reports the record that follows the last valid one', () => {
    const b = new WalBuilder(START, SEG);
    b.addRecord(100);
    const last = b.addRecord(200);
    const bytes = Buffer.concat([b.bytes(), Buffer.alloc(20000)]);
    const d = new WalRecordDecoder({ startLsn: START, walSegSize: SEG, validate: true });
    d.feed(bytes);
    expect(d.stopped?.reason).toBe('zero');
    expect(d.lastRecordEnd).toBe(last.end);
  });

  it('stops at a record whose bytes were flipped (checksum mismatch), naming its LSN', () => {
    const b = new WalBuilder(START, SEG);
    b.addRecord(100);
    const good = b.addRecord(200);
    const bad = b.addRecord(300);
    b.addRecord(10);
    const bytes = b.bytes();
    bytes[Number(bad.start - START) + 100] ^= 0x01;
    const d = new WalRecordDecoder({ startLsn: START, walSegSize: SEG, validate: true });
    d.feed(bytes);
    expect(d.stopped).toMatchObject({ reason: 'invalid', lsn: bad.start });
    expect(d.stopped?.detail).toMatch(/checksum mismatch/);
    expect(d.lastRecordEnd).toBe(good.end);
  });

  it('stops at a page whose xlp_pageaddr is wrong (stale page from another place)', () => {
    const b = new WalBuilder(START, SEG);
    const first = b.addRecord(12000); // spans into page 2
    b.addRecord(10);
    const bytes = b.bytes();
    bytes.writeBigUInt64LE(START + 999n * 8192n, 8192 + 8);
    const d = new WalRecordDecoder({ startLsn: START, walSegSize: SEG, validate: true });
    d.feed(bytes);
    expect(d.stopped).toMatchObject({ reason: 'invalid', lsn: START + 8192n });
    expect(d.stopped?.detail).toMatch(/xlp_pageaddr/);
    expect(d.lastRecordEnd).toBe(START);
    expect(first.end).toBeGreaterThan(START + 8192n);
  });

  it('reports an incomplete record when its continuation page was never written', () => {
    const b = new WalBuilder(START, SEG);
    const good = b.addRecord(100);
    b.addRecord(20000);
    const bytes = b.bytes();
    bytes.fill(0, 8192); // pages after the first are zeros
    const d = new WalRecordDecoder({ startLsn: START, walSegSize: SEG, validate: true });
    d.feed(bytes);
    expect(d.stopped?.reason).toBe('incomplete');
    expect(d.lastRecordEnd).toBe(good.end);
  });

  it('ingest re-synchronises on the next page header after starting at a non-boundary', () => {
    const b = new WalBuilder(START, SEG);
    for (let k = 0; k < 100; k++) b.addRecord(250 + k);
    const bytes = b.bytes();
    const bogusStart = b.records[3].start + 8n; // inside a record
    const d = new WalRecordDecoder({ startLsn: bogusStart, walSegSize: SEG });
    d.feed(bytes.subarray(Number(bogusStart - START)));
    expect(d.lastRecordEnd).toBe(b.records[b.records.length - 1].end);
  });

  it('clone() lets a caller feed speculatively without moving the original', () => {
    const b = new WalBuilder(START, SEG);
    const r = b.addRecord(100);
    const d = new WalRecordDecoder({ startLsn: START, walSegSize: SEG });
    const copy = d.clone();
    copy.feed(b.bytes());
    expect(copy.lastRecordEnd).toBe(r.end);
    expect(d.lastRecordEnd).toBe(START);
    expect(d.position).toBe(START);
  });
});
