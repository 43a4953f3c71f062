// The rolling-restart planner (ARCHITECTURE §10): a pure function from observed cluster state to the
// one next action. It keeps no memory; every pass re-derives the plan, so an operator restart
// mid-rollout simply continues where the pods say it is.

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
  /** The Safekeeper's walkeeper.io/restartedAt, for messages only (it is already part of the revision). */
  restartedAt?: string;
  /** A single-member cluster cannot keep a majority through a restart; allow it anyway (default true). */
  allowSingleMemberRestart?: boolean;
}

export type RolloutAction =
  | { type: 'none'; reason: string }
  | { type: 'wait'; reason: string }
  | { type: 'hold'; reason: string }
  | { type: 'deletePod'; name: string; reason: string };

export function majority(size: number): number {
  return Math.floor(size / 2) + 1;
}

export function isOutdated(m: MemberObservation, desiredRevision: string): boolean {
  return m.revision !== desiredRevision;
}

function healthy(m: MemberObservation, timelines: string[]): boolean {
  return m.podExists && !m.deleting && m.ready && timelines.every((t) => m.caughtUp[t] === true);
}

/** Members other than `exclude` that are up and caught up on timeline `t`. */
export function caughtUpWithout(members: MemberObservation[], exclude: string, t: string): number {
  return members.filter((m) => m.name !== exclude && m.podExists && !m.deleting && m.ready && m.caughtUp[t] === true).length;
}

export function planRollout(input: RolloutInput): RolloutAction {
  const { desiredRevision, members, timelines, size } = input;
  const sorted = [...members].sort((a, b) => a.ordinal - b.ordinal);
  const outdated = sorted.filter((m) => isOutdated(m, desiredRevision));
  const why = input.restartedAt ? ` (restart requested at ${input.restartedAt})` : '';

  if (outdated.length === 0) return { type: 'none', reason: `all ${members.length} members run revision ${desiredRevision}` };

  if (input.statefulSetRevision !== desiredRevision) {
    return { type: 'wait', reason: `StatefulSet not yet on revision ${desiredRevision}; a pod deleted now would come back with the old template` };
  }

  // 1. Something is already down or going away: never add a second casualty.
  const gone = sorted.find((m) => !m.podExists || m.deleting);
  if (gone) return { type: 'wait', reason: `member ${gone.name} is ${gone.podExists ? 'terminating' : 'being recreated'}` };

  // 2. Exactly one member is not ready. If it is outdated, restarting it onto the new template costs
  //    nothing (it is already out) and may be what fixes it (template changed again mid-rollout).
  const notReady = sorted.filter((m) => !m.ready);
  if (notReady.length > 0) {
    const only = notReady[0];
    if (notReady.length === 1 && isOutdated(only, desiredRevision)) {
      return { type: 'deletePod', name: only.name, reason: `member ${only.name} is not ready and runs outdated revision ${only.revision ?? '<none>'}; restarting it on ${desiredRevision}${why}` };
    }
    return { type: 'wait', reason: `waiting for ${notReady.map((m) => m.name).join(', ')} to become ready` };
  }

  // 3. Everyone is up; wait for laggards (typically the member just restarted) to catch up.
  for (const m of sorted) {
    const behind = timelines.filter((t) => m.caughtUp[t] !== true);
    if (behind.length > 0) return { type: 'wait', reason: `member ${m.name} is catching up on ${behind.length} timeline(s), e.g. ${behind[0]}` };
  }

  // 4. All healthy: pick the lowest-ordinal outdated member and check the quorum gate without it.
  const candidate = outdated[0];
  const need = majority(size);
  if (size > 1 || input.allowSingleMemberRestart === false) {
    const upWithout = sorted.filter((m) => m.name !== candidate.name && healthy(m, timelines)).length;
    if (upWithout < need) {
      return { type: 'hold', reason: `restarting ${candidate.name} would leave ${upWithout} of ${size} members up; ${need} are required` };
    }
    for (const t of timelines) {
      const n = caughtUpWithout(sorted, candidate.name, t);
      if (n < need) return { type: 'hold', reason: `restarting ${candidate.name} would leave timeline ${t} with ${n} caught-up members; ${need} are required` };
    }
  }
  return {
    type: 'deletePod',
    name: candidate.name,
    reason: `rolling ${candidate.name} from revision ${candidate.revision ?? '<none>'} to ${desiredRevision}${why} (${outdated.length} of ${members.length} outdated)`,
  };
}
