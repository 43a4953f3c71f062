// Applies the Safekeeper's children (ConfigMap, Services, PDB, StatefulSet) from the pure builders.
import type { Safekeeper } from '../../api/schema.js';
import { buildSafekeeperChildren } from '../../specs/safekeeper.js';
import type { KubeObject } from '../../specs/types.js';
import { applyChild } from '../common/apply.js';
import type { ControllerContext } from '../context.js';

export async function applySafekeeperChildren(ctx: ControllerContext, sk: Safekeeper): Promise<{ statefulSet: KubeObject; writes: number }> {
  let statefulSet: KubeObject | undefined;
  let writes = 0;
  for (const desired of buildSafekeeperChildren(sk, { clusterDomain: ctx.options.clusterDomain })) {
    const out = await applyChild(ctx.client, desired, ctx.log);
    if (out.result !== 'unchanged') {
      writes++;
      const what = `${desired.kind} ${desired.metadata.name}`;
      const message = out.result === 'updated' ? `updated ${what} (${out.field} changed)` : `created ${what}`;
      ctx.events.record(sk as unknown as KubeObject, 'Normal', out.result === 'created' ? 'Created' : 'Updated', message);
    }
    if (desired.kind === 'StatefulSet') statefulSet = out.object;
  }
  return { statefulSet: statefulSet!, writes };
}
