// The Kubernetes client interface the controllers and runtime depend on: a handful of verbs over a
// static table of resource kinds (no discovery), so it can point at any API server or an in-memory fake.
import type { KubeObject } from '../specs/types.js';

export interface ResourceKind {
  apiVersion: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

export const kinds = {
  Safekeeper: { apiVersion: 'walkeeper.io/v1alpha1', kind: 'Safekeeper', plural: 'safekeepers', namespaced: true },
  Tenant: { apiVersion: 'walkeeper.io/v1alpha1', kind: 'Tenant', plural: 'tenants', namespaced: true },
  StatefulSet: { apiVersion: 'apps/v1', kind: 'StatefulSet', plural: 'statefulsets', namespaced: true },
  Service: { apiVersion: 'v1', kind: 'Service', plural: 'services', namespaced: true },
  ConfigMap: { apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true },
  Secret: { apiVersion: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true },
  Pod: { apiVersion: 'v1', kind: 'Pod', plural: 'pods', namespaced: true },
  PodDisruptionBudget: { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', plural: 'poddisruptionbudgets', namespaced: true },
  Lease: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', plural: 'leases', namespaced: true },
  Event: { apiVersion: 'v1', kind: 'Event', plural: 'events', namespaced: true },
} as const satisfies Record<string, ResourceKind>;

export function kindOf(kind: string): ResourceKind {
  const k = (kinds as Record<string, ResourceKind>)[kind];
  if (!k) throw new Error(`unknown resource kind ${kind}`);
  return k;
}

/** An error answered by the API server (status code and the Status body's reason/message). */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const isNotFound = (e: unknown) => e instanceof ApiError && e.statusCode === 404;
export const isConflict = (e: unknown) => e instanceof ApiError && e.statusCode === 409;
export const isGone = (e: unknown) => e instanceof ApiError && e.statusCode === 410;
export const isAlreadyExists = (e: unknown) => e instanceof ApiError && e.statusCode === 409 && e.reason === 'AlreadyExists';

export interface ListResult<T> {
  items: T[];
  resourceVersion: string;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
export interface WatchHandle {
  stop(): void;
  /** Resolves when the stream ends: undefined on a clean close by the server, an error otherwise. */
  done: Promise<Error | undefined>;
}

export interface DeleteOptions {
  /** Precondition: delete only this incarnation. */
  uid?: string;
  propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
}

export interface KubeClient {
  get<T extends KubeObject>(kind: ResourceKind, namespace: string | undefined, name: string): Promise<T | undefined>;
  list<T extends KubeObject>(kind: ResourceKind, namespace: string | undefined, labelSelector?: string): Promise<ListResult<T>>;
  create<T extends KubeObject>(kind: ResourceKind, obj: T): Promise<T>;
  /** PUT with metadata.resourceVersion: 409 when the object changed since it was read. */
  replace<T extends KubeObject>(kind: ResourceKind, obj: T): Promise<T>;
  replaceStatus<T extends KubeObject>(kind: ResourceKind, obj: T): Promise<T>;
  /** JSON merge patch (include metadata.resourceVersion in the patch for optimistic locking). */
  mergePatch<T extends KubeObject>(kind: ResourceKind, namespace: string | undefined, name: string, patch: Record<string, unknown>): Promise<T>;
  /** Deletes; a missing object is not an error (returns false). */
  delete(kind: ResourceKind, namespace: string | undefined, name: string, opts?: DeleteOptions): Promise<boolean>;
  watch(
    kind: ResourceKind,
    namespace: string | undefined,
    resourceVersion: string,
    onEvent: (type: WatchEventType, obj: KubeObject) => void,
    labelSelector?: string,
  ): Promise<WatchHandle>;
}

export function keyOf(obj: { metadata: { namespace?: string; name?: string } }): string {
  return `${obj.metadata.namespace ?? ''}/${obj.metadata.name ?? ''}`;
}

export function splitKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf('/');
  return { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
