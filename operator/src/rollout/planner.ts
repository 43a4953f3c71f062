// The rolling-restart planner (ARCHITECTURE §10): a pure function from observed cluster state to the
// one next action. It keeps no memory; every pass re-derives the plan, so an operator restart
// mid-rollout simply continues where the pods say it is.
//
// Two notions of "caught up" meet here:
// - `caughtUp` (status, health): the member's flush LSN is within the lag threshold (one WAL
//   segment by default) of the commit LSN. Coarse on purpose: it must not flap under load.
// - at the commit LSN (the restart gate): flush LSN at most `commitSlackBytes` below the commit
//   LSN. Before a member is deleted, a majority of the cluster WITHOUT that member must be at the
//   commit LSN on every timeline; otherwise the deletion leaves a quorum in which some member
//   first has to catch up, and commits stall until it has (seen on a real cluster: 1.18 s).

export interface MemberObservation {
  name: string;
  /** StatefulSet ordinal; lower ordinals roll first. */
  ordinal: number;
  podExists: boolean;
  /** The pod has a deletionTimestamp (it is going away). */
  deleting: boolean;
  /** Kubelet-ready and answering its HTTP status endpoint. */
  ready: boolean;
  /** Pod template hash the pod was created from; undefined when unknown. */
  revision: string | undefined;
  /** Per timeline key ("tenant/timeline"): the member holds WAL within the lag threshold of the commit LSN. */
  caughtUp: Record<string, boolean>;
  /** Per timeline key: the flush LSN the member reported; absent when it does not hold the timeline or did not answer. */
  flushLsn: Record<string, bigint>;
}

export interface RolloutInput {
  desiredRevision: string;
  /** Revision the StatefulSet currently carries; pods recreated now get this template. */
  statefulSetRevision: string | undefined;
  /** Quorum size (spec.replicas). */
  size: number;
  members: MemberObservation[];
  /** Every timeline the cluster holds (union over members). */
  timelines: string[];
  /** Per timeline: the commit LSN (the highest any member reported). A timeline missing here counts as 0/0. */
  commitLsn: Record<string, bigint>;
  /** How far below the commit LSN a member may be and still count as at it, for the restart gate. */
  commitSlackBytes: bigint;
  /** The Safekeeper's walkeeper.io/restartedAt, for messages only (it is already part of the revision). */
  restartedAt?: string;
  /** A single-member cluster cannot keep a majority through a restart; allow it anyway (default true). */
  allowSingleMemberRestart?: boolean;
}

export type RolloutAction =
  | { type: 'none'; reason: string }
  /**
   * Nothing to do now. `restarting` names the member whose restart is still in flight (gone,
   * terminating, or back on the new revision but not yet ready or caught up). `awaitingCommit`:
   * the wait is for members to reach the commit LSN; a fresher reading of their flush LSNs may
   * already show it (the shell may re-read flush LSNs and plan again).
   */
  | { type: 'wait'; reason: string; restarting?: string; awaitingCommit?: boolean }
  | { type: 'hold'; reason: string }
  | { type: 'deletePod'; name: string; reason: string };

/**
 * Default restart-gate slack: two WAL pages (16 KiB). A member this close to the commit LSN is a
 * few records behind (two full-page images, or a few dozen ordinary records), i.e. it is on the
 * proposer's live stream: what it lacks is in the AppendRequest already in flight to it (up to
 * 128 KiB each), never WAL it must first fetch from a peer. Zero would make the gate wait for a
 * moment of no writes; one WAL segment (the health threshold) is the 16 MiB that stalled commits.
 */
export const DEFAULT_COMMIT_SLACK_BYTES = 16n * 1024n;

export function majority(size: number): number {
  return Math.floor(size / 2) + 1;
}

export function isOutdated(m: MemberObservation, desiredRevision: string): boolean {
  return m.revision !== desiredRevision;
}

function up(m: MemberObservation): boolean {
  return m.podExists && !m.deleting && m.ready;
}

function healthy(m: MemberObservation, timelines: string[]): boolean {
  return up(m) && timelines.every((t) => m.caughtUp[t] === true);
}

/** How many bytes member m is below the commit LSN on timeline t (undefined: it does not hold it). */
export function bytesBehind(m: MemberObservation, t: string, commitLsn: Record<string, bigint>): bigint | undefined {
  const flush = m.flushLsn[t];
  if (flush === undefined) return undefined;
  const commit = commitLsn[t] ?? 0n;
  return commit > flush ? commit - flush : 0n;
}

/** Member m is up and at the commit LSN of timeline t (within slack). */
export function atCommit(m: MemberObservation, t: string, commitLsn: Record<string, bigint>, slack: bigint): boolean {
  const behind = bytesBehind(m, t, commitLsn);
  return up(m) && behind !== undefined && behind <= slack;
}

/** Members other than `exclude` that are up and at the commit LSN of timeline `t`. */
export function atCommitWithout(members: MemberObservation[], exclude: string, t: string, commitLsn: Record<string, bigint>, slack: bigint): number {
  return members.filter((m) => m.name !== exclude && atCommit(m, t, commitLsn, slack)).length;
}

