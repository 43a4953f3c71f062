// The import-direction rules of eslint.config.js bite: each forbidden import, linted as if it
// were in the product file named, is reported; the allowed neighbour is not.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** no-restricted-imports findings for `source` placed at `file` (eslint's real config, via stdin). */
function restricted(file: string, source: string): string[] {
  const r = spawnSync(process.execPath, ['node_modules/eslint/bin/eslint.js', '--format', 'json', '--stdin', '--stdin-filename', file], { cwd: ROOT, input: source, encoding: 'utf8', timeout: 60_000 });
  const [result] = JSON.parse(r.stdout) as { messages: { ruleId: string | null; message: string }[] }[];
  return result!.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

test.each([
  ['dataplane/src/consensus/probe.ts', "export { WalStore } from '../storage/walStore.js';", 'consensus/ is the pure core'],
  ['dataplane/src/consensus/probe.ts', "export { readFileSync } from 'node:fs';", 'consensus/ does no I/O'],
  ['dataplane/src/protocol/probe.ts', "export { Registry } from '../safekeeper/registry.js';", 'protocol/ may encode consensus messages'],
  ['dataplane/src/safekeeper/probe.ts', "export { hooksFromEnv } from '@walkeeper/testkit/src/hooks';", 'product code never imports e2e/, the testkit'],
  ['dataplane/src/safekeeper/probe.ts', "export { ApiError } from '../http/errors.js';", 'safekeeper/ and storage/ know nothing of HTTP'],
  ['dataplane/src/storage/probe.ts', "export { createApp } from '../http/server.js';", 'safekeeper/ and storage/ know nothing of HTTP'],
  ['dataplane/src/http/probe.ts', "export { x } from '../../../e2e/src/harness/cli.js';", 'product code never imports e2e/'],
  ['dataplane/src/local/probe.ts', "import S3rver from 's3rver'; export { S3rver };", 'product code never imports'],
  ['operator/src/controllers/probe.ts', "export { Registry } from '@walkeeper/dataplane/safekeeper/registry';", 'the operator reaches the data plane over its HTTP API'],
  ['operator/src/specs/probe.ts', "export { KubeConfig } from '@kubernetes/client-node';", 'rollout/ and specs/ are pure'],
  ['operator/src/rollout/probe.ts', "export * from '../runtime/queue.js';", 'rollout/ and specs/ are pure'],
])('%s: %s is refused', (file, source, reason) => {
  const found = restricted(file, source);
  expect(found).toHaveLength(1);
  expect(found[0]).toContain(reason);
});

test.each([
  ['dataplane/src/consensus/probe.ts', "export { parseLsn } from '../common/lsn.js';"],
  ['dataplane/src/protocol/probe.ts', "export type { AppendRequest } from '../consensus/messages.js';"],
  ['operator/src/specs/probe.ts', "export { parseLsn } from '@walkeeper/dataplane/lsn';"],
  ['dataplane/test/probe.test.ts', "export { hooksFromEnv } from '../../testkit/src/hooks.js';"],
  ['dataplane/src/safekeeper/main.ts', "export { listen } from '../http/server.js';"],
])('%s: %s is allowed', (file, source) => {
  expect(restricted(file, source)).toEqual([]);
});
