// Pure status arithmetic for a Safekeeper: which members are caught up per timeline, the quorum
// numbers, the member list and the Available/Progressing/Degraded conditions.
import type { Condition, Safekeeper, SafekeeperMemberStatus, SafekeeperStatus } from '../../api/schema.js';
import { parseLsn } from '../../lsn.js';
import { majority, type MemberObservation, type RolloutAction } from '../../rollout/planner.js';
import { revisionOf } from '../../specs/safekeeper.js';
import { mergeConditions, type ConditionInput } from '../common/conditions.js';
import type { MemberReport } from './observe.js';

/** Every "tenant/timeline" any member reported. */
export function timelinesOf(reports: MemberReport[]): string[] {
  return [...new Set(reports.flatMap((r) => Object.keys(r.timelines)))].sort();
}

/** Per timeline, the reference commit LSN: the highest commit LSN any member reports. */
export function commitLsnOf(reports: MemberReport[]): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  for (const t of timelinesOf(reports)) {
    let max = 0n;
    for (const r of reports) {
      const v = r.timelines[t];
      if (!v) continue;
      const commit = parseLsn(v.commit_lsn);
      if (commit > max) max = commit;
    }
    out[t] = max;
  }
  return out;
}

/**
 * A member is caught up on a timeline when it answered, holds the timeline and its flush LSN is
 * within `lagThresholdBytes` of the reference commit LSN. A member that did not answer is never
 * caught up, whatever it reported before (or did not report).
 */
export function caughtUpMap(reports: MemberReport[], lagThresholdBytes: bigint): Map<string, Record<string, boolean>> {
  const timelines = timelinesOf(reports);
  const reference = commitLsnOf(reports);
  const out = new Map<string, Record<string, boolean>>();
  for (const r of reports) {
    const flags: Record<string, boolean> = {};
    for (const t of timelines) {
      const v = r.timelines[t];
      flags[t] = r.reachable && !!v && parseLsn(v.flush_lsn) + lagThresholdBytes >= reference[t]!;
    }
    out.set(r.name, flags);
  }
  return out;
}

/** Whether the member is caught up on every timeline of the cluster; an unreachable member never is. */
export function memberCaughtUp(report: MemberReport, flags: Record<string, boolean>, timelines: string[]): boolean {
  return report.reachable && timelines.every((t) => flags[t] === true);
}

export function toMemberObservations(reports: MemberReport[], lagThresholdBytes: bigint): MemberObservation[] {
  const caughtUp = caughtUpMap(reports, lagThresholdBytes);
  return reports.map((r) => ({
    name: r.name,
    ordinal: r.ordinal,
    podExists: !!r.pod,
    deleting: !!r.pod?.metadata.deletionTimestamp,
    ready: r.podReady && r.reachable,
    revision: revisionOf(r.pod),
    caughtUp: caughtUp.get(r.name) ?? {},
    flushLsn: r.reachable ? Object.fromEntries(Object.entries(r.timelines).map(([t, v]) => [t, parseLsn(v.flush_lsn)])) : {},
  }));
}

export interface SafekeeperStatusInputs {
  sk: Safekeeper;
  desiredRevision: string;
  reports: MemberReport[];
  members: MemberObservation[];
  plan: RolloutAction;
  now: string;
  /** A spec problem the operator refused to act on (reported as Degraded). */
  specError?: string;
}

export function computeSafekeeperStatus(input: SafekeeperStatusInputs): SafekeeperStatus {
  const { sk, desiredRevision, reports, members, plan, now } = input;
  const size = sk.spec.replicas;
  const required = majority(size);
  const timelines = timelinesOf(reports);
  const memberStatus: SafekeeperMemberStatus[] = members.map((m, i) => ({
    name: m.name,
    ready: m.ready,
    ...(m.revision ? { revision: m.revision } : {}),
    timelines: Object.keys(reports[i].timelines).length,
    caughtUp: memberCaughtUp(reports[i], m.caughtUp, timelines),
    ...(reports[i].disk ? { disk: reports[i].disk } : {}),
    ...(reports[i].error ? { lastError: reports[i].error } : !reports[i].pod ? { lastError: 'pod does not exist' } : {}),
  }));
  const available = members.filter((m) => m.ready).length;
  const readyReplicas = reports.filter((r) => r.podReady).length;
  const updated = members.filter((m) => m.podExists && m.revision === desiredRevision).length;
  const quorumStatus = available === size ? 'Healthy' : available >= required ? 'Degraded' : 'Lost';

  const conditions: ConditionInput[] = [];
  conditions.push(
    available >= required
      ? { type: 'Available', status: 'True', reason: 'QuorumAvailable', message: `${available} of ${size} members ready; ${required} required` }
      : { type: 'Available', status: 'False', reason: 'QuorumLost', message: `${available} of ${size} members ready; ${required} required` },
  );
  if (plan.type === 'none') {
    conditions.push({ type: 'Progressing', status: 'False', reason: 'RolloutComplete', message: plan.reason });
  } else {
    const restarting = plan.type === 'deletePod' || (plan.type === 'wait' && plan.restarting !== undefined);
    const reason = restarting ? 'RestartingMember' : plan.type === 'hold' ? 'RolloutHeld' : 'RolloutWaiting';
    conditions.push({ type: 'Progressing', status: 'True', reason, message: `${updated} of ${size} members on revision ${desiredRevision}; ${plan.reason}` });
  }
  const troubled = memberStatus.filter((m) => !m.ready || !m.caughtUp);
  if (input.specError) {
    conditions.push({ type: 'Degraded', status: 'True', reason: 'InvalidSpec', message: input.specError });
  } else if (troubled.length > 0) {
    const what = troubled.map((m) => `${m.name} (${!m.ready ? (m.lastError ? 'not ready: ' + m.lastError : 'not ready') : 'lagging'})`).join('; ');
    conditions.push({ type: 'Degraded', status: 'True', reason: available >= required ? 'MembersUnhealthy' : 'QuorumLost', message: what });
  } else {
    conditions.push({ type: 'Degraded', status: 'False', reason: 'AllMembersHealthy', message: `all ${size} members ready and caught up` });
  }

  return {
    observedGeneration: sk.metadata.generation,
    replicas: size,
    readyReplicas,
    updatedReplicas: updated,
    revision: desiredRevision,
    members: memberStatus,
    quorum: { size, required, available, status: quorumStatus },
    conditions: mergeConditions(sk.status?.conditions as Condition[] | undefined, conditions, now, sk.metadata.generation),
  };
}
