// In-memory object storage with a global resourceVersion counter and a bounded event history.
import { clone, type KObject } from './util.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
export interface StoreEvent {
  rv: number;
  key: string;
  type: EventType;
  object: KObject;
  old?: KObject;
}

export class Store {
  private data = new Map<string, Map<string, KObject>>();
  private history: StoreEvent[] = [];
  private listeners = new Set<(e: StoreEvent) => void>();
  rv = 1;
  /** RV of the oldest event still held (watches from older RVs get 410). */
  oldestRv = 1;

  constructor(private readonly historyLimit = 5000) {}

  private bucket(key: string): Map<string, KObject> {
    let m = this.data.get(key);
    if (!m) this.data.set(key, (m = new Map()));
    return m;
  }

  static id(ns: string | undefined, name: string): string {
    return `${ns ?? ''}/${name}`;
  }

  get(key: string, ns: string | undefined, name: string): KObject | undefined {
    return this.data.get(key)?.get(Store.id(ns, name));
  }

  list(key: string, ns?: string): KObject[] {
    const m = this.data.get(key);
    if (!m) return [];
    const out = [...m.entries()].filter(([, o]) => ns === undefined || o.metadata.namespace === ns);
    out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return out.map(([, o]) => o);
  }

  keys(): string[] {
    return [...this.data.keys()];
  }

  /** Stores obj (its resourceVersion is assigned) and emits the event. Returns the stored object. */
  put(key: string, obj: KObject, type: 'ADDED' | 'MODIFIED', old?: KObject): KObject {
    const rv = ++this.rv;
    obj.metadata.resourceVersion = String(rv);
    this.bucket(key).set(Store.id(obj.metadata.namespace, obj.metadata.name!), obj);
    this.emit({ rv, key, type, object: obj, old });
    return obj;
  }

  remove(key: string, obj: KObject): KObject {
    const rv = ++this.rv;
    this.bucket(key).delete(Store.id(obj.metadata.namespace, obj.metadata.name!));
    const gone = clone(obj);
    gone.metadata.resourceVersion = String(rv);
    this.emit({ rv, key, type: 'DELETED', object: gone, old: obj });
    return gone;
  }

  dropBucket(key: string): void {
    this.data.delete(key);
  }

  private emit(e: StoreEvent): void {
    this.history.push(e);
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.historyLimit);
      this.oldestRv = dropped[dropped.length - 1]!.rv;
    }
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        /* a listener's failure must not break the write */
      }
    }
  }

  /** Events with rv > since, or undefined when history no longer reaches back that far. */
  since(since: number): StoreEvent[] | undefined {
    if (since < this.oldestRv) return undefined;
    let lo = 0;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.history[mid]!.rv <= since) lo = mid + 1;
      else hi = mid;
    }
    return this.history.slice(lo);
  }

  subscribe(fn: (e: StoreEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  snapshot(): { rv: number; objects: Record<string, KObject[]> } {
    const objects: Record<string, KObject[]> = {};
    for (const [k, m] of this.data) objects[k] = [...m.values()];
    return { rv: this.rv, objects };
  }

  restore(s: { rv: number; objects: Record<string, KObject[]> }): void {
    this.rv = s.rv;
    this.oldestRv = s.rv;
    for (const [k, list] of Object.entries(s.objects)) {
      const m = this.bucket(k);
      for (const o of list) m.set(Store.id(o.metadata.namespace, o.metadata.name!), o);
    }
  }
}
