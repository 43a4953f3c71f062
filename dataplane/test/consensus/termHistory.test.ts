// Term history arithmetic: validation, last log term, trimming and the highest common point.
import fc from 'fast-check';
import { parseLsn } from '../../src/common/lsn.js';
import {
  findHighestCommonPoint,
  lastLogTerm,
  startStreamingAt,
  trimTermHistory,
  validateTermHistory,
} from '../../src/consensus/termHistory.js';
import type { TermHistory } from '../../src/consensus/messages.js';

const L = parseLsn;
const h = (...entries: [number, string][]): TermHistory => entries.map(([t, l]) => ({ term: BigInt(t), lsn: L(l) }));

describe('validateTermHistory', () => {
  it('accepts strictly increasing terms with non-decreasing LSNs', () => {
    expect(() => validateTermHistory(h([1, '0/100'], [2, '0/100'], [5, '0/200']))).not.toThrow();
  });
  it('rejects a repeated term, naming it', () => {
    expect(() => validateTermHistory(h([1, '0/100'], [1, '0/200']))).toThrow(/term 1 at entry 1 does not increase/);
  });
  it('rejects a decreasing LSN, naming both positions', () => {
    expect(() => validateTermHistory(h([1, '0/200'], [2, '0/100']))).toThrow(/starts at 0\/100, before entry 0 \(term 1\) at 0\/200/);
  });
});

describe('lastLogTerm and trimming', () => {
  const hist = h([1, '0/100'], [3, '0/500']);
  it('counts only entries at or below the flush LSN', () => {
    expect(lastLogTerm(hist, L('0/4FF'))).toBe(1n);
    expect(lastLogTerm(hist, L('0/500'))).toBe(3n);
    expect(lastLogTerm(hist, L('0/50'))).toBe(0n);
    expect(trimTermHistory(hist, L('0/4FF'))).toEqual(h([1, '0/100']));
  });
});

describe('findHighestCommonPoint', () => {
  it("the notes' worked example: sk [(1,0/100),(3,0/500)] flush 0/900 vs proposer [(1,0/100),(2,0/400),(4,0/700)] → 0/400", () => {
    const point = findHighestCommonPoint(h([1, '0/100'], [2, '0/400'], [4, '0/700']), h([1, '0/100'], [3, '0/500']), L('0/900'));
    expect(point).toEqual({ term: 1n, lsn: L('0/400') });
  });
  it('an empty acceptor has no common point and is streamed from the first entry', () => {
    const prop = h([1, '0/169AD58']);
    expect(findHighestCommonPoint(prop, [], 0n)).toBeNull();
    expect(startStreamingAt(prop, [], 0n)).toBe(L('0/169AD58'));
  });
  it("a reconnect in the proposer's own term streams from the acceptor's flush", () => {
    expect(startStreamingAt(h([1, '0/100'], [2, '0/300']), h([1, '0/100'], [2, '0/300']), L('0/450'))).toBe(L('0/450'));
  });
  it('a lagging acceptor of the previous term streams from its own flush', () => {
    expect(startStreamingAt(h([1, '0/100'], [2, '0/2000']), h([1, '0/100']), L('0/1800'))).toBe(L('0/1800'));
  });
  it('an acceptor with a longer tail of the previous term is cut at the new term start', () => {
    expect(startStreamingAt(h([1, '0/100'], [2, '0/2000']), h([1, '0/100']), L('0/2100'))).toBe(L('0/2000'));
  });
  it('ignores acceptor history entries past its flush', () => {
    expect(startStreamingAt(h([1, '0/100'], [2, '0/400']), h([1, '0/100'], [3, '0/500']), L('0/450'))).toBe(L('0/400'));
  });
  it('rejects the same term starting at different LSNs', () => {
    expect(() => findHighestCommonPoint(h([1, '0/100'], [2, '0/400']), h([1, '0/100'], [2, '0/300']), L('0/500'))).toThrow(
      /term 2 starts at 0\/300 on the acceptor but at 0\/400/,
    );
  });

  // Property: the point is never past either side's end of shared WAL, and an acceptor that
  // holds exactly a prefix of the proposer's log is never truncated.
  const historyArb = fc
    .array(fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 50 })), { minLength: 1, maxLength: 5 })
    .map((steps) => {
      let term = 0n;
      let lsn = 0x100n;
      return steps.map(([dt, dl]) => {
        term += BigInt(dt);
        lsn += BigInt(dl);
        return { term, lsn };
      });
    });
  it('a prefix of the proposer log is kept whole', () => {
    fc.assert(
      fc.property(historyArb, fc.integer({ min: 0, max: 100 }), (prop, cut) => {
        const end = prop[prop.length - 1].lsn;
        const flush = prop[0].lsn + (BigInt(cut) * (end - prop[0].lsn)) / 100n;
        // The acceptor's history describes WAL up to flush; its last term runs to flush.
        const acc = trimTermHistory(prop, flush);
        expect(startStreamingAt(prop, acc, flush)).toBe(flush);
      }),
    );
  });
  it('the point never exceeds the acceptor flush or the end of the common term on the proposer', () => {
    fc.assert(
      fc.property(historyArb, historyArb, fc.integer({ min: 0, max: 300 }), (prop, acc, extra) => {
        const flush = acc[acc.length - 1].lsn + BigInt(extra);
        let point;
        try {
          point = findHighestCommonPoint(prop, acc, flush);
        } catch {
          return; // same term at different LSNs: such histories cannot coexist
        }
        if (point === null) return;
        expect(point.lsn <= flush).toBe(true);
        const idx = prop.findIndex((e) => e.term === point.term);
        if (idx + 1 < prop.length) expect(point.lsn <= prop[idx + 1].lsn).toBe(true);
      }),
    );
  });
});
