// The proposer's pure core for N members (notes §4): greeting round, election, donor and
// term history, per-member catch-up position, streaming bookkeeping and the quorum commit
// LSN. The shell owns the WAL bytes and the sockets; it performs the returned effects.
// (Over 400 lines: one state machine; its transitions and the invariants they share read best in
// one file.)
import { formatLsn, maxLsn, minLsn, type Lsn } from '../common/lsn.js';
import { ProposerError } from './errors.js';
import {
  LEGACY_MCONF,
  MAX_APPEND_PAYLOAD,
  type AcceptorGreeting,
  type AcceptorMessage,
  type AppendRequest,
  type AppendResponse,
  type ProposerElected,
  type ProposerGreeting,
  type ProposerPgTimeline,
  type Term,
  type TermHistory,
  type VoteRequest,
  type VoteResponse,
} from './messages.js';
import { majority, quorumCommitLsn } from './quorum.js';
import { cloneTermHistory, lastLogTerm, startStreamingAt, trimTermHistory, validateTermHistory } from './termHistory.js';
import { FIRST_PG_TIMELINE, pgTimelineHistoryOf, PgTimelineError, type PgTimelineInfo } from './pgTimeline.js';

/** An AppendRequest without its payload: the shell attaches WAL bytes [beginLsn, endLsn). */
export type AppendRequestHeader = Omit<AppendRequest, 'walData'>;

/**
 * What the shell must do, in list order:
 * - `send`: send `msg` to `member` on its current connection.
 * - `send_append`: read WAL [beginLsn, endLsn) from wherever the shell gets it (PostgreSQL,
 *   the donor) and send it as an AppendRequest with `request`'s fields. If the bytes cannot
 *   be had, disconnect the member (call onDisconnected).
 * - `elected`: we won `term`; WAL before `termStartLsn` must be readable (it equals the
 *   donor's flushed WAL) and new WAL is appended after it via onWalAppended. `timelineEmpty`
 *   says no voter held any WAL, so this term begins the timeline.
 * - `commit_advanced`: WAL below `commitLsn` is on a majority; report it to PostgreSQL.
 * - `fenced`: a newer term exists; stop pushing WAL and exit. Nothing else is ever emitted.
 */
export type ProposerEffect =
  | { kind: 'send'; member: number; msg: ProposerGreeting | VoteRequest | ProposerElected | ProposerPgTimeline }
  | { kind: 'send_append'; member: number; request: AppendRequestHeader }
  | {
      kind: 'elected';
      term: Term;
      termStartLsn: Lsn;
      termHistory: TermHistory;
      donor: number;
      truncateLsn: Lsn;
      /** no voter held WAL: the term starts the timeline (at startLsnIfEmpty) */
      timelineEmpty: boolean;
    }
  | { kind: 'commit_advanced'; commitLsn: Lsn }
  | { kind: 'fenced'; reason: string; by: FencedBy };

/**
 * What fenced us: a newer term, or an acceptor's newer PostgreSQL timeline (our PostgreSQL is
 * behind a promotion; a standby still replaying towards it is not an old primary).
 */
export type FencedBy = 'term' | 'pg_timeline';

/** Deliberately broken rules, for tests and the simulation only. */
export interface ProposerFaults {
  /** count acks below the term start towards the commit LSN */
  skipFigure8Rule?: boolean;
  /** choose the donor by flush LSN alone, ignoring last log term */
  donorIgnoresLastLogTerm?: boolean;
  /** count the votes of term-0 (possibly wiped) acceptors even when WAL exists */
  countBlankVoters?: boolean;
}

export interface ProposerOptions {
  tenantId: string;
  timelineId: string;
  pgVersion: number;
  systemId: bigint;
  walSegSize: number;
  memberCount: number;
  /** where a brand-new timeline starts: the segment start of PostgreSQL's flush position */
  startLsnIfEmpty: Lsn;
  /** the PostgreSQL timeline the WAL comes from (default: timeline 1, never promoted) */
  pgTimeline?: PgTimelineInfo;
  maxAppendBytes?: number;
  /** unacknowledged bytes allowed in flight per member */
  maxInFlightBytes?: number;
  /**
   * Send an empty AppendRequest to every member each time the commit LSN advances (default
   * true). A shell that coalesces these itself turns it off and calls heartbeat() when idle.
   */
  broadcastCommit?: boolean;
  faults?: ProposerFaults;
}

