// Reads facts from the operator's TypeScript source (env names, client kinds, CRD constants) so the
// chart tests fail when the operator changes under the chart. The path is computed at run time so
// that tsc does not pull operator/ into the e2e project (jest's swc transform loads it).
import path from 'node:path';
import { ROOT } from '../../src/chart/helm.js';

export async function operatorModule<T>(rel: string): Promise<T> {
  return (await import(path.join(ROOT, 'operator', 'src', rel))) as T;
}

export interface OperatorConfigModule {
  HELP: string;
  parseConfig(argv: string[], env: NodeJS.ProcessEnv): { namespace: string; leaderElect: boolean; leaseName: string; leaseNamespace: string; metricsAddr: string; healthAddr: string; logLevel: string };
}
export interface OperatorKubeModule {
  kinds: Record<string, { apiVersion: string; kind: string; plural: string; namespaced: boolean }>;
}
export interface OperatorSchemaModule {
  GROUP: string;
  VERSION: string;
  DEFAULT_IMAGE: string;
}
export interface OperatorValidationModule {
  validateResource(kind: 'Safekeeper' | 'Tenant', obj: unknown): { valid: boolean; errors: string[] };
}
export interface OperatorSafekeeperSpecModule {
  SAFEKEEPER_UID: number;
}
