// Term history arithmetic shared by acceptor and proposer: validation, last log term,
// trimming to a flush position and the highest common point that decides where an
// acceptor's WAL diverges from a proposer's (notes §3 ProposerElected step 4, §10.6).
import { formatLsn, type Lsn } from '../common/lsn.js';
import type { Term, TermHistory } from './messages.js';

/** Throws an Error naming the offending entry unless terms strictly increase and LSNs never decrease. */
export function validateTermHistory(history: TermHistory, what = 'term history'): void {
  for (let i = 1; i < history.length; i++) {
    const prev = history[i - 1];
    const cur = history[i];
    if (cur.term <= prev.term) {
      throw new Error(
        `invalid ${what}: term ${cur.term} at entry ${i} does not increase over term ${prev.term} at entry ${i - 1}`,
      );
    }
    if (cur.lsn < prev.lsn) {
      throw new Error(
        `invalid ${what}: entry ${i} (term ${cur.term}) starts at ${formatLsn(cur.lsn)}, ` +
          `before entry ${i - 1} (term ${prev.term}) at ${formatLsn(prev.lsn)}`,
      );
    }
  }
}

/** The entries that describe WAL up to flushLsn: a history may name terms whose WAL never arrived. */
export function trimTermHistory(history: TermHistory, flushLsn: Lsn): TermHistory {
  return history.filter((e) => e.lsn <= flushLsn).map((e) => ({ term: e.term, lsn: e.lsn }));
}

/** Term of the last WAL actually held: the last entry starting at or before flushLsn, 0 if none. */
export function lastLogTerm(history: TermHistory, flushLsn: Lsn): Term {
  let term = 0n;
  for (const e of history) {
    if (e.lsn > flushLsn) break;
    term = e.term;
  }
  return term;
}

export interface CommonPoint {
  /** last term both sides hold */
  term: Term;
  /** where that term's WAL stops being shared: the acceptor keeps WAL below it, truncates the rest */
  lsn: Lsn;
}

/**
 * Highest point up to which the acceptor's WAL (its history trimmed to accFlushLsn) is a
 * prefix of the proposer's log, or null when they share no term (empty or alien acceptor).
 * Histories are walked by index: a term's entry and everything before it are fixed when
 * that term is elected, so equal terms at equal positions must have equal start LSNs.
 */
export function findHighestCommonPoint(
  proposerHistory: TermHistory,
  acceptorHistory: TermHistory,
  accFlushLsn: Lsn,
): CommonPoint | null {
  const acc = trimTermHistory(acceptorHistory, accFlushLsn);
  let i = -1;
  while (
    i + 1 < proposerHistory.length &&
    i + 1 < acc.length &&
    proposerHistory[i + 1].term === acc[i + 1].term
  ) {
    i++;
    if (proposerHistory[i].lsn !== acc[i].lsn) {
      throw new Error(
        `term ${acc[i].term} starts at ${formatLsn(acc[i].lsn)} on the acceptor but at ` +
          `${formatLsn(proposerHistory[i].lsn)} on the proposer: histories are corrupt`,
      );
    }
  }
  if (i < 0) return null;
  // The common term ends where either side switched to another term; on the acceptor a
  // term without a successor ends at its flush position.
  const propEnd = i + 1 < proposerHistory.length ? proposerHistory[i + 1].lsn : null;
  const accEnd = i + 1 < acc.length ? acc[i + 1].lsn : accFlushLsn;
  const lsn = propEnd !== null && propEnd < accEnd ? propEnd : accEnd;
  return { term: proposerHistory[i].term, lsn };
}

/**
 * The LSN from which the proposer streams to an acceptor and at which the acceptor truncates:
 * the highest common point, or the start of the proposer's history when there is none.
 */
export function startStreamingAt(proposerHistory: TermHistory, acceptorHistory: TermHistory, accFlushLsn: Lsn): Lsn {
  if (proposerHistory.length === 0) throw new Error('proposer term history is empty');
  const point = findHighestCommonPoint(proposerHistory, acceptorHistory, accFlushLsn);
  return point === null ? proposerHistory[0].lsn : point.lsn;
}

export function formatTermHistory(history: TermHistory): string {
  return '[' + history.map((e) => `(${e.term}, ${formatLsn(e.lsn)})`).join(', ') + ']';
}

export function cloneTermHistory(history: TermHistory): TermHistory {
  return history.map((e) => ({ term: e.term, lsn: e.lsn }));
}
