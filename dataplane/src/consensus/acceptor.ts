// The acceptor (safekeeper) state machine for one timeline, etcd-raft style: it takes a
// proposer message and returns the ordered effects the shell must perform (notes §3).
// It never does I/O; the WAL position is owned by storage and reported back through
// onFlushed, and what reached the control file through onPersisted (raft's Advance): the
// machine never assumes an effect was durable. Rules that make the protocol safe are marked "SAFETY".
// (Over 400 lines: one state machine; its transitions and the SAFETY rules they share read best in
// one file.)
import { formatLsn, maxLsn, minLsn, type Lsn } from '../common/lsn.js';
import { AcceptorError } from './errors.js';
import {
  LEGACY_MCONF,
  type AcceptorMessage,
  type AppendRequest,
  type AppendResponse,
  type ProposerElected,
  type ProposerGreeting,
  type ProposerMessage,
  type ProposerPgTimeline,
  type Term,
  type TermHistory,
  type VoteRequest,
  type VoteResponse,
} from './messages.js';
import { cloneState, type AcceptorPersistentState } from './state.js';
import {
  cloneTermHistory,
  formatTermHistory,
  lastLogTerm,
  startStreamingAt,
  trimTermHistory,
  validateTermHistory,
} from './termHistory.js';
import {
  applyPgTimeline,
  clonePgTimelineHistory,
  currentPgTimeline,
  PgTimelineError,
  validatePgTimelineHistory,
  type PgTimelineHistory,
} from './pgTimeline.js';

/**
 * What the shell must do, in list order. Contract:
 * - `persist`: durably replace the control file with `state` (tmp, fsync, rename, fsync dir)
 *   before performing any later effect of the same list, then call `onPersisted(state)`; a
 *   vote reply always follows it. Until acknowledged the state is not `durableState`.
 * - `truncate_wal`: durably discard all WAL at and after `lsn` (flushed or not); on an empty
 *   timeline, initialise the WAL to start at `lsn`. Afterwards write = flush = `lsn`.
 * - `append_wal`: write `data` at `beginLsn` (no fsync needed).
 * - `flush_wal`: fsync everything written, then call `onFlushed(recordAlignedFlushLsn)` and
 *   perform what it returns. Replies that report a flush position (votes, appends) wait for
 *   that call. A shell may postpone flush_wal (e.g. until its input queue is empty) and
 *   coalesce several into one fsync.
 * - `reply`: send `msg` on connection `connId` (drop it if that connection is gone).
 */
export type AcceptorEffect =
  | { kind: 'persist'; state: AcceptorPersistentState }
  | { kind: 'truncate_wal'; lsn: Lsn }
  | { kind: 'append_wal'; beginLsn: Lsn; data: Uint8Array }
  | { kind: 'flush_wal' }
  | { kind: 'reply'; connId: number; msg: AcceptorMessage };

/** Deliberately broken rules, for tests and the simulation only: they prove the checks can fail. */
export interface AcceptorFaults {
  /** grant the vote without writing the new term to the control file first */
  grantVoteWithoutPersist?: boolean;
  /** grant a vote for a term equal to the stored one (two leaders per term) */
  acceptEqualTermVote?: boolean;
  /** acknowledge appended WAL before it is fsynced */
  ackBeforeFlush?: boolean;
}

export interface AcceptorOptions {
  nodeId: bigint;
  /** state read from the control file (or newTimelineState for a new timeline) */
  state: AcceptorPersistentState;
  /** end of WAL written, as found by storage at start-up */
  writeLsn: Lsn;
  /** end of the last whole record fsynced, as found by storage at start-up */
  flushLsn: Lsn;
  faults?: AcceptorFaults;
}

/** Read-only snapshot for status endpoints and metrics. */
export interface AcceptorView {
  nodeId: bigint;
  tenantId: string;
  timelineId: string;
  term: Term;
  termHistory: TermHistory;
  lastLogTerm: Term;
  writeLsn: Lsn;
  flushLsn: Lsn;
  commitLsn: Lsn;
  truncateLsn: Lsn;
  timelineStartLsn: Lsn;
  /** PostgreSQL timelines of the WAL; the last is the current one */
  pgTimelineHistory: PgTimelineHistory;
  /** start of the current term's WAL (last history entry), 0 if never elected */
  termStartLsn: Lsn;
  connections: number;
}

