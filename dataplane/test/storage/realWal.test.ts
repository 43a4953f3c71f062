// Cross-checks the WAL decoder and WalStore against real PostgreSQL 15 WAL and pg_waldump.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatLsn, parseLsn, parseWalFileName, walFileName, type Lsn } from '../../src/common/lsn.js';
import { maxAlign, WalRecordDecoder } from '../../src/storage/walRecords.js';
import { WalStore } from '../../src/storage/walStore.js';
import { PgCluster, postgresAvailable } from './pgCluster.js';

const SEG = 16 * 1024 * 1024;
const maybe = postgresAvailable() ? describe : describe.skip;

interface DumpRecord {
  start: Lsn;
  totalLength: number;
  rmgr: string;
  desc: string;
}

function parseDump(stdout: string): DumpRecord[] {
  const records: DumpRecord[] = [];
  const re = /^rmgr: (\S+)\s+len \(rec\/tot\):\s+\d+\/\s*(\d+), tx:\s+\d+, lsn: ([0-9A-F]+\/[0-9A-F]+), prev [0-9A-F/]+, desc: (\S*)/;
  for (const line of stdout.split('\n')) {
    const m = re.exec(line);
    if (m) records.push({ rmgr: m[1], totalLength: Number(m[2]), start: parseLsn(m[3]), desc: m[4] });
  }
  return records;
}

