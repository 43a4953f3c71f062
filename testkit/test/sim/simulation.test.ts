// Deterministic simulation: many seeds must pass with the real rules, a seed must replay
// identically, and each deliberately broken rule must be caught within a bounded search.
import { CHURN_CHAOS, runSeed, type SimOptions } from '../../src/sim/cluster.js';

/** First failing seed in [1, maxSeeds], or null. */
async function firstFailure(opts: SimOptions, maxSeeds: number) {
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const r = await runSeed(seed, { ...opts, trace: false });
    if (!r.ok) return r;
  }
  return null;
}

describe('simulation with correct rules', () => {
  it('runs thousands of seeds (3 and 5 acceptors, normal and churn) without a violation', async () => {
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
      const r = await runSeed(seed, opts);
      if (!r.ok) {
        const replay = await runSeed(seed, { ...opts, trace: true });
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

  it('does real work: elections, commits, crashes and competing proposers happen', async () => {
    const runs = await Promise.all(Array.from({ length: 50 }, (_, i) => runSeed(i + 1, { trace: false })));
    expect(runs.filter((r) => r.stats.elections >= 2).length).toBeGreaterThan(25);
    expect(runs.filter((r) => r.stats.committedBytes > 0).length).toBeGreaterThan(35);
    expect(runs.reduce((s, r) => s + r.stats.crashes, 0)).toBeGreaterThan(50);
  });

  it('replays a seed exactly', async () => {
    const a = await runSeed(12345, { trace: true });
    const b = await runSeed(12345, { trace: true });
    expect(a.trace.length).toBeGreaterThan(100);
    expect(b.trace).toEqual(a.trace);
  });
});

describe('the safety checker catches broken rules', () => {
  it('equal-term votes: two proposers win the same term', async () => {
    const r = await firstFailure({ acceptorFaults: { acceptEqualTermVote: true } }, 300);
    expect(r?.violation).toMatch(/two proposers elected in term \d+/);
  });
  it('votes granted without persisting the term: a restarted acceptor votes twice', async () => {
    const r = await firstFailure({ acceptorFaults: { grantVoteWithoutPersist: true } }, 300);
    expect(r?.violation).toMatch(/two proposers elected in term \d+|committed WAL changed|committed in a lower term/);
  });
  it('acknowledging before fsync is reported', async () => {
    const r = await firstFailure({ acceptorFaults: { ackBeforeFlush: true } }, 50);
    expect(r?.violation).toMatch(/reports flush .* but only .* is durable/);
  });
  it('a donor chosen by flush alone (ignoring last log term) loses committed WAL', async () => {
    const r = await firstFailure({ proposerFaults: { donorIgnoresLastLogTerm: true } }, 300);
    expect(r?.violation).toMatch(/committed WAL changed|committed in a lower term/);
  });
  it('committing acks below the term start (Raft figure 8) loses committed WAL under proposer churn', async () => {
    const r = await firstFailure({ proposerFaults: { skipFigure8Rule: true }, chaos: CHURN_CHAOS, maxProposers: 40, maxSteps: 1000 }, 3000);
    expect(r?.violation).toMatch(/committed WAL changed|committed in a lower term/);
  });
});

describe('the production nodes run under seeds', () => {
  it('the new actions happen: silent links, wiped disks and PostgreSQL promotions', async () => {
    const traces = await Promise.all(Array.from({ length: 40 }, (_, i) => runSeed(i + 1, { trace: true })));
    const lines = traces.flatMap((r) => r.trace);
    expect(lines.filter((l) => / goes silent$/.test(l)).length).toBeGreaterThan(5);
    expect(lines.filter((l) => / DISK WIPED$/.test(l)).length).toBeGreaterThan(0);
    expect(lines.filter((l) => / PostgreSQL promoted: timeline \d+/.test(l)).length).toBeGreaterThan(0);
    expect(lines.filter((l) => / drops a\d: no answer for 5 s$/.test(l)).length).toBeGreaterThan(0);
  });
});

describe('the timing checker catches broken shell rules, and the seed replays', () => {
  it.each([
    ['a silent member is never dropped', { keepSilentMembers: true }, /still counts a\d as \w+ after \d+ ms of silence/],
    ['heartbeats are never sent', { noHeartbeats: true }, /sent a\d commit LSN \S+ but its own is \S+, for \d+ ms/],
  ])('%s', async (_name, shellFaults, violation) => {
    const r = await firstFailure({ shellFaults }, 300);
    expect(r?.violation).toMatch(violation);
    const replay = await runSeed(r!.seed, { shellFaults, trace: true });
    expect(replay.violation).toBe(r!.violation);
    expect(replay.steps).toBe(r!.steps);
    // the same seed with the correct rule passes that point
    const correct = await runSeed(r!.seed, { trace: false });
    expect(correct.ok).toBe(true);
  });
});
