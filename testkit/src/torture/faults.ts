// Carries out the torture's faults on a LocalCluster, one at a time, and heals the cluster
// afterwards: every safekeeper running, PostgreSQL up, the proposer up (restarted if it
// exited on its own, as a container supervisor would) and the quorum healthy again.
import type { LocalCluster } from '@walkeeper/dataplane/local/cluster';
import { sleep } from '@walkeeper/dataplane/local/postgres';
import { describeFault, type Fault, type FaultKind } from './schedule.js';

export interface FaultCounts {
  byKind: Record<FaultKind, number>;
  /** times the proposer had exited by itself and was started again while healing */
  proposerRestartsBySupervisor: number;
  /** heals after which the quorum took longer than the wait to become healthy */
  slowRecoveries: number;
}

export function emptyFaultCounts(): FaultCounts {
  return { byKind: { kill_safekeeper: 0, restart_proposer: 0, crash_postgres: 0, quorum_loss: 0 }, proposerRestartsBySupervisor: 0, slowRecoveries: 0 };
}

export async function applyFault(cluster: LocalCluster, fault: Fault, log: (line: string) => void): Promise<void> {
  log(`fault #${fault.seq}: ${describeFault(fault)}`);
  switch (fault.kind) {
    case 'kill_safekeeper':
    case 'quorum_loss': {
      for (const id of fault.targets) await cluster.killSafekeeper(id);
      await sleep(fault.downMs);
      for (const id of fault.targets) {
        await cluster.startSafekeeper(id);
        log(`fault #${fault.seq}: safekeeper ${id} is back`);
      }
      return;
    }
    case 'restart_proposer': {
      await cluster.killProposer();
      await sleep(fault.downMs);
      await cluster.startProposer();
      log(`fault #${fault.seq}: proposer is back`);
      return;
    }
    case 'crash_postgres': {
      await cluster.postgres.stop('kill');
      await sleep(fault.downMs);
      await cluster.postgres.start(120_000);
      log(`fault #${fault.seq}: PostgreSQL is back (crash recovery done)`);
      return;
    }
  }
}

/** Starts whatever is not running and waits (up to waitMs) for a healthy quorum; true if it became healthy. */
export async function heal(cluster: LocalCluster, counts: FaultCounts, log: (line: string) => void, waitMs = 30_000): Promise<boolean> {
  for (const sk of cluster.config.safekeepers) {
    if (!cluster.safekeeperProcess(sk.id).running) {
      log(`heal: safekeeper ${sk.id} is not running; starting it`);
      await cluster.startSafekeeper(sk.id);
    }
  }
  if (cluster.postgres.pid === undefined) {
    log('heal: PostgreSQL is not running; starting it');
    await cluster.postgres.start(120_000);
  }
  const t0 = Date.now();
  while (Date.now() - t0 < waitMs) {
    if (!cluster.proposerProcess.running) {
      counts.proposerRestartsBySupervisor++;
      log(`heal: the proposer had exited; restarting it (see ${cluster.proposerProcess.logFile})`);
      await cluster.startProposer();
    }
    const status = await cluster.proposerStatus().catch(() => undefined);
    if (status?.quorum_healthy) return true;
    await sleep(100);
  }
  counts.slowRecoveries++;
  const status = await cluster.proposerStatus().catch(() => undefined);
  log(`heal: quorum still not healthy after ${waitMs} ms: ${status ? `state=${status.state} reason=${status.reason ?? '-'} safekeepers=${status.safekeepers.map((s) => `${s.address}:${s.state}`).join(',')}` : 'proposer not answering'}`);
  return false;
}
