import { WorkQueue, backoffDelay, type Clock } from '../../src/runtime/queue.js';

class FakeClock implements Clock {
  t = 0;
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private seq = 0;
  now() {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number) {
    const id = ++this.seq;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(h: unknown) {
    this.timers = this.timers.filter((x) => x.id !== h);
  }
  async advance(ms: number) {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
      await flush();
    }
    this.t = end;
    await flush();
  }
}
const flush = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};
function deferred() {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((a, b) => ((resolve = a), (reject = b)));
  return { promise, resolve, reject };
}

describe('backoff', () => {
  test('doubles per failure from the base and stops at the cap', () => {
    const p = { baseMs: 100, maxMs: 1000 };
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, p))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });
});

describe('WorkQueue', () => {
  test('adding a key many times runs it once (dedup)', async () => {
    const clock = new FakeClock();
    const runs: string[] = [];
    const gate = deferred();
    const q = new WorkQueue({ name: 't', clock, concurrency: 1, reconcile: async (k) => { runs.push(k); await gate.promise; } });
    q.add('a');
    q.add('b');
    q.add('b');
    q.add('b');
    expect(q.depth()).toBe(1); // a in flight, b queued once
    gate.resolve();
    await flush();
    expect(runs).toEqual(['a', 'b']);
  });

  test('one reconcile in flight per key; a change during it causes exactly one more run', async () => {
    const clock = new FakeClock();
    let inFlight = 0;
    let maxInFlight = 0;
    const gates = [deferred(), deferred()];
    let n = 0;
    const q = new WorkQueue({
      name: 't', clock, concurrency: 4,
      reconcile: async () => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await gates[n++].promise;
        inFlight--;
      },
    });
    q.add('a');
    q.add('a'); // while in flight: marked dirty
    q.add('a');
    expect(q.inFlightCount()).toBe(1);
    gates[0].resolve();
    await flush();
    expect(n).toBe(2);
    gates[1].resolve();
    await flush();
    expect(n).toBe(2);
    expect(maxInFlight).toBe(1);
  });

  test('errors back off exponentially per key, and success resets the count', async () => {
    const clock = new FakeClock();
    const times: number[] = [];
    let fail = 3;
    const q = new WorkQueue({
      name: 't', clock, backoff: { baseMs: 100, maxMs: 10_000 },
      reconcile: async () => {
        times.push(clock.now());
        if (fail-- > 0) throw new Error('boom');
      },
    });
    q.add('a');
    await flush();
    await clock.advance(1000);
    expect(times).toEqual([0, 100, 300, 700]);
    expect(q.failureCount('a')).toBe(0);
  });

  test('requeueAfter schedules another pass; an earlier add wins', async () => {
    const clock = new FakeClock();
    const times: number[] = [];
    const q = new WorkQueue({ name: 't', clock, reconcile: async () => { times.push(clock.now()); return times.length === 1 ? { requeueAfterMs: 5000 } : undefined; } });
    q.add('a');
    await flush();
    await clock.advance(1000);
    q.add('a'); // an event arrives before the requeue time
    await flush();
    await clock.advance(10_000);
    expect(times).toEqual([0, 1000]);
  });

  test('shutdown drops queued work and waits for the reconcile in flight', async () => {
    const clock = new FakeClock();
    const gate = deferred();
    const runs: string[] = [];
    const q = new WorkQueue({ name: 't', clock, concurrency: 1, reconcile: async (k) => { runs.push(k); await gate.promise; } });
    q.add('a');
    q.add('b');
    let done = false;
    const stopped = q.shutdown(5000).then(() => (done = true));
    await flush();
    expect(done).toBe(false);
    gate.resolve();
    await stopped;
    expect(runs).toEqual(['a']);
  });
});
