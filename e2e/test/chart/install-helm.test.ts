// scripts/install-helm.sh is idempotent and fast once helm is installed (CI calls it every run).
import fs from 'node:fs';
import path from 'node:path';
import { HELM_BIN, ROOT, ensureHelm, run } from '../../src/chart/helm.js';

test('a second run only reports the installed version', () => {
  ensureHelm();
  const before = fs.statSync(HELM_BIN).mtimeMs;
  const t0 = Date.now();
  const r = run('bash', [path.join(ROOT, 'scripts', 'install-helm.sh')]);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^helm v4\.\d+\.\d+ at .*\.tools\/bin\/helm \(already installed\)$/m);
  expect(Date.now() - t0).toBeLessThan(5_000);
  expect(fs.statSync(HELM_BIN).mtimeMs).toBe(before); // not re-downloaded or rewritten
});

test('.tools/ is gitignored, so the binary is never committed', () => {
  expect(fs.readFileSync(path.join(ROOT, '.gitignore'), 'utf8').split('\n')).toContain('.tools/');
});
