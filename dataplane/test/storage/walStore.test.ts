import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { walFileName, type Lsn } from '../../src/common/lsn.js';
import { StorageError } from '../../src/storage/errors.js';
import { WalStore, type FsyncKind, type WalStoreOptions } from '../../src/storage/walStore.js';
import { SyncPolicy } from '../../src/storage/syncPolicy.js';
import { WalBuilder } from '@walkeeper/testkit/walBuilder';

const SEG = 1 << 20;
const START = 3n * BigInt(SEG);
const name = (segNo: bigint, partial = false) => walFileName(1, segNo, SEG) + (partial ? '.partial' : '');

function options(extra: Partial<WalStoreOptions> = {}): WalStoreOptions {
  return { walSegSize: SEG, pgTimeline: 1, timelineStartLsn: START, recoverFrom: START, syncMode: 'none', ...extra };
}

/** A stream of records of varied sizes covering about `bytes` bytes of WAL. */
function stream(bytes: number): WalBuilder {
  const b = new WalBuilder(START, SEG);
  let k = 0;
  while (b.position < START + BigInt(bytes)) b.addRecord([60, 200, 9000, 33, 1500, 17000][k++ % 6]);
  return b;
}

async function appendAll(store: WalStore, from: Lsn, bytes: Buffer, chunk = 10000): Promise<void> {
  for (let off = 0; off < bytes.length; off += chunk) {
    await store.append(from + BigInt(off), bytes.subarray(off, Math.min(off + chunk, bytes.length)));
  }
}

async function appendAndFlush(store: WalStore, at: Lsn, bytes: Buffer): Promise<Lsn> {
  await store.append(at, bytes);
  return store.flush();
}

async function expectStorageError(promise: Promise<unknown>, code: string, message?: RegExp): Promise<StorageError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(StorageError);
  expect((caught as StorageError).code).toBe(code);
  if (message) expect((caught as StorageError).message).toMatch(message);
  return caught as StorageError;
}