/** Members other than `exclude` that are up and caught up (lag threshold) on timeline `t`. */
export function caughtUpWithout(members: MemberObservation[], exclude: string, t: string): number {
  return members.filter((m) => m.name !== exclude && up(m) && m.caughtUp[t] === true).length;
}

const kib = (b: bigint) => (b < 1024n ? `${b} B` : `${(Number(b) / 1024).toFixed(1)} KiB`);

export function planRollout(input: RolloutInput): RolloutAction {
  const { desiredRevision, members, timelines, size, commitLsn, commitSlackBytes: slack } = input;
  const sorted = [...members].sort((a, b) => a.ordinal - b.ordinal);
  const outdated = sorted.filter((m) => isOutdated(m, desiredRevision));
  const why = input.restartedAt ? ` (restart requested at ${input.restartedAt})` : '';
  const restarted = (m: MemberObservation) => !isOutdated(m, desiredRevision);

  if (outdated.length === 0) {
    // Every pod runs the new template, but the rollout is complete only once the members it
    // restarted are ready and caught up again: the last one may still be Pending or behind.
    const notReady = sorted.find((m) => !up(m));
    if (notReady) return { type: 'wait', restarting: notReady.name, reason: `member ${notReady.name} is back on revision ${desiredRevision}; waiting for it to become ready` };
    const behind = sorted.find((m) => !healthy(m, timelines));
    if (behind) {
      const t = timelines.find((x) => behind.caughtUp[x] !== true)!;
      return { type: 'wait', restarting: behind.name, reason: `member ${behind.name} is back on revision ${desiredRevision}; waiting for it to catch up on timeline ${t}` };
    }
    return { type: 'none', reason: `all ${members.length} members run revision ${desiredRevision}, ready and caught up` };
  }

  if (input.statefulSetRevision !== desiredRevision) {
    return { type: 'wait', reason: `StatefulSet not yet on revision ${desiredRevision}; a pod deleted now would come back with the old template` };
  }

  // 1. Something is already down or going away: never add a second casualty.
  const gone = sorted.find((m) => !m.podExists || m.deleting);
  if (gone) return { type: 'wait', restarting: gone.name, reason: `member ${gone.name} is ${gone.podExists ? 'terminating' : 'being recreated'}` };

  // 2. Exactly one member is not ready. If it is outdated, restarting it onto the new template costs
  //    nothing (it is already out) and may be what fixes it (template changed again mid-rollout).
  const notReady = sorted.filter((m) => !m.ready);
  if (notReady.length > 0) {
    const only = notReady[0];
    if (notReady.length === 1 && isOutdated(only, desiredRevision)) {
      return { type: 'deletePod', name: only.name, reason: `member ${only.name} is not ready and runs outdated revision ${only.revision ?? '<none>'}; restarting it on ${desiredRevision}${why}` };
    }
    const first = notReady.find(restarted);
    return { type: 'wait', ...(first ? { restarting: first.name } : {}), reason: `waiting for ${notReady.map((m) => m.name).join(', ')} to become ready` };
  }

  // 3. Everyone is up; wait for laggards (typically the member just restarted) to catch up.
  for (const m of sorted) {
    const behind = timelines.filter((t) => m.caughtUp[t] !== true);
    if (behind.length > 0) {
      return { type: 'wait', ...(restarted(m) ? { restarting: m.name } : {}), reason: `member ${m.name} is catching up on ${behind.length} timeline(s), e.g. ${behind[0]}` };
    }
  }

  // 4. All healthy: pick the lowest-ordinal outdated member and check the quorum gate without it.
  const candidate = outdated[0];
  const need = majority(size);
  if (size > 1 || input.allowSingleMemberRestart === false) {
    const upWithout = sorted.filter((m) => m.name !== candidate.name && healthy(m, timelines)).length;
    if (upWithout < need) {
      return { type: 'hold', reason: `restarting ${candidate.name} would leave ${upWithout} of ${size} members up; ${need} are required` };
    }
    // 5. The commit gate: without the candidate, a majority must be at the commit LSN on every
    //    timeline, so the quorum that remains can commit the next record without catching up first.
    for (const t of timelines) {
      const n = atCommitWithout(sorted, candidate.name, t, commitLsn, slack);
      if (n < need) {
        const laggards = sorted.filter((m) => m.name !== candidate.name && !atCommit(m, t, commitLsn, slack));
        const lagger = laggards.find(restarted);
        const detail = laggards.map((m) => `${m.name} ${kib(bytesBehind(m, t, commitLsn) ?? 0n)} behind`).join(', ');
        return {
          type: 'wait',
          awaitingCommit: true,
          ...(lagger ? { restarting: lagger.name } : {}),
          reason: `restarting ${candidate.name} waits until ${need} other members are within ${kib(slack)} of commit LSN on timeline ${t}; ${n} are (${detail})`,
        };
      }
    }
  }
  return {
    type: 'deletePod',
    name: candidate.name,
    reason: `rolling ${candidate.name} from revision ${candidate.revision ?? '<none>'} to ${desiredRevision}${why} (${outdated.length} of ${members.length} outdated)`,
  };
}
