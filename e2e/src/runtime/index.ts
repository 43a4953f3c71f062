// Pod runtimes and a ready-made local cluster for operator tests and benchmarks (test infrastructure).
export { ProcessRuntime, WALKEEPER_JS, type ContainerPlan, type ProcessRuntimeOptions } from './process-runtime.js';
export {
  startOperatorEnv,
  waitFor,
  writesOf,
  agentCounts,
  REPO_ROOT,
  OPERATOR_JS,
  KUBECTL,
  OPERATOR_AGENT,
  type OperatorEnv,
  type OperatorEnvOptions,
  type KubectlResult,
} from './operator-env.js';
export { startE2eEnv, APPLIED_CHART_KINDS, type E2eEnv } from './e2e-env.js';
export { postgresImage, defaultPostgresBinDir, type RunAs } from './process-runtime.js';
