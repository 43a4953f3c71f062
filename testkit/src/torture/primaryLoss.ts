// The failure walkeeper exists for, made deterministic: the quorum is lost (two safekeepers
// stopped) while clients keep writing, then the primary is lost for good and the one
// safekeeper that stayed up loses its disk. A new server built from the two surviving
// safekeepers' WAL must hold every acknowledged row: with correct rules nothing was
// acknowledged during the quorum loss. With the proposer acknowledging on PostgreSQL's own
// flush (unsafeAck, a deliberately broken rule), rows acknowledged then existed only on the
// wiped member, and the check must find them lost.
import { copyFileSync, chownSync, readdirSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { parseLsn, formatLsn } from '@walkeeper/dataplane/common/lsn';
import { sleep } from '@walkeeper/dataplane/local/postgres';
import { EXTRA_PORT, killCluster, newTempCluster, safekeeperTimeline, timestamped } from './env.js';
import { WALKEEPER_WITH_HOOKS_JS } from '../hooks.js';
import { checkLedger, LedgerRecord } from './ledger.js';
import { readLedger, startRestoredServer, takeBaseBackup } from './restore.js';
import { LEDGER_DDL, Workload } from './workload.js';

/** Read by the testkit's entrypoint (testkit/src/hooks.ts) into the proposer's unsafeAckBeforeQuorum hook. */
export const UNSAFE_ACK_ENV = 'WALKEEPER_TEST_UNSAFE_ACK_BEFORE_QUORUM';

export interface PrimaryLossReport {
  acknowledged: number;
  acknowledgedDuringQuorumLoss: number;
  restoredFrom: number;
  restoredUpTo: string;
  lost: number;
  phantoms: number;
  duplicates: number;
  ok: boolean;
}

export async function runPrimaryLoss(opts: { unsafeAck?: boolean; log?: (line: string) => void } = {}): Promise<PrimaryLossReport> {
  const log = timestamped(Date.now(), opts.log ?? ((l) => process.stdout.write(l + '\n')));
  const { cluster, portBase, runAs } = await newTempCluster('walkeeper-primary-loss-', undefined, opts.unsafeAck ? { entrypoint: WALKEEPER_WITH_HOOKS_JS } : {});
  const dir = cluster.baseDir;
  const record = new LedgerRecord();
  let workload: Workload | undefined;
  let restored: Awaited<ReturnType<typeof startRestoredServer>> | undefined;
  const savedEnv = process.env[UNSAFE_ACK_ENV];
  try {
    if (opts.unsafeAck) process.env[UNSAFE_ACK_ENV] = '1';
    await cluster.start();
    if (savedEnv === undefined) delete process.env[UNSAFE_ACK_ENV];
    const { host } = cluster.config;
    const port = cluster.config.postgres.port;
    const c = new pg.Client({ host, port, user: 'postgres', database: 'postgres' });
    await c.connect();
    await c.query(LEDGER_DDL);
    await c.query('CHECKPOINT');
    await c.end();
    const backup = await takeBaseBackup(cluster, join(dir, 'restore', 'data'), runAs);

    workload = new Workload({ host, port, clients: 4, record, log });
    workload.start();
    await sleep(1500);
    log(`primary-loss: quorum lost (safekeepers 1 and 2 stopped) with ${record.acknowledged.size} acknowledged`);
    await cluster.stopSafekeeper(1);
    await cluster.stopSafekeeper(2);
    const before = record.acknowledged.size;
    await sleep(2000);
    const during = record.acknowledged.size - before;
    log(`primary-loss: ${during} acknowledged during the quorum loss; now the primary and the proposer are lost and safekeeper 3's disk is wiped`);
    await cluster.postgres.stop('kill');
    await cluster.killProposer();
    await workload.stop();
    workload = undefined;
    await cluster.killSafekeeper(3);
    rmSync(join(dir, 'safekeepers', 'sk3'), { recursive: true, force: true });

    // Restore from the most advanced survivor: its files are PostgreSQL WAL segments.
    await cluster.startSafekeeper(1);
    await cluster.startSafekeeper(2);
    const flushes = await Promise.all([1, 2].map(async (id) => ({ id, flush: parseLsn((await safekeeperTimeline(cluster, id))!.flush_lsn as string) })));
    const best = flushes.reduce((a, b) => (b.flush > a.flush ? b : a));
    const tlDir = join(dir, 'safekeepers', `sk${best.id}`, 'tenants', cluster.config.tenant_id, cluster.config.timeline_id);
    const walDir = join(dir, 'restore', 'wal');
    mkdirSync(walDir, { recursive: true });
    for (const f of readdirSync(tlDir).filter((n) => /^[0-9A-F]{24}(\.partial)?$/.test(n))) {
      const target = join(walDir, f.replace('.partial', ''));
      copyFileSync(join(tlDir, f), target);
      if (runAs) chownSync(target, runAs.uid, runAs.gid);
    }
    if (runAs) chownSync(walDir, runAs.uid, runAs.gid);
    await killCluster(cluster);
    log(`primary-loss: restoring from safekeeper ${best.id}'s WAL (flushed up to ${formatLsn(best.flush)})`);
    restored = await startRestoredServer(backup, walDir, host, portBase + EXTRA_PORT.restoredPostgres, join(dir, 'logs', 'restored.log'), runAs);
    const check = checkLedger(record.acknowledged, record.attempted, await readLedger(host, portBase + EXTRA_PORT.restoredPostgres));
    const report: PrimaryLossReport = {
      acknowledged: record.acknowledged.size,
      acknowledgedDuringQuorumLoss: during,
      restoredFrom: best.id,
      restoredUpTo: formatLsn(best.flush),
      lost: check.lost.length,
      phantoms: check.phantoms.length,
      duplicates: check.duplicates,
      ok: check.ok,
    };
    log(`primary-loss: ${JSON.stringify(report)}`);
    return report;
  } finally {
    if (savedEnv === undefined) delete process.env[UNSAFE_ACK_ENV];
    else process.env[UNSAFE_ACK_ENV] = savedEnv;
    await workload?.stop().catch(() => undefined);
    await restored?.stop('immediate').catch(() => undefined);
    await killCluster(cluster);
    rmSync(dir, { recursive: true, force: true });
  }
}