export type ProposerPhase = 'greeting' | 'campaigning' | 'elected' | 'fenced';
export type MemberState = 'offline' | 'greeting' | 'voting' | 'streaming';

export interface MemberStatus {
  member: number;
  nodeId: bigint | null;
  state: MemberState;
  /** highest flush LSN the member acknowledged in our term */
  flushLsn: Lsn;
  /** commit LSN the member last reported */
  commitLsn: Lsn;
  startStreamingAt: Lsn | null;
  /** end of WAL sent on the current connection */
  sentLsn: Lsn;
}

export interface ProposerStatus {
  phase: ProposerPhase;
  term: Term;
  termStartLsn: Lsn;
  termHistory: TermHistory;
  donor: number | null;
  commitLsn: Lsn;
  truncateLsn: Lsn;
  quorumHealthy: boolean;
  fencedReason: string | null;
  /** the PostgreSQL timeline of the WAL this proposer streams */
  pgTimeline: PgTimelineInfo;
  members: MemberStatus[];
}

interface VoteInfo {
  flushLsn: Lsn;
  termHistory: TermHistory;
  truncateLsn: Lsn;
}

interface MemberTrack {
  state: MemberState;
  nodeId: bigint | null;
  /** term the member reported in its greeting on this connection (before voting for us) */
  greetingTerm: Term | null;
  greetedInConn: boolean;
  /** the PostgreSQL timeline the member's greeting on this connection reported (null: not told) */
  pgTimeline: { tli: number; startLsn: Lsn } | null;
  votedInConn: boolean;
  /** the member granted its vote for our term (durable on its side, survives reconnects) */
  granted: boolean;
  vote: VoteInfo | null;
  startStreamingAt: Lsn | null;
  sentLsn: Lsn;
  ackedInConn: Lsn;
  flushLsn: Lsn;
  commitLsn: Lsn;
}

export class Proposer {
  private readonly opts: Required<Omit<ProposerOptions, 'faults' | 'pgTimeline'>> & { faults: ProposerFaults };
  private pgTl: PgTimelineInfo;
  private readonly members: MemberTrack[];
  private readonly quorum: number;
  private phaseValue: ProposerPhase = 'greeting';
  private maxSeenTerm: Term = 0n;
  private termValue: Term = 0n;
  private history: TermHistory = [];
  private termStart: Lsn = 0n;
  private donorValue: number | null = null;
  private logEnd: Lsn = 0n;
  private commit: Lsn = 0n;
  private truncate: Lsn = 0n;
  private fencedReasonValue: string | null = null;

  constructor(opts: ProposerOptions) {
    this.opts = {
      maxAppendBytes: MAX_APPEND_PAYLOAD,
      maxInFlightBytes: 16 * 1024 * 1024,
      broadcastCommit: true,
      ...opts,
      faults: opts.faults ?? {},
    };
    this.pgTl = { ...(opts.pgTimeline ?? FIRST_PG_TIMELINE) };
    try {
      pgTimelineHistoryOf(this.pgTl);
    } catch (e) {
      throw new ProposerError('invalid_pg_timeline', `PostgreSQL timeline ${this.pgTl.tli}: ${(e as Error).message}`);
    }
    this.quorum = majority(opts.memberCount);
    if (opts.startLsnIfEmpty <= 0n) throw new Error('startLsnIfEmpty must be a valid (non-zero) LSN');
    this.members = Array.from({ length: opts.memberCount }, () => ({
      state: 'offline' as MemberState,
      nodeId: null,
      greetingTerm: null,
      greetedInConn: false,
      pgTimeline: null,
      votedInConn: false,
      granted: false,
      vote: null,
      startStreamingAt: null,
      sentLsn: 0n,
      ackedInConn: 0n,
      flushLsn: 0n,
      commitLsn: 0n,
    }));
  }

