// metav1.Condition bookkeeping: lastTransitionTime moves only when a condition's status flips.
import type { Condition } from '../../api/schema.js';

export interface ConditionInput {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

export function mergeConditions(previous: Condition[] | undefined, next: ConditionInput[], now: string, observedGeneration?: number): Condition[] {
  return next.map((c) => {
    const old = previous?.find((p) => p.type === c.type);
    const lastTransitionTime = old && old.status === c.status ? old.lastTransitionTime : now;
    return { ...c, lastTransitionTime, ...(observedGeneration !== undefined ? { observedGeneration } : {}) };
  });
}

export function conditionStatus(conditions: Condition[] | undefined, type: string): string | undefined {
  return conditions?.find((c) => c.type === type)?.status;
}
