// PostgreSQL timeline switches in the consensus machines: the acceptor records a proposer's
// timeline (persisted before anything after it), refuses a timeline going backwards without
// changing its state, and will not vote for an old primary; the proposer fences itself when
// an acceptor holds a newer timeline, and tells members its timeline before new WAL.
import { AcceptorError } from '../../src/consensus/errors.js';
import type { Acceptor } from '../../src/consensus/acceptor.js';
import type { AcceptorMessage, ProposerPgTimeline } from '../../src/consensus/messages.js';
import { Proposer, type ProposerEffect } from '../../src/consensus/proposer.js';
import type { PgTimelineInfo } from '../../src/consensus/pgTimeline.js';
import { append, elected, freshState, greeting, h, kinds, L, lastPersisted, makeAcceptor, replyOf, SEG, TENANT, TIMELINE, thrownCode, vote } from './fixtures.js';

const TLI2_FILE = '1\t0/2000\tno recovery target specified\n';
const TLI2: PgTimelineInfo = { tli: 2, startLsn: L('0/2000'), historyFile: TLI2_FILE };
const pgTimeline = (term: number, info: PgTimelineInfo): ProposerPgTimeline => ({ tag: 'pg_timeline', generation: 0, term: BigInt(term), ...info });

const code = (fn: () => unknown): string => thrownCode(AcceptorError, fn);

/** An acceptor holding WAL 0/1000..0/2000 of term 1, elected on connection c. */
function acceptorAt2000(): { a: Acceptor; c: number } {
  const a = makeAcceptor({ state: freshState({ term: 1n, termHistory: h([1, '0/1000']), timelineStartLsn: L('0/1000') }), write: L('0/2000'), flush: L('0/2000') });
  const c = a.openConnection();
  a.handle(c, greeting());
  a.handle(c, vote(2));
  a.handle(c, elected(2, L('0/2000'), h([1, '0/1000'], [2, '0/2000'])));
  return { a, c };
}

