// ENOSPC handling on a real, tiny tmpfs (needs root to mount; skipped with a reason otherwise).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { walFileName } from '../../src/common/lsn.js';
import { StorageError } from '../../src/storage/errors.js';
import { WalStore } from '../../src/storage/walStore.js';
import { WalBuilder } from './walBuilder.js';

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

maybe('WalStore on a full disk (4 MiB tmpfs, 1 MiB segments)', () => {
  afterAll(() => {
    execFileSync('umount', [root]);
    rmSync(root, { recursive: true, force: true });
  });

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
