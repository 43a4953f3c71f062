// The test hooks a tool asks for through WALKEEPER_TEST_* variables, turned into the hooks
// argument of the product's entry (runWalkeeper). Only bin/walkeeper-with-hooks.js reads them.
//   WALKEEPER_TEST_FAIL_FSYNC_AFTER=N   the safekeeper's first N fsyncs succeed, every later one throws EIO
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { WalkeeperHooks } from '@walkeeper/dataplane/cli/walkeeperCommand';
import { failFsyncAfter } from './faultInjection.js';

export const FAIL_FSYNC_AFTER = 'WALKEEPER_TEST_FAIL_FSYNC_AFTER';

export function hooksFromEnv(env: NodeJS.ProcessEnv): WalkeeperHooks {
  const hooks: WalkeeperHooks = {};
  const failAfter = env[FAIL_FSYNC_AFTER];
  if (failAfter !== undefined && failAfter !== '') {
    const after = /^\d+$/.test(failAfter) ? Number(failAfter) : NaN;
    if (!Number.isSafeInteger(after)) throw new Error(`${FAIL_FSYNC_AFTER} must be a non-negative integer, got "${failAfter}"`);
    hooks.safekeeper = { fsyncHook: failFsyncAfter(after, `${FAIL_FSYNC_AFTER}=${after}`) };
  }
  // TODO(runProposer hooks): once proposer/main.ts has runProposer(argv, hooks: { unsafeAckBeforeQuorum?: boolean }),
  // read WALKEEPER_TEST_UNSAFE_ACK_BEFORE_QUORUM here into hooks.proposer and remove the
  // environment read from proposer/termRun.ts.
  return hooks;
}

/** Absolute path of the entrypoint that runs `walkeeper` with hooksFromEnv(process.env). */
export const WALKEEPER_WITH_HOOKS_JS = [new URL('../bin/walkeeper-with-hooks.js', import.meta.url), new URL('../../bin/walkeeper-with-hooks.js', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((p) => existsSync(p)) ?? fileURLToPath(new URL('../../bin/walkeeper-with-hooks.js', import.meta.url));