describe('acceptor', () => {
  it('reports its PostgreSQL timeline in the greeting', () => {
    const a = makeAcceptor();
    expect(replyOf(a.handle(a.openConnection(), greeting()))).toMatchObject({ pgTimeline: 1, pgTimelineStartLsn: 0n });
  });

  it('persists a timeline switch at the end of its WAL before handling the WAL that follows', () => {
    const { a, c } = acceptorAt2000();
    const effects = a.handle(c, pgTimeline(2, TLI2));
    expect(kinds(effects)).toEqual(['persist']);
    expect(lastPersisted(effects)).toMatchObject({ pgTimelineHistory: [{ tli: 1, startLsn: 0n }, { tli: 2, startLsn: L('0/2000') }], pgHistoryFile: TLI2_FILE });
    expect(kinds(a.handle(c, append(2, L('0/2000'), 100)))).toEqual(['append_wal', 'flush_wal']);
    expect(replyOf(a.handle(a.openConnection(), greeting()))).toMatchObject({ pgTimeline: 2, pgTimelineStartLsn: L('0/2000') });
    // the same report again changes nothing
    expect(a.handle(c, pgTimeline(2, TLI2))).toEqual([]);
  });

  it('refuses a timeline going backwards and keeps its state', () => {
    const { a, c } = acceptorAt2000();
    a.handle(c, pgTimeline(2, TLI2));
    const before = a.persistentState;
    expect(code(() => a.handle(c, pgTimeline(2, { tli: 1, startLsn: 0n, historyFile: '' })))).toBe('pg_timeline_regressed');
    expect(a.persistentState).toEqual(before);
  });

  it('refuses a switch below WAL it holds and keeps its state', () => {
    const { a, c } = acceptorAt2000();
    const before = a.persistentState;
    const early = { tli: 2, startLsn: L('0/1800'), historyFile: '1\t0/1800\tx\n' };
    expect(() => a.handle(c, pgTimeline(2, early))).toThrow(/already holds WAL of timeline 1 up to 0\/2000/);
    expect(a.persistentState).toEqual(before);
  });

  it('refuses a PgTimeline before ProposerElected on the connection, ignores one from an older term', () => {
    const a = makeAcceptor({ state: freshState({ term: 3n }) });
    const c = a.openConnection();
    a.handle(c, greeting());
    expect(code(() => a.handle(c, pgTimeline(3, TLI2)))).toBe('pg_timeline_before_elected');
    expect(a.handle(c, pgTimeline(2, TLI2))).toEqual([]);
  });

  it('will not vote for a proposer whose PostgreSQL is on an older timeline, and keeps its term', () => {
    const { a, c } = acceptorAt2000();
    a.handle(c, pgTimeline(2, TLI2));
    const old = a.openConnection();
    a.handle(old, greeting({ pgTimeline: 1 }));
    expect(() => a.handle(old, vote(5))).toThrow(/proposer's PostgreSQL is on timeline 1, this safekeeper holds timeline 2 \(from 0\/2000\)/);
    expect(a.persistentState.term).toBe(2n);
  });
});

describe('proposer', () => {
  function proposer(pgTl?: PgTimelineInfo): Proposer {
    return new Proposer({ tenantId: TENANT, timelineId: TIMELINE, pgVersion: 160004, systemId: 7n, walSegSize: SEG, memberCount: 3, startLsnIfEmpty: L('0/1000'), pgTimeline: pgTl });
  }
  const greet = (term: bigint, tli?: number, start?: bigint): AcceptorMessage => ({
    tag: 'acceptor_greeting', nodeId: 9n, mconf: { generation: 0, members: [], newMembers: null }, term,
    ...(tli === undefined ? {} : { pgTimeline: tli, pgTimelineStartLsn: start ?? 0n }),
  });
  const voteResp = (term: bigint): AcceptorMessage => ({ tag: 'vote_response', generation: 0, term, voteGiven: true, flushLsn: L('0/2000'), truncateLsn: 0n, termHistory: h([1, '0/1000']) });
  const tags = (effects: ProposerEffect[], member: number) => effects.filter((e) => (e.kind === 'send' && e.member === member) || (e.kind === 'send_append' && e.member === member)).map((e) => (e.kind === 'send' ? e.msg.tag : 'append'));

  function elect(p: Proposer, tli: number, start: bigint): ProposerEffect[] {
    const out: ProposerEffect[] = [];
    for (const i of [0, 1]) {
      p.onConnected(i);
      out.push(...p.handle(i, greet(1n, tli, start)));
    }
    for (const i of [0, 1]) out.push(...p.handle(i, voteResp(2n)));
    return out;
  }

  it('sends its greeting with its PostgreSQL timeline', () => {
    expect(proposer(TLI2).greeting().pgTimeline).toBe(2);
  });

  it('fences itself, without voting, when an acceptor holds a newer timeline', () => {
    const p = proposer();
    p.onConnected(0);
    const effects = p.handle(0, greet(1n, 2, L('0/2000')));
    expect(effects).toEqual([{ kind: 'fenced', reason: expect.stringMatching(/acceptor 9 holds PostgreSQL timeline 2 \(from 0\/2000\) but our PostgreSQL is on timeline 1: a newer primary was promoted/), by: 'pg_timeline' }]);
    expect(p.phase).toBe('fenced');
  });

  it('fences itself when an acceptor holds its timeline id from another promotion', () => {
    const p = proposer(TLI2);
    p.onConnected(0);
    expect(p.handle(0, greet(1n, 2, L('0/3000')))[0]).toMatchObject({ kind: 'fenced', reason: expect.stringMatching(/another standby was promoted to the same timeline/) });
  });

  it('tells a member its timeline right after ProposerElected when the member has another one', () => {
    expect(tags(elect(proposer(), 1, 0n), 0)).toEqual(['vote_request', 'proposer_elected', 'append']);
    const p = proposer(TLI2);
    expect(tags(elect(p, 1, 0n), 0)).toEqual(['vote_request', 'proposer_elected', 'pg_timeline', 'append']);
  });

  it('announces a promotion to every streaming member before WAL of the new timeline', () => {
    const p = proposer();
    elect(p, 1, 0n);
    const effects = [...p.switchPgTimeline(TLI2), ...p.onWalAppended(L('0/2100'))];
    expect(tags(effects, 0)).toEqual(['pg_timeline', 'append']);
    expect(tags(effects, 1)).toEqual(['pg_timeline', 'append']);
    expect(p.status().pgTimeline.tli).toBe(2);
  });

  it('refuses a switch that goes backwards or starts inside WAL already in its log', () => {
    const p = proposer();
    elect(p, 1, 0n);
    p.onWalAppended(L('0/2100'));
    expect(() => p.switchPgTimeline(TLI2)).toThrow(/starts at 0\/2000, before the end of our log 0\/2100/);
    const q = proposer(TLI2);
    elect(q, 2, L('0/2000'));
    expect(() => q.switchPgTimeline({ tli: 1, startLsn: 0n, historyFile: '' })).toThrow(/cannot go from 2 to 1/);
  });
});