  get phase(): ProposerPhase {
    return this.phaseValue;
  }
  get term(): Term {
    return this.termValue;
  }
  get termStartLsn(): Lsn {
    return this.termStart;
  }
  get termHistory(): TermHistory {
    return cloneTermHistory(this.history);
  }
  get donor(): number | null {
    return this.donorValue;
  }
  get commitLsn(): Lsn {
    return this.commit;
  }
  get walEnd(): Lsn {
    return this.logEnd;
  }
  get fencedReason(): string | null {
    return this.fencedReasonValue;
  }
  /** Elected and a majority of members connected and streaming. */
  get quorumHealthy(): boolean {
    return this.phaseValue === 'elected' && this.members.filter((m) => m.state === 'streaming').length >= this.quorum;
  }

  status(): ProposerStatus {
    return {
      phase: this.phaseValue,
      term: this.termValue,
      termStartLsn: this.termStart,
      termHistory: cloneTermHistory(this.history),
      donor: this.donorValue,
      commitLsn: this.commit,
      truncateLsn: this.truncate,
      quorumHealthy: this.quorumHealthy,
      fencedReason: this.fencedReasonValue,
      pgTimeline: { ...this.pgTl },
      members: this.members.map((m, i) => ({
        member: i,
        nodeId: m.nodeId,
        state: m.state,
        flushLsn: m.flushLsn,
        commitLsn: m.commitLsn,
        startStreamingAt: m.startStreamingAt,
        sentLsn: m.sentLsn,
      })),
    };
  }

  greeting(): ProposerGreeting {
    const o = this.opts;
    return {
      tag: 'proposer_greeting',
      tenantId: o.tenantId,
      timelineId: o.timelineId,
      mconf: LEGACY_MCONF,
      pgVersion: o.pgVersion,
      systemId: o.systemId,
      walSegSize: o.walSegSize,
      pgTimeline: this.pgTl.tli,
    };
  }

  get pgTimeline(): PgTimelineInfo {
    return { ...this.pgTl };
  }

  /**
   * Our PostgreSQL was promoted: WAL from `info.startLsn` on is timeline `info.tli`. Every
   * streaming member is told before any WAL of the new timeline is sent to it (members that
   * connect later are told right after their ProposerElected). The switch must not lie
   * before WAL already in our log: the new timeline begins where the quorum's WAL ends.
   */
  switchPgTimeline(info: PgTimelineInfo): ProposerEffect[] {
    if (this.phaseValue === 'fenced') return [];
    if (this.phaseValue !== 'elected') throw new ProposerError('not_elected', 'cannot switch PostgreSQL timelines before being elected');
    if (info.tli <= this.pgTl.tli) {
      throw new ProposerError('invalid_pg_timeline', `PostgreSQL timeline cannot go from ${this.pgTl.tli} to ${info.tli}: timelines only move forward`);
    }
    if (info.startLsn < this.logEnd) {
      throw new ProposerError(
        'invalid_pg_timeline',
        `PostgreSQL timeline ${info.tli} starts at ${formatLsn(info.startLsn)}, before the end of our log ${formatLsn(this.logEnd)}: it would relabel WAL already sent`,
      );
    }
    let history;
    try {
      history = pgTimelineHistoryOf(info);
    } catch (e) {
      throw new ProposerError('invalid_pg_timeline', (e as PgTimelineError).message);
    }
    if (!history.some((e) => e.tli === this.pgTl.tli && e.startLsn === this.pgTl.startLsn)) {
      throw new ProposerError('invalid_pg_timeline', `PostgreSQL timeline ${info.tli} does not descend from our timeline ${this.pgTl.tli} (its history: ${info.historyFile.trim() || 'none'})`);
    }
    this.pgTl = { ...info };
    const effects: ProposerEffect[] = [];
    this.members.forEach((m, i) => m.state === 'streaming' && effects.push({ kind: 'send', member: i, msg: this.pgTimelineMessage() }));
    return effects;
  }

  private pgTimelineMessage(): ProposerPgTimeline {
    return { tag: 'pg_timeline', generation: 0, term: this.termValue, tli: this.pgTl.tli, startLsn: this.pgTl.startLsn, historyFile: this.pgTl.historyFile };
  }

  /** A connection to `member` is up (START_WAL_PUSH accepted): greet it. */
  onConnected(member: number): ProposerEffect[] {
    const m = this.member(member);
    if (this.phaseValue === 'fenced') return [];
    this.resetConnection(m);
    m.state = 'greeting';
    return [{ kind: 'send', member, msg: this.greeting() }];
  }

