// The Safekeeper reconcile loop: level-triggered, one pass re-derives everything from the cluster
// and the members' HTTP APIs, applies children, takes at most one rollout step, writes status if it changed.
import { ANNOTATION_RESTARTED_AT, type Safekeeper } from '../../api/schema.js';
import { validateResource } from '../../api/validation.js';
import { planRollout, type RolloutAction } from '../../rollout/planner.js';
import { isConflict, kinds, splitKey } from '../../runtime/kube.js';
import type { ReconcileResult } from '../../runtime/queue.js';
import { buildStatefulSet, revisionOf } from '../../specs/safekeeper.js';
import { writeStatusIfChanged } from '../common/apply.js';
import type { ControllerContext } from '../context.js';
import { applySafekeeperChildren } from './apply.js';
import { listMemberPods, observeMembers, rereadFlush } from './observe.js';
import { executeRollout } from './rollout.js';
import { commitLsnOf, computeSafekeeperStatus, timelinesOf, toMemberObservations } from './status.js';

export async function reconcileSafekeeper(ctx: ControllerContext, key: string): Promise<ReconcileResult> {
  const { namespace, name } = splitKey(key);
  const found = await ctx.client.get<Safekeeper & { [k: string]: unknown }>(kinds.Safekeeper, namespace, name);
  if (!found || found.metadata.deletionTimestamp) return {}; // children go with owner-reference GC

  // Defaults the API server should already have applied; applied again so a bare object still works.
  const checked = validateResource<Safekeeper>('Safekeeper', found);
  const sk = checked.value;
  if (!checked.valid) {
    const now = ctx.now().toISOString();
    const status = computeSafekeeperStatus({
      sk, desiredRevision: sk.status?.revision ?? '', reports: [], members: [], now,
      plan: { type: 'wait', reason: 'spec is invalid' },
      specError: checked.errors.join('; '),
    });
    await writeStatusIfChanged(ctx.client, found, status);
    return { requeueAfterMs: ctx.options.pollIntervalMs };
  }

  const { statefulSet } = await applySafekeeperChildren(ctx, sk);
  const desiredRevision = revisionOf(buildStatefulSet(sk, { clusterDomain: ctx.options.clusterDomain }))!;

  const pods = await listMemberPods(ctx, sk);
  const reports = await observeMembers(ctx, sk, pods);
  const members = toMemberObservations(reports, ctx.options.lagThresholdBytes);
  const planFor = (observed: typeof members): RolloutAction =>
    planRollout({
      desiredRevision,
      statefulSetRevision: revisionOf(statefulSet),
      size: sk.spec.replicas,
      members: observed,
      timelines: timelinesOf(reports),
      commitLsn: commitLsnOf(reports),
      commitSlackBytes: ctx.options.commitSlackBytes,
      restartedAt: sk.metadata.annotations?.[ANNOTATION_RESTARTED_AT],
    });
  let plan = planFor(members);
  if (plan.type === 'wait' && plan.awaitingCommit) {
    // Held only by the commit gate: read the flush LSNs once more, now that the commit LSNs are
    // known, and judge those against the commit LSNs of the first round.
    plan = planFor(toMemberObservations(await rereadFlush(ctx, sk, reports), ctx.options.lagThresholdBytes));
  }
  // Status first, then the step: a reader who sees a member go down must already find
  // Progressing saying why (a pass that acted first left the previous pass's RolloutComplete
  // in place until its own status write). A conflict skips the step: nothing happened yet.
  const status = computeSafekeeperStatus({ sk, desiredRevision, reports, members, plan, now: ctx.now().toISOString() });
  try {
    await writeStatusIfChanged(ctx.client, found, status);
  } catch (e) {
    if (!isConflict(e)) throw e;
    return { requeueAfterMs: 0 }; // the object changed under us: recompute from a fresh read
  }
  await executeRollout(ctx, sk, plan, reports);

  if (plan.type === 'deletePod') return { requeueAfterMs: 2000 };
  if (plan.type === 'wait' && plan.restarting !== undefined) return { requeueAfterMs: 2000 }; // a restart in flight: follow it closely
  if (plan.type !== 'none') return { requeueAfterMs: 5000 };
  return { requeueAfterMs: ctx.options.pollIntervalMs };
}
