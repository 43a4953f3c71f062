// The torture's fault schedule, generated from a seed with no I/O: which fault comes next,
// what it hits, how long the victim stays down and how long to wait before the next one.
// Faults run one after another, so at most one safekeeper is down at a time, except for
// `quorum_loss`, which takes two down on purpose to check that commits block (not fail).
import { Prng } from '@walkeeper/dataplane/common/prng';

export type FaultKind = 'kill_safekeeper' | 'restart_proposer' | 'crash_postgres' | 'quorum_loss';

export const FAULT_KINDS: readonly FaultKind[] = ['kill_safekeeper', 'restart_proposer', 'crash_postgres', 'quorum_loss'];

export interface Fault {
  /** 1-based position in the schedule */
  seq: number;
  /** pause after the previous fault has healed (or after the workload started) */
  afterMs: number;
  kind: FaultKind;
  /** safekeeper ids hit (kill_safekeeper: one, quorum_loss: two); empty otherwise */
  targets: number[];
  /** how long the victim stays down before it is started again */
  downMs: number;
}

export interface ScheduleOptions {
  safekeepers: readonly number[];
  /** how many faults to generate (the run stops using them when its time is up) */
  count: number;
  minGapMs?: number;
  maxGapMs?: number;
  weights?: Partial<Record<FaultKind, number>>;
}

export const DEFAULT_WEIGHTS: Readonly<Record<FaultKind, number>> = {
  kill_safekeeper: 4,
  restart_proposer: 2,
  crash_postgres: 2,
  quorum_loss: 1,
};

const DOWN_MS: Readonly<Record<FaultKind, [number, number]>> = {
  kill_safekeeper: [200, 3000],
  restart_proposer: [0, 1000],
  crash_postgres: [0, 1000],
  quorum_loss: [500, 2500],
};

export function generateSchedule(seed: number, opts: ScheduleOptions): Fault[] {
  const prng = new Prng(seed);
  const minGap = opts.minGapMs ?? 1500;
  const maxGap = opts.maxGapMs ?? 4000;
  const weights = { ...DEFAULT_WEIGHTS, ...opts.weights };
  // quorum_loss needs a majority of two or more to take down; a 3-member cluster has that
  if (opts.safekeepers.length < 3) weights.quorum_loss = 0;
  const faults: Fault[] = [];
  for (let seq = 1; seq <= opts.count; seq++) {
    const afterMs = prng.int(minGap, maxGap);
    const kind = prng.weighted(weights);
    const [lo, hi] = DOWN_MS[kind];
    const downMs = prng.int(lo, hi);
    let targets: number[] = [];
    if (kind === 'kill_safekeeper') targets = [prng.pick(opts.safekeepers)];
    if (kind === 'quorum_loss') {
      const first = prng.pick(opts.safekeepers);
      const second = prng.pick(opts.safekeepers.filter((id) => id !== first));
      targets = [first, second];
    }
    faults.push({ seq, afterMs, kind, targets, downMs });
  }
  return faults;
}

/** One line describing a fault, as printed in the torture log. */
export function describeFault(f: Fault): string {
  switch (f.kind) {
    case 'kill_safekeeper':
      return `kill -9 safekeeper ${f.targets[0]}, restart after ${f.downMs} ms`;
    case 'quorum_loss':
      return `kill -9 safekeepers ${f.targets.join(' and ')} (quorum lost: commits must block), restart after ${f.downMs} ms`;
    case 'restart_proposer':
      return `kill -9 the proposer, restart after ${f.downMs} ms`;
    case 'crash_postgres':
      return `crash PostgreSQL (kill -9 of every server process), restart after ${f.downMs} ms`;
  }
}
