// Proposer core scenarios: term choice, election, donor choice, per-member start positions,
// commit LSN (figure-8 rule) and fencing by a newer term.
import type { Lsn } from '../../src/common/lsn.js';
import { Acceptor, type AcceptorEffect } from '../../src/consensus/acceptor.js';
import type { AcceptorMessage, TermHistory } from '../../src/consensus/messages.js';
import { Proposer, type ProposerEffect, type ProposerOptions } from '../../src/consensus/proposer.js';
import { freshState, h, L, SEG, TENANT, TIMELINE } from './fixtures.js';

function proposer(over: Partial<ProposerOptions> = {}): Proposer {
  return new Proposer({
    tenantId: TENANT,
    timelineId: TIMELINE,
    pgVersion: 160004,
    systemId: 7n,
    walSegSize: SEG,
    memberCount: 3,
    startLsnIfEmpty: L('0/1000000'),
    ...over,
  });
}

const greet = (term: bigint): AcceptorMessage => ({ tag: 'acceptor_greeting', nodeId: 0n, mconf: { generation: 0, members: [], newMembers: null }, term });
const voteResp = (term: bigint, voteGiven: boolean, flushLsn: Lsn, termHistory: TermHistory): AcceptorMessage => ({
  tag: 'vote_response',
  generation: 0,
  term,
  voteGiven,
  flushLsn,
  truncateLsn: 0n,
  termHistory,
});
const ack = (term: bigint, flushLsn: Lsn): AcceptorMessage => ({
  tag: 'append_response',
  generation: 0,
  term,
  flushLsn,
  commitLsn: 0n,
  hsFeedback: { ts: 0n, xmin: 0n, catalogXmin: 0n },
});

const sent = (effects: ProposerEffect[], tag: string) =>
  effects.filter((e) => e.kind === 'send' && e.msg.tag === tag) as Extract<ProposerEffect, { kind: 'send' }>[];

/** Greets all three members with the given terms; returns the vote requests. */
function campaign(p: Proposer, terms: bigint[]): ProposerEffect[] {
  const out: ProposerEffect[] = [];
  terms.forEach((t, i) => {
    p.onConnected(i);
    out.push(...p.handle(i, greet(t)));
  });
  return out;
}

describe('election', () => {
  it('picks term = max seen + 1 once a majority greeted, and asks greeted members for votes', () => {
    const p = proposer();
    p.onConnected(0);
    expect(p.handle(0, greet(4n))).toEqual([]);
    p.onConnected(1);
    const effects = p.handle(1, greet(2n));
    expect(p.term).toBe(5n);
    expect(sent(effects, 'vote_request').map((e) => e.member)).toEqual([0, 1]);
  });
  it('on an empty timeline starts at the supplied LSN and streams everyone from it', () => {
    const p = proposer();
    campaign(p, [0n, 0n, 0n]);
    p.handle(0, voteResp(1n, true, 0n, []));
    const effects = p.handle(1, voteResp(1n, true, 0n, []));
    expect(effects[0]).toMatchObject({ kind: 'elected', term: 1n, termStartLsn: L('0/1000000'), termHistory: h([1, '0/1000000']), timelineEmpty: true });
    expect(sent(effects, 'proposer_elected').map((e) => e.msg)).toEqual([
      expect.objectContaining({ startStreamingAt: L('0/1000000') }),
      expect.objectContaining({ startStreamingAt: L('0/1000000') }),
    ]);
  });
  it('chooses the donor by last log term before flush: a longer log from an older term loses', () => {
    const p = proposer();
    campaign(p, [2n, 2n, 2n]);
    // member 0 was offline: long term-1 tail to 0/2100; member 1 holds term 2 up to 0/2050.
    p.handle(0, voteResp(3n, true, L('0/2100'), h([1, '0/1000'])));
    const effects = p.handle(1, voteResp(3n, true, L('0/2050'), h([1, '0/1000'], [2, '0/2000'])));
    expect(effects[0]).toMatchObject({ kind: 'elected', timelineEmpty: false });
    expect(p.donor).toBe(1);
    expect(p.termStartLsn).toBe(L('0/2050'));
    expect(p.termHistory).toEqual(h([1, '0/1000'], [2, '0/2000'], [3, '0/2050']));
    const starts = Object.fromEntries(sent(effects, 'proposer_elected').map((e) => [e.member, (e.msg as { startStreamingAt: Lsn }).startStreamingAt]));
    expect(starts).toEqual({ 0: L('0/2000'), 1: L('0/2050') });
  });
  it('a member joining late gets a VoteRequest then ProposerElected from its common point', () => {
    const p = proposer();
    campaign(p, [0n, 0n]);
    p.handle(0, voteResp(1n, true, 0n, []));
    p.handle(1, voteResp(1n, true, 0n, []));
    p.onConnected(2);
    expect(sent(p.handle(2, greet(0n)), 'vote_request')).toHaveLength(1);
    const effects = p.handle(2, voteResp(1n, true, 0n, []));
    expect(sent(effects, 'proposer_elected')[0].msg).toMatchObject({ startStreamingAt: L('0/1000000') });
    expect(p.status().members[2].state).toBe('streaming');
  });
});