/** Per-connection progress: a reconnecting proposer must repeat greeting, vote, elected. */
interface Connection {
  greeted: boolean;
  voted: boolean;
  /** term of the ProposerElected accepted on this connection, null before it */
  electedTerm: Term | null;
  /** a vote decided but whose reply waits for the WAL flush */
  pendingVote: { granted: boolean; term: Term } | null;
  pendingAppendReply: boolean;
  /** the PostgreSQL timeline the proposer's greeting reported (0: not told) */
  pgTimeline: number;
}

function pgMajor(version: number): number {
  return Math.floor(version / 10000);
}

export class Acceptor {
  readonly nodeId: bigint;
  private state: AcceptorPersistentState;
  /** last state handed out in a persist effect (so an unchanged state is not written twice) */
  private emitted: AcceptorPersistentState;
  /** last state the shell acknowledged as on disk (onPersisted) */
  private durable: AcceptorPersistentState;
  private write: Lsn;
  private flush: Lsn;
  /** highest commit LSN announced by the proposer elected in the current term */
  private proposerCommitLsn: Lsn = 0n;
  private readonly conns = new Map<number, Connection>();
  private nextConnId = 1;
  private readonly faults: AcceptorFaults;

  constructor(opts: AcceptorOptions) {
    this.nodeId = opts.nodeId;
    this.faults = opts.faults ?? {};
    this.state = cloneState(opts.state);
    this.emitted = cloneState(opts.state);
    this.durable = cloneState(opts.state);
    try {
      validateTermHistory(opts.state.termHistory, 'stored term history');
    } catch (e) {
      throw new AcceptorError('invalid_term_history', this.where() + (e as Error).message);
    }
    try {
      validatePgTimelineHistory(opts.state.pgTimelineHistory, opts.state.pgHistoryFile, 'stored PostgreSQL timeline history');
    } catch (e) {
      throw new AcceptorError('invalid_pg_timeline', this.where() + (e as Error).message);
    }
    if (opts.flushLsn > opts.writeLsn) {
      throw new AcceptorError(
        'flush_out_of_range',
        `${this.where()}flush LSN ${formatLsn(opts.flushLsn)} is past write LSN ${formatLsn(opts.writeLsn)}`,
      );
    }
    this.write = opts.writeLsn;
    this.flush = opts.flushLsn;
    // SAFETY: commitLsn was acknowledged to readers; WAL below it must still be here.
    if (this.flushLsn < this.state.commitLsn) {
      throw new AcceptorError(
        'potential_data_loss',
        `${this.where()}flushed WAL ends at ${formatLsn(this.flushLsn)}, below commit LSN ${formatLsn(this.state.commitLsn)}: potential data loss`,
      );
    }
  }

  /** Fsynced, record-aligned end of WAL; a started timeline never reports less than its start. */
  get flushLsn(): Lsn {
    return maxLsn(this.flush, this.state.timelineStartLsn);
  }

  get writeLsn(): Lsn {
    return maxLsn(this.write, this.flushLsn);
  }

  get commitLsn(): Lsn {
    return this.state.commitLsn;
  }

  get termStartLsn(): Lsn {
    const h = this.state.termHistory;
    return h.length === 0 ? 0n : h[h.length - 1].lsn;
  }

  /** The in-memory persistent state (commitLsn may be ahead of the control file). */
  get persistentState(): AcceptorPersistentState {
    return cloneState(this.state);
  }

  /**
   * What the control file holds, as acknowledged by onPersisted: after a storage error the
   * shell rebuilds the machine from this and the WAL positions storage reports.
   */
  get durableState(): AcceptorPersistentState {
    return cloneState(this.durable);
  }

  /** The shell made `state` (from a persist effect) durable. */
  onPersisted(state: AcceptorPersistentState): void {
    if (state.tenantId !== this.state.tenantId || state.timelineId !== this.state.timelineId) {
      throw new AcceptorError('invalid_persist_ack', `${this.where()}acknowledged a control file of ${state.tenantId}/${state.timelineId}`);
    }
    if (state.term < this.durable.term) {
      throw new AcceptorError('invalid_persist_ack', `${this.where()}acknowledged term ${state.term} below the durable term ${this.durable.term}`);
    }
    this.durable = cloneState(state);
  }

