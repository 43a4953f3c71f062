// Pure status arithmetic for a Tenant: commit LSN, per-member flush LSN and lag, quorum, compute,
// and the Registered/QuorumHealthy/ComputeReady/Ready conditions.
import type { Condition, Tenant, TenantMemberStatus, TenantStatus } from '../../api/schema.js';
import { formatLsn, parseLsn } from '../../lsn.js';
import { majority } from '../../rollout/planner.js';
import { mergeConditions, type ConditionInput } from '../common/conditions.js';
import type { ProposerStatusJson } from '@walkeeper/dataplane/api';
import type { TenantMemberReport } from './register.js';

export interface ComputeObservation {
  enabled: boolean;
  podReady: boolean;
  service?: string;
  secret?: string;
  /** The proposer sidecar's HTTP API, when the pod has an address. */
  proposerUrl?: string;
  proposer?: ProposerStatusJson;
  proposerError?: string;
}

export interface TenantStatusInputs {
  tenant: Tenant;
  tenantId: string;
  timelineId: string;
  /** Quorum size of the referenced Safekeeper (0 when it does not exist). */
  size: number;
  members: TenantMemberReport[];
  compute: ComputeObservation;
  lagThresholdBytes: bigint;
  now: string;
  /** The Safekeeper offloads WAL to remote storage: report the offload position and lag. */
  offloadEnabled?: boolean;
  /** status.backup as this pass's backup step computed it (spec.backup set). */
  backup?: NonNullable<TenantStatus['backup']>;
  /** Why nothing could be registered (e.g. the Safekeeper does not exist). */
  problem?: { reason: string; message: string };
  /** Why the compute is not applied (e.g. a recovery source that cannot be used). */
  computeProblem?: { reason: string; message: string };
}

const clampNumber = (v: bigint) => (v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v));