describe('commit LSN', () => {
  function electedAt(termStart: string): Proposer {
    const p = proposer();
    campaign(p, [1n, 1n, 1n]);
    p.handle(0, voteResp(2n, true, L(termStart), h([1, '0/1000'])));
    p.handle(1, voteResp(2n, true, L('0/1800'), h([1, '0/1000'])));
    p.onWalAppended(L('0/3000'));
    return p;
  }
  it('ignores acks below the term start (figure 8), then follows the majority', () => {
    const p = electedAt('0/2000');
    p.handle(1, ack(2n, L('0/1F00')));
    expect(p.commitLsn).toBe(0n);
    p.handle(0, ack(2n, L('0/2100')));
    expect(p.commitLsn).toBe(0n);
    const effects = p.handle(1, ack(2n, L('0/2080')));
    expect(p.commitLsn).toBe(L('0/2080'));
    expect(effects).toContainEqual({ kind: 'commit_advanced', commitLsn: L('0/2080') });
  });
  it('broadcasts an advanced commit LSN to every member, unless the shell coalesces that itself', () => {
    const emptyAppends = (effects: ProposerEffect[]) =>
      effects.filter((e) => e.kind === 'send_append' && e.request.beginLsn === e.request.endLsn).map((e) => (e as { member: number }).member);
    const loud = electedAt('0/2000');
    loud.handle(0, ack(2n, L('0/2100')));
    expect(emptyAppends(loud.handle(1, ack(2n, L('0/2080')))).sort()).toEqual([0, 1]);
    const quiet = proposer({ broadcastCommit: false });
    campaign(quiet, [1n, 1n, 1n]);
    quiet.handle(0, voteResp(2n, true, L('0/2000'), h([1, '0/1000'])));
    quiet.handle(1, voteResp(2n, true, L('0/1800'), h([1, '0/1000'])));
    quiet.onWalAppended(L('0/3000'));
    quiet.handle(0, ack(2n, L('0/2100')));
    const effects = quiet.handle(1, ack(2n, L('0/2080')));
    expect(effects).toContainEqual({ kind: 'commit_advanced', commitLsn: L('0/2080') });
    expect(emptyAppends(effects)).toEqual([]);
    // the next heartbeat carries it
    expect(quiet.heartbeat().every((e) => e.kind === 'send_append' && e.request.commitLsn === L('0/2080'))).toBe(true);
  });
  it('never moves backwards', () => {
    const p = electedAt('0/2000');
    p.handle(0, ack(2n, L('0/2100')));
    p.handle(1, ack(2n, L('0/2100')));
    p.handle(1, ack(2n, L('0/2050')));
    expect(p.commitLsn).toBe(L('0/2100'));
  });
  it('with the skipFigure8Rule fault it commits previous-term WAL early (test-only)', () => {
    const p = proposer({ faults: { skipFigure8Rule: true } });
    campaign(p, [1n, 1n, 1n]);
    p.handle(0, voteResp(2n, true, L('0/2000'), h([1, '0/1000'])));
    p.handle(1, voteResp(2n, true, L('0/1800'), h([1, '0/1000'])));
    p.handle(2, voteResp(2n, true, L('0/1800'), h([1, '0/1000'])));
    p.handle(1, ack(2n, L('0/1F00')));
    p.handle(2, ack(2n, L('0/1F00')));
    expect(p.commitLsn).toBe(L('0/1F00'));
  });
});

describe('fencing', () => {
  it('a refused vote carrying a higher term fences the proposer, which then emits nothing', () => {
    const p = proposer();
    campaign(p, [1n, 1n, 1n]);
    const effects = p.handle(0, voteResp(7n, false, 0n, []));
    expect(effects).toEqual([{ kind: 'fenced', reason: 'fenced: acceptor 0 has term 7 > our term 2', by: 'term' }]);
    expect(p.phase).toBe('fenced');
    expect(p.handle(1, voteResp(2n, true, 0n, []))).toEqual([]);
    expect(p.onConnected(2)).toEqual([]);
  });
  it('a term-only AppendResponse fences an elected proposer', () => {
    const p = proposer();
    campaign(p, [0n, 0n, 0n]);
    p.handle(0, voteResp(1n, true, 0n, []));
    p.handle(1, voteResp(1n, true, 0n, []));
    expect(p.handle(0, ack(2n, 0n))).toEqual([{ kind: 'fenced', reason: 'fenced: acceptor 0 has term 2 > our term 1', by: 'term' }]);
  });
});