  view(): AcceptorView {
    const s = this.state;
    return {
      nodeId: this.nodeId,
      tenantId: s.tenantId,
      timelineId: s.timelineId,
      term: s.term,
      termHistory: cloneTermHistory(s.termHistory),
      lastLogTerm: lastLogTerm(s.termHistory, this.flushLsn),
      writeLsn: this.writeLsn,
      flushLsn: this.flushLsn,
      commitLsn: s.commitLsn,
      truncateLsn: s.truncateLsn,
      timelineStartLsn: s.timelineStartLsn,
      pgTimelineHistory: clonePgTimelineHistory(s.pgTimelineHistory),
      termStartLsn: this.termStartLsn,
      connections: this.conns.size,
    };
  }

  /** A proposer connected (START_WAL_PUSH); returns the id to pass to handle(). */
  openConnection(): number {
    const id = this.nextConnId++;
    this.conns.set(id, { greeted: false, voted: false, electedTerm: null, pendingVote: null, pendingAppendReply: false, pgTimeline: 0 });
    return id;
  }

  /** The connection is gone; dirty WAL is flushed so the next vote reports the real end (neon #9259). */
  closeConnection(connId: number): AcceptorEffect[] {
    this.conns.delete(connId);
    return this.write > this.flush ? [{ kind: 'flush_wal' }] : [];
  }

  /**
   * Applies one proposer message. Throws AcceptorError on a protocol violation; the shell
   * then closes the connection (the machine is left unchanged by a throwing call).
   */
  handle(connId: number, msg: ProposerMessage): AcceptorEffect[] {
    const conn = this.conns.get(connId);
    if (!conn) throw new AcceptorError('unknown_connection', `${this.where()}unknown connection ${connId}`);
    switch (msg.tag) {
      case 'proposer_greeting':
        return this.onGreeting(connId, conn, msg);
      case 'vote_request':
        return this.onVoteRequest(connId, conn, msg);
      case 'proposer_elected':
        return this.onElected(conn, msg);
      case 'append_request':
        return this.onAppend(connId, conn, msg);
      case 'pg_timeline':
        return this.onPgTimeline(conn, msg);
    }
  }

  /** Storage fsynced WAL up to flushLsn (record-aligned); releases replies waiting for it. */
  onFlushed(flushLsn: Lsn): AcceptorEffect[] {
    if (flushLsn < this.flush || flushLsn > this.writeLsn) {
      throw new AcceptorError(
        'flush_out_of_range',
        `${this.where()}reported flush ${formatLsn(flushLsn)} is outside [${formatLsn(this.flush)}, ${formatLsn(this.writeLsn)}]`,
      );
    }
    this.flush = flushLsn;
    const effects: AcceptorEffect[] = [];
    this.advanceCommit(effects);
    for (const [connId, conn] of this.conns) {
      if (conn.pendingVote) {
        effects.push({ kind: 'reply', connId, msg: this.voteResponse(conn.pendingVote) });
        conn.pendingVote = null;
      }
      if (conn.pendingAppendReply) {
        effects.push({ kind: 'reply', connId, msg: this.appendResponse(conn.electedTerm) });
        conn.pendingAppendReply = false;
      }
    }
    return effects;
  }

  /** Persists the lazily kept LSNs (commit, peer horizon) if they moved; call periodically. */
  checkpoint(): AcceptorEffect[] {
    const p = this.emitted;
    if (p.commitLsn === this.state.commitLsn && p.truncateLsn === this.state.truncateLsn) return [];
    return [this.persistEffect()];
  }

