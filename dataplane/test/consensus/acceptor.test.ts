// Acceptor state machine scenarios: greeting checks, vote rules, ProposerElected
// truncation, append rules and commit LSN bookkeeping.
import { AcceptorError } from '../../src/consensus/errors.js';
import type { Acceptor } from '../../src/consensus/acceptor.js';
import {
  append,
  elected,
  freshState,
  greeting,
  h,
  kinds,
  L,
  lastPersisted,
  makeAcceptor,
  replyOf,
  thrownCode,
  vote,
} from './fixtures.js';

const code = (fn: () => unknown): string => thrownCode(AcceptorError, fn);

/** Greets and votes on a new connection; returns its id. */
function voteOn(a: Acceptor, term: number) {
  const c = a.openConnection();
  a.handle(c, greeting());
  return { c, effects: a.handle(c, vote(term)) };
}

/** A connection through greeting, vote and ProposerElected for a one-term history starting at 0/1000. */
function streaming(a: Acceptor, term = 1) {
  const { c } = voteOn(a, term);
  a.handle(c, elected(term, L('0/1000'), h([term, '0/1000'])));
  return c;
}

describe('greeting', () => {
  it('replies with node id and current term', () => {
    const a = makeAcceptor({ state: freshState({ term: 4n }) });
    const c = a.openConnection();
    expect(replyOf(a.handle(c, greeting()))).toMatchObject({ tag: 'acceptor_greeting', nodeId: 1n, term: 4n });
  });
  it('stores an unknown system id durably before replying', () => {
    const a = makeAcceptor();
    const effects = a.handle(a.openConnection(), greeting());
    expect(kinds(effects)).toEqual(['persist', 'reply']);
    expect(lastPersisted(effects).systemId).toBe(7000000000000000001n);
  });
  it('refuses a different PostgreSQL cluster (non-zero system id mismatch)', () => {
    const a = makeAcceptor({ state: freshState({ systemId: 42n, pgVersion: 160004 }) });
    const c = a.openConnection();
    expect(code(() => a.handle(c, greeting()))).toBe('system_id_mismatch');
    expect(() => a.handle(c, greeting())).toThrow(/system id 7000000000000000001 differs from the timeline's 42/);
  });
  it('accepts system id 0 (unknown, sync mode) against a stored one', () => {
    const a = makeAcceptor({ state: freshState({ systemId: 42n, pgVersion: 160004 }) });
    expect(kinds(a.handle(a.openConnection(), greeting({ systemId: 0n })))).toEqual(['reply']);
  });
  it('checks tenant, timeline, segment size and pg major version', () => {
    const a = makeAcceptor({ state: freshState({ pgVersion: 150002 }) });
    const c = a.openConnection();
    expect(code(() => a.handle(c, greeting({ tenantId: 'aa'.repeat(16) })))).toBe('tenant_mismatch');
    expect(code(() => a.handle(c, greeting({ timelineId: 'bb'.repeat(16) })))).toBe('timeline_mismatch');
    expect(code(() => a.handle(c, greeting({ walSegSize: 1 << 20 })))).toBe('wal_seg_size_mismatch');
    expect(code(() => a.handle(c, greeting({ pgVersion: 160004 })))).toBe('pg_version_mismatch');
    expect(kinds(a.handle(c, greeting({ pgVersion: 150007 })))).toContain('reply');
  });
  it('requires a greeting before a vote', () => {
    const a = makeAcceptor();
    expect(code(() => a.handle(a.openConnection(), vote(1)))).toBe('not_greeted');
  });
});

describe('vote', () => {
  it('grants a higher term and persists it before the reply', () => {
    const a = makeAcceptor();
    const { effects } = voteOn(a, 3);
    expect(kinds(effects)).toEqual(['persist', 'reply']);
    expect(lastPersisted(effects).term).toBe(3n);
    expect(replyOf(effects)).toMatchObject({ voteGiven: true, term: 3n, flushLsn: 0n, termHistory: [] });
  });
  it('refuses an equal term, replying with the current term', () => {
    const a = makeAcceptor();
    voteOn(a, 3);
    const { effects } = voteOn(a, 3);
    expect(kinds(effects)).toEqual(['reply']);
    expect(replyOf(effects)).toMatchObject({ voteGiven: false, term: 3n });
  });
  it('refuses a lower term with the higher current term', () => {
    const a = makeAcceptor({ state: freshState({ term: 9n }) });
    expect(replyOf(voteOn(a, 5).effects)).toMatchObject({ voteGiven: false, term: 9n });
  });
  it('does not vote again for the same term after a restart from persisted state', () => {
    const a = makeAcceptor();
    const persisted = lastPersisted(voteOn(a, 3).effects);
    const restarted = makeAcceptor({ state: persisted });
    expect(replyOf(voteOn(restarted, 3).effects)).toMatchObject({ voteGiven: false, term: 3n });
  });
  it('flushes written WAL before replying, and reports the flushed end', () => {
    const a = makeAcceptor();
    const c = streaming(a, 1);
    a.handle(c, append(1, L('0/1000'), 0x80));
    const { c: c2, effects } = voteOn(a, 2);
    expect(kinds(effects)).toEqual(['persist', 'flush_wal']);
    const after = a.onFlushed(L('0/1080'));
    expect(after.filter((e) => e.kind === 'reply' && e.connId === c2).map((e) => e.kind === 'reply' && e.msg)).toEqual([
      expect.objectContaining({ tag: 'vote_response', voteGiven: true, term: 2n, flushLsn: L('0/1080'), termHistory: h([1, '0/1000']) }),
    ]);
  });
  it('with the injected fault grantVoteWithoutPersist the vote is not durable (test-only)', () => {
    const a = makeAcceptor({ faults: { grantVoteWithoutPersist: true } });
    expect(kinds(voteOn(a, 3).effects)).toEqual(['reply']);
  });
});

describe('ProposerElected', () => {
  it('on an empty timeline truncates (initialises) at the start and persists history and timeline start', () => {
    const a = makeAcceptor();
    const { c } = voteOn(a, 1);
    const effects = a.handle(c, elected(1, L('0/169AD58'), h([1, '0/169AD58'])));
    expect(effects[0]).toEqual({ kind: 'truncate_wal', lsn: L('0/169AD58') });
    expect(lastPersisted(effects)).toMatchObject({ termHistory: h([1, '0/169AD58']), timelineStartLsn: L('0/169AD58') });
    expect(a.view()).toMatchObject({ flushLsn: L('0/169AD58'), lastLogTerm: 1n, termStartLsn: L('0/169AD58') });
  });
  it("truncates at the worked example's divergence point 0/400", () => {
    const state = freshState({ term: 3n, termHistory: h([1, '0/100'], [3, '0/500']), timelineStartLsn: L('0/100'), commitLsn: L('0/100') });
    const a = makeAcceptor({ state, flush: L('0/900') });
    const { c } = voteOn(a, 4);
    const prop = h([1, '0/100'], [2, '0/400'], [4, '0/700']);
    const effects = a.handle(c, elected(4, L('0/400'), prop));
    expect(kinds(effects)).toEqual(['truncate_wal', 'persist']);
    expect(effects[0]).toEqual({ kind: 'truncate_wal', lsn: L('0/400') });
    expect(a.view()).toMatchObject({ flushLsn: L('0/400'), writeLsn: L('0/400'), termHistory: prop, lastLogTerm: 2n });
  });
  it('refuses a start that is not the common point', () => {
    const state = freshState({ term: 3n, termHistory: h([1, '0/100'], [3, '0/500']), timelineStartLsn: L('0/100') });
    const a = makeAcceptor({ state, flush: L('0/900') });
    const { c } = voteOn(a, 4);
    expect(code(() => a.handle(c, elected(4, L('0/500'), h([1, '0/100'], [2, '0/400'], [4, '0/700']))))).toBe('common_point_mismatch');
  });
  it('never truncates below its own commit LSN', () => {
    const state = freshState({ term: 1n, termHistory: h([1, '0/100']), timelineStartLsn: L('0/100'), commitLsn: L('0/600') });
    const a = makeAcceptor({ state, flush: L('0/900') });
    const { c } = voteOn(a, 3);
    expect(code(() => a.handle(c, elected(3, L('0/400'), h([1, '0/100'], [3, '0/400']))))).toBe('truncate_below_commit');
  });
  it('is ignored from an older term', () => {
    const a = makeAcceptor({ state: freshState({ term: 5n }) });
    const { c } = voteOn(a, 3);
    expect(a.handle(c, elected(3, L('0/1000'), h([3, '0/1000'])))).toEqual([]);
  });
  it('requires a vote on this connection, so a reconnecting proposer repeats the sequence', () => {
    const a = makeAcceptor();
    streaming(a, 1);
    const c = a.openConnection();
    a.handle(c, greeting());
    expect(code(() => a.handle(c, elected(1, L('0/1000'), h([1, '0/1000']))))).toBe('elected_before_vote');
    expect(replyOf(a.handle(c, vote(1)))).toMatchObject({ voteGiven: false, term: 1n, flushLsn: L('0/1000') });
    expect(kinds(a.handle(c, elected(1, L('0/1000'), h([1, '0/1000']))))).toEqual(['truncate_wal', 'persist']);
  });
  it('offline member with a longer term-1 tail is cut back to the term-2 start when it returns', () => {
    // A was down holding term-1 WAL to 0/2100 while B and C elected term 2 starting at 0/2000.
    const state = freshState({ term: 1n, termHistory: h([1, '0/1000']), timelineStartLsn: L('0/1000'), commitLsn: L('0/1800') });
    const a = makeAcceptor({ state, flush: L('0/2100') });
    const { c, effects } = voteOn(a, 2);
    expect(replyOf(effects)).toMatchObject({ voteGiven: true, flushLsn: L('0/2100') });
    const prop = h([1, '0/1000'], [2, '0/2000']);
    expect(a.handle(c, elected(2, L('0/2000'), prop))[0]).toEqual({ kind: 'truncate_wal', lsn: L('0/2000') });
    expect(a.view()).toMatchObject({ flushLsn: L('0/2000'), lastLogTerm: 2n, commitLsn: L('0/1800') });
  });
});

describe('AppendRequest', () => {
  it('writes, asks for a flush, and acknowledges only the flushed end', () => {
    const a = makeAcceptor();
    const c = streaming(a);
    const effects = a.handle(c, append(1, L('0/1000'), 0x100));
    expect(kinds(effects)).toEqual(['append_wal', 'flush_wal']);
    const replies = a.onFlushed(L('0/1100'));
    expect(replyOf(replies)).toMatchObject({ tag: 'append_response', term: 1n, flushLsn: L('0/1100') });
  });
  it('answers an older term with only its term (flush 0, commit 0)', () => {
    const a = makeAcceptor();
    const c = streaming(a, 1);
    voteOn(a, 2);
    expect(replyOf(a.handle(c, append(1, L('0/1000'), 0x10)))).toMatchObject({ term: 2n, flushLsn: 0n, commitLsn: 0n });
  });
  it('refuses a newer term than stored and appends before ProposerElected', () => {
    const a = makeAcceptor();
    const { c } = voteOn(a, 1);
    expect(code(() => a.handle(c, append(1, L('0/1000'), 1)))).toBe('append_before_elected');
    const c2 = streaming(a, 1);
    expect(code(() => a.handle(c2, append(2, L('0/1000'), 1)))).toBe('append_before_elected');
  });
  it('refuses gaps and rewrites (strictly sequential)', () => {
    const a = makeAcceptor();
    const c = streaming(a);
    a.handle(c, append(1, L('0/1000'), 0x10));
    expect(code(() => a.handle(c, append(1, L('0/1000'), 0x10)))).toBe('non_sequential_append');
    expect(code(() => a.handle(c, append(1, L('0/1020'), 0x10)))).toBe('non_sequential_append');
  });
  it('refuses a payload whose length does not match end - begin', () => {
    const a = makeAcceptor();
    const c = streaming(a);
    expect(code(() => a.handle(c, { ...append(1, L('0/1000'), 4), endLsn: L('0/1008') }))).toBe('invalid_append');
  });
  it('commit LSN is capped by flush and never decreases', () => {
    const a = makeAcceptor();
    const c = streaming(a);
    a.handle(c, append(1, L('0/1000'), 0x100, L('0/1080')));
    expect(a.commitLsn).toBe(L('0/1000')); // nothing beyond the start is flushed yet
    a.onFlushed(L('0/1100'));
    expect(a.commitLsn).toBe(L('0/1080'));
    a.handle(c, append(1, L('0/1100'), 0x10, L('0/1040')));
    a.onFlushed(L('0/1110'));
    expect(a.commitLsn).toBe(L('0/1080'));
  });
  it('persists the commit LSN lazily, but at once when it first reaches the term start', () => {
    const state = freshState({ term: 1n, termHistory: h([1, '0/1000']), timelineStartLsn: L('0/1000'), commitLsn: L('0/1000') });
    const a = makeAcceptor({ state, flush: L('0/1400') });
    const { c } = voteOn(a, 2);
    a.handle(c, elected(2, L('0/1400'), h([1, '0/1000'], [2, '0/1400'])));
    // commit = min(announced 0/1410, flush 0/1400) reaches the term start: persisted at once.
    const effects = a.handle(c, append(2, L('0/1400'), 0x10, L('0/1410')));
    expect(kinds(effects)).toEqual(['append_wal', 'persist', 'flush_wal']);
    expect(lastPersisted(effects).commitLsn).toBe(L('0/1400'));
    // later advances stay in memory until a checkpoint
    expect(kinds(a.onFlushed(L('0/1410')))).toEqual(['reply']);
    expect(a.commitLsn).toBe(L('0/1410'));
    expect(kinds(a.checkpoint())).toEqual(['persist']);
    expect(a.checkpoint()).toEqual([]);
  });
  it('refuses to start when flushed WAL ends below the persisted commit LSN', () => {
    expect(() => makeAcceptor({ state: freshState({ commitLsn: L('0/2000'), timelineStartLsn: L('0/1000') }), flush: L('0/1800') })).toThrow(
      /below commit LSN 0\/2000: potential data loss/,
    );
  });
});

describe('persist acknowledgement', () => {
  it('a persisted state becomes durable only once the shell acknowledges it', () => {
    const a = makeAcceptor();
    const persisted = lastPersisted(voteOn(a, 3).effects);
    expect(a.durableState.term).toBe(0n);
    a.onPersisted(persisted);
    expect(a.durableState.term).toBe(3n);
  });
  it('refuses an acknowledgement that would move the durable term back, and keeps the durable state', () => {
    const a = makeAcceptor();
    const first = lastPersisted(voteOn(a, 3).effects);
    a.onPersisted(first);
    expect(code(() => a.onPersisted({ ...first, term: 2n }))).toBe('invalid_persist_ack');
    expect(a.durableState.term).toBe(3n);
  });
  it('refuses an acknowledgement of another timeline', () => {
    const a = makeAcceptor();
    const s = lastPersisted(voteOn(a, 3).effects);
    expect(code(() => a.onPersisted({ ...s, timelineId: 'ff'.repeat(16) }))).toBe('invalid_persist_ack');
    expect(a.durableState.term).toBe(0n);
  });
});