/** Wiring of proposers to real acceptors through one FIFO queue; every flush is performed at once. */
class Wire {
  readonly acceptors: Acceptor[] = [0, 1, 2].map((i) => new Acceptor({ nodeId: BigInt(i), state: freshState(), writeLsn: 0n, flushLsn: 0n }));
  private readonly conns = new Map<Proposer, number[]>();
  private readonly queue: (() => void)[] = [];

  connect(p: Proposer, members: number[]): void {
    const ids = this.conns.get(p) ?? [-1, -1, -1];
    this.conns.set(p, ids);
    for (const m of members) {
      ids[m] = this.acceptors[m].openConnection();
      this.run(p, p.onConnected(m));
    }
  }

  generate(p: Proposer, bytes: number): void {
    this.run(p, p.onWalAppended(p.walEnd + BigInt(bytes)));
  }

  run(p: Proposer, effects: ProposerEffect[]): void {
    for (const e of effects) {
      if (e.kind !== 'send' && e.kind !== 'send_append') continue;
      const a = this.acceptors[e.member];
      const conn = this.conns.get(p)![e.member];
      const msg = e.kind === 'send' ? e.msg : { ...e.request, walData: new Uint8Array(Number(e.request.endLsn - e.request.beginLsn)) };
      this.queue.push(() => this.perform(p, e.member, a, a.handle(conn, msg)));
    }
    this.drain();
  }

  private perform(p: Proposer, member: number, a: Acceptor, effects: AcceptorEffect[]): void {
    for (const e of effects) {
      if (e.kind === 'flush_wal') this.perform(p, member, a, a.onFlushed(a.writeLsn));
      if (e.kind === 'reply') this.queue.push(() => this.run(p, p.handle(member, e.msg)));
    }
  }

  private draining = false;
  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    for (let f = this.queue.shift(); f; f = this.queue.shift()) f();
    this.draining = false;
  }
}

describe('with real acceptors', () => {
  it('the older of two proposers is fenced once the newer one has been elected', () => {
    const w = new Wire();
    const p1 = proposer();
    w.connect(p1, [0, 1, 2]);
    expect(p1.phase).toBe('elected');
    w.generate(p1, 0x100);
    expect(p1.commitLsn).toBe(L('0/1000100'));

    const p2 = proposer();
    w.connect(p2, [1, 2]);
    expect(p2.phase).toBe('elected');
    expect(p2.term).toBe(2n);
    expect(p2.termStartLsn).toBe(L('0/1000100'));

    w.generate(p1, 0x10); // member 0 still takes it, members 1 and 2 answer with term 2
    expect(p1.phase).toBe('fenced');
    expect(p1.fencedReason).toMatch(/^fenced: acceptor [12] has term 2 > our term 1$/);
    expect(p1.commitLsn).toBe(L('0/1000100'));

    // member 0 holds an uncommitted term-1 tail; when p2 reaches it, it is cut back.
    expect(w.acceptors[0].flushLsn).toBe(L('0/1000110'));
    w.connect(p2, [0]);
    expect(w.acceptors[0].view()).toMatchObject({ term: 2n, flushLsn: L('0/1000100'), lastLogTerm: 2n });
    w.generate(p2, 0x20);
    expect(p2.commitLsn).toBe(L('0/1000120'));
    expect(p2.quorumHealthy).toBe(true);
  });
});

describe('members that lost their data', () => {
  // A and B took part in term 2 and hold WAL; B's volume was then wiped (term 0, no WAL).
  function afterWipe(faults = {}) {
    const p = proposer({ faults });
    p.onConnected(0);
    p.handle(0, greet(2n));
    p.onConnected(1);
    p.handle(1, greet(0n));
    p.handle(0, voteResp(3n, true, L('0/3000'), h([2, '0/1000'])));
    return p;
  }
  it('a term-0 voter does not count toward the majority once WAL exists', () => {
    const p = afterWipe();
    expect(p.handle(1, voteResp(3n, true, 0n, []))).toEqual([]);
    expect(p.phase).toBe('campaigning');
    // the third member, which took part in the history, completes the majority
    p.onConnected(2);
    p.handle(2, greet(2n));
    const effects = p.handle(2, voteResp(3n, true, L('0/3000'), h([2, '0/1000'])));
    expect(effects.some((e) => e.kind === 'elected')).toBe(true);
  });
  it('counting it (the broken rule) would elect on a majority that may lack committed WAL', () => {
    const p = afterWipe({ countBlankVoters: true });
    expect(p.handle(1, voteResp(3n, true, 0n, [])).some((e) => e.kind === 'elected')).toBe(true);
  });
  it('on a brand-new timeline every member has term 0 and their votes count', () => {
    const p = proposer();
    campaign(p, [0n, 0n, 0n]);
    p.handle(0, voteResp(1n, true, 0n, []));
    expect(p.handle(1, voteResp(1n, true, 0n, [])).some((e) => e.kind === 'elected')).toBe(true);
  });
});