  private onGreeting(connId: number, conn: Connection, msg: ProposerGreeting): AcceptorEffect[] {
    const s = this.state;
    if (msg.tenantId !== s.tenantId) {
      throw new AcceptorError('tenant_mismatch', `${this.where()}greeting for tenant ${msg.tenantId}`);
    }
    if (msg.timelineId !== s.timelineId) {
      throw new AcceptorError('timeline_mismatch', `${this.where()}greeting for timeline ${msg.timelineId}`);
    }
    if (msg.walSegSize !== s.walSegSize) {
      throw new AcceptorError(
        'wal_seg_size_mismatch',
        `${this.where()}proposer uses wal_seg_size ${msg.walSegSize}, timeline has ${s.walSegSize}`,
      );
    }
    if (s.pgVersion !== 0 && pgMajor(msg.pgVersion) !== pgMajor(s.pgVersion)) {
      throw new AcceptorError(
        'pg_version_mismatch',
        `${this.where()}proposer runs PostgreSQL ${msg.pgVersion}, timeline holds WAL of ${s.pgVersion}`,
      );
    }
    // SAFETY: WAL of a different PostgreSQL cluster must never land in this timeline.
    if (msg.systemId !== 0n && s.systemId !== 0n && msg.systemId !== s.systemId) {
      throw new AcceptorError(
        'system_id_mismatch',
        `${this.where()}proposer's system id ${msg.systemId} differs from the timeline's ${s.systemId}`,
      );
    }
    this.checkGeneration(msg.mconf.generation);
    const effects: AcceptorEffect[] = [];
    if ((msg.systemId !== 0n && s.systemId === 0n) || (s.pgVersion === 0 && msg.pgVersion !== 0)) {
      this.state = {
        ...s,
        systemId: s.systemId === 0n ? msg.systemId : s.systemId,
        pgVersion: msg.pgVersion !== 0 ? msg.pgVersion : s.pgVersion,
      };
      effects.push(this.persistEffect());
    }
    conn.greeted = true;
    conn.pgTimeline = msg.pgTimeline ?? 0;
    const pgTl = currentPgTimeline(this.state.pgTimelineHistory);
    effects.push({
      kind: 'reply',
      connId,
      msg: { tag: 'acceptor_greeting', nodeId: this.nodeId, mconf: LEGACY_MCONF, term: this.state.term, pgTimeline: pgTl.tli, pgTimelineStartLsn: pgTl.startLsn },
    });
    return effects;
  }

  private onVoteRequest(connId: number, conn: Connection, msg: VoteRequest): AcceptorEffect[] {
    this.requireGreeted(conn, 'VoteRequest');
    this.checkGeneration(msg.generation);
    // SAFETY: a proposer whose PostgreSQL is on an older timeline than one already recorded
    // here is an old primary: electing it would fence the new one for nothing (it could not
    // push its WAL anyway). A proposer that did not say (0) is checked at its pg_timeline.
    const pgTl = currentPgTimeline(this.state.pgTimelineHistory);
    if (conn.pgTimeline !== 0 && conn.pgTimeline < pgTl.tli) {
      throw new AcceptorError(
        'pg_timeline_regressed',
        `${this.where()}vote for term ${msg.term} refused: the proposer's PostgreSQL is on timeline ${conn.pgTimeline}, ` +
          `this safekeeper holds timeline ${pgTl.tli} (from ${formatLsn(pgTl.startLsn)}); an old primary must not be elected`,
      );
    }
    // SAFETY: one vote per term, ever: only a strictly higher term is granted.
    const granted = this.state.term < msg.term || (!!this.faults.acceptEqualTermVote && this.state.term === msg.term);
    const effects: AcceptorEffect[] = [];
    if (granted) {
      this.state = { ...this.state, term: msg.term };
      // SAFETY: the term is durable before the vote leaves, so a restart cannot vote again.
      if (!this.faults.grantVoteWithoutPersist) effects.push(this.persistEffect());
    }
    conn.voted = true;
    const decision = { granted, term: granted ? msg.term : this.state.term };
    if (this.write > this.flush) {
      // Report the real end of WAL: flush first, reply from onFlushed.
      conn.pendingVote = decision;
      effects.push({ kind: 'flush_wal' });
    } else {
      effects.push({ kind: 'reply', connId, msg: this.voteResponse(decision) });
    }
    return effects;
  }

