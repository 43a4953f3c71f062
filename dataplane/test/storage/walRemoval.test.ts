// Removal of old WAL segments and recycling (WalStore.removeSegmentsBelow, segmentPool.ts):
// the first local LSN is persisted before files go, start-up reads only what is retained,
// reads below it are refused naming where WAL starts, recycled files are reused and their
// stale bytes never pass for WAL, and a kill -9 at any point leaves a store that opens.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { walFileName, type Lsn } from '../../src/common/lsn.js';
import { readControlFile } from '../../src/storage/controlFile.js';
import { StorageError } from '../../src/storage/errors.js';
import type { WalStore } from '../../src/storage/walStore.js';
import { WalBuilder } from '@walkeeper/testkit/walBuilder';
import { createTimelineDir, openFromControl, persistWalStart, saveStream, SEG, START, walStream } from './removalFixture.js';

const segNo = (lsn: Lsn) => lsn / BigInt(SEG);
const name = (n: bigint) => walFileName(1, n, SEG);
const segFiles = (dir: string) => readdirSync(dir).filter((f) => /^[0-9A-F]{24}(\.partial)?$/.test(f)).sort();

describe('WAL removal', () => {
  let root: string;
  let dir: string;
  const stores: WalStore[] = [];
  const track = (s: WalStore) => (stores.push(s), s);
  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), 'walkeeper-removal-'));
    dir = join(root, 'timeline');
    mkdirSync(dir);
    await createTimelineDir(dir);
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  });

  async function written(bytes: number, extra = {}): Promise<{ store: WalStore; wal: Buffer }> {
    const wal = walStream(bytes);
    const store = track(await openFromControl(dir, extra));
    await store.append(START, wal);
    await store.flush();
    return { store, wal };
  }

  it('persists the new first LSN before any segment goes, then removes whole segments below it', async () => {
    const { store } = await written(5 * SEG + 1000);
    const seen: string[][] = [];
    const removed = await store.removeSegmentsBelow(START + 2n * BigInt(SEG) + 777n, async (lsn) => {
      seen.push(segFiles(dir));
      await persistWalStart(dir, lsn);
    });
    expect(removed).toBe(2);
    expect(seen).toEqual([[name(3n), name(4n), name(5n), name(6n), name(7n), name(8n) + '.partial']]);
    expect(segFiles(dir)).toEqual([name(5n), name(6n), name(7n), name(8n) + '.partial']);
    expect((await readControlFile(dir))!.walStartLsn).toBe(START + 2n * BigInt(SEG));
    expect(store.localStartLsn).toBe(START + 2n * BigInt(SEG));
  });

  it('if persisting the first LSN fails, nothing is removed', async () => {
    const { store } = await written(3 * SEG);
    await expect(store.removeSegmentsBelow(START + 2n * BigInt(SEG), async () => {
      throw new StorageError('disk_full', 'no space left on device');
    })).rejects.toThrow(/no space left/);
    expect(segFiles(dir)).toHaveLength(4);
    expect(store.localStartLsn).toBe(START);
  });

  it('never removes the segment being written, whatever LSN it is asked for', async () => {
    const { store } = await written(2 * SEG + 500);
    await store.removeSegmentsBelow(START + 10n * BigInt(SEG), (lsn) => persistWalStart(dir, lsn));
    expect(segFiles(dir)).toEqual([name(5n) + '.partial']);
    expect(store.localStartLsn).toBe(START + 2n * BigInt(SEG));
  });

  it('a read below the first LSN held is wal_removed naming the first LSN available', async () => {
    const { store, wal } = await written(4 * SEG);
    await store.removeSegmentsBelow(START + 2n * BigInt(SEG), (lsn) => persistWalStart(dir, lsn));
    await expect(store.read(START + 100n, 1000, store.writeLsn)).rejects.toThrow(/WAL at 0\/300064 is not available .*it was removed; the first LSN available is 0\/500000/);
    const kept = await store.read(START + 2n * BigInt(SEG), 5000, store.writeLsn);
    expect(kept.equals(wal.subarray(2 * SEG, 2 * SEG + 5000))).toBe(true);
  });

  it('start-up begins at the first retained segment: removed history is never read', async () => {
    const { store, wal } = await written(6 * SEG + 3000);
    const end = store.flushLsn;
    await store.removeSegmentsBelow(START + 4n * BigInt(SEG), (lsn) => persistWalStart(dir, lsn));
    await store.close();
    const reopened = track(await openFromControl(dir));
    expect(reopened.flushLsn).toBe(end);
    expect(reopened.localStartLsn).toBe(START + 4n * BigInt(SEG));
    // Only the records of the retained segments were decoded (a continuation at the start is skipped).
    const retained = recordEnds(wal.length).filter((e) => e > 4 * SEG && START + BigInt(e) <= end).length;
    expect(reopened.recovery!.records).toBeGreaterThanOrEqual(retained - 1);
    expect(reopened.recovery!.records).toBeLessThanOrEqual(retained);
  });

  it('segments left below the persisted first LSN by a crash are removed again at start-up', async () => {
    const { store } = await written(4 * SEG + 10);
    await store.close();
    await persistWalStart(dir, START + 3n * BigInt(SEG)); // the crash came after the control file, before any unlink
    const reopened = track(await openFromControl(dir));
    expect(segFiles(dir)).toEqual([name(6n), name(7n) + '.partial']);
    expect(reopened.localStartLsn).toBe(START + 3n * BigInt(SEG));
  });

  it('everything removed up to a segment boundary with nothing after it still opens, at that boundary', async () => {
    const wal = walStream(2 * SEG);
    const store = track(await openFromControl(dir));
    const exact = wal.subarray(0, 2 * SEG);
    await store.append(START, exact);
    await store.flush();
    await store.close();
    await persistWalStart(dir, START + 2n * BigInt(SEG));
    const reopened = track(await openFromControl(dir, { requiredEnd: START + 2n * BigInt(SEG) }));
    expect(reopened.writeLsn).toBe(START + 2n * BigInt(SEG));
    expect(segFiles(dir)).toEqual([]);
  });

  describe('recycling', () => {
    const recycle = { recycle: { maxRecycled: 2, prepareAhead: true } };

    it('removed segments become future segments: no zero-fill once the pool is warm', async () => {
      const wal = walStream(12 * SEG);
      const store = track(await openFromControl(dir, recycle));
      let pos = START;
      for (let off = 0; off < 12 * SEG; off += SEG / 4) {
        const chunk = wal.subarray(off, Math.min(off + SEG / 4, wal.length));
        await store.append(pos, chunk);
        pos += BigInt(chunk.length);
        const flushed = await store.flush();
        await store.removeSegmentsBelow(flushed - BigInt(SEG), (lsn) => persistWalStart(dir, lsn));
      }
      const stats = store.recycling;
      expect(stats.recycled).toBeGreaterThan(5);
      expect(stats.preparedFromPool).toBeGreaterThan(5);
      expect(stats.preparedZeroFilled).toBeLessThanOrEqual(3); // only until the first removal
      expect(stats.pooled).toBeLessThanOrEqual(2);
      const got = await store.read(store.localStartLsn, 4 * SEG, store.writeLsn);
      expect(BigInt(got.length)).toBe(store.writeLsn - store.localStartLsn);
      expect(got.equals(wal.subarray(Number(store.localStartLsn - START), Number(store.writeLsn - START)))).toBe(true);
    });

    /** Writes 12 segments in quarter-segment commits, removing all but the last segment after each. */
    async function steadyState(options: object): Promise<{ store: WalStore; zeroFilledAfterWarmUp: number[] }> {
      const wal = walStream(12 * SEG);
      const store = track(await openFromControl(dir, options));
      const zeroFilledAfterWarmUp: number[] = [];
      let pos = START;
      for (let off = 0; off < 12 * SEG; off += SEG / 4) {
        const chunk = wal.subarray(off, off + SEG / 4);
        await store.append(pos, chunk);
        pos += BigInt(chunk.length);
        const flushed = await store.flush();
        await store.removeSegmentsBelow(flushed - BigInt(SEG), (lsn) => persistWalStart(dir, lsn));
        // from the fourth segment on, removal has fed the pool
        if (off >= 3 * SEG) {
          const r = store.recycling;
          zeroFilledAfterWarmUp.push(r.zeroFilledOnAppend + r.preparedZeroFilled);
        }
      }
      return { store, zeroFilledAfterWarmUp };
    }

    it('steady state zero-fills nothing on the commit path: each new segment is the prepared one, made from a recycled file', async () => {
      const { store, zeroFilledAfterWarmUp } = await steadyState(recycle);
      // only the first segment, before any prepared file existed, was zero-filled by append
      expect(store.recycling.zeroFilledOnAppend).toBe(1);
      // once removal feeds the pool, not even the background zero-fills any more
      expect(new Set(zeroFilledAfterWarmUp).size).toBe(1);
      expect(store.recycling.preparedFromPool).toBeGreaterThanOrEqual(8);
    });

    it('without recycling, append zero-fills every new segment (what the counter above would show)', async () => {
      const { store } = await steadyState({});
      expect(store.recycling.zeroFilledOnAppend).toBe(12);
      expect(store.recycling.recycled).toBe(0);
    });

    it('a recycled segment full of valid old WAL, overwritten part way and then crashed, recovers to exactly the new end', async () => {
      // Old WAL: three segments from START ending in an XLOG_SWITCH. New WAL from the segment
      // after, built the same way: its first segment has its records at exactly the offsets
      // of the old first segment, so the stale bytes after the new end are an old record with
      // a valid CRC; only its xl_prev (and, at the next page, xlp_pageaddr) tell it apart.
      const old = new WalBuilder(START, SEG);
      let k = 0;
      while (old.position < START + 2n * BigInt(SEG) + 700_000n) old.addRecord([60, 200, 9000, 33, 1500, 17000][k++ % 6]);
      old.addSwitch();
      const oldWal = old.bytes();
      expect(BigInt(oldWal.length)).toBe(3n * BigInt(SEG));
      const newStart = START + 3n * BigInt(SEG);
      const fresh = new WalBuilder(newStart, SEG);
      k = 0;
      const ends: number[] = [];
      while (fresh.position < newStart + BigInt(SEG / 2)) ends.push(Number(fresh.addRecord([60, 200, 9000, 33, 1500, 17000][k++ % 6]).end - newStart));
      const newWal = fresh.bytes();

      const store = track(await openFromControl(dir, { recycle: { maxRecycled: 4, prepareAhead: false } }));
      await store.append(START, oldWal);
      await store.flush();
      await store.removeSegmentsBelow(newStart, (lsn) => persistWalStart(dir, lsn));
      expect(store.recycling.recycled).toBe(3);
      const stop = ends.filter((e) => e % 8192 > 200 && e > 100_000).shift()!; // a record end inside a page
      await store.append(newStart, newWal.subarray(0, stop));
      expect(await store.flush()).toBe(newStart + BigInt(stop));
      expect(store.recycling.preparedFromPool).toBeGreaterThanOrEqual(1);
      // kill -9 here: nothing closed or cleaned; a new process opens the directory.
      const reopened = track(await openFromControl(dir, recycle));
      expect(reopened.flushLsn).toBe(newStart + BigInt(stop));
      expect(reopened.recovery!.stop?.detail).toMatch(/xl_prev|xlp_pageaddr/);
      // and the stale tail is gone from the file, so it cannot come back later
      const tail = await reopened.read(newStart, stop, reopened.writeLsn);
      expect(tail.equals(newWal.subarray(0, stop))).toBe(true);
    });
  });

  it('kill -9 at random points while removing and recycling, repeated: every store opens with all acknowledged WAL', async () => {
    const wal = walStream(24 * SEG);
    saveStream(join(root, 'stream.bin'), wal);
    // The compiled child (npm test builds first; so does `npx tsc -b dataplane`).
    const childPath = join(process.cwd(), 'dataplane', 'dist', 'test', 'storage', 'removalCrashChild.js');
    if (!existsSync(childPath)) throw new Error(`${childPath} is missing: build first (npm run build)`);
    let acknowledged = 0n;
    let seed = 7;
    for (let round = 0; round < 12; round++) {
      seed = (seed * 48271) % 2147483647;
      const killAfterFlushes = 1 + (seed % 9);
      const proc = spawn(process.execPath, [childPath, dir, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      proc.stderr.on('data', (d) => (err += d));
      const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
      await new Promise<void>((resolve) => {
        let flushes = 0;
        proc.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          for (const line of d.toString().split('\n')) {
            const m = /^flushed (\d+)$/.exec(line);
            if (m) {
              acknowledged = BigInt(m[1]) > acknowledged ? BigInt(m[1]) : acknowledged;
              if (++flushes >= killAfterFlushes) {
                proc.kill('SIGKILL');
                resolve();
              }
            }
            if (line === 'done') {
              proc.kill('SIGKILL');
              resolve();
            }
          }
        });
        proc.on('exit', () => resolve());
      });
      const code = await exited;
      if (code !== null) throw new Error(`child exited on its own (${code}): ${err}${out}`);

      const store = await openFromControl(dir);
      try {
        const state = (await readControlFile(dir))!;
        expect(store.localStartLsn).toBe(state.walStartLsn > START ? state.walStartLsn : START);
        expect(store.flushLsn).toBeGreaterThanOrEqual(acknowledged);
        for (const f of segFiles(dir)) expect(BigInt('0x' + f.slice(16, 24))).toBeGreaterThanOrEqual(segNo(store.localStartLsn));
        const kept = await store.read(store.localStartLsn, Number(store.flushLsn - store.localStartLsn), store.flushLsn);
        expect(kept.equals(wal.subarray(Number(store.localStartLsn - START), Number(store.flushLsn - START)))).toBe(true);
      } finally {
        await store.close();
      }
    }
    expect(acknowledged).toBeGreaterThan(START + 4n * BigInt(SEG));
  });
});

/** Record ends (offsets from START) of walStream(length), rebuilt the same way. */
function recordEnds(length: number): number[] {
  const b = new WalBuilder(START, SEG);
  let k = 0;
  const ends: number[] = [];
  while (b.position < START + BigInt(length)) ends.push(Number(b.addRecord([60, 200, 9000, 33, 1500, 17000][k++ % 6]).end - START));
  return ends;
}
