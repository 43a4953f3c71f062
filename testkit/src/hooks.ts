// The test hooks a tool asks for through WALKEEPER_TEST_* variables, turned into the hooks
// argument of the product's entry (runWalkeeper). Only bin/walkeeper-with-hooks.js reads them.
//   WALKEEPER_TEST_FAIL_FSYNC_AFTER=N             the safekeeper's first N fsyncs succeed, every later one throws EIO
//   WALKEEPER_TEST_UNSAFE_ACK_BEFORE_QUORUM=1     the proposer acknowledges commits on PostgreSQL's flush (a broken rule)
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { WalkeeperHooks } from '@walkeeper/dataplane/cli/walkeeperCommand';
import { failFsyncAfter } from './faultInjection.js';

export const FAIL_FSYNC_AFTER = 'WALKEEPER_TEST_FAIL_FSYNC_AFTER';
export const UNSAFE_ACK_BEFORE_QUORUM = 'WALKEEPER_TEST_UNSAFE_ACK_BEFORE_QUORUM';

export function hooksFromEnv(env: NodeJS.ProcessEnv): WalkeeperHooks {
  const hooks: WalkeeperHooks = {};
  const failAfter = env[FAIL_FSYNC_AFTER];
  if (failAfter !== undefined && failAfter !== '') {
    const after = /^\d+$/.test(failAfter) ? Number(failAfter) : NaN;
    if (!Number.isSafeInteger(after)) throw new Error(`${FAIL_FSYNC_AFTER} must be a non-negative integer, got "${failAfter}"`);
    hooks.safekeeper = { fsyncHook: failFsyncAfter(after, `${FAIL_FSYNC_AFTER}=${after}`) };
  }
  const unsafeAck = env[UNSAFE_ACK_BEFORE_QUORUM];
  if (unsafeAck !== undefined && unsafeAck !== '') {
    if (unsafeAck !== '1') throw new Error(`${UNSAFE_ACK_BEFORE_QUORUM} must be 1 or unset, got "${unsafeAck}"`);
    hooks.proposer = { unsafeAckBeforeQuorum: true };
  }
  return hooks;
}

/** Absolute path of the entrypoint that runs `walkeeper` with hooksFromEnv(process.env). */
export const WALKEEPER_WITH_HOOKS_JS = [new URL('../bin/walkeeper-with-hooks.js', import.meta.url), new URL('../../bin/walkeeper-with-hooks.js', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((p) => existsSync(p)) ?? fileURLToPath(new URL('../../bin/walkeeper-with-hooks.js', import.meta.url));