  /** The connection to `member` is gone; its acknowledged flush still counts for the commit LSN. */
  onDisconnected(member: number): ProposerEffect[] {
    const m = this.member(member);
    this.resetConnection(m);
    m.state = 'offline';
    return [];
  }

  handle(member: number, msg: AcceptorMessage): ProposerEffect[] {
    const m = this.member(member);
    if (this.phaseValue === 'fenced') return [];
    switch (msg.tag) {
      case 'acceptor_greeting':
        return this.onGreeting(member, m, msg);
      case 'vote_response':
        return this.onVoteResponse(member, m, msg);
      case 'append_response':
        return this.onAppendResponse(member, m, msg);
    }
  }

  /** The shell's WAL now extends to endLsn (new WAL after the term start); stream it. */
  onWalAppended(endLsn: Lsn): ProposerEffect[] {
    if (this.phaseValue === 'fenced') return [];
    if (this.phaseValue !== 'elected') throw new ProposerError('not_elected', 'cannot append WAL before being elected');
    if (endLsn < this.logEnd) {
      throw new ProposerError('wal_regressed', `WAL end ${formatLsn(endLsn)} is before ${formatLsn(this.logEnd)}`);
    }
    this.logEnd = endLsn;
    const effects: ProposerEffect[] = [];
    this.members.forEach((m, i) => m.state === 'streaming' && this.pump(i, m, effects));
    return effects;
  }

  /** Empty AppendRequests to every streaming member: keepalive and commit/horizon broadcast. */
  heartbeat(): ProposerEffect[] {
    if (this.phaseValue !== 'elected') return [];
    const effects: ProposerEffect[] = [];
    this.members.forEach((m, i) => m.state === 'streaming' && effects.push(this.append(i, m.sentLsn, m.sentLsn)));
    return effects;
  }

  private onGreeting(member: number, m: MemberTrack, msg: AcceptorGreeting): ProposerEffect[] {
    if (m.state !== 'greeting' || m.greetedInConn) return [];
    m.nodeId = msg.nodeId;
    m.greetingTerm = msg.term;
    m.greetedInConn = true;
    // An acceptor that holds a newer PostgreSQL timeline than ours (or the same TLI from another
    // promotion) tells us our PostgreSQL is an old primary: stop without voting, so the new
    // primary's proposer keeps its term.
    const theirTli = msg.pgTimeline ?? 0;
    const theirStart = msg.pgTimelineStartLsn ?? 0n;
    m.pgTimeline = msg.pgTimeline === undefined ? null : { tli: theirTli, startLsn: theirStart };
    if (theirTli > this.pgTl.tli || (theirTli === this.pgTl.tli && theirStart !== this.pgTl.startLsn)) {
      const who = `acceptor ${msg.nodeId}`;
      return this.fenceWith(
        'pg_timeline',
        theirTli > this.pgTl.tli
          ? `fenced: ${who} holds PostgreSQL timeline ${theirTli} (from ${formatLsn(theirStart)}) but our PostgreSQL is on timeline ${this.pgTl.tli}: ` +
              `a newer primary was promoted, this one is an old primary and must not push WAL`
          : `fenced: ${who} holds PostgreSQL timeline ${theirTli} starting at ${formatLsn(theirStart)}, our PostgreSQL's timeline ${this.pgTl.tli} ` +
              `starts at ${formatLsn(this.pgTl.startLsn)}: another standby was promoted to the same timeline`,
      );
    }
    if (this.phaseValue === 'greeting') {
      this.maxSeenTerm = maxLsn(this.maxSeenTerm, msg.term);
      if (this.members.filter((x) => x.greetedInConn).length < this.quorum) return [];
      // term = max(seen) + 1 over a majority: above any term that majority has voted in.
      this.termValue = this.maxSeenTerm + 1n;
      this.phaseValue = 'campaigning';
      const effects: ProposerEffect[] = [];
      this.members.forEach((x, i) => x.greetedInConn && effects.push(this.requestVote(i, x)));
      return effects;
    }
    if (msg.term > this.termValue) return this.fence(member, m, msg.term);
    return [this.requestVote(member, m)];
  }

