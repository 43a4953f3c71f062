import { readdirSync } from 'node:fs';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Which way imports point (../shared/STYLE.md), as no-restricted-imports per directory. The
// rule does not merge across config blocks, so each block lists everything it forbids.
const STYLE = 'see "Which way imports point" in STYLE.md';
const noTestCode = {
  group: ['**/e2e/**', '@walkeeper/e2e', '@walkeeper/e2e/**', '**/testkit/**', '@walkeeper/testkit', '@walkeeper/testkit/**', '**/test/**', 's3rver'],
  message: `product code never imports e2e/, the testkit, tests or their tools (${STYLE})`,
};
/** dataplane/src/<dir> imported from a sibling directory, for every dir except `allowed` */
const dataplaneDirsExcept = (...allowed) =>
  readdirSync(new URL('./dataplane/src/', import.meta.url), { withFileTypes: true })
    .filter((d) => d.isDirectory() && !allowed.includes(d.name))
    .flatMap((d) => [`../${d.name}`, `../${d.name}/*`]);
const operatorToDataplane = {
  regex: '^(@walkeeper/dataplane(?!/(lsn|api)$)|(\\.\\./)+(.*/)?dataplane(/|$))',
  message: `the operator reaches the data plane over its HTTP API; only the shared LSN and API-types modules may be imported (${STYLE})`,
};
const restrict = (...patterns) => ['error', { patterns: [noTestCode, ...patterns] }];

export default tseslint.config(
  { ignores: ['**/dist/**', 'node_modules/**', '.walkeeper/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  {
    files: ['dataplane/src/**/*.ts', 'operator/src/**/*.ts'],
    rules: { 'no-restricted-imports': restrict() },
  },
  {
    files: ['dataplane/src/consensus/**/*.ts'],
    rules: {
      'no-restricted-imports': restrict(
        { group: dataplaneDirsExcept('common', 'consensus'), message: `consensus/ is the pure core: it imports nothing of the data plane (${STYLE})` },
        { group: ['node:fs', 'node:fs/*', 'node:net', 'node:tls', 'node:http', 'node:https', 'node:child_process', 'pg', 'pg-protocol', 'pg-protocol/*'], message: `consensus/ does no I/O; the shells perform its effects (${STYLE})` },
      ),
    },
  },
  {
    files: ['dataplane/src/protocol/**/*.ts'],
    rules: {
      'no-restricted-imports': restrict({ group: dataplaneDirsExcept('common', 'consensus', 'protocol'), message: `protocol/ may encode consensus messages and import nothing else of the data plane (${STYLE})` }),
    },
  },
  {
    // safekeeper/main.ts is the process's composition root: it starts the HTTP API beside the
    // Postgres port, so it alone may import http/.
    files: ['dataplane/src/safekeeper/**/*.ts', 'dataplane/src/storage/**/*.ts'],
    ignores: ['dataplane/src/safekeeper/main.ts'],
    rules: {
      'no-restricted-imports': restrict({ group: ['../http', '../http/*'], message: `safekeeper/ and storage/ know nothing of HTTP: they throw domain errors with a code, and http/ gives them a status (${STYLE})` }),
    },
  },
  {
    files: ['operator/src/**/*.ts'],
    rules: {
      'no-restricted-imports': restrict(operatorToDataplane),
    },
  },
  {
    files: ['operator/src/rollout/**/*.ts', 'operator/src/specs/**/*.ts'],
    rules: {
      'no-restricted-imports': restrict(
        operatorToDataplane,
        { group: ['../runtime', '../runtime/*', '../controllers', '../controllers/*', '@kubernetes/client-node', '@kubernetes/client-node/*', 'node:http', 'node:https', 'node:net'], message: `rollout/ and specs/ are pure: no runtime, no client (${STYLE})` },
      ),
    },
  },
);
