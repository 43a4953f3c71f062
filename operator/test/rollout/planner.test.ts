import fc from 'fast-check';
import {
  DEFAULT_COMMIT_SLACK_BYTES, atCommitWithout, caughtUpWithout, majority, planRollout, type MemberObservation, type RolloutInput,
} from '../../src/rollout/planner.js';

const TL = ['t1/l1', 't2/l2'];
/** The commit LSN of both timelines in these tests. */
const COMMIT = 0x5000000n;
const COMMITS = Object.fromEntries(TL.map((t) => [t, COMMIT]));
const SLACK = DEFAULT_COMMIT_SLACK_BYTES;
/** The lag threshold of the health notion (caughtUp), as the operator's default. */
const LAG = 16n * 1024n * 1024n;
const member = (ordinal: number, over: Partial<MemberObservation> = {}): MemberObservation => ({
  name: `wal-${ordinal}`,
  ordinal,
  podExists: true,
  deleting: false,
  ready: true,
  revision: 'old',
  caughtUp: Object.fromEntries(TL.map((t) => [t, true])),
  flushLsn: { ...COMMITS },
  ...over,
});
/** A member whose flush LSN is `behind` bytes below the commit LSN on every timeline (caughtUp follows the lag threshold). */
const behindBy = (ordinal: number, behind: bigint, over: Partial<MemberObservation> = {}) =>
  member(ordinal, {
    flushLsn: Object.fromEntries(TL.map((t) => [t, COMMIT - behind])),
    caughtUp: Object.fromEntries(TL.map((t) => [t, behind <= LAG])),
    ...over,
  });
const input = (members: MemberObservation[], over: Partial<RolloutInput> = {}): RolloutInput => ({
  desiredRevision: 'new',
  statefulSetRevision: 'new',
  size: members.length,
  members,
  timelines: TL,
  commitLsn: COMMITS,
  commitSlackBytes: SLACK,
  ...over,
});

const arbMember = (ordinal: number) =>
  fc.record({
    podExists: fc.boolean(),
    deleting: fc.boolean(),
    ready: fc.boolean(),
    revision: fc.constantFrom('old', 'new', undefined),
    c1: fc.boolean(),
    c2: fc.boolean(),
    b1: fc.constantFrom(0n, 1n, SLACK, SLACK + 1n, 1n << 20n, LAG + 1n, -1n),
    b2: fc.constantFrom(0n, 1n, SLACK, SLACK + 1n, 1n << 20n, LAG + 1n, -1n),
  }).map((r): MemberObservation => ({
    name: `wal-${ordinal}`,
    ordinal,
    podExists: r.podExists,
    deleting: r.podExists && r.deleting,
    ready: r.podExists && r.ready,
    revision: r.podExists ? r.revision : undefined,
    caughtUp: r.podExists ? { [TL[0]]: r.c1, [TL[1]]: r.c2 } : {},
    // -1: the member does not hold the timeline (or did not say)
    flushLsn: r.podExists ? Object.fromEntries(([[TL[0], r.b1], [TL[1], r.b2]] as const).filter(([, b]) => b >= 0n).map(([t, b]) => [t, COMMIT - b])) : {},
  }));
const arbCluster = fc.constantFrom(3, 5, 7).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => arbMember(i))));

