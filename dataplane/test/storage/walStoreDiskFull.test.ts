// ENOSPC handling on a real, tiny tmpfs (needs root to mount; skipped with a reason otherwise).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { walFileName } from '../../src/common/lsn.js';
import { StorageError } from '../../src/storage/errors.js';
import { WalStore } from '../../src/storage/walStore.js';
import { WalBuilder } from '@walkeeper/testkit/walBuilder';

const SEG = 1 << 20;
const START = 2n * BigInt(SEG);

function tryMountTmpfs(dir: string): string | null {
  if (process.getuid?.() !== 0) return 'not running as root, cannot mount a tmpfs';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return `mount -t tmpfs failed: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`;
  }
}

const root = mkdtempSync(join(tmpdir(), 'walkeeper-enospc-'));
const skipReason = tryMountTmpfs(root);
if (skipReason) {
  console.warn(`skipping ENOSPC tests: ${skipReason}`);
  rmSync(root, { recursive: true, force: true });
}
const maybe = skipReason ? describe.skip : describe;

afterAll(() => {
  if (skipReason) return;
  execFileSync('umount', [root]);
  rmSync(root, { recursive: true, force: true });
});

maybe('WalStore on a full disk (4 MiB tmpfs, 1 MiB segments)', () => {

  it('ENOSPC on a new segment is disk_full naming the file; nothing advances; reads work; a retry succeeds', async () => {
    const dir = join(root, 'timeline');
    execFileSync('mkdir', [dir]);
    const filler = join(root, 'filler');
    const b = new WalBuilder(START, SEG);
    while (b.position < START + BigInt(SEG) + 20000n) b.addRecord(3000);
    const bytes = b.bytes();

    const store = await WalStore.open(dir, { walSegSize: SEG, pgTimeline: 1, timelineStartLsn: START, recoverFrom: START, syncMode: 'fsync' });
    const firstPart = SEG - 50000;
    await store.append(START, bytes.subarray(0, firstPart));
    const flushed = await store.flush();
    // leave less than one segment free
    writeFileSync(filler, Buffer.alloc(2 * SEG + SEG / 2));

    let caught: unknown;
    try {
      await store.append(START + BigInt(firstPart), bytes.subarray(firstPart));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(StorageError);
    expect((caught as StorageError).code).toBe('disk_full');
    expect((caught as StorageError).message).toContain(join(dir, walFileName(1, 3n, SEG) + '.partial'));
    expect(store.writeLsn).toBe(START + BigInt(firstPart));
    expect(store.flushLsn).toBe(flushed);
    expect(readdirSync(dir)).toEqual([walFileName(1, 2n, SEG)]); // filled segment was completed, no temp left
    expect((await store.read(START, 1000, store.writeLsn)).equals(bytes.subarray(0, 1000))).toBe(true);

    rmSync(filler);
    await store.append(START + BigInt(firstPart), bytes.subarray(firstPart));
    expect(await store.flush()).toBe(b.records[b.records.length - 1].end);
    await store.close();
    const reopened = await WalStore.open(dir, { walSegSize: SEG, pgTimeline: 1, timelineStartLsn: START, recoverFrom: START, syncMode: 'none' });
    expect(reopened.writeLsn).toBe(b.records[b.records.length - 1].end);
    await reopened.close();
  });
});

// The disk-full scenario of hardening/storage.test.ts with recycling on, at unit scale: the
// next segment was prepared before the disk filled, so the member writes through it and hits
// ENOSPC only at the boundary after it. Once space returns it must go on, in the same process
// and after a kill -9.
maybe('WalStore with prepare-ahead on a full disk (4 MiB tmpfs, 1 MiB segments)', () => {
  const recycle = { maxRecycled: 2, prepareAhead: true };
  const options = { walSegSize: SEG, pgTimeline: 1, timelineStartLsn: START, recoverFrom: START, syncMode: 'fsync' as const, recycle };
  let n = 0;
  const fresh = () => {
    // The tmpfs holds four segments: what an earlier test left would fill it.
    for (const name of readdirSync(root)) rmSync(join(root, name), { recursive: true, force: true });
    const dir = join(root, `prepared-${n++}`);
    execFileSync('mkdir', [dir]);
    return dir;
  };
  const walPastTwoBoundaries = () => {
    const b = new WalBuilder(START, SEG);
    while (b.position < START + 2n * BigInt(SEG) + 20000n) b.addRecord(3000);
    return b;
  };
  /** Leaves less than one segment free on the tmpfs. */
  const fillDisk = () => {
    const filler = join(root, 'filler');
    const st = statfsSync(root);
    writeFileSync(filler, Buffer.alloc(Math.max(0, Number(st.bavail) * Number(st.bsize) - SEG / 2)));
    return filler;
  };

  it('writes through the prepared segment, stops with disk_full at the next boundary, and resumes when space returns', async () => {
    const dir = fresh();
    const b = walPastTwoBoundaries();
    const bytes = b.bytes();
    const store = await WalStore.open(dir, options);
    try {
      const firstPart = SEG - 50000;
      await store.append(START, bytes.subarray(0, firstPart));
      const flushed = await store.flush();
      await store.settlePreparation();
      expect(readdirSync(dir).sort()).toEqual([walFileName(1, 2n, SEG) + '.partial', walFileName(1, 3n, SEG) + '.prepared']);
      const filler = fillDisk();

      let caught: unknown;
      try {
        await store.append(START + BigInt(firstPart), bytes.subarray(firstPart));
      } catch (err) {
        caught = err;
      }
      expect((caught as StorageError).code).toBe('disk_full');
      expect((caught as StorageError).message).toContain(walFileName(1, 4n, SEG) + '.partial');
      expect(store.writeLsn).toBe(START + BigInt(firstPart));
      expect(store.flushLsn).toBe(flushed);
      expect(readdirSync(dir).sort()).toEqual([walFileName(1, 2n, SEG), walFileName(1, 3n, SEG)]);

      rmSync(filler);
      await store.append(START + BigInt(firstPart), bytes.subarray(firstPart));
      expect(await store.flush()).toBe(b.records[b.records.length - 1].end);
    } finally {
      await store.close();
    }
    const reopened = await WalStore.open(dir, { ...options, syncMode: 'none' });
    expect(reopened.writeLsn).toBe(b.records[b.records.length - 1].end);
    await reopened.close();
  });

  it('killed while full at the boundary after the prepared segment, a new process resumes once space returns', async () => {
    const dir = fresh();
    const b = walPastTwoBoundaries();
    const bytes = b.bytes();
    const store = await WalStore.open(dir, options);
    const firstPart = SEG - 50000;
    await store.append(START, bytes.subarray(0, firstPart));
    const flushed = await store.flush();
    await store.settlePreparation();
    const filler = fillDisk();
    await expect(store.append(START + BigInt(firstPart), bytes.subarray(firstPart))).rejects.toMatchObject({ code: 'disk_full' });
    // kill -9 here: the store is abandoned as it is (its handles die with the test's afterAll).

    const reopened = await WalStore.open(dir, { ...options, requiredEnd: flushed });
    try {
      // Recovery may find the unacknowledged bytes written into the prepared segment too.
      const resumeAt = reopened.writeLsn;
      expect(resumeAt).toBeGreaterThanOrEqual(flushed);
      await expect(reopened.append(resumeAt, bytes.subarray(Number(resumeAt - START)))).rejects.toMatchObject({ code: 'disk_full' });
      rmSync(filler);
      await reopened.append(resumeAt, bytes.subarray(Number(resumeAt - START)));
      expect(await reopened.flush()).toBe(b.records[b.records.length - 1].end);
    } finally {
      await reopened.close();
      await store.close().catch(() => undefined);
    }
  });
});