export function computeTenantStatus(input: TenantStatusInputs): TenantStatus {
  const { tenant, tenantId, timelineId, size, members, compute, lagThresholdBytes, now } = input;
  let commit = 0n;
  for (const m of members) if (m.timeline) commit = maxBig(commit, parseLsn(m.timeline.commit_lsn));
  if (compute.proposer?.commit_lsn) commit = maxBig(commit, parseLsn(compute.proposer.commit_lsn));

  const memberStatus: TenantMemberStatus[] = members.map((m) => {
    const flush = m.timeline ? parseLsn(m.timeline.flush_lsn) : undefined;
    return {
      name: m.name,
      registered: m.registered,
      ...(flush !== undefined ? { flushLsn: formatLsn(flush), lagBytes: clampNumber(commit > flush ? commit - flush : 0n) } : {}),
      ...(m.timeline?.backup_lsn !== undefined ? { backupLsn: m.timeline.backup_lsn } : {}),
      ...(m.timeline?.local_start_lsn !== undefined ? { localStartLsn: m.timeline.local_start_lsn } : {}),
      ...(m.error ? { lastError: m.error } : {}),
    };
  });
  // The bucket holds what any member confirmed there; the lag is the committed WAL beyond it.
  let backup = 0n;
  for (const m of members) if (m.timeline?.backup_lsn) backup = maxBig(backup, parseLsn(m.timeline.backup_lsn));
  const offload = input.offloadEnabled && members.some((m) => m.timeline?.backup_lsn !== undefined)
    ? { backupLsn: formatLsn(backup), lagBytes: clampNumber(commit > backup ? commit - backup : 0n) }
    : undefined;
  const caughtUp = members.filter((m) => m.timeline && parseLsn(m.timeline.flush_lsn) + lagThresholdBytes >= commit).length;
  const required = majority(size);
  const registered = members.filter((m) => m.registered).length;
  const proposerUnhealthy = compute.enabled && compute.proposer !== undefined && compute.proposer.quorum_healthy === false;
  const healthy = size > 0 && caughtUp >= required && !proposerUnhealthy;

  const conditions: ConditionInput[] = [];
  if (input.problem) {
    conditions.push({ type: 'Registered', status: 'False', reason: input.problem.reason, message: input.problem.message });
  } else if (size > 0 && registered === size) {
    conditions.push({ type: 'Registered', status: 'True', reason: 'RegisteredOnAllMembers', message: `tenant ${tenantId} timeline ${timelineId} exists on all ${size} members` });
  } else {
    const missing = members.filter((m) => !m.registered).map((m) => `${m.name}${m.error ? ` (${m.error})` : ''}`);
    conditions.push({ type: 'Registered', status: 'False', reason: 'PartiallyRegistered', message: `registered on ${registered} of ${size} members; missing: ${missing.join('; ')}` });
  }
  if (healthy) {
    conditions.push({ type: 'QuorumHealthy', status: 'True', reason: 'QuorumCaughtUp', message: `${caughtUp} of ${size} members caught up; ${required} required` });
  } else if (proposerUnhealthy) {
    conditions.push({ type: 'QuorumHealthy', status: 'False', reason: 'ProposerReportsUnhealthy', message: `proposer (${compute.proposer!.state}) reports the quorum unhealthy${compute.proposer!.reason ? `: ${compute.proposer!.reason}` : ''}` });
  } else {
    conditions.push({ type: 'QuorumHealthy', status: 'False', reason: size === 0 ? 'NoSafekeepers' : 'QuorumBehind', message: `${caughtUp} of ${size} members caught up; ${required} required` });
  }
  let computeReady = false;
  if (!compute.enabled) {
    conditions.push({ type: 'ComputeReady', status: 'False', reason: 'ComputeDisabled', message: 'spec.compute.enabled is false' });
  } else if (input.computeProblem) {
    conditions.push({ type: 'ComputeReady', status: 'False', reason: input.computeProblem.reason, message: input.computeProblem.message });
  } else if (!compute.podReady) {
    conditions.push({ type: 'ComputeReady', status: 'False', reason: 'ComputeStarting', message: 'the PostgreSQL pod is not ready' });
  } else if (compute.proposer?.state !== 'streaming') {
    const state = compute.proposer?.state ?? 'unreachable';
    const why = compute.proposer?.reason ?? compute.proposerError;
    conditions.push({ type: 'ComputeReady', status: 'False', reason: 'ProposerNotStreaming', message: `proposer is ${state}${why ? `: ${why}` : ''}` });
  } else {
    computeReady = true;
    conditions.push({ type: 'ComputeReady', status: 'True', reason: 'Streaming', message: 'PostgreSQL is ready and the proposer is streaming WAL to the safekeepers' });
  }
  const registeredAll = conditions[0].status === 'True';
  const ready = registeredAll && healthy && (computeReady || !compute.enabled);
  conditions.push(
    ready
      ? { type: 'Ready', status: 'True', reason: 'Ready', message: 'tenant registered, quorum healthy' + (compute.enabled ? ', compute streaming' : '') }
      : {
          type: 'Ready',
          status: 'False',
          reason: 'NotReady',
          message: conditions.filter((c) => c.status !== 'True' && !(c.type === 'ComputeReady' && !compute.enabled)).map((c) => `${c.type}: ${c.reason}`).join(', '),
        },
  );

  return {
    observedGeneration: tenant.metadata.generation,
    tenantId,
    timelineId,
    ...(members.some((m) => m.timeline) || compute.proposer?.commit_lsn ? { commitLsn: formatLsn(commit) } : {}),
    ...(offload ? { offload } : {}),
    ...(input.backup ? { backup: input.backup } : {}),
    // resolved once (recovery.ts) and never recomputed
    ...(tenant.status?.recoveredFrom ? { recoveredFrom: tenant.status.recoveredFrom } : {}),
    members: memberStatus,
    quorum: { members: size, caughtUp, healthy },
    compute: {
      ready: computeReady,
      ...(compute.service ? { service: compute.service } : {}),
      ...(compute.secret ? { secret: compute.secret } : {}),
      ...(compute.proposer ? { proposer: compute.proposer.state } : {}),
    },
    conditions: mergeConditions(tenant.status?.conditions as Condition[] | undefined, conditions, now, tenant.metadata.generation),
  };
}

function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
