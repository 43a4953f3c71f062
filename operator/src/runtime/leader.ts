// Leader election through a coordination.k8s.io/v1 Lease: acquire when free or expired, renew every
// retry period, give up (and tell the caller) when renewal fails past the renew deadline, release on shutdown.
import type { Logger } from 'pino';
import type { KubeObject } from '../specs/types.js';
import { isConflict, kinds, type KubeClient } from './kube.js';
import { type Clock, systemClock } from './queue.js';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  clock?: Clock;
  log: Logger;
}

interface Lease extends KubeObject {
  spec?: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

/** metav1.MicroTime: RFC 3339 with microseconds. */
const microTime = (ms: number) => new Date(ms).toISOString().replace(/Z$/, '000Z');

export class LeaderElector {
  private readonly clock: Clock;
  private leading = false;
  private lastRenew = 0;
  private timer: unknown;
  private stopped = false;

  constructor(
    private readonly client: KubeClient,
    private readonly opts: LeaderElectionOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** One acquire-or-renew attempt; returns whether this process holds the lease afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.clock.now();
    const { namespace, name, identity } = this.opts;
    const leaseSeconds = Math.ceil(this.opts.leaseDurationMs / 1000);
    const existing = await this.client.get<Lease>(kinds.Lease, namespace, name);
    try {
      if (!existing) {
        await this.client.create<Lease>(kinds.Lease, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds: leaseSeconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
        });
        return this.held(now);
      }
      const spec = existing.spec ?? {};
      const holder = spec.holderIdentity ?? '';
      const renewedAt = spec.renewTime ? Date.parse(spec.renewTime) : 0;
      const expired = renewedAt + (spec.leaseDurationSeconds ?? leaseSeconds) * 1000 < now;
      if (holder && holder !== identity && !expired) {
        this.leading = false;
        return false;
      }
      const takingOver = holder !== identity;
      await this.client.replace<Lease>(kinds.Lease, {
        ...existing,
        spec: {
          ...spec,
          holderIdentity: identity,
          leaseDurationSeconds: leaseSeconds,
          renewTime: microTime(now),
          ...(takingOver ? { acquireTime: microTime(now), leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
        },
      });
      return this.held(now);
    } catch (e) {
      if (isConflict(e)) return false; // someone else wrote first; try again next period
      throw e;
    }
  }

  private held(now: number): boolean {
    if (!this.leading) this.opts.log.info({ lease: `${this.opts.namespace}/${this.opts.name}`, identity: this.opts.identity }, 'acquired leadership');
    this.leading = true;
    this.lastRenew = now;
    return true;
  }

  /** Resolves once leadership is acquired; then keeps renewing and calls onLost if it slips away. */
  async run(onLost: () => void): Promise<void> {
    await new Promise<void>((resolve) => {
      const attempt = async () => {
        if (this.stopped) return;
        const wasLeading = this.leading;
        let ok = false;
        try {
          ok = await this.tryAcquireOrRenew();
        } catch (e) {
          this.opts.log.warn({ err: String(e) }, 'lease acquire/renew failed');
        }
        if (ok) resolve();
        else if (wasLeading && (!this.leading || this.clock.now() - this.lastRenew > this.opts.renewDeadlineMs)) {
          this.leading = false;
          this.opts.log.error('lost leadership: the lease was taken or not renewed within the renew deadline');
          onLost();
          return;
        }
        if (!this.stopped) this.timer = this.clock.setTimeout(() => void attempt(), this.opts.retryPeriodMs);
      };
      void attempt();
    });
  }

  /** Gives the lease up so a successor need not wait for it to expire. */
  async release(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.clock.clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.client.get<Lease>(kinds.Lease, this.opts.namespace, this.opts.name);
      if (lease?.spec?.holderIdentity !== this.opts.identity) return;
      await this.client.replace<Lease>(kinds.Lease, { ...lease, spec: { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: microTime(this.clock.now()) } });
      this.opts.log.info('released leadership');
    } catch (e) {
      this.opts.log.warn({ err: String(e) }, 'could not release the lease');
    }
  }
}
