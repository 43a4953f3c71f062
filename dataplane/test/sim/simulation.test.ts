// Deterministic simulation: many seeds must pass with the real rules, a seed must replay
// identically, and each deliberately broken rule must be caught within a bounded search.
import { CHURN_CHAOS, runSeed, type SimOptions } from '../../src/sim/cluster.js';

/** First failing seed in [1, maxSeeds], or null. */
function firstFailure(opts: SimOptions, maxSeeds: number) {
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const r = runSeed(seed, { ...opts, trace: false });
    if (!r.ok) return r;
  }
  return null;
}

describe('simulation with correct rules', () => {
  it('runs thousands of seeds (3 and 5 acceptors, normal and churn) without a violation', () => {
    const minSeeds = 300;
    const maxSeeds = 6000;
    const budgetMs = 60_000;
    const started = process.hrtime.bigint();
    let seeds = 0;
    let elections = 0;
    let committed = 0;
    for (let seed = 1; seed <= maxSeeds; seed++) {
      const churn = seed % 4 === 0;
      const opts: SimOptions = {
        acceptors: seed % 3 === 0 ? 5 : 3,
        trace: false,
        ...(churn ? { chaos: CHURN_CHAOS, maxProposers: 40, maxSteps: 1000 } : {}),
      };
      const r = runSeed(seed, opts);
      if (!r.ok) {
        const replay = runSeed(seed, { ...opts, trace: true });
        throw new Error(`seed ${seed} violated safety: ${r.violation}\n${replay.trace.slice(-60).join('\n')}`);
      }
      seeds++;
      elections += r.stats.elections;
      committed += r.stats.committedBytes;
      // Bounded by count and by time; the minimum keeps the check meaningful on a slow machine.
      if (seeds >= minSeeds && Number(process.hrtime.bigint() - started) / 1e6 > budgetMs) break;
    }
    expect(seeds).toBeGreaterThanOrEqual(minSeeds);
    expect(elections).toBeGreaterThan(seeds);
    expect(committed).toBeGreaterThan(seeds * 10);
  });

  it('does real work: elections, commits, crashes and competing proposers happen', () => {
    const runs = Array.from({ length: 50 }, (_, i) => runSeed(i + 1, { trace: false }));
    expect(runs.filter((r) => r.stats.elections >= 2).length).toBeGreaterThan(25);
    expect(runs.filter((r) => r.stats.committedBytes > 0).length).toBeGreaterThan(35);
    expect(runs.reduce((s, r) => s + r.stats.crashes, 0)).toBeGreaterThan(50);
  });

  it('replays a seed exactly', () => {
    const a = runSeed(12345, { trace: true });
    const b = runSeed(12345, { trace: true });
    expect(a.trace.length).toBeGreaterThan(100);
    expect(b.trace).toEqual(a.trace);
  });
});

describe('the safety checker catches broken rules', () => {
  it('equal-term votes: two proposers win the same term', () => {
    const r = firstFailure({ acceptorFaults: { acceptEqualTermVote: true } }, 300);
    expect(r?.violation).toMatch(/two proposers elected in term \d+/);
  });
  it('votes granted without persisting the term: a restarted acceptor votes twice', () => {
    const r = firstFailure({ acceptorFaults: { grantVoteWithoutPersist: true } }, 300);
    expect(r?.violation).toMatch(/two proposers elected in term \d+|committed WAL changed|committed in a lower term/);
  });
  it('acknowledging before fsync is reported', () => {
    const r = firstFailure({ acceptorFaults: { ackBeforeFlush: true } }, 50);
    expect(r?.violation).toMatch(/reports flush .* but only .* is durable/);
  });
  it('a donor chosen by flush alone (ignoring last log term) loses committed WAL', () => {
    const r = firstFailure({ proposerFaults: { donorIgnoresLastLogTerm: true } }, 300);
    expect(r?.violation).toMatch(/committed WAL changed|committed in a lower term/);
  });
  it('committing acks below the term start (Raft figure 8) loses committed WAL under proposer churn', () => {
    const r = firstFailure({ proposerFaults: { skipFigure8Rule: true }, chaos: CHURN_CHAOS, maxProposers: 40, maxSteps: 1000 }, 3000);
    expect(r?.violation).toMatch(/committed WAL changed|committed in a lower term/);
  });
});
