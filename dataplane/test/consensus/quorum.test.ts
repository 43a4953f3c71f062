// Quorum arithmetic: majority size and the figure-8 commit rule.
import fc from 'fast-check';
import { majority, quorumCommitLsn } from '../../src/consensus/quorum.js';

describe('majority', () => {
  it('is n/2+1', () => {
    expect([1, 2, 3, 4, 5, 7].map(majority)).toEqual([1, 2, 2, 3, 3, 4]);
  });
  it('rejects a non-positive member count', () => {
    expect(() => majority(0)).toThrow(/invalid member count 0/);
  });
});

describe('quorumCommitLsn', () => {
  it('is the highest LSN flushed on a majority', () => {
    expect(quorumCommitLsn([0x1800n, 0x2000n, 0x2000n], 0x100n)).toBe(0x2000n);
    expect(quorumCommitLsn([0x1800n, 0x2000n, 0x0n], 0x100n)).toBe(0x1800n);
  });
  it('counts acks below the term start as 0 (figure 8)', () => {
    // Two members hold previous-term WAL up to 0/1F00 but none reached our start 0/2000 yet.
    expect(quorumCommitLsn([0x1f00n, 0x1f00n, 0x2000n], 0x2000n)).toBe(0n);
    expect(quorumCommitLsn([0x1f00n, 0x2000n, 0x2100n], 0x2000n)).toBe(0x2000n);
  });
  it('without the rule it would commit previous-term WAL (what the fault injects)', () => {
    expect(quorumCommitLsn([0x1f00n, 0x1f00n, 0x2000n], 0x2000n, { skipFigure8Rule: true })).toBe(0x1f00n);
  });
  it('is held by a majority and is monotonic in every ack', () => {
    fc.assert(
      fc.property(fc.array(fc.bigInt({ min: 0n, max: 1000n }), { minLength: 1, maxLength: 7 }), fc.nat(6), (acks, i) => {
        const c = quorumCommitLsn(acks, 0n);
        expect(acks.filter((a) => a >= c).length).toBeGreaterThanOrEqual(majority(acks.length));
        const raised = [...acks];
        raised[i % acks.length] += 10n;
        expect(quorumCommitLsn(raised, 0n) >= c).toBe(true);
      }),
    );
  });
});
