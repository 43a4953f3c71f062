// `npm run bench` backup section (`node dataplane/dist/src/bench/backup.js [--scale 30]`):
// backup MB/s and restore MB/s of a pgbench database, against pg_basebackup to a local
// directory and a plain copy on the same disk, with the restore to latest split into base
// backup, bucket WAL and the safekeepers' tail (from PostgreSQL's own log). Prints markdown.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { backupCluster, restoreCluster, restoreDataDir } from '@walkeeper/dataplane/local/backupLocal';
import { ensureDirFor } from '@walkeeper/dataplane/local/postgres';
import { killCluster, newTempCluster, runOk } from '../torture/env.js';
import { parseIntFlag } from '@walkeeper/dataplane/cli/flags';

const MB = 1024 * 1024;

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = process.hrtime.bigint();
  const v = await fn();
  return [v, Number(process.hrtime.bigint() - t0) / 1e9];
}

/** Seconds between the first log line matching `from` and the first matching `to` after it. */
function logSpan(log: string, from: RegExp, to: RegExp): number | undefined {
  const stamp = (line: string) => Date.parse(line.slice(0, 23).replace(' ', 'T') + 'Z');
  const lines = log.split('\n');
  const a = lines.findIndex((l) => from.test(l));
  const b = a < 0 ? -1 : lines.findIndex((l, i) => i > a && to.test(l));
  return a < 0 || b < 0 ? undefined : (stamp(lines[b]) - stamp(lines[a])) / 1000;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const si = argv.indexOf('--backup-scale');
  const scale = si >= 0 ? parseIntFlag('backup-scale', argv[si + 1], 1, 10_000) : 30;
  const { cluster, runAs } = await newTempCluster('walkeeper-bench-backup-');
  const bin = cluster.postgres.binDir;
  const pg = ['-h', cluster.config.host, '-p', String(cluster.config.postgres.port), '-U', 'postgres'];
  const rows: [string, string, string][] = [];
  try {
    await cluster.start();
    process.stderr.write(`bench backup: pgbench -i -s ${scale}\n`);
    await runOk('pgbench -i', join(bin, 'pgbench'), ['-i', '-q', '-s', String(scale), ...pg, 'postgres'], { timeoutMs: 3_600_000 });
    const dbBytes = Number(cluster.postgres.psql(`SELECT pg_database_size('postgres')`));

    const [manifest, backupS] = await timed(() => backupCluster(cluster));
    rows.push(['walkeeper backup (pg_basebackup, gzip, parts to file:// bucket)', backupS.toFixed(1), (manifest.tar_bytes / MB / backupS).toFixed(1)]);
    const local = join(cluster.baseDir, 'bench-basebackup');
    ensureDirFor(join(cluster.baseDir, 'bench'), runAs);
    const [, pgbbS] = await timed(() => runOk('pg_basebackup', join(bin, 'pg_basebackup'), ['-D', local, '-X', 'none', '-c', 'fast', ...pg], { runAs, timeoutMs: 3_600_000 }));
    rows.push(['pg_basebackup -X none to a local directory', pgbbS.toFixed(1), (manifest.tar_bytes / MB / pgbbS).toFixed(1)]);
    const [, cpS] = await timed(async () => execFileSync('cp', ['-a', local, join(cluster.baseDir, 'bench-copy')]));
    rows.push(['cp -a of that directory', cpS.toFixed(1), (manifest.tar_bytes / MB / cpS).toFixed(1)]);
    rmSync(local, { recursive: true, force: true });
    rmSync(join(cluster.baseDir, 'bench-copy'), { recursive: true, force: true });
    const [, extractS] = await timed(() => restoreDataDir(cluster, { kind: 'latest' }, join(cluster.baseDir, 'bench', 'data')));
    rows.push(['walkeeper restore of the data directory (verify, gunzip, untar)', extractS.toFixed(1), (manifest.tar_bytes / MB / extractS).toFixed(1)]);
    rmSync(join(cluster.baseDir, 'bench', 'data'), { recursive: true, force: true });

    // WAL after the backup, then the primary and its volume are lost and restored to latest
    const walStart = cluster.postgres.psql('SELECT pg_current_wal_lsn()');
    await runOk('pgbench', join(bin, 'pgbench'), ['-T', '20', '-c', '4', '-j', '2', ...pg, 'postgres'], { timeoutMs: 600_000 });
    const walBytes = Number(cluster.postgres.psql(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '${walStart}')`));
    await cluster.killProposer();
    await cluster.postgres.stop('kill');
    rmSync(cluster.postgres.dataDir, { recursive: true, force: true });
    const logBefore = readFileSync(cluster.postgres.logFile, 'utf8').length;
    const [, restoreS] = await timed(() => restoreCluster(cluster, { kind: 'latest' }));
    const log = readFileSync(cluster.postgres.logFile, 'utf8').slice(logBefore);
    rows.push([`walkeeper restore to latest, end to end (${(walBytes / MB).toFixed(0)} MB of WAL after the backup)`, restoreS.toFixed(1), '']);
    const bucketWal = logSpan(log, /starting point-in-time recovery|entering standby mode/, /started streaming WAL/);
    const tail = logSpan(log, /started streaming WAL/, /redo done|selected new timeline/);
    rows.push(['  of which replay from the bucket (restore_command)', bucketWal?.toFixed(1) ?? '-', '']);
    rows.push(['  of which the safekeepers\' tail, to promotion', tail?.toFixed(1) ?? '-', '']);
    process.stdout.write(`\n### Backup and restore (pgbench scale ${scale}: ${(dbBytes / MB).toFixed(0)} MB database, ${(manifest.tar_bytes / MB).toFixed(0)} MB tar, ${(manifest.compressed_bytes / MB).toFixed(0)} MB gzipped)\n\n`);
    process.stdout.write('| step | seconds | MB/s (of tar) |\n| --- | --- | --- |\n' + rows.map((r) => `| ${r.join(' | ')} |`).join('\n') + '\n');
  } finally {
    await killCluster(cluster);
    rmSync(cluster.baseDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`bench backup: ${err.message}\n`);
    process.exit(2);
  },
);
