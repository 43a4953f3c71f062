// Minimal structural types of the core Kubernetes objects the builders emit and the controllers read.
// (Loose on purpose: the builders are validated against kubernetes-models in tests.)
import type { ObjectMeta } from '../api/schema.js';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

export type Json = Record<string, unknown>;

export interface PodLike extends KubeObject {
  spec?: Json;
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: Array<{ type: string; status: string }>;
  };
}

export interface StatefulSetLike extends KubeObject {
  spec: {
    replicas?: number;
    template: { metadata?: ObjectMeta; spec?: Json };
    [field: string]: unknown;
  };
  status?: Json;
}

export interface SecretLike extends KubeObject {
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  type?: string;
}

export function podReady(pod: PodLike | undefined): boolean {
  return !!pod?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
}
