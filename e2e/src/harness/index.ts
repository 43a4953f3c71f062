// Local Kubernetes API harness (test infrastructure; never imported by product code).
export { startHarness, kubeconfigYaml, type Harness, type HarnessOptions } from './harness.js';
export { NullRuntime, LoopbackAllocator, type PodRuntime, type PodContext, type PodStatusReport, type ContainerStatusReport } from './runtime.js';
export { HOST_PATH_ANNOTATION } from './controllers.js';
export type { RequestCounts } from './server.js';
export type { KObject } from './util.js';
export { resolveClusterName, rewriteClusterNames, DEFAULT_CLUSTER_DOMAIN, type RewriteResult } from './dns.js';