describe('WalStore', () => {
  let dir: string;
  const open: WalStore[] = [];
  const track = (s: WalStore) => {
    open.push(s);
    return s;
  };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'walkeeper-walstore-'));
  });
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('an empty timeline starts at 0 and takes its start from the first append', async () => {
    const store = track(await WalStore.open(dir, options({ timelineStartLsn: 0n, recoverFrom: 0n })));
    expect([store.writeLsn, store.flushLsn]).toEqual([0n, 0n]);
    const b = stream(5000);
    await store.append(START, b.bytes());
    expect(store.timelineStartLsn).toBe(START);
    expect(store.writeLsn).toBe(b.position);
    expect(await store.flush()).toBe(b.records[b.records.length - 1].end);
    expect(readdirSync(dir)).toEqual([name(3n, true)]);
  });

  it('appends across segments, names complete segments, and reopens at the end of the last record', async () => {
    const b = stream(2.5 * SEG);
    const store = track(await WalStore.open(dir, options()));
    await appendAll(store, START, b.bytes());
    const last = b.records[b.records.length - 1].end;
    expect(await store.flush()).toBe(last);
    await store.close();
    expect(readdirSync(dir).sort()).toEqual([name(3n), name(4n), name(5n, true)]);
    const reopened = track(await WalStore.open(dir, options()));
    expect([reopened.writeLsn, reopened.flushLsn]).toEqual([last, last]);
    expect((await reopened.read(START, 3 * SEG, last)).equals(b.bytes().subarray(0, Number(last - START)))).toBe(true);
  });

  it('refuses a non-sequential append', async () => {
    const b = stream(1000);
    const store = track(await WalStore.open(dir, options()));
    await store.append(START, b.bytes());
    await expectStorageError(store.append(START, b.bytes()), 'invalid_argument', /non-sequential append at 0\/300000, write position is 0\/3[0-9A-F]+/);
  });

  it('flushLsn is only ever a record end, even when appends cut records in half', async () => {
    const b = stream(100000);
    const bytes = b.bytes();
    const ends = new Set(b.records.map((r) => r.end).concat([START]));
    const store = track(await WalStore.open(dir, options()));
    for (let off = 0; off < bytes.length; off += 777) {
      await store.append(START + BigInt(off), bytes.subarray(off, Math.min(off + 777, bytes.length)));
      const flushed = await store.flush();
      if (!ends.has(flushed)) throw new Error(`flushLsn ${flushed} is not a record end`);
    }
  });

  it('crash before flush: bytes past the last complete record are ignored on reopen and zeroed', async () => {
    const b = stream(40000);
    const bytes = b.bytes();
    const cut = b.records[5].start + 100n; // half of record 5
    const store = track(await WalStore.open(dir, options()));
    await store.append(START, bytes.subarray(0, Number(cut - START)));
    // no flush, no close: the process "dies"
    const reopened = track(await WalStore.open(dir, options()));
    expect(reopened.writeLsn).toBe(b.records[4].end);
    const file = readFileSync(join(dir, name(3n, true)));
    expect(file.subarray(Number(b.records[4].end - START)).every((x) => x === 0)).toBe(true);
    // and the proposer can resend from there
    await reopened.append(reopened.writeLsn, bytes.subarray(Number(reopened.writeLsn - START)));
    expect(await reopened.flush()).toBe(b.records[b.records.length - 1].end);
  });

  it('a garbage or torn tail after the last record is ignored and zeroed', async () => {
    const b = stream(30000);
    const store = track(await WalStore.open(dir, options()));
    await store.append(START, b.bytes());
    const end = await store.flush();
    await store.close();
    const path = join(dir, name(3n, true));
    const file = readFileSync(path);
    const tailAt = Number(end - START);
    for (let k = 0; k < 5000; k++) file[tailAt + 3 + k] = (k * 31 + 7) & 0xff;
    writeFileSync(path, file);
    const reopened = track(await WalStore.open(dir, options()));
    expect(reopened.writeLsn).toBe(end);
    expect(reopened.recovery?.stop?.reason).toBe('invalid');
    expect(readFileSync(path).subarray(tailAt).every((x) => x === 0)).toBe(true);
  });

  it('a flipped byte inside acknowledged WAL is a hard error naming file and offset', async () => {
    const b = stream(1.5 * SEG);
    const store = track(await WalStore.open(dir, options()));
    await appendAll(store, START, b.bytes(), 65536);
    const flushed = await store.flush();
    await store.close();
    const victim = b.records.find((r) => r.start > START + BigInt(SEG) + 1000n)!;
    const path = join(dir, name(4n, true));
    const file = readFileSync(path);
    const offset = Number(victim.start - START - BigInt(SEG));
    file[offset + 30] ^= 0x04;
    writeFileSync(path, file);
    const err = await expectStorageError(WalStore.open(dir, options({ requiredEnd: flushed })), 'wal_corrupt');
    expect(err.message).toContain(`${path} at offset ${offset}`);
    expect(err.message).toMatch(/checksum mismatch/);
    expect(readFileSync(path).equals(file)).toBe(true); // nothing was "repaired"
  });

  it('a missing segment in the middle is a hard error naming it', async () => {
    const b = stream(2.5 * SEG);
    const store = track(await WalStore.open(dir, options()));
    await appendAll(store, START, b.bytes(), 65536);
    await store.flush();
    await store.close();
    rmSync(join(dir, name(4n)));
    await expectStorageError(WalStore.open(dir, options()), 'wal_missing', new RegExp(`${name(4n)} is missing`));
  });

  it('truncate removes WAL at and after the LSN, durably, and appends continue from it', async () => {
    const b = stream(2.5 * SEG);
    const store = track(await WalStore.open(dir, options()));
    await appendAll(store, START, b.bytes(), 65536);
    await store.flush();
    const at = b.records.find((r) => r.start > START + 5000n)!.start;
    await store.truncate(at);
    expect([store.writeLsn, store.flushLsn]).toEqual([at, at]);
    expect(readdirSync(dir).sort()).toEqual([name(3n, true)]);
    expect(readFileSync(join(dir, name(3n, true))).subarray(Number(at - START)).every((x) => x === 0)).toBe(true);
    expect((await store.read(START, SEG, at)).length).toBe(Number(at - START));

    // a new term writes different records from `at`
    const prefix = b.bytes().subarray(0, Number(at - START));
    const next = new WalBuilder(START, SEG);
    for (const r of b.records) if (r.end <= at) next.addRecord(r.totalLength - 24);
    const tail = next.addRecord(4321);
    const all = next.bytes();
    expect(all.subarray(0, prefix.length).equals(prefix)).toBe(true);
    await store.append(at, all.subarray(prefix.length));
    expect(await store.flush()).toBe(tail.end);
    await store.close();
    const reopened = track(await WalStore.open(dir, options()));
    expect(reopened.writeLsn).toBe(tail.end);
  });

  it('truncate at a segment boundary leaves the previous segment complete', async () => {
    const b = new WalBuilder(START, SEG);
    while (b.position < START + BigInt(SEG) + 50000n) b.addRecord(1000);
    const store = track(await WalStore.open(dir, options()));
    await appendAll(store, START, b.bytes(), 65536);
    await store.flush();
    const boundary = START + BigInt(SEG);
    // pretend the term boundary is the segment boundary (acceptable after truncate)
    await store.truncate(boundary);
    expect(readdirSync(dir).sort()).toEqual([name(3n)]);
    expect(store.writeLsn).toBe(boundary);
  });

  it('a truncation interrupted after zeroing the tail recovers to the truncation point', async () => {
    const b = stream(2.5 * SEG);
    let crash = false;
    const store = track(
      await WalStore.open(
        dir,
        options({
          fsyncHook: (kind) => {
            if (crash && kind === 'truncate') throw new Error('simulated crash');
          },
        }),
      ),
    );
    await appendAll(store, START, b.bytes(), 65536);
    await store.flush();
    const at = b.records.find((r) => r.start > START + 70000n)!.start;
    crash = true;
    await expectStorageError(store.truncate(at), 'fsync_failed');
    expect(readdirSync(dir).length).toBe(3); // later segments still there
    const reopened = track(await WalStore.open(dir, options()));
    expect(reopened.writeLsn).toBe(at);
    expect(readdirSync(dir).sort()).toEqual([name(3n, true)]);
  });

  it('truncate refuses an LSN beyond the write position', async () => {
    const store = track(await WalStore.open(dir, options()));
    await expectStorageError(store.truncate(START + 100n), 'invalid_argument', /beyond the write position/);
  });

  async function groupCommit(slowDiskMs: number) {
    const b = stream(200000);
    const bytes = b.bytes();
    const syncs: FsyncKind[] = [];
    const latencies: number[] = [];
    const hook = async (kind: FsyncKind) => {
      syncs.push(kind);
      if (slowDiskMs > 0 && kind === 'wal_flush') await new Promise((r) => setTimeout(r, slowDiskMs));
    };
    const store = track(await WalStore.open(dir, options({ syncMode: 'fsync', fsyncHook: hook, onFsync: (s) => latencies.push(s) })));
    const pieces = 50;
    const size = Math.ceil(bytes.length / pieces);
    const callers = Array.from({ length: pieces }, async (_, k) => {
      const from = k * size;
      const to = Math.min(from + size, bytes.length);
      await store.append(START + BigInt(from), bytes.subarray(from, to));
      const flushed = await store.flush();
      return { to: START + BigInt(to), flushed };
    });
    const results = await Promise.all(callers);
    for (const { to, flushed } of results) {
      // every caller's bytes are durable: flushLsn covers its last complete record
      const want = b.records.filter((r) => r.end <= to).pop()?.end ?? START;
      expect(flushed).toBeGreaterThanOrEqual(want);
    }
    const walSyncs = syncs.filter((k) => k === 'wal_flush').length;
    expect(latencies.length).toBe(walSyncs);
    const meanMs = (1000 * latencies.reduce((x, y) => x + y, 0)) / latencies.length;
    return { pieces, walSyncs, meanMs };
  }

  it('group commit: 50 concurrent append+flush callers share fdatasyncs (real fdatasync)', async () => {
    const { pieces, walSyncs, meanMs } = await groupCommit(0);
    expect(walSyncs).toBeGreaterThan(0);
    expect(walSyncs).toBeLessThan(pieces);
    console.log(`group commit, real disk: ${pieces} flush calls -> ${walSyncs} fdatasyncs, mean ${meanMs.toFixed(3)} ms`);
  });

  it('group commit: with a slow disk (5 ms fdatasync) 50 callers need only a handful of fdatasyncs', async () => {
    const { pieces, walSyncs, meanMs } = await groupCommit(5);
    expect(walSyncs).toBeGreaterThan(0);
    expect(walSyncs).toBeLessThanOrEqual(5);
    console.log(`group commit, 5 ms disk: ${pieces} flush calls -> ${walSyncs} fdatasyncs, mean ${meanMs.toFixed(3)} ms`);
  });

  it('with a sync policy, a lone store fdatasyncs on the event loop and two busy stores use the thread pool', async () => {
    const decisions: { store: string; inline: boolean; bytes: number }[] = [];
    const timed: number[] = [];
    class RecordingPolicy extends SyncPolicy {
      override syncInline(owner: object, now: number, bytes: number): boolean {
        const inline = super.syncInline(owner, now, bytes);
        decisions.push({ store: owner === first ? 'first' : 'second', inline, bytes });
        return inline;
      }
      override inlineSyncTook(ms: number, now: number): void {
        timed.push(ms);
        super.inlineSyncTook(ms, now);
      }
    }
    const policy = new RecordingPolicy({ maxInlineBytes: 120_000 });
    const b = stream(300000);
    const bytes = b.bytes();
    const first: WalStore = track(await WalStore.open(dir, options({ syncMode: 'fsync', syncPolicy: policy })));
    const cut1 = b.records[Math.floor(b.records.length / 3)].start;
    const cut2 = b.records[Math.floor((2 * b.records.length) / 3)].start;
    const part = (from: Lsn, to: Lsn) => bytes.subarray(Number(from - START), Number(to - START));
    await appendAndFlush(first, START, part(START, cut1));
    expect(decisions).toEqual([{ store: 'first', inline: true, bytes: Number(cut1 - START) }]);
    expect(timed).toHaveLength(1);

    const otherDir = mkdtempSync(join(tmpdir(), 'walkeeper-walstore-'));
    let second: WalStore | undefined;
    try {
      second = await WalStore.open(otherDir, options({ syncMode: 'fsync', syncPolicy: policy }));
      await appendAndFlush(second, START, bytes.subarray(0, 10000));
      await appendAndFlush(first, cut1, part(cut1, cut2));
      expect(decisions.slice(1).map(({ store, inline }) => ({ store, inline }))).toEqual([{ store: 'second', inline: false }, { store: 'first', inline: false }]);
      expect(timed).toHaveLength(1); // pool syncs are not timed as inline ones
      // once the other store is closed, the first has the process to itself again
      await second.close();
      expect(await appendAndFlush(first, cut2, part(cut2, b.position))).toBe(b.records[b.records.length - 1].end);
      expect(decisions.slice(3)).toEqual([{ store: 'first', inline: true, bytes: Number(b.position - cut2) }]);
      expect((await first.read(START, bytes.length, first.writeLsn)).equals(bytes)).toBe(true);
    } finally {
      await second?.close();
      rmSync(otherDir, { recursive: true, force: true });
    }
  });

  it('with a sync policy, a flush bigger than its maxInlineBytes goes to the thread pool even for a lone store', async () => {
    const decisions: boolean[] = [];
    class RecordingPolicy extends SyncPolicy {
      override syncInline(owner: object, now: number, bytes: number): boolean {
        const inline = super.syncInline(owner, now, bytes);
        decisions.push(inline);
        return inline;
      }
    }
    const b = stream(200_000);
    const store = track(await WalStore.open(dir, options({ syncMode: 'fsync', syncPolicy: new RecordingPolicy({ maxInlineBytes: 100_000 }) })));
    expect(await appendAndFlush(store, START, b.bytes())).toBe(b.records[b.records.length - 1].end);
    expect(decisions).toEqual([false]);
  });

  it('reads across a segment boundary, clamped to upTo, and refuses WAL before the start', async () => {
    const b = stream(1.5 * SEG);
    const bytes = b.bytes();
    const store = track(await WalStore.open(dir, options()));
    await appendAll(store, START, bytes, 65536);
    const from = START + BigInt(SEG) - 1000n;
    const got = await store.read(from, 5000, START + BigInt(bytes.length));
    expect(got.equals(bytes.subarray(SEG - 1000, SEG + 4000))).toBe(true);
    const clamped = await store.read(from, 5000, from + 10n);
    expect(clamped.length).toBe(10);
    expect((await store.read(store.writeLsn, 100, store.writeLsn + 100n)).length).toBe(0);
    await expectStorageError(store.read(START - 8n, 10, START + 10n), 'wal_removed', /first LSN available is 0\/300000$/);
  });

  it('a failed fdatasync fails the store for good', async () => {
    let failNext = false;
    const store = track(
      await WalStore.open(
        dir,
        options({
          fsyncHook: (kind) => {
            if (failNext && kind === 'wal_flush') throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
          },
        }),
      ),
    );
    const b = stream(20000);
    await store.append(START, b.bytes().subarray(0, 10000));
    await store.flush();
    failNext = true;
    await store.append(START + 10000n, b.bytes().subarray(10000));
    await expectStorageError(store.flush(), 'fsync_failed', /fsync of .* failed \(EIO/);
    failNext = false;
    await expectStorageError(store.flush(), 'fsync_failed');
    await expectStorageError(store.append(store.writeLsn, Buffer.alloc(8)), 'fsync_failed');
    await expectStorageError(store.read(START, 10, START + 10n), 'fsync_failed');
    await expectStorageError(store.truncate(START), 'fsync_failed');
    expect(store.failed?.code).toBe('fsync_failed');
  });

  it('removes a stale temp segment left by a crash during segment creation', async () => {
    writeFileSync(join(dir, 'waltmp'), Buffer.alloc(100));
    const store = track(await WalStore.open(dir, options()));
    expect(existsSync(join(dir, 'waltmp'))).toBe(false);
    expect(store.writeLsn).toBe(START);
  });
});
