// Shared by the removal tests and their kill -9 child (removalCrashChild.ts): a timeline
// directory with a real control file, whose WalStore is opened the way Timeline.load does
// (first local LSN from the control file), and a deterministic WAL stream to write into it.
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lsn } from '../../src/common/lsn.js';
import { newTimelineState } from '../../src/consensus/state.js';
import { readControlFile, writeControlFile } from '../../src/storage/controlFile.js';
import { WalStore, type WalStoreOptions } from '../../src/storage/walStore.js';
import { WalBuilder } from '@walkeeper/testkit/walBuilder';

export const SEG = 1 << 20;
export const START = 3n * BigInt(SEG);
const TENANT = 'aa'.repeat(16);
const TIMELINE = 'bb'.repeat(16);

/** About `bytes` bytes of valid WAL from START (records of varied sizes). */
export function walStream(bytes: number, start: Lsn = START): Buffer {
  const b = new WalBuilder(start, SEG);
  let k = 0;
  while (b.position < start + BigInt(bytes)) b.addRecord([60, 200, 9000, 33, 1500, 17000][k++ % 6]);
  return b.bytes();
}

export async function createTimelineDir(dir: string): Promise<void> {
  const state = newTimelineState({ tenantId: TENANT, timelineId: TIMELINE, walSegSize: SEG });
  await writeControlFile(dir, { ...state, timelineStartLsn: START, createdAt: 1n, backupLsn: 0n, walStartLsn: 0n });
}

/** Persists a new first local LSN, as Timeline.advanceLifecycle does. */
export async function persistWalStart(dir: string, walStartLsn: Lsn, syncMode: 'fsync' | 'none' = 'none'): Promise<void> {
  const state = await readControlFile(dir);
  if (!state) throw new Error(`no control file in ${dir}`);
  if (walStartLsn > state.walStartLsn) await writeControlFile(dir, { ...state, walStartLsn }, { syncMode });
}

/** Opens the store as Timeline.load does: from the first retained segment. */
export async function openFromControl(dir: string, extra: Partial<WalStoreOptions> = {}): Promise<WalStore> {
  const state = await readControlFile(dir);
  if (!state) throw new Error(`no control file in ${dir}`);
  return WalStore.open(dir, {
    walSegSize: SEG,
    pgTimeline: 1,
    timelineStartLsn: START,
    recoverFrom: START,
    walStartLsn: state.walStartLsn,
    syncMode: 'none',
    ...extra,
  });
}

export function saveStream(path: string, bytes: Buffer): void {
  writeFileSync(path, bytes);
}

export function loadStream(dir: string): Buffer {
  return readFileSync(join(dir, '..', 'stream.bin'));
}
