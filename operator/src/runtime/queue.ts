// A keyed, de-duplicating, rate-limited work queue: at most one reconcile in flight per key, keys
// added while in flight are processed once more afterwards, errors back off exponentially per key.
// Time comes from an injected Clock so tests drive it deterministically.

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

/** Delay before retry number `failures` (1-based): base·2^(failures−1), capped. */
export function backoffDelay(failures: number, policy: BackoffPolicy): number {
  if (failures <= 0) return 0;
  const exp = Math.min(failures - 1, 30);
  return Math.min(policy.maxMs, policy.baseMs * 2 ** exp);
}

export interface ReconcileResult {
  /** Reconcile again after this delay even without a change (polling, waiting for a gate). */
  requeueAfterMs?: number;
}

export type Reconciler = (key: string) => Promise<ReconcileResult | void>;

export interface QueueOptions {
  name: string;
  reconcile: Reconciler;
  concurrency?: number;
  backoff?: BackoffPolicy;
  clock?: Clock;
  onResult?: (key: string, outcome: 'success' | 'error', durationMs: number, error?: unknown) => void;
}

export class WorkQueue {
  private readonly ready: string[] = [];
  private readonly queued = new Set<string>();
  private readonly inFlight = new Set<string>();
  /** Keys added while in flight: run again once the current reconcile ends. */
  private readonly dirty = new Set<string>();
  private readonly timers = new Map<string, { at: number; handle: unknown }>();
  private readonly failures = new Map<string, number>();
  private readonly clock: Clock;
  private readonly backoff: BackoffPolicy;
  private readonly concurrency: number;
  private stopped = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly opts: QueueOptions) {
    this.clock = opts.clock ?? systemClock;
    this.backoff = opts.backoff ?? { baseMs: 500, maxMs: 5 * 60_000 };
    this.concurrency = opts.concurrency ?? 2;
  }

  get name(): string {
    return this.opts.name;
  }

  /** Keys waiting to run now (not counting delayed or in-flight keys). */
  depth(): number {
    return this.ready.length;
  }

  inFlightCount(): number {
    return this.inFlight.size;
  }

  failureCount(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  add(key: string): void {
    if (this.stopped) return;
    const timer = this.timers.get(key);
    if (timer) {
      this.clock.clearTimeout(timer.handle);
      this.timers.delete(key);
    }
    if (this.inFlight.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.ready.push(key);
    this.pump();
  }

  /** Adds `key` after `ms`; an earlier pending time for the key wins. */
  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
    if (ms <= 0) return this.add(key);
    if (this.queued.has(key)) return;
    const at = this.clock.now() + ms;
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) this.clock.clearTimeout(existing.handle);
    const handle = this.clock.setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    this.timers.set(key, { at, handle });
  }

  private pump(): void {
    while (!this.stopped && this.inFlight.size < this.concurrency && this.ready.length > 0) {
      const key = this.ready.shift()!;
      this.queued.delete(key);
      this.inFlight.add(key);
      void this.run(key);
    }
    this.notifyIdle();
  }

  private async run(key: string): Promise<void> {
    const started = this.clock.now();
    let requeueAfterMs: number | undefined;
    let failed = false;
    try {
      const result = await this.opts.reconcile(key);
      requeueAfterMs = result ? result.requeueAfterMs : undefined;
      this.failures.delete(key);
      this.opts.onResult?.(key, 'success', this.clock.now() - started);
    } catch (err) {
      failed = true;
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      requeueAfterMs = backoffDelay(n, this.backoff);
      this.opts.onResult?.(key, 'error', this.clock.now() - started, err);
    } finally {
      this.inFlight.delete(key);
    }
    if (this.dirty.delete(key) && !failed) this.add(key);
    else if (requeueAfterMs !== undefined) this.addAfter(key, requeueAfterMs);
    this.pump();
  }

  private notifyIdle(): void {
    if (this.inFlight.size === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      waiters.forEach((w) => w());
    }
  }

  /** Stops taking work; resolves when in-flight reconciles finish (or the timeout passes). */
  async shutdown(timeoutMs = 30_000): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) this.clock.clearTimeout(t.handle);
    this.timers.clear();
    this.ready.length = 0;
    this.queued.clear();
    if (this.inFlight.size === 0) return;
    await Promise.race([
      new Promise<void>((r) => this.idleWaiters.push(r)),
      new Promise<void>((r) => {
        const t = setTimeout(r, timeoutMs);
        t.unref?.();
      }),
    ]);
  }
}
