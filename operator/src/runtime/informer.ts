// A supervised list-then-watch cache of one resource kind: restarts the watch after any error (with
// backoff), relists on 410 Gone, and periodically re-announces every cached object (resync) so
// level-triggered reconcilers get a safety-net pass.
import type { Logger } from 'pino';
import type { KubeObject } from '../specs/types.js';
import { isGone, keyOf, type KubeClient, type ResourceKind, type WatchHandle } from './kube.js';
import { backoffDelay, type Clock, systemClock } from './queue.js';

export type InformerEvent = 'add' | 'update' | 'delete' | 'resync';
export type InformerHandler = (event: InformerEvent, obj: KubeObject, old?: KubeObject) => void;

export interface InformerOptions {
  kind: ResourceKind;
  namespace?: string;
  labelSelector?: string;
  resyncMs?: number;
  clock?: Clock;
  log: Logger;
}

export class Informer {
  private readonly cache = new Map<string, KubeObject>();
  private readonly handlers: InformerHandler[] = [];
  private resourceVersion = '';
  private watch: WatchHandle | undefined;
  private stopped = false;
  private synced = false;
  private failures = 0;
  private resyncTimer: unknown;
  private readonly clock: Clock;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly opts: InformerOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
  }

  on(handler: InformerHandler): void {
    this.handlers.push(handler);
  }

  hasSynced(): boolean {
    return this.synced;
  }

  list(): KubeObject[] {
    return [...this.cache.values()];
  }

  get(namespace: string, name: string): KubeObject | undefined {
    return this.cache.get(`${namespace}/${name}`);
  }

  start(): void {
    this.loop = this.run();
    this.scheduleResync();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watch?.stop();
    if (this.resyncTimer) this.clock.clearTimeout(this.resyncTimer);
    await this.loop;
  }

  private emit(event: InformerEvent, obj: KubeObject, old?: KubeObject): void {
    for (const h of this.handlers) {
      try {
        h(event, obj, old);
      } catch (e) {
        this.opts.log.error({ err: e, kind: this.opts.kind.kind }, 'informer handler failed');
      }
    }
  }

  private scheduleResync(): void {
    const ms = this.opts.resyncMs ?? 5 * 60_000;
    if (this.stopped || ms <= 0) return;
    this.resyncTimer = this.clock.setTimeout(() => {
      for (const obj of this.cache.values()) this.emit('resync', obj);
      this.scheduleResync();
    }, ms);
  }

  /** Lists and replaces the cache, announcing additions, changes and disappearances. */
  private async relist(): Promise<void> {
    const { items, resourceVersion } = await this.client.list(this.opts.kind, this.opts.namespace, this.opts.labelSelector);
    const seen = new Set<string>();
    for (const obj of items) {
      const key = keyOf(obj);
      seen.add(key);
      const old = this.cache.get(key);
      this.cache.set(key, obj);
      if (!old) this.emit('add', obj);
      else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.emit('update', obj, old);
    }
    for (const [key, obj] of this.cache) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.emit('delete', obj);
      }
    }
    this.resourceVersion = resourceVersion;
    this.synced = true;
  }

  private async run(): Promise<void> {
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) {
          await this.relist();
          needList = false;
        }
        this.watch = await this.client.watch(
          this.opts.kind,
          this.opts.namespace,
          this.resourceVersion,
          (type, obj) => {
            if (obj.metadata.resourceVersion) this.resourceVersion = obj.metadata.resourceVersion;
            if (type === 'BOOKMARK') return;
            const key = keyOf(obj);
            const old = this.cache.get(key);
            if (type === 'DELETED') {
              this.cache.delete(key);
              this.emit('delete', obj);
            } else {
              this.cache.set(key, obj);
              this.emit(old ? 'update' : 'add', obj, old);
            }
          },
          this.opts.labelSelector,
        );
        const err = await this.watch.done;
        if (err) throw err;
        this.failures = 0; // a clean close (server timeout): re-watch from the last resourceVersion
      } catch (err) {
        if (this.stopped) break;
        if (isGone(err)) {
          this.opts.log.info({ kind: this.opts.kind.kind }, 'watch expired (410 Gone); relisting');
          needList = true;
          continue;
        }
        this.failures++;
        needList = true;
        const delay = backoffDelay(this.failures, { baseMs: 500, maxMs: 30_000 });
        this.opts.log.warn({ kind: this.opts.kind.kind, err: String(err), retryInMs: delay }, 'watch failed; restarting');
        await new Promise<void>((r) => this.clock.setTimeout(r, delay));
      }
    }
  }
}
