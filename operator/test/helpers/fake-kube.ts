// An in-memory KubeClient for controller tests: resourceVersion conflicts, status subresource,
// generation, label selectors, and a count of every write.
import { ApiError, type KubeClient, type ListResult, type ResourceKind, type WatchHandle } from '../../src/runtime/kube.js';
import type { KubeObject } from '../../src/specs/types.js';

export class FakeKube implements KubeClient {
  readonly store = new Map<string, KubeObject>();
  readonly writes: string[] = [];
  private rv = 1;

  private k(kind: ResourceKind, ns: string | undefined, name: string) {
    return `${kind.kind}/${ns ?? ''}/${name}`;
  }

  seed(kind: ResourceKind, obj: KubeObject): KubeObject {
    const o = structuredClone(obj);
    o.apiVersion ??= kind.apiVersion;
    o.kind ??= kind.kind;
    o.metadata.resourceVersion = String(this.rv++);
    o.metadata.uid ??= `uid-${o.metadata.name}-${this.rv}`;
    o.metadata.generation ??= 1;
    o.metadata.creationTimestamp ??= '2026-01-01T00:00:00Z';
    this.store.set(this.k(kind, o.metadata.namespace, o.metadata.name ?? ''), o);
    return structuredClone(o);
  }

  async get<T extends KubeObject>(kind: ResourceKind, ns: string | undefined, name: string): Promise<T | undefined> {
    const o = this.store.get(this.k(kind, ns, name));
    return o ? (structuredClone(o) as T) : undefined;
  }

  async list<T extends KubeObject>(kind: ResourceKind, ns: string | undefined, labelSelector?: string): Promise<ListResult<T>> {
    const want = (labelSelector ?? '').split(',').filter(Boolean).map((p) => p.split('='));
    const items = [...this.store.values()].filter(
      (o) => o.kind === kind.kind && (!ns || o.metadata.namespace === ns) && want.every(([lk, lv]) => o.metadata.labels?.[lk] === lv),
    );
    return { items: structuredClone(items) as T[], resourceVersion: String(this.rv) };
  }

  async create<T extends KubeObject>(kind: ResourceKind, obj: T): Promise<T> {
    const key = this.k(kind, obj.metadata.namespace, obj.metadata.name ?? '');
    if (this.store.has(key)) throw new ApiError(409, 'AlreadyExists', `${key} already exists`);
    this.writes.push(`create ${key}`);
    return this.seed(kind, obj) as T;
  }

  private current(kind: ResourceKind, obj: KubeObject): KubeObject {
    const key = this.k(kind, obj.metadata.namespace, obj.metadata.name ?? '');
    const cur = this.store.get(key);
    if (!cur) throw new ApiError(404, 'NotFound', `${key} not found`);
    if (obj.metadata.resourceVersion && obj.metadata.resourceVersion !== cur.metadata.resourceVersion) {
      throw new ApiError(409, 'Conflict', `${key}: the object has been modified`);
    }
    return cur;
  }

  async replace<T extends KubeObject>(kind: ResourceKind, obj: T): Promise<T> {
    const cur = this.current(kind, obj);
    this.writes.push(`replace ${this.k(kind, obj.metadata.namespace, obj.metadata.name ?? '')}`);
    const next = structuredClone(obj) as KubeObject;
    next.status = cur.status;
    const specChanged = JSON.stringify((obj as KubeObject).spec) !== JSON.stringify(cur.spec);
    next.metadata = { ...next.metadata, uid: cur.metadata.uid, generation: (cur.metadata.generation ?? 1) + (specChanged ? 1 : 0), resourceVersion: String(this.rv++) };
    this.store.set(this.k(kind, obj.metadata.namespace, obj.metadata.name ?? ''), next);
    return structuredClone(next) as T;
  }

  async replaceStatus<T extends KubeObject>(kind: ResourceKind, obj: T): Promise<T> {
    const cur = this.current(kind, obj);
    this.writes.push(`status ${this.k(kind, obj.metadata.namespace, obj.metadata.name ?? '')}`);
    const next = { ...structuredClone(cur), status: structuredClone((obj as KubeObject).status) };
    next.metadata.resourceVersion = String(this.rv++);
    this.store.set(this.k(kind, obj.metadata.namespace, obj.metadata.name ?? ''), next);
    return structuredClone(next) as unknown as T;
  }

  async mergePatch<T extends KubeObject>(kind: ResourceKind, ns: string | undefined, name: string, patch: Record<string, unknown>): Promise<T> {
    const key = this.k(kind, ns, name);
    const cur = this.store.get(key);
    if (!cur) throw new ApiError(404, 'NotFound', `${key} not found`);
    const meta = (patch.metadata ?? {}) as { resourceVersion?: string; finalizers?: string[] };
    if (meta.resourceVersion && meta.resourceVersion !== cur.metadata.resourceVersion) throw new ApiError(409, 'Conflict', `${key} modified`);
    this.writes.push(`patch ${key}`);
    const next = structuredClone(cur);
    if (meta.finalizers) next.metadata.finalizers = meta.finalizers;
    next.metadata.resourceVersion = String(this.rv++);
    if (next.metadata.deletionTimestamp && (next.metadata.finalizers ?? []).length === 0) this.store.delete(key);
    else this.store.set(key, next);
    return structuredClone(next) as T;
  }

  async delete(kind: ResourceKind, ns: string | undefined, name: string): Promise<boolean> {
    const key = this.k(kind, ns, name);
    const cur = this.store.get(key);
    if (!cur) return false;
    this.writes.push(`delete ${key}`);
    if ((cur.metadata.finalizers ?? []).length > 0) cur.metadata.deletionTimestamp = '2026-01-01T01:00:00Z';
    else this.store.delete(key);
    return true;
  }

  async watch(): Promise<WatchHandle> {
    return { stop: () => undefined, done: new Promise(() => undefined) };
  }
}
