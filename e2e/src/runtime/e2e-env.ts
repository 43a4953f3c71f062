// The end-to-end environment: the harness with the process runtime (real safekeepers, real
// PostgreSQL computes), the Helm chart's CRDs and RBAC applied with the real kubectl from
// `helm template`, and the real operator as a local process (ARCHITECTURE §11: the chart's
// Deployment is not run; the operator runs beside the harness as a user would run it).
// Test infrastructure only.
import { dump } from 'js-yaml';
import { findAll, render, type KubeObject } from '../chart/helm.js';
import { type OperatorEnv, type OperatorEnvOptions, startOperatorEnv } from './operator-env.js';

/** Kinds of the rendered chart that make sense without a container runtime for the operator image. */
export const APPLIED_CHART_KINDS = ['Namespace', 'CustomResourceDefinition', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'];

export interface E2eEnv extends OperatorEnv {
  /** the chart's objects that were applied (kind/name) */
  chartApplied: string[];
}

/** Renders helm/walkeeper into the namespace the operator watches and applies its CRDs and RBAC. */
export async function startE2eEnv(opts: OperatorEnvOptions & { namespace?: string }): Promise<E2eEnv> {
  const namespace = opts.namespace ?? 'default';
  const objs: KubeObject[] = render(undefined, { namespace });
  const parts = APPLIED_CHART_KINDS.flatMap((k) => findAll(objs, k));
  if (!parts.some((o) => o.kind === 'CustomResourceDefinition')) throw new Error('the rendered chart holds no CustomResourceDefinition');
  const env = await startOperatorEnv({ ...opts, applyCrds: false, startOperator: false });
  try {
    const r = await env.apply(parts.map((o) => dump(o, { noRefs: true })).join('---\n'));
    if (r.code !== 0) throw new Error(`kubectl apply of the chart's CRDs and RBAC failed: ${r.stderr || r.stdout}`);
    if (opts.startOperator !== false) await env.startOperator();
  } catch (e) {
    await env.stop();
    throw e;
  }
  return { ...env, chartApplied: parts.map((o) => `${o.kind}/${o.metadata.name}`) };
}
