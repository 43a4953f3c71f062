// PostgreSQL timeline history (consensus/pgTimeline.ts): parsing .history files as PostgreSQL
// does, deriving every ancestor's file, timeline ends, and the acceptor's switch rule.
import {
  applyPgTimeline,
  historyFileFor,
  historyFileName,
  parseHistoryFile,
  pgTimelineEnd,
  pgTimelineHistoryOf,
  pgTimelineOfSegment,
  PgTimelineError,
  type PgTimelineHistory,
} from '../../src/consensus/pgTimeline.js';
import { L, thrownCode } from './fixtures.js';

// As PostgreSQL writes them: TLI 2's file, then TLI 3's = TLI 2's + "\n" + a line for TLI 2.
const TLI2_FILE = '1\t0/40037D8\tno recovery target specified\n';
const TLI3_FILE = TLI2_FILE + '\n2\t0/6000100\tno recovery target specified\n';
const HISTORY3: PgTimelineHistory = [
  { tli: 1, startLsn: 0n },
  { tli: 2, startLsn: L('0/40037D8') },
  { tli: 3, startLsn: L('0/6000100') },
];

const errorCode = (fn: () => unknown): string => thrownCode(PgTimelineError, fn);

describe('history files', () => {
  it('names files as PostgreSQL does', () => {
    expect(historyFileName(2)).toBe('00000002.history');
    expect(historyFileName(0x1a)).toBe('0000001A.history');
  });

  it('parses lines, skipping blank lines and comments', () => {
    expect(parseHistoryFile('# comment\n' + TLI3_FILE)).toEqual([
      { parentTli: 1, switchpoint: L('0/40037D8'), reason: 'no recovery target specified' },
      { parentTli: 2, switchpoint: L('0/6000100'), reason: 'no recovery target specified' },
    ]);
  });

  it('refuses syntax errors and timelines that do not increase, naming the line', () => {
    expect(() => parseHistoryFile('1\tnot-an-lsn\n')).toThrow(/syntax error in history file line 1/);
    expect(() => parseHistoryFile('2\t0/100\tx\n1\t0/200\tx\n')).toThrow(/line 2: timeline 1 does not increase over 2/);
    expect(() => parseHistoryFile('1\t0/200\tx\n2\t0/100\tx\n')).toThrow(/switchpoint 0\/100 is before the previous one 0\/200/);
  });

  it('derives the (tli, start) list of the current timeline', () => {
    expect(pgTimelineHistoryOf({ tli: 3, startLsn: L('0/6000100'), historyFile: TLI3_FILE })).toEqual(HISTORY3);
    expect(pgTimelineHistoryOf({ tli: 1, startLsn: 0n, historyFile: '' })).toEqual([{ tli: 1, startLsn: 0n }]);
  });

  it('refuses a start that contradicts the file, or an ancestor with a higher id', () => {
    expect(() => pgTimelineHistoryOf({ tli: 2, startLsn: L('0/5000000'), historyFile: TLI2_FILE })).toThrow(/said to start at 0\/5000000 but its history file says timeline 1 ended at 0\/40037D8/);
    expect(() => pgTimelineHistoryOf({ tli: 1, startLsn: 0n, historyFile: TLI2_FILE })).toThrow(/names timeline 1 as an ancestor/);
  });

  it('gives every timeline\'s file exactly as PostgreSQL wrote it, none for the first, undefined for unknown', () => {
    expect(historyFileFor(HISTORY3, TLI3_FILE, 3)).toBe(TLI3_FILE);
    expect(historyFileFor(HISTORY3, TLI3_FILE, 2)).toBe(TLI2_FILE);
    expect(historyFileFor(HISTORY3, TLI3_FILE, 1)).toBeNull();
    expect(historyFileFor(HISTORY3, TLI3_FILE, 4)).toBeUndefined();
  });

  it('knows where a timeline ends and which follows', () => {
    expect(pgTimelineEnd(HISTORY3, 1)).toEqual({ end: L('0/40037D8'), nextTli: 2 });
    expect(pgTimelineEnd(HISTORY3, 2)).toEqual({ end: L('0/6000100'), nextTli: 3 });
    expect(pgTimelineEnd(HISTORY3, 3)).toBeNull();
    expect(pgTimelineEnd(HISTORY3, 7)).toBeUndefined();
  });
});