  private onElected(conn: Connection, msg: ProposerElected): AcceptorEffect[] {
    this.requireGreeted(conn, 'ProposerElected');
    if (!conn.voted) {
      throw new AcceptorError('elected_before_vote', `${this.where()}ProposerElected(term ${msg.term}) before VoteRequest`);
    }
    this.checkGeneration(msg.generation);
    // An older proposer lost; it learns so from our replies to its other messages.
    if (msg.term < this.state.term) return [];
    const history = msg.termHistory;
    try {
      validateTermHistory(history, 'proposer term history');
    } catch (e) {
      throw new AcceptorError('invalid_term_history', this.where() + (e as Error).message);
    }
    if (history.length === 0 || history[history.length - 1].term !== msg.term) {
      throw new AcceptorError(
        'invalid_term_history',
        `${this.where()}ProposerElected(term ${msg.term}) carries history ${formatTermHistory(history)} not ending in its term`,
      );
    }
    const flush = this.flushLsn;
    let expected: Lsn;
    try {
      expected = startStreamingAt(history, this.state.termHistory, flush);
    } catch (e) {
      throw new AcceptorError('invalid_term_history', this.where() + (e as Error).message);
    }
    if (expected !== msg.startStreamingAt) {
      throw new AcceptorError(
        'common_point_mismatch',
        `${this.where()}proposer of term ${msg.term} streams from ${formatLsn(msg.startStreamingAt)} but the common point ` +
          `of ${formatTermHistory(history)} and ours ${formatTermHistory(trimTermHistory(this.state.termHistory, flush))} ` +
          `(flush ${formatLsn(flush)}) is ${formatLsn(expected)}`,
      );
    }
    // SAFETY: WAL we know to be committed is never truncated.
    if (msg.startStreamingAt < this.state.commitLsn) {
      throw new AcceptorError(
        'truncate_below_commit',
        `${this.where()}truncation to ${formatLsn(msg.startStreamingAt)} requested by term ${msg.term} is below commit LSN ${formatLsn(this.state.commitLsn)}`,
      );
    }
    if (this.write !== 0n && msg.startStreamingAt > flush) {
      throw new AcceptorError(
        'wal_gap',
        `${this.where()}streaming would start at ${formatLsn(msg.startStreamingAt)}, past our WAL end ${formatLsn(flush)}`,
      );
    }
    const termChanged = msg.term !== this.state.term;
    const timelineStartLsn = this.state.timelineStartLsn !== 0n ? this.state.timelineStartLsn : history[0].lsn;
    this.state = {
      ...this.state,
      term: msg.term,
      termHistory: cloneTermHistory(history),
      timelineStartLsn,
      commitLsn: maxLsn(this.state.commitLsn, timelineStartLsn),
      truncateLsn: maxLsn(this.state.truncateLsn, timelineStartLsn),
    };
    this.write = msg.startStreamingAt;
    this.flush = msg.startStreamingAt;
    if (termChanged) this.proposerCommitLsn = 0n;
    conn.electedTerm = msg.term;
    // SAFETY: truncate before persisting the new history, or a crash in between would
    // label the old divergent tail with the new term.
    return [{ kind: 'truncate_wal', lsn: msg.startStreamingAt }, this.persistEffect()];
  }

  /**
   * The elected proposer's PostgreSQL timeline. A switch is persisted before anything later
   * on any connection is handled, so WAL of the new TLI is never acknowledged unrecorded.
   */
  private onPgTimeline(conn: Connection, msg: ProposerPgTimeline): AcceptorEffect[] {
    this.requireGreeted(conn, 'PgTimeline');
    this.checkGeneration(msg.generation);
    if (msg.term < this.state.term) return [];
    if (msg.term > this.state.term || conn.electedTerm !== msg.term) {
      throw new AcceptorError(
        'pg_timeline_before_elected',
        `${this.where()}PgTimeline of term ${msg.term} before ProposerElected on this connection (our term ${this.state.term})`,
      );
    }
    const held = this.write > this.state.timelineStartLsn ? this.write : 0n;
    let next: PgTimelineHistory | null;
    try {
      next = applyPgTimeline(this.state.pgTimelineHistory, this.state.pgHistoryFile, msg, held);
    } catch (e) {
      if (!(e instanceof PgTimelineError)) throw e;
      throw new AcceptorError(e.code, `${this.where()}PgTimeline(tli ${msg.tli} from ${formatLsn(msg.startLsn)}) of term ${msg.term}: ${e.message}`);
    }
    if (next === null) return [];
    this.state = { ...this.state, pgTimelineHistory: next, pgHistoryFile: msg.historyFile };
    return [this.persistEffect()];
  }

