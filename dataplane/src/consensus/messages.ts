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
}

export interface AcceptorGreeting {
  tag: 'acceptor_greeting';
  nodeId: bigint;
  mconf: MembershipConf;
  /** highest term this acceptor has voted for */
  term: Term;
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

export type ProposerMessage = ProposerGreeting | VoteRequest | ProposerElected | AppendRequest;
export type AcceptorMessage = AcceptorGreeting | VoteResponse | AppendResponse;

/** Largest WAL payload in one AppendRequest (16 x XLOG_BLCKSZ), as in the reference layout. */
export const MAX_APPEND_PAYLOAD = 128 * 1024;