describe('rollout planner: properties', () => {
  test('safety: deleting a ready member always leaves a caught-up majority on every timeline', () => {
    fc.assert(
      fc.property(arbCluster, (members) => {
        const plan = planRollout(input(members));
        if (plan.type !== 'deletePod') return;
        const victim = members.find((m) => m.name === plan.name)!;
        if (victim.ready) {
          for (const t of TL) expect(caughtUpWithout(members, victim.name, t)).toBeGreaterThanOrEqual(majority(members.length));
        }
      }),
      { numRuns: 3000 },
    );
  });

  test('safety: deleting a ready member always leaves a majority without it within the slack of the commit LSN on every timeline', () => {
    fc.assert(
      fc.property(arbCluster, (members) => {
        const plan = planRollout(input(members));
        if (plan.type !== 'deletePod') return;
        const victim = members.find((m) => m.name === plan.name)!;
        if (!victim.ready) return; // restarting a member that is already out takes nothing away
        for (const t of TL) {
          const atCommit = members.filter((m) => m.name !== victim.name && m.ready && m.flushLsn[t] !== undefined && COMMIT - m.flushLsn[t]! <= SLACK);
          expect(atCommit.length).toBeGreaterThanOrEqual(majority(members.length));
        }
      }),
      { numRuns: 5000 },
    );
  });

  test('progress is reported until the end: with every pod on the new revision, the plan is none only when all are ready and caught up', () => {
    fc.assert(
      fc.property(arbCluster, (members) => {
        const updated = members.map((m) => (m.podExists ? { ...m, revision: 'new' } : m));
        const plan = planRollout(input(updated));
        const allHealthy = updated.every((m) => m.podExists && !m.deleting && m.ready && TL.every((t) => m.caughtUp[t]));
        expect(plan.type === 'none').toBe(allHealthy);
        if (!allHealthy) expect(plan).toMatchObject({ type: 'wait', restarting: expect.any(String) });
      }),
      { numRuns: 3000 },
    );
  });

  test('safety: never takes down a member while another is down, terminating or not ready', () => {
    fc.assert(
      fc.property(arbCluster, (members) => {
        const plan = planRollout(input(members));
        if (plan.type !== 'deletePod') return;
        const others = members.filter((m) => m.name !== plan.name);
        expect(others.every((m) => m.podExists && !m.deleting && m.ready)).toBe(true);
        // and only outdated members are ever restarted
        expect(members.find((m) => m.name === plan.name)!.revision).not.toBe('new');
      }),
      { numRuns: 3000 },
    );
  });

  test('liveness: an all-healthy cluster with outdated members always gets a deletePod of the lowest outdated ordinal', () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 3, 5, 7).chain((n) => fc.tuple(fc.constant(n), fc.array(fc.boolean(), { minLength: n, maxLength: n }))), ([n, outdated]) => {
        fc.pre(outdated.some(Boolean));
        const members = Array.from({ length: n }, (_, i) => member(i, { revision: outdated[i] ? 'old' : 'new' }));
        const plan = planRollout(input(members));
        expect(plan).toMatchObject({ type: 'deletePod', name: `wal-${outdated.indexOf(true)}` });
      }),
    );
  });

  test('determinism: the plan depends only on the observed state (member order does not matter)', () => {
    fc.assert(
      fc.property(arbCluster, fc.integer(), (members, seed) => {
        const shuffled = [...members].sort((a, b) => ((a.ordinal * 7919 + seed) % 13) - ((b.ordinal * 7919 + seed) % 13));
        expect(planRollout(input(shuffled))).toEqual(planRollout(input(members)));
      }),
    );
  });
});

