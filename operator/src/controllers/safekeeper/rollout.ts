// Carries out the planner's decision: at most one pod deletion per pass, recorded as an Event.
import type { Safekeeper } from '../../api/schema.js';
import type { RolloutAction } from '../../rollout/planner.js';
import { kinds } from '../../runtime/kube.js';
import type { KubeObject } from '../../specs/types.js';
import type { ControllerContext } from '../context.js';
import type { MemberReport } from './observe.js';

export async function executeRollout(ctx: ControllerContext, sk: Safekeeper, plan: RolloutAction, reports: MemberReport[]): Promise<void> {
  const owner = sk as unknown as KubeObject;
  if (plan.type === 'deletePod') {
    const pod = reports.find((r) => r.name === plan.name)?.pod;
    ctx.events.record(owner, 'Normal', 'RestartingMember', plan.reason);
    // The uid precondition makes sure only the incarnation we judged is deleted.
    await ctx.client.delete(kinds.Pod, sk.metadata.namespace, plan.name, { uid: pod?.metadata.uid });
  } else if (plan.type === 'hold') {
    ctx.events.record(owner, 'Warning', 'RolloutHeld', plan.reason);
  }
}