  private onVoteResponse(member: number, m: MemberTrack, msg: VoteResponse): ProposerEffect[] {
    if (m.state !== 'voting') return [];
    if (msg.term > this.termValue) return this.fence(member, m, msg.term);
    if (msg.term < this.termValue) return [];
    const history = trimTermHistory(msg.termHistory, msg.flushLsn);
    try {
      validateTermHistory(history, `term history of member ${member}`);
    } catch (e) {
      throw new ProposerError('invalid_vote', (e as Error).message);
    }
    // A refusal in our own term still tells where the member's WAL ends: it voted for us on an
    // earlier connection (or for a rival in the same term, who then cannot win this term).
    m.vote = { flushLsn: msg.flushLsn, termHistory: history, truncateLsn: msg.truncateLsn };
    m.votedInConn = true;
    if (msg.voteGiven) m.granted = true;
    if (this.phaseValue === 'campaigning') {
      return this.countedVotes() >= this.quorum ? this.becomeElected() : [];
    }
    const effects: ProposerEffect[] = [];
    this.startStreaming(member, m, effects);
    return effects;
  }

  /**
   * Granted votes that count toward a majority. SAFETY: an acceptor whose term was 0 has
   * never voted, so it never held WAL. Once any voter reports WAL, the timeline has a history
   * that a majority of members took part in, and a term-0 voter may be a member whose data
   * was lost (wiped volume, deleted directory): counting it could elect a proposer whose
   * donor lacks committed WAL. Such a member is caught up after the election instead.
   */
  private countedVotes(): number {
    const granted = this.members.filter((x) => x.granted && x.vote);
    const walExists = granted.some((x) => x.vote!.flushLsn > 0n);
    return granted.filter((x) => !walExists || this.opts.faults.countBlankVoters || x.greetingTerm !== 0n).length;
  }

  private becomeElected(): ProposerEffect[] {
    // Donor: the voter with the highest (last log term, flush LSN); it holds every committed byte.
    let donor = -1;
    let bestLlt = -1n;
    let bestFlush = -1n;
    for (let i = 0; i < this.members.length; i++) {
      const v = this.members[i].vote;
      if (!this.members[i].granted || !v) continue;
      const llt = this.opts.faults.donorIgnoresLastLogTerm ? 0n : lastLogTerm(v.termHistory, v.flushLsn);
      if (llt > bestLlt || (llt === bestLlt && v.flushLsn > bestFlush)) {
        bestLlt = llt;
        bestFlush = v.flushLsn;
        donor = i;
      }
    }
    const dv = this.members[donor].vote as VoteInfo;
    // Everything up to the donor's flush may have been committed: it becomes our log's base.
    const empty = dv.flushLsn === 0n;
    this.termStart = empty ? this.opts.startLsnIfEmpty : dv.flushLsn;
    this.history = [...(empty ? [] : cloneTermHistory(dv.termHistory)), { term: this.termValue, lsn: this.termStart }];
    validateTermHistory(this.history, 'elected term history');
    this.donorValue = donor;
    this.logEnd = this.termStart;
    this.truncate = this.members.reduce((acc, m) => (m.granted && m.vote ? maxLsn(acc, m.vote.truncateLsn) : acc), 0n);
    this.phaseValue = 'elected';
    const effects: ProposerEffect[] = [
      {
        kind: 'elected',
        term: this.termValue,
        termStartLsn: this.termStart,
        termHistory: cloneTermHistory(this.history),
        donor,
        truncateLsn: this.truncate,
        timelineEmpty: empty,
      },
    ];
    this.members.forEach((m, i) => m.state === 'voting' && m.votedInConn && this.startStreaming(i, m, effects));
    return effects;
  }

  private startStreaming(member: number, m: MemberTrack, effects: ProposerEffect[]): void {
    const v = m.vote as VoteInfo;
    const start = startStreamingAt(this.history, v.termHistory, v.flushLsn);
    if (start > this.logEnd) {
      throw new ProposerError(
        'invalid_vote',
        `member ${member} would stream from ${formatLsn(start)}, past our WAL end ${formatLsn(this.logEnd)}`,
      );
    }
    m.state = 'streaming';
    m.startStreamingAt = start;
    m.sentLsn = start;
    m.ackedInConn = start;
    effects.push({
      kind: 'send',
      member,
      msg: {
        tag: 'proposer_elected',
        generation: 0,
        term: this.termValue,
        startStreamingAt: start,
        termHistory: cloneTermHistory(this.history),
      },
    });
    // The member learns our PostgreSQL timeline unless its greeting showed it already has it.
    const known = m.pgTimeline;
    if (known ? known.tli !== this.pgTl.tli || known.startLsn !== this.pgTl.startLsn : this.pgTl.tli !== 1) {
      effects.push({ kind: 'send', member, msg: this.pgTimelineMessage() });
    }
    // Always send something so even a member with nothing to receive reports its flush.
    if (!this.pump(member, m, effects)) effects.push(this.append(member, m.sentLsn, m.sentLsn));
  }

