// Time as a port: the consensus nodes read the time and set timers only through a Clock, so
// production runs them on the system clock and the simulation on a simulated one.

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** milliseconds on a monotonic scale (only differences are meaningful) */
  now(): number;
  /** runs fn once, ms from now */
  after(ms: number, fn: () => void): Timer;
  /** runs fn every ms until cancelled */
  every(ms: number, fn: () => void): Timer;
}

/** The process clock; its timers never keep the process alive by themselves. */
export const systemClock: Clock = {
  now: () => performance.now(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
};
