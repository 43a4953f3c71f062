// The WALKEEPER_TEST_* variables become hooks only through the testkit's entrypoint; a value
// that does not parse is refused before any process starts.
import { spawnSync } from 'node:child_process';
import { FAIL_FSYNC_AFTER, UNSAFE_ACK_BEFORE_QUORUM, WALKEEPER_WITH_HOOKS_JS, hooksFromEnv } from '../src/hooks.js';

test('without WALKEEPER_TEST_* variables no hook is injected', () => {
  expect(hooksFromEnv({})).toEqual({});
  expect(hooksFromEnv({ [FAIL_FSYNC_AFTER]: '' })).toEqual({});
  expect(hooksFromEnv({ [UNSAFE_ACK_BEFORE_QUORUM]: '' })).toEqual({});
});

test('WALKEEPER_TEST_UNSAFE_ACK_BEFORE_QUORUM=1 reaches the proposer as its hook; any other value is refused', () => {
  expect(hooksFromEnv({ [UNSAFE_ACK_BEFORE_QUORUM]: '1' })).toEqual({ proposer: { unsafeAckBeforeQuorum: true } });
  expect(() => hooksFromEnv({ [UNSAFE_ACK_BEFORE_QUORUM]: 'yes' })).toThrow(`${UNSAFE_ACK_BEFORE_QUORUM} must be 1 or unset, got "yes"`);
});

test('WALKEEPER_TEST_FAIL_FSYNC_AFTER=2: two fsyncs succeed, the third fails with EIO naming the file', async () => {
  const hook = hooksFromEnv({ [FAIL_FSYNC_AFTER]: '2' }).safekeeper?.fsyncHook;
  expect(hook).toBeDefined();
  await hook!('wal_flush', '/d/a');
  await hook!('directory', '/d');
  let thrown: NodeJS.ErrnoException | undefined;
  try {
    await hook!('segment_full', '/d/000000010000000000000001.partial');
  } catch (err) {
    thrown = err as NodeJS.ErrnoException;
  }
  expect(thrown?.code).toBe('EIO');
  expect(thrown?.message).toContain("/d/000000010000000000000001.partial");
  expect(thrown?.message).toContain(`${FAIL_FSYNC_AFTER}=2`);
});

test.each(['-1', 'abc', '1.5', '3x'])('WALKEEPER_TEST_FAIL_FSYNC_AFTER=%s is refused with the variable named', (value) => {
  expect(() => hooksFromEnv({ [FAIL_FSYNC_AFTER]: value })).toThrow(`${FAIL_FSYNC_AFTER} must be a non-negative integer, got "${value}"`);
});

test('the entrypoint exits 1 on a bad hook variable, before the safekeeper starts', () => {
  const r = spawnSync(process.execPath, [WALKEEPER_WITH_HOOKS_JS, 'safekeeper', '--id', '1', '--datadir', '/nonexistent/never-created'], {
    env: { ...process.env, [FAIL_FSYNC_AFTER]: 'soon' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  expect(r.status).toBe(1);
  expect(r.stderr).toContain(`walkeeper-with-hooks: error: ${FAIL_FSYNC_AFTER} must be a non-negative integer, got "soon"`);
});

test('the entrypoint runs the product command unchanged otherwise', () => {
  const r = spawnSync(process.execPath, [WALKEEPER_WITH_HOOKS_JS, 'safekeeper', '--help'], { encoding: 'utf8', timeout: 30_000 });
  expect(r.status).toBe(0);
  expect(r.stdout).toContain('--datadir');
});