describe('rollout planner: the commit gate, exhaustively', () => {
  // Every combination of positions (per member and timeline) around the slack boundary, with all
  // members up and caught up in the coarse sense, for every set of outdated members: the planner
  // deletes the lowest outdated member exactly when a majority without it is at the commit LSN on
  // every timeline, and otherwise waits for the commit LSN (never holds, never deletes another).
  const POSITIONS = [0n, SLACK, SLACK + 1n, undefined] as const;
  function* assignments(slots: number): Generator<(bigint | undefined)[]> {
    const idx = new Array<number>(slots).fill(0);
    for (;;) {
      yield idx.map((i) => POSITIONS[i]);
      let k = 0;
      while (k < slots && ++idx[k] === POSITIONS.length) idx[k++] = 0;
      if (k === slots) return;
    }
  }
  const cases: Array<[number, string[]]> = [
    [3, TL],
    [5, [TL[0]]],
    [1, TL],
  ];
  test.each(cases)('%i members, %j', (n, timelines) => {
    let deleted = 0;
    let waited = 0;
    for (let outdatedMask = 1; outdatedMask < 1 << n; outdatedMask++) {
      for (const pos of assignments(n * timelines.length)) {
        const members = Array.from({ length: n }, (_, i) =>
          member(i, {
            revision: outdatedMask & (1 << i) ? 'old' : 'new',
            flushLsn: Object.fromEntries(timelines.flatMap((t, j) => (pos[i * timelines.length + j] === undefined ? [] : [[t, COMMIT - pos[i * timelines.length + j]!]]))),
          }),
        );
        const plan = planRollout(input(members, { timelines }));
        const candidate = members.find((m) => m.revision === 'old')!;
        const gate = n === 1 || timelines.every((t) => atCommitWithout(members, candidate.name, t, COMMITS, SLACK) >= majority(n));
        if (gate) {
          expect(plan).toEqual(expect.objectContaining({ type: 'deletePod', name: candidate.name }));
          deleted++;
        } else {
          expect(plan).toEqual(expect.objectContaining({ type: 'wait', awaitingCommit: true }));
          waited++;
        }
      }
    }
    expect(deleted).toBeGreaterThan(0);
    expect(waited).toBeGreaterThan(n === 1 ? -1 : 0);
  });

  test('the slack boundary: exactly the slack behind counts as at the commit LSN, one byte more does not', () => {
    expect(planRollout(input([member(0), behindBy(1, SLACK), member(2, { revision: 'new' })]))).toMatchObject({ type: 'deletePod', name: 'wal-0' });
    expect(planRollout(input([member(0), behindBy(1, SLACK + 1n), member(2, { revision: 'new' })]))).toMatchObject({ type: 'wait', awaitingCommit: true });
  });

  test('the defect seen on a real cluster: a member within the 16 MiB lag threshold but not at the commit LSN blocks the restart of another', () => {
    // wal-0 was restarted and is ready, ~1 MiB behind: caught up in the coarse sense. Restarting
    // wal-1 now would leave {wal-0, wal-2} as the quorum, and commits would wait for wal-0.
    const plan = planRollout(input([behindBy(0, 1n << 20n, { revision: 'new' }), member(1), member(2)]));
    expect(plan).toMatchObject({ type: 'wait', awaitingCommit: true, restarting: 'wal-0', reason: expect.stringMatching(/restarting wal-1 waits until 2 other members are within 16\.0 KiB of commit LSN.*wal-0 1024\.0 KiB behind/) });
  });

  test('a lagging candidate does not block its own restart: only the members that remain must be at the commit LSN', () => {
    expect(planRollout(input([behindBy(0, 1n << 20n), member(1), member(2)]))).toMatchObject({ type: 'deletePod', name: 'wal-0' });
  });

  test('five members: one laggard besides the candidate is tolerated, two are not', () => {
    const one = [member(0), behindBy(1, 1n << 20n, { revision: 'new' }), member(2), member(3), member(4)];
    expect(planRollout(input(one))).toMatchObject({ type: 'deletePod', name: 'wal-0' });
    const two = [member(0), behindBy(1, 1n << 20n, { revision: 'new' }), behindBy(2, 1n << 20n), member(3), member(4)];
    expect(planRollout(input(two))).toMatchObject({ type: 'wait', awaitingCommit: true });
  });

  test('a member that does not report a timeline is not at its commit LSN', () => {
    const plan = planRollout(input([member(0), member(1, { flushLsn: { [TL[0]]: COMMIT } }), member(2)]));
    expect(plan).toMatchObject({ type: 'wait', awaitingCommit: true, reason: expect.stringContaining(TL[1]) });
  });
});