  private onAppendResponse(member: number, m: MemberTrack, msg: AppendResponse): ProposerEffect[] {
    if (msg.term > this.termValue) return this.fence(member, m, msg.term);
    if (m.state !== 'streaming' || msg.term !== this.termValue) return [];
    if (msg.flushLsn > m.sentLsn) {
      throw new ProposerError(
        'ack_beyond_sent',
        `member ${member} acknowledged flush ${formatLsn(msg.flushLsn)} but only ${formatLsn(m.sentLsn)} was sent`,
      );
    }
    m.flushLsn = maxLsn(m.flushLsn, msg.flushLsn);
    m.ackedInConn = maxLsn(m.ackedInConn, msg.flushLsn);
    m.commitLsn = msg.commitLsn;
    const effects: ProposerEffect[] = [];
    const candidate = quorumCommitLsn(
      this.members.map((x) => x.flushLsn),
      this.termStart,
      { skipFigure8Rule: this.opts.faults.skipFigure8Rule },
    );
    if (candidate > this.commit) {
      this.commit = candidate;
      const minFlush = this.members.reduce((acc, x) => minLsn(acc, x.flushLsn), this.commit);
      this.truncate = maxLsn(this.truncate, minFlush);
      effects.push({ kind: 'commit_advanced', commitLsn: this.commit });
      if (this.opts.broadcastCommit) effects.push(...this.heartbeat());
      else this.pump(member, m, effects);
    } else {
      this.pump(member, m, effects);
    }
    return effects;
  }

  /** Sends what the member lacks, within the in-flight window; true if anything was sent. */
  private pump(member: number, m: MemberTrack, effects: ProposerEffect[]): boolean {
    let sent = false;
    const window = BigInt(this.opts.maxInFlightBytes);
    while (m.sentLsn < this.logEnd && m.sentLsn - m.ackedInConn < window) {
      const end = minLsn(this.logEnd, m.sentLsn + BigInt(this.opts.maxAppendBytes));
      effects.push(this.append(member, m.sentLsn, end));
      m.sentLsn = end;
      sent = true;
    }
    return sent;
  }

  private append(member: number, beginLsn: Lsn, endLsn: Lsn): ProposerEffect {
    return {
      kind: 'send_append',
      member,
      request: {
        tag: 'append_request',
        generation: 0,
        term: this.termValue,
        beginLsn,
        endLsn,
        commitLsn: this.commit,
        truncateLsn: this.truncate,
      },
    };
  }

  private requestVote(member: number, m: MemberTrack): ProposerEffect {
    m.state = 'voting';
    return { kind: 'send', member, msg: { tag: 'vote_request', generation: 0, term: this.termValue } };
  }

  private fence(member: number, m: MemberTrack, theirTerm: Term): ProposerEffect[] {
    const who = m.nodeId !== null ? `acceptor ${m.nodeId}` : `acceptor #${member}`;
    return this.fenceWith('term', `fenced: ${who} has term ${theirTerm} > our term ${this.termValue}`);
  }

  private fenceWith(by: FencedBy, reason: string): ProposerEffect[] {
    this.phaseValue = 'fenced';
    this.fencedReasonValue = reason;
    return [{ kind: 'fenced', reason, by }];
  }

  private resetConnection(m: MemberTrack): void {
    m.greetedInConn = false;
    m.pgTimeline = null;
    m.votedInConn = false;
    m.startStreamingAt = null;
    m.sentLsn = 0n;
    m.ackedInConn = 0n;
  }

  private member(member: number): MemberTrack {
    const m = this.members[member];
    if (!m) throw new ProposerError('invalid_member', `no member ${member} (have ${this.members.length})`);
    return m;
  }
}
