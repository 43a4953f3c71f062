import fc from 'fast-check';
import { caughtUpWithout, majority, planRollout, type MemberObservation, type RolloutInput } from '../../src/rollout/planner.js';

const TL = ['t1/l1', 't2/l2'];
const member = (ordinal: number, over: Partial<MemberObservation> = {}): MemberObservation => ({
  name: `wal-${ordinal}`,
  ordinal,
  podExists: true,
  deleting: false,
  ready: true,
  revision: 'old',
  caughtUp: Object.fromEntries(TL.map((t) => [t, true])),
  ...over,
});
const input = (members: MemberObservation[], over: Partial<RolloutInput> = {}): RolloutInput => ({
  desiredRevision: 'new',
  statefulSetRevision: 'new',
  size: members.length,
  members,
  timelines: TL,
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
  }).map((r): MemberObservation => ({
    name: `wal-${ordinal}`,
    ordinal,
    podExists: r.podExists,
    deleting: r.podExists && r.deleting,
    ready: r.podExists && r.ready,
    revision: r.podExists ? r.revision : undefined,
    caughtUp: r.podExists ? { [TL[0]]: r.c1, [TL[1]]: r.c2 } : {},
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

describe('rollout planner: scenarios', () => {
  test('nothing outdated: none', () => {
    expect(planRollout(input([0, 1, 2].map((i) => member(i, { revision: 'new' })))).type).toBe('none');
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