describe('the acceptor\'s timeline switch rule', () => {
  const tli1: PgTimelineHistory = [{ tli: 1, startLsn: 0n }];
  const tli2 = { tli: 2, startLsn: L('0/40037D8'), historyFile: TLI2_FILE };

  it('records a switch that starts at or after the WAL it holds', () => {
    expect(applyPgTimeline(tli1, '', tli2, L('0/40037D8'))).toEqual(HISTORY3.slice(0, 2));
    expect(applyPgTimeline(tli1, '', tli2, L('0/3000000'))).toEqual(HISTORY3.slice(0, 2));
  });

  it('changes nothing for the timeline it already has', () => {
    expect(applyPgTimeline(HISTORY3.slice(0, 2), TLI2_FILE, tli2, L('0/5000000'))).toBeNull();
    expect(applyPgTimeline(tli1, '', { tli: 1, startLsn: 0n, historyFile: '' }, L('0/5000000'))).toBeNull();
  });

  it('refuses a timeline going backwards (an old primary)', () => {
    expect(errorCode(() => applyPgTimeline(HISTORY3.slice(0, 2), TLI2_FILE, { tli: 1, startLsn: 0n, historyFile: '' }, 0n))).toBe('pg_timeline_regressed');
  });

  it('refuses the same timeline from another promotion', () => {
    const other = { tli: 2, startLsn: L('0/4100000'), historyFile: '1\t0/4100000\tno recovery target specified\n' };
    expect(() => applyPgTimeline(HISTORY3.slice(0, 2), TLI2_FILE, other, 0n)).toThrow(/two promotions produced the same timeline ID/);
  });

  it('refuses a switch below WAL already held: it would relabel stored WAL', () => {
    expect(() => applyPgTimeline(tli1, '', tli2, L('0/4100000'))).toThrow(/already holds WAL of timeline 1 up to 0\/4100000/);
  });

  it('refuses a history that does not continue the stored one', () => {
    const forked = { tli: 3, startLsn: L('0/6000100'), historyFile: '1\t0/4000000\tx\n\n2\t0/6000100\tx\n' };
    expect(errorCode(() => applyPgTimeline(HISTORY3.slice(0, 2), TLI2_FILE, forked, 0n))).toBe('pg_timeline_mismatch');
  });

  it('refuses a malformed history file', () => {
    expect(errorCode(() => applyPgTimeline(tli1, '', { tli: 2, startLsn: 0n, historyFile: 'garbage\n' }, 0n))).toBe('invalid_history_file');
  });
});

describe('pgTimelineOfSegment: the timeline a segment file is named after', () => {
  const seg = 16 * 1024 * 1024;
  const history = [{ tli: 1, startLsn: 0n }, { tli: 2, startLsn: 0x5007970n }, { tli: 3, startLsn: 0xa000000n }];
  test('a segment wholly before the first switch is the first timeline\'s', () => {
    expect(pgTimelineOfSegment(history, 0x4000000n, seg)).toBe(1);
  });
  test('the segment holding a switchpoint is named after the new timeline, as PostgreSQL names it', () => {
    expect(pgTimelineOfSegment(history, 0x5000000n, seg)).toBe(2);
  });
  test('a switch exactly at a segment boundary leaves the segment before it to the parent', () => {
    expect(pgTimelineOfSegment(history, 0x9000000n, seg)).toBe(2);
    expect(pgTimelineOfSegment(history, 0xa000000n, seg)).toBe(3);
  });
  test('a history that starts later (a branch) names everything after its first timeline', () => {
    expect(pgTimelineOfSegment([{ tli: 3, startLsn: 0xa000000n }], 0xa000000n, seg)).toBe(3);
  });
});
