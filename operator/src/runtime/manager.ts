// Wires informers to work queues and reconcilers: every change to a custom resource, a child it owns
// or a member pod enqueues the owning resource's key; the queues call the level-triggered reconcilers.
import type { Logger } from 'pino';
import type { KubeObject } from '../specs/types.js';
import { LABEL_CLUSTER, LABEL_TENANT, MANAGED_BY } from '../specs/meta.js';
import { Informer } from './informer.js';
import { keyOf, kinds, type KubeClient } from './kube.js';
import type { OperatorMetrics } from './metrics.js';
import { type Clock, type Reconciler, WorkQueue, systemClock } from './queue.js';

export interface ManagerOptions {
  client: KubeClient;
  log: Logger;
  metrics?: OperatorMetrics;
  namespace?: string;
  concurrency?: number;
  resyncMs?: number;
  clock?: Clock;
  reconcileSafekeeper: Reconciler;
  reconcileTenant: Reconciler;
}

export class Manager {
  readonly safekeepers: WorkQueue;
  readonly tenants: WorkQueue;
  private readonly informers: Informer[] = [];
  private readonly tenantInformer: Informer;
  private depthTimer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly opts: ManagerOptions) {
    const clock = opts.clock ?? systemClock;
    const onResult = (kind: string) => (key: string, outcome: 'success' | 'error', ms: number, err?: unknown) => {
      opts.metrics?.observe(kind, outcome, ms);
      if (outcome === 'error') opts.log.warn({ kind, key, err: err instanceof Error ? err.message : String(err) }, 'reconcile failed; backing off');
      else opts.log.debug({ kind, key, ms }, 'reconciled');
    };
    const wrap = (kind: string, fn: Reconciler): Reconciler => async (key) => {
      opts.log.debug({ kind, key }, 'reconciling');
      return fn(key);
    };
    this.safekeepers = new WorkQueue({ name: 'Safekeeper', reconcile: wrap('Safekeeper', opts.reconcileSafekeeper), concurrency: opts.concurrency, clock, onResult: onResult('Safekeeper') });
    this.tenants = new WorkQueue({ name: 'Tenant', reconcile: wrap('Tenant', opts.reconcileTenant), concurrency: opts.concurrency, clock, onResult: onResult('Tenant') });

    const mk = (kind: (typeof kinds)[keyof typeof kinds], labelSelector?: string) => {
      const inf = new Informer(opts.client, { kind, namespace: opts.namespace, labelSelector, resyncMs: opts.resyncMs, clock, log: opts.log });
      this.informers.push(inf);
      return inf;
    };
    const managed = `app.kubernetes.io/managed-by=${MANAGED_BY}`;

    mk(kinds.Safekeeper).on((_ev, obj) => {
      this.safekeepers.add(keyOf(obj));
      this.enqueueTenantsOf(obj.metadata.namespace ?? '', obj.metadata.name ?? '');
    });
    this.tenantInformer = mk(kinds.Tenant);
    this.tenantInformer.on((_ev, obj) => this.tenants.add(keyOf(obj)));
    for (const kind of [kinds.StatefulSet, kinds.Service, kinds.ConfigMap, kinds.Secret, kinds.PodDisruptionBudget]) {
      mk(kind, managed).on((ev, obj) => ev !== 'resync' && this.enqueueOwner(obj));
    }
    mk(kinds.Pod, managed).on((ev, obj) => {
      if (ev === 'resync') return;
      const ns = obj.metadata.namespace ?? '';
      const cluster = obj.metadata.labels?.[LABEL_CLUSTER];
      const tenant = obj.metadata.labels?.[LABEL_TENANT];
      if (cluster) {
        this.safekeepers.add(`${ns}/${cluster}`);
        this.enqueueTenantsOf(ns, cluster);
      }
      if (tenant) this.tenants.add(`${ns}/${tenant}`);
    });
  }

  private enqueueOwner(obj: KubeObject): void {
    const ref = obj.metadata.ownerReferences?.find((r) => r.controller);
    if (!ref) return;
    const key = `${obj.metadata.namespace ?? ''}/${ref.name}`;
    if (ref.kind === 'Safekeeper') this.safekeepers.add(key);
    else if (ref.kind === 'Tenant') this.tenants.add(key);
  }

  private enqueueTenantsOf(namespace: string, safekeeper: string): void {
    for (const t of this.tenantInformer.list()) {
      const spec = (t as { spec?: { safekeeperRef?: { name?: string } } }).spec;
      if (t.metadata.namespace === namespace && spec?.safekeeperRef?.name === safekeeper) this.tenants.add(keyOf(t));
    }
  }

  start(): void {
    for (const inf of this.informers) inf.start();
    this.depthTimer = setInterval(() => {
      this.opts.metrics?.queueDepth.set({ kind: 'Safekeeper' }, this.safekeepers.depth());
      this.opts.metrics?.queueDepth.set({ kind: 'Tenant' }, this.tenants.depth());
    }, 1000);
    this.depthTimer.unref();
  }

  hasSynced(): boolean {
    return this.informers.every((i) => i.hasSynced());
  }

  async stop(timeoutMs = 20_000): Promise<void> {
    if (this.depthTimer) clearInterval(this.depthTimer);
    await Promise.all([this.safekeepers.shutdown(timeoutMs), this.tenants.shutdown(timeoutMs)]);
    await Promise.all(this.informers.map((i) => i.stop()));
  }
}
