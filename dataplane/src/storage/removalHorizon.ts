// The WAL removal horizon of one timeline, as a pure function: which whole segments a
// safekeeper may delete, and which input holds the rest. No I/O; the removal loop
// (safekeeper/walRemoval.ts) gathers the inputs and performs the result.
//
// Rule: remove every segment that ends at or below
//   min( backupLsn                       when remote storage is on (the bucket must have it),
//        peerHorizonLsn (truncateLsn)    unless remote storage is on (then the bucket serves peers),
//        every slot's restart LSN,
//        commitLsn - walKeepSize,
//        commitLsn, flushLsn )           (never the segment holding the commit LSN)
// and never anything below what is already removed. A backup or peer horizon of 0 means
// "unknown" and holds everything; a slot at 0 has reserved nothing and holds nothing.
import type { Lsn } from '../common/lsn.js';

/** A reader slot's claim on WAL (supplied by the slots; an empty list when there are none). */
export interface SlotHorizon {
  name: string;
  /** First LSN the slot's reader may still ask for; 0 = holds nothing (not yet reserved). */
  restartLsn: Lsn;
}

export interface RemovalHorizonInput {
  walSegSize: number;
  /** Commit LSN known to this member. */
  commitLsn: Lsn;
  /** This member's flush LSN (removal never passes it either). */
  flushLsn: Lsn;
  /** First LSN of the timeline; 0 = no WAL yet. */
  timelineStartLsn: Lsn;
  /** First LSN still held locally (persisted walStartLsn; 0 = nothing removed yet). */
  walStartLsn: Lsn;
  remoteStorageEnabled: boolean;
  /** Everything below it is verified in remote storage. */
  backupLsn: Lsn;
  /** Lowest flush LSN over all members as the proposer last sent it (truncateLsn). */
  peerHorizonLsn: Lsn;
  slots: readonly SlotHorizon[];
  /** WAL kept below the commit LSN in any case (bytes, like PostgreSQL's wal_keep_size). */
  walKeepSize: bigint;
}

/** What holds the horizon where it is. */
export type RemovalHolder =
  | { kind: 'backup' }
  | { kind: 'peer' }
  | { kind: 'slot'; name: string }
  | { kind: 'keep_size' }
  | { kind: 'commit' }
  | { kind: 'no_wal' };

export interface RemovalHorizon {
  /** Segment-aligned: every segment wholly below it may be removed. */
  removeBelowLsn: Lsn;
  /** The minimum of the inputs (not aligned), for status. */
  limitLsn: Lsn;
  heldBy: RemovalHolder;
  /** True when removeBelowLsn is past what is already removed: there is work to do. */
  removable: boolean;
}

/** "backup", "peer", "slot <name>", "keep_size", "commit" or "no_wal" (status and logs). */
export function describeHolder(holder: RemovalHolder): string {
  return holder.kind === 'slot' ? `slot ${holder.name}` : holder.kind;
}

export function computeRemovalHorizon(input: RemovalHorizonInput): RemovalHorizon {
  const seg = BigInt(input.walSegSize);
  if (!(seg > 0n)) throw new Error(`walSegSize must be positive, got ${input.walSegSize}`);
  if (input.walKeepSize < 0n) throw new Error(`walKeepSize must not be negative, got ${input.walKeepSize}`);
  const localStart = input.walStartLsn > input.timelineStartLsn ? input.walStartLsn : input.timelineStartLsn;
  if (input.timelineStartLsn === 0n || input.commitLsn === 0n) {
    return { removeBelowLsn: localStart, limitLsn: 0n, heldBy: { kind: 'no_wal' }, removable: false };
  }

  // Candidates in the order they are reported when two hold at the same LSN.
  const candidates: [Lsn, RemovalHolder][] = [];
  if (input.remoteStorageEnabled) candidates.push([input.backupLsn, { kind: 'backup' }]);
  else candidates.push([input.peerHorizonLsn, { kind: 'peer' }]);
  // A slot that has not reserved WAL yet (restart LSN 0) holds nothing, as in PostgreSQL.
  for (const slot of input.slots) if (slot.restartLsn !== 0n) candidates.push([slot.restartLsn, { kind: 'slot', name: slot.name }]);
  const keepFloor = input.commitLsn > input.walKeepSize ? input.commitLsn - input.walKeepSize : 0n;
  if (input.walKeepSize > 0n) candidates.push([keepFloor, { kind: 'keep_size' }]);
  candidates.push([input.flushLsn < input.commitLsn ? input.flushLsn : input.commitLsn, { kind: 'commit' }]);

  let [limitLsn, heldBy] = candidates[0];
  for (const [lsn, holder] of candidates.slice(1)) {
    if (lsn < limitLsn) [limitLsn, heldBy] = [lsn, holder];
  }
  // Whole segments strictly below the limit: the segment holding it stays (and so the one
  // holding the commit LSN, since the limit is never above it).
  const aligned = (limitLsn / seg) * seg;
  const removable = aligned > localStart;
  return { removeBelowLsn: removable ? aligned : localStart, limitLsn, heldBy, removable };
}
