// The torture's PRNG and fault schedule are pure functions of the seed, so a printed seed replays a run.
import { Prng, parseSeed } from '@walkeeper/dataplane/common/prng';
import { generateSchedule, describeFault } from '../../src/torture/schedule.js';

describe('Prng', () => {
  test('the same seed gives the same sequence', () => {
    const a = new Prng(12345);
    const b = new Prng(12345);
    const xs = Array.from({ length: 100 }, () => a.nextU32());
    expect(Array.from({ length: 100 }, () => b.nextU32())).toEqual(xs);
  });

  test('different seeds give different sequences', () => {
    const a = Array.from({ length: 10 }, ((p) => () => p.nextU32())(new Prng(1)));
    const b = Array.from({ length: 10 }, ((p) => () => p.nextU32())(new Prng(2)));
    expect(a).not.toEqual(b);
  });

  test('int stays within its inclusive bounds and reaches both ends', () => {
    const p = new Prng(7);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const v = p.int(3, 6);
      expect(v).toBeGreaterThanOrEqual(3);
      expect(v).toBeLessThanOrEqual(6);
      seen.add(v);
    }
    expect([...seen].sort()).toEqual([3, 4, 5, 6]);
  });

  test('weighted never picks a zero weight', () => {
    const p = new Prng(99);
    for (let i = 0; i < 1000; i++) expect(p.weighted({ a: 1, b: 0, c: 3 })).not.toBe('b');
  });

  test('parseSeed accepts decimal and hex and refuses junk', () => {
    expect(parseSeed('42')).toBe(42);
    expect(parseSeed('0xff')).toBe(255);
    expect(() => parseSeed('-1')).toThrow(/invalid --seed/);
    expect(() => parseSeed('abc')).toThrow(/invalid --seed/);
  });
});

describe('generateSchedule', () => {
  const opts = { safekeepers: [1, 2, 3], count: 200 };

  test('is a pure function of the seed', () => {
    expect(generateSchedule(2024, opts)).toEqual(generateSchedule(2024, opts));
    expect(generateSchedule(2024, opts)).not.toEqual(generateSchedule(2025, opts));
  });

  test('every kind appears, with sane targets, gaps and down times', () => {
    const faults = generateSchedule(1, opts);
    expect(faults).toHaveLength(200);
    expect(new Set(faults.map((f) => f.kind))).toEqual(new Set(['kill_safekeeper', 'restart_proposer', 'crash_postgres', 'quorum_loss']));
    for (const f of faults) {
      expect(f.afterMs).toBeGreaterThanOrEqual(1500);
      expect(f.afterMs).toBeLessThanOrEqual(4000);
      expect(f.downMs).toBeGreaterThanOrEqual(0);
      expect(f.downMs).toBeLessThanOrEqual(3000);
      if (f.kind === 'kill_safekeeper') expect(f.targets).toHaveLength(1);
      else if (f.kind === 'quorum_loss') {
        expect(f.targets).toHaveLength(2);
        expect(f.targets[0]).not.toBe(f.targets[1]);
      } else expect(f.targets).toEqual([]);
      for (const t of f.targets) expect([1, 2, 3]).toContain(t);
      expect(describeFault(f)).toMatch(/restart after \d+ ms/);
    }
  });

  test('a zero weight removes a kind, and fewer than 3 safekeepers never lose the quorum on purpose', () => {
    expect(generateSchedule(5, { ...opts, weights: { quorum_loss: 0 } }).some((f) => f.kind === 'quorum_loss')).toBe(false);
    expect(generateSchedule(5, { safekeepers: [1], count: 200 }).some((f) => f.kind === 'quorum_loss')).toBe(false);
  });
});