describe('rollout planner: scenarios', () => {
  test('nothing outdated: none', () => {
    expect(planRollout(input([0, 1, 2].map((i) => member(i, { revision: 'new' })))).type).toBe('none');
  });

  test('the last restarted member is still Pending or catching up: the roll is not complete', () => {
    const pending = planRollout(input([member(0, { revision: 'new' }), member(1, { revision: 'new' }), member(2, { revision: 'new', ready: false })]));
    expect(pending).toMatchObject({ type: 'wait', restarting: 'wal-2', reason: expect.stringMatching(/ready/) });
    const lagging = planRollout(input([member(0, { revision: 'new' }), member(1, { revision: 'new' }), behindBy(2, LAG + 1n, { revision: 'new' })]));
    expect(lagging).toMatchObject({ type: 'wait', restarting: 'wal-2', reason: expect.stringMatching(/catch up/) });
  });

  test('one member lagging: wait for it, do not restart anyone', () => {
    const members = [member(0), member(1, { caughtUp: { [TL[0]]: true, [TL[1]]: false } }), member(2)];
    const plan = planRollout(input(members));
    expect(plan.type).toBe('wait');
    expect(plan.reason).toMatch(/wal-1 is catching up/);
  });

  test('one member down (pod missing): wait', () => {
    const plan = planRollout(input([member(0, { revision: 'new' }), member(1, { podExists: false, ready: false, revision: undefined, caughtUp: {} }), member(2)]));
    expect(plan).toMatchObject({ type: 'wait', reason: expect.stringMatching(/wal-1 is being recreated/) });
  });

  test('one member down on the current revision: wait, never a second casualty', () => {
    const plan = planRollout(input([member(0, { revision: 'new', ready: false }), member(1), member(2)]));
    expect(plan.type).toBe('wait');
  });

  test('template changed twice mid-rollout: the member stuck on the intermediate revision is restarted first', () => {
    // wal-0 was rolled to "mid" (a bad image) and never became ready; the user fixed the image ("new").
    const plan = planRollout(input([member(0, { revision: 'mid', ready: false }), member(1), member(2)]));
    expect(plan).toMatchObject({ type: 'deletePod', name: 'wal-0' });
  });

  test('template changed twice mid-rollout: members already on the intermediate revision are rolled again', () => {
    const plan = planRollout(input([member(0, { revision: 'mid' }), member(1, { revision: 'mid' }), member(2, { revision: 'new' })]));
    expect(plan).toMatchObject({ type: 'deletePod', name: 'wal-0' });
  });

  test('operator restarted mid-rollout: the plan continues from what the pods say', () => {
    // wal-0 already rolled and healthy; wal-1 was just deleted and is back but not caught up.
    const lagging = planRollout(input([member(0, { revision: 'new' }), member(1, { revision: 'new', caughtUp: { [TL[0]]: false, [TL[1]]: true } }), member(2)]));
    expect(lagging.type).toBe('wait');
    const next = planRollout(input([member(0, { revision: 'new' }), member(1, { revision: 'new' }), member(2)]));
    expect(next).toMatchObject({ type: 'deletePod', name: 'wal-2' });
  });

  test('StatefulSet not yet on the desired template: wait (a deleted pod would come back old)', () => {
    expect(planRollout(input([member(0), member(1), member(2)], { statefulSetRevision: 'old' })).type).toBe('wait');
  });

  test('quorum gate: holds when the members without the candidate would be fewer than a majority', () => {
    // Defensive gate: with every member healthy it always passes for 3+ members, so it bites when
    // fewer members are observed than the quorum size needs (e.g. 3 pods seen of 5).
    const plan = planRollout(input([member(0), member(1), member(2)], { size: 5 }));
    expect(plan).toMatchObject({ type: 'hold', reason: expect.stringMatching(/3 are required/) });
  });

  test('single-member cluster: restart is allowed (documented unavailability) unless disabled', () => {
    expect(planRollout(input([member(0)])).type).toBe('deletePod');
    expect(planRollout(input([member(0)], { allowSingleMemberRestart: false })).type).toBe('hold');
  });
});
