// Proposer <-> acceptor messages of the consensus protocol (ARCHITECTURE.md §4).
// Field order follows the v3 wire layout; the codec lives in protocol/consensusCodec.ts.
// Generation is carried for layout compatibility; walkeeper runs in legacy mode (generation 0).
import type { Lsn } from '../common/lsn.js';

export type Term = bigint;

/** One switch of terms: WAL from `lsn` on (until the next entry) was written in `term`. */
export interface TermSwitch {
  term: Term;
  lsn: Lsn;
}

/** Strictly increasing terms with non-decreasing LSNs. */
export type TermHistory = TermSwitch[];

export interface Member {
  id: bigint;
  host: string;
  pgPort: number;
}

export interface MembershipConf {
  generation: number;
  members: Member[];
  /** null when not a joint configuration */
  newMembers: Member[] | null;
}

export const LEGACY_MCONF: MembershipConf = { generation: 0, members: [], newMembers: null };

export interface ProposerGreeting {
  tag: 'proposer_greeting';
  tenantId: string;
  timelineId: string;
  mconf: MembershipConf;
  /** full server version, e.g. 150004 */
  pgVersion: number;
  /** PostgreSQL system identifier; 0n means unknown */
  systemId: bigint;
  walSegSize: number;
  /**
   * the proposer's PostgreSQL timeline (TLI); absent = not told (a proposer that predates
   * timeline switches). A trailing extension of the v3 layout, omitted when absent.
   */
  pgTimeline?: number;
}

export interface AcceptorGreeting {
  tag: 'acceptor_greeting';
  nodeId: bigint;
  mconf: MembershipConf;
  /** highest term this acceptor has voted for */
  term: Term;
  /** the newest PostgreSQL timeline this acceptor holds, and where it starts (trailing extension, both or neither) */
  pgTimeline?: number;
  pgTimelineStartLsn?: Lsn;
}

export interface VoteRequest {
  tag: 'vote_request';
  generation: number;
  term: Term;
}

export interface VoteResponse {
  tag: 'vote_response';
  generation: number;
  /** the acceptor's current term (after granting, equal to the request's) */
  term: Term;
  voteGiven: boolean;
  flushLsn: Lsn;
  truncateLsn: Lsn;
  /** trimmed to entries with lsn <= flushLsn */
  termHistory: TermHistory;
}

export interface ProposerElected {
  tag: 'proposer_elected';
  generation: number;
  term: Term;
  startStreamingAt: Lsn;
  termHistory: TermHistory;
}

export interface AppendRequest {
  tag: 'append_request';
  generation: number;
  term: Term;
  beginLsn: Lsn;
  endLsn: Lsn;
  commitLsn: Lsn;
  truncateLsn: Lsn;
  /** exactly endLsn - beginLsn bytes; empty for a heartbeat */
  walData: Uint8Array;
}

export interface HotStandbyFeedback {
  ts: bigint;
  xmin: bigint;
  catalogXmin: bigint;
}

export interface AppendResponse {
  tag: 'append_response';
  generation: number;
  term: Term;
  flushLsn: Lsn;
  commitLsn: Lsn;
  hsFeedback: HotStandbyFeedback;
}

/**
 * The elected proposer's PostgreSQL timeline (walkeeper extension, tag 't'): WAL of this term
 * from `startLsn` on is PostgreSQL timeline `tli`, whose `.history` file is `historyFile`.
 * Sent after every ProposerElected, and again when the proposer's PostgreSQL was promoted
 * (a timeline switch) before any WAL of the new timeline. The acceptor persists it before it
 * handles the next message, so it never acknowledges WAL of a TLI it has not recorded.
 */
export interface ProposerPgTimeline {
  tag: 'pg_timeline';
  generation: number;
  term: Term;
  tli: number;
  startLsn: Lsn;
  historyFile: string;
}

export type ProposerMessage = ProposerGreeting | VoteRequest | ProposerElected | AppendRequest | ProposerPgTimeline;
export type AcceptorMessage = AcceptorGreeting | VoteResponse | AppendResponse;

/** Largest WAL payload in one AppendRequest (16 x XLOG_BLCKSZ), as in the reference layout. */
export const MAX_APPEND_PAYLOAD = 128 * 1024;
