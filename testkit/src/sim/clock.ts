// Simulated time for the consensus nodes: timers fire only when the simulation advances
// the clock, in due order (ties in the order they were set), so runs replay exactly.
import type { Clock, Timer } from '@walkeeper/dataplane/common/clock';

interface Pending {
  due: number;
  seq: number;
  fn: () => void;
  every: number | null;
  cancelled: boolean;
}

export class SimClock implements Clock {
  private t = 0;
  private seq = 0;
  private timers: Pending[] = [];

  now(): number {
    return this.t;
  }

  after(ms: number, fn: () => void): Timer {
    return this.add(ms, fn, null);
  }

  every(ms: number, fn: () => void): Timer {
    return this.add(ms, fn, ms);
  }

  /** Moves time forward by ms, running every timer that falls due on the way. */
  advance(ms: number): void {
    const until = this.t + ms;
    for (;;) {
      this.timers = this.timers.filter((x) => !x.cancelled);
      let next: Pending | undefined;
      for (const x of this.timers) if (x.due <= until && (!next || x.due < next.due || (x.due === next.due && x.seq < next.seq))) next = x;
      if (!next) break;
      this.t = next.due;
      if (next.every === null) next.cancelled = true;
      else {
        next.due += next.every;
        next.seq = this.seq++;
      }
      next.fn();
    }
    this.t = until;
  }

  private add(ms: number, fn: () => void, every: number | null): Timer {
    const p: Pending = { due: this.t + Math.max(ms, 1), seq: this.seq++, fn, every, cancelled: false };
    this.timers.push(p);
    return { cancel: () => (p.cancelled = true) };
  }
}
