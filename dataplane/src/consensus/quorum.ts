// Quorum arithmetic for a legacy (generation 0) membership of n members: majority size
// and the commit LSN rule of notes §10.7, including Raft's "figure 8" restriction.
import type { Lsn } from '../common/lsn.js';

/** Smallest number of members that forms a majority of n. */
export function majority(n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new Error(`invalid member count ${n}: need a positive integer`);
  return Math.floor(n / 2) + 1;
}

/**
 * Highest LSN flushed on a majority, counting an ack below termStartLsn as 0: WAL of
 * earlier terms becomes committed only together with WAL of the current term, otherwise a
 * later leader with a higher last log term could still overwrite it (Raft figure 8).
 * `skipFigure8Rule` exists only so the simulation can prove it catches the broken rule.
 */
export function quorumCommitLsn(
  acks: readonly Lsn[],
  termStartLsn: Lsn,
  opts: { skipFigure8Rule?: boolean } = {},
): Lsn {
  const q = majority(acks.length);
  const counted = acks.map((a) => (!opts.skipFigure8Rule && a < termStartLsn ? 0n : a));
  counted.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return counted[acks.length - q];
}