maybe('real PostgreSQL 15 WAL', () => {
  let pg: PgCluster;
  let wal: Buffer; // every segment from the first one, concatenated
  let walStart: Lsn;
  let dump: DumpRecord[];
  let dumpEnd: Lsn; // where pg_waldump found no further record
  let work: string;

  beforeAll(async () => {
    pg = new PgCluster();
    work = mkdtempSync(join(tmpdir(), 'walkeeper-realwal-'));
    await pg.init();
    await pg.start();
    await pg.sql('create table t(id int, v text)');
    await pg.sql("insert into t select g, 'x' || g from generate_series(1, 2000) g");
    await pg.sql('checkpoint');
    await pg.sql("update t set v = v || 'z' where id % 40 = 0"); // full-page images: records spanning pages
    await pg.sql("insert into t select 0, string_agg(md5(g::text), '') from generate_series(1, 640) g"); // ~20 KB value
    await pg.sql("select pg_logical_emit_message(false, 'walkeeper', repeat('abcdefghij', 2000))"); // one 20 KB record
    await pg.sql('select pg_switch_wal()');
    await pg.sql("insert into t select g, 'after switch' from generate_series(1, 100) g");
    // ~22 MB of 20 KB records: crosses a segment boundary in the middle of a record
    await pg.sql("select count(pg_logical_emit_message(false, 'p', repeat('q', 20000))) from generate_series(1, 1100)");
    await pg.stop();
    const names = pg.segmentNames();
    walStart = parseWalFileName(names[0])!.segNo * BigInt(SEG);
    wal = Buffer.concat(names.map((n) => readFileSync(join(pg.walDir, n))));
    const out = await pg.waldump(names[0], names[names.length - 1]);
    dump = parseDump(out.stdout);
    const m = /(?:invalid record length|contrecord is requested by|invalid magic number|unexpected pageaddr)[^\n]*?at ([0-9A-F]+\/[0-9A-F]+)/.exec(
      out.stderr,
    );
    if (!m) throw new Error(`cannot find where pg_waldump stopped: ${out.stderr}`);
    dumpEnd = parseLsn(m[1]);
  }, 180000);

  afterAll(async () => {
    await pg?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the fixture has what the test needs: a switch, records spanning pages and a segment', () => {
    expect(dump.length).toBeGreaterThan(3000);
    expect(dump.some((r) => r.rmgr === 'XLOG' && r.desc === 'SWITCH')).toBe(true);
    expect(dump.some((r) => r.totalLength > 8192)).toBe(true);
    const crossesSegment = dump.some((r) => r.start / BigInt(SEG) !== (r.start + BigInt(r.totalLength)) / BigInt(SEG));
    expect(crossesSegment).toBe(true);
  });

  it('validate mode finds exactly the record starts pg_waldump prints, and the same end', () => {
    const starts: Lsn[] = [];
    const d = new WalRecordDecoder({ startLsn: walStart, walSegSize: SEG, validate: true, onRecord: (s) => starts.push(s) });
    d.feed(wal);
    expect(starts.length).toBe(dump.length);
    expect(starts.map(formatLsn)).toEqual(dump.map((r) => formatLsn(r.start)));
    expect(d.stopped?.reason).toBe('zero');
    expect(formatLsn(maxAlign(d.lastRecordEnd))).toBe(formatLsn(dumpEnd));
  });

  it('ingest mode, fed in uneven chunks, finds the same records', () => {
    const starts: Lsn[] = [];
    const d = new WalRecordDecoder({ startLsn: walStart, walSegSize: SEG, onRecord: (s) => starts.push(s) });
    const valid = Number(dumpEnd - walStart); // past this, PostgreSQL's files hold zeros, not a stream
    let off = 0;
    for (let i = 0; off < valid; i++) {
      const n = Math.min(((i * 104729) % 70000) + 1, valid - off);
      d.feed(wal.subarray(off, off + n));
      off += n;
    }
    expect(d.resyncs).toBe(0);
    expect(starts.map(formatLsn)).toEqual(dump.map((r) => formatLsn(r.start)));
  });

  it('WalStore.open on PostgreSQL segments finds the end of WAL pg_waldump finds', async () => {
    const dir = mkdtempSync(join(work, 'open-'));
    const names = pg.segmentNames();
    names.forEach((n, k) => writeFileSync(join(dir, k === names.length - 1 ? `${n}.partial` : n), readFileSync(join(pg.walDir, n))));
    const store = await WalStore.open(dir, { walSegSize: SEG, pgTimeline: 1, timelineStartLsn: walStart, recoverFrom: walStart, syncMode: 'none' });
    expect(formatLsn(maxAlign(store.writeLsn))).toBe(formatLsn(dumpEnd));
    expect(store.flushLsn).toBe(store.writeLsn);
    await store.close();
  });

  it('WalStore ingests the real stream: flushLsn is always a record end, bytes read back identical', async () => {
    const dir = mkdtempSync(join(work, 'ingest-'));
    const recordEnds = new Set<Lsn>([walStart]);
    const probe = new WalRecordDecoder({ startLsn: walStart, walSegSize: SEG, validate: true, onRecord: (_s, _l, e) => recordEnds.add(e).add(maxAlign(e)) });
    probe.feed(wal);
    const end = probe.lastRecordEnd;
    for (const r of dump) if (r.rmgr === 'XLOG' && r.desc === 'SWITCH') recordEnds.add(((r.start / BigInt(SEG)) + 1n) * BigInt(SEG));
    const upTo = Number(end - walStart);

    const store = await WalStore.open(dir, { walSegSize: SEG, pgTimeline: 1, timelineStartLsn: walStart, recoverFrom: walStart, syncMode: 'none' });
    let off = 0;
    const notAtRecordEnd: string[] = [];
    for (let i = 0; off < upTo; i++) {
      const n = Math.min(((i * 7919) % 300000) + 1, upTo - off);
      await store.append(walStart + BigInt(off), wal.subarray(off, off + n));
      off += n;
      const flushed = await store.flush();
      if (!recordEnds.has(flushed)) notAtRecordEnd.push(formatLsn(flushed));
      expect(flushed).toBeLessThanOrEqual(store.writeLsn);
    }
    expect(notAtRecordEnd).toEqual([]);
    expect(store.flushLsn).toBe(end);
    const back = await store.read(walStart, upTo, end);
    expect(back.equals(wal.subarray(0, upTo))).toBe(true);
    await store.close();

    const reopened = await WalStore.open(dir, { walSegSize: SEG, pgTimeline: 1, timelineStartLsn: walStart, recoverFrom: walStart, syncMode: 'none' });
    expect(reopened.writeLsn).toBe(end);
    // complete segments are byte-identical to PostgreSQL's
    const firstSeg = walStart / BigInt(SEG);
    const lastFull = end / BigInt(SEG);
    for (let seg = firstSeg; seg < lastFull; seg++) {
      const ours = readFileSync(join(dir, walFileName(1, seg, SEG)));
      const theirs = wal.subarray(Number((seg - firstSeg) * BigInt(SEG)), Number((seg - firstSeg + 1n) * BigInt(SEG)));
      expect(ours.equals(theirs)).toBe(true);
    }
    await reopened.close();
  });
});
