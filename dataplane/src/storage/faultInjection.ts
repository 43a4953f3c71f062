// Test-only fault injection for the storage layer, driven by environment variables so a
// real safekeeper process can be made to fail without any code path of its own changing.
//   WALKEEPER_TEST_FAIL_FSYNC_AFTER=N   the first N fsyncs succeed, every later one throws EIO
// Unset (the normal case) it returns undefined and WalStore runs without a hook.
import type { WalStoreOptions } from './walStore.js';

let fsyncCount = 0;

export function fsyncHookFromEnv(env: NodeJS.ProcessEnv = process.env): WalStoreOptions['fsyncHook'] {
  const raw = env.WALKEEPER_TEST_FAIL_FSYNC_AFTER;
  if (raw === undefined || raw === '') return undefined;
  const after = Number(raw);
  if (!Number.isInteger(after) || after < 0) throw new Error(`WALKEEPER_TEST_FAIL_FSYNC_AFTER must be a non-negative integer, got "${raw}"`);
  return (kind, path) => {
    fsyncCount++;
    if (fsyncCount > after) {
      const err = new Error(`EIO: i/o error, fsync '${path}' (injected by WALKEEPER_TEST_FAIL_FSYNC_AFTER=${after}, ${kind} fsync #${fsyncCount})`) as NodeJS.ErrnoException;
      err.code = 'EIO';
      throw err;
    }
  };
}
