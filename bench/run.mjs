// `npm run bench`: the data-plane benchmark (pgbench through walkeeper vs pg_receivewal,
// safekeeper ingest vs fio), then the operator's scale benchmark. Flags go to the data-plane
// benchmark, except --tenants N, which goes to the scale benchmark, and --backup-scale N, which
// goes to the backup and restore benchmark that runs last.
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const scaleArgs = [];
const i = args.indexOf('--tenants');
if (i >= 0) scaleArgs.push(...args.splice(i, 2));
// --backup-scale N: the pgbench scale of the backup/restore section (default 30)
const backupArgs = [];
const b = args.indexOf('--backup-scale');
if (b >= 0) backupArgs.push(...args.splice(b, 2));

for (const [script, argv] of [
  ['testkit/dist/src/bench/main.js', args],
  ['operator/dist/src/bench/scale.js', scaleArgs],
  ['testkit/dist/src/bench/backup.js', backupArgs],
]) {
  const r = spawnSync(process.execPath, [script, ...argv], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
