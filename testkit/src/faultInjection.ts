// Storage faults for a real safekeeper process: an fsync hook (WalStoreOptions.fsyncHook)
// that lets the first N fsyncs succeed and fails every later one with EIO, as a dying disk does.
import type { WalStoreOptions } from '@walkeeper/dataplane/storage/walStore';

export function failFsyncAfter(after: number, cause = `fail-fsync-after=${after}`): NonNullable<WalStoreOptions['fsyncHook']> {
  if (!Number.isInteger(after) || after < 0) throw new Error(`fsync failure: the number of fsyncs that succeed must be a non-negative integer, got ${after}`);
  let fsyncCount = 0;
  return (kind, path) => {
    fsyncCount++;
    if (fsyncCount > after) {
      const err = new Error(`EIO: i/o error, fsync '${path}' (injected by ${cause}, ${kind} fsync #${fsyncCount})`) as NodeJS.ErrnoException;
      err.code = 'EIO';
      throw err;
    }
  };
}