  private onAppend(connId: number, conn: Connection, msg: AppendRequest): AcceptorEffect[] {
    this.requireGreeted(conn, 'AppendRequest');
    this.checkGeneration(msg.generation);
    // SAFETY: never accept WAL from an older term; tell the proposer our term instead.
    if (msg.term < this.state.term) {
      return [{ kind: 'reply', connId, msg: this.termOnlyResponse() }];
    }
    if (msg.term > this.state.term || conn.electedTerm !== msg.term) {
      throw new AcceptorError(
        'append_before_elected',
        `${this.where()}AppendRequest of term ${msg.term} before ProposerElected on this connection (our term ${this.state.term})`,
      );
    }
    if (msg.endLsn < msg.beginLsn || BigInt(msg.walData.length) !== msg.endLsn - msg.beginLsn) {
      throw new AcceptorError(
        'invalid_append',
        `${this.where()}AppendRequest ${formatLsn(msg.beginLsn)}..${formatLsn(msg.endLsn)} carries ${msg.walData.length} bytes`,
      );
    }
    // SAFETY: strictly sequential writes; stale or duplicated packets must not rewrite WAL (neon #8212).
    if (this.write !== 0n && msg.beginLsn !== this.writeLsn) {
      throw new AcceptorError(
        'non_sequential_append',
        `${this.where()}AppendRequest begins at ${formatLsn(msg.beginLsn)} but WAL is written up to ${formatLsn(this.writeLsn)}`,
      );
    }
    const effects: AcceptorEffect[] = [];
    if (msg.walData.length > 0) {
      effects.push({ kind: 'append_wal', beginLsn: msg.beginLsn, data: msg.walData });
      this.write = msg.endLsn;
    }
    this.proposerCommitLsn = maxLsn(this.proposerCommitLsn, msg.commitLsn);
    if (msg.truncateLsn > this.state.truncateLsn) this.state = { ...this.state, truncateLsn: msg.truncateLsn };
    this.advanceCommit(effects);
    if (this.faults.ackBeforeFlush) {
      effects.push({ kind: 'reply', connId, msg: { ...this.appendResponse(msg.term), flushLsn: this.writeLsn } });
      if (this.write > this.flush) effects.push({ kind: 'flush_wal' });
    } else if (this.write > this.flush) {
      // SAFETY: the flush LSN is acknowledged only after fsync.
      conn.pendingAppendReply = true;
      effects.push({ kind: 'flush_wal' });
    } else {
      effects.push({ kind: 'reply', connId, msg: this.appendResponse(msg.term) });
    }
    return effects;
  }

  /** commit = min(max(announced, commit), flush): never past our own flushed WAL, never back. */
  private advanceCommit(effects: AcceptorEffect[]): void {
    const candidate = minLsn(this.proposerCommitLsn, this.flushLsn);
    if (candidate <= this.state.commitLsn) return;
    this.state = { ...this.state, commitLsn: candidate };
    // The first time the current term's start is committed, make it durable (sync-safekeepers relies on it).
    const termStart = this.termStartLsn;
    if (this.emitted.commitLsn < termStart && candidate >= termStart) effects.push(this.persistEffect());
  }

  private voteResponse(d: { granted: boolean; term: Term }): VoteResponse {
    const flushLsn = this.flushLsn;
    return {
      tag: 'vote_response',
      generation: 0,
      term: d.granted ? d.term : this.state.term,
      voteGiven: d.granted,
      flushLsn,
      truncateLsn: this.state.truncateLsn,
      termHistory: trimTermHistory(this.state.termHistory, flushLsn),
    };
  }

  private appendResponse(connTerm: Term | null): AppendResponse {
    if (connTerm !== this.state.term) return this.termOnlyResponse();
    return {
      tag: 'append_response',
      generation: 0,
      term: this.state.term,
      flushLsn: this.flushLsn,
      commitLsn: this.state.commitLsn,
      hsFeedback: { ts: 0n, xmin: 0n, catalogXmin: 0n },
    };
  }

  private termOnlyResponse(): AppendResponse {
    return {
      tag: 'append_response',
      generation: 0,
      term: this.state.term,
      flushLsn: 0n,
      commitLsn: 0n,
      hsFeedback: { ts: 0n, xmin: 0n, catalogXmin: 0n },
    };
  }

  private persistEffect(): AcceptorEffect {
    this.emitted = cloneState(this.state);
    return { kind: 'persist', state: cloneState(this.state) };
  }

  private requireGreeted(conn: Connection, what: string): void {
    if (!conn.greeted) throw new AcceptorError('not_greeted', `${this.where()}${what} before ProposerGreeting`);
  }

  private checkGeneration(generation: number): void {
    if (generation !== 0) {
      throw new AcceptorError(
        'generation_mismatch',
        `${this.where()}message carries membership generation ${generation}; only legacy generation 0 is supported`,
      );
    }
  }

  private where(): string {
    return `timeline ${this.state.tenantId}/${this.state.timelineId} on node ${this.nodeId}: `;
  }
}
