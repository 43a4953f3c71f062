// The acceptor's persistent per-timeline state: exactly what the control file holds.
// The WAL position itself is owned by storage and handed to the acceptor machine.
import type { Lsn } from '../common/lsn.js';
import type { Term, TermHistory } from './messages.js';
import { cloneTermHistory } from './termHistory.js';
import { clonePgTimelineHistory, type PgTimelineHistory } from './pgTimeline.js';

export interface AcceptorPersistentState {
  tenantId: string;
  timelineId: string;
  /** highest term voted for (or adopted from ProposerElected) */
  term: Term;
  /** history installed by the last accepted ProposerElected; may reach past local WAL */
  termHistory: TermHistory;
  /** full server version, e.g. 160004; 0 = not yet known */
  pgVersion: number;
  /** PostgreSQL system identifier; 0n = not yet known */
  systemId: bigint;
  walSegSize: number;
  /**
   * PostgreSQL timeline id used in segment file names: the TLI the timeline was created with.
   * It does not change at a PostgreSQL timeline switch (the WAL stays one LSN-indexed stream).
   */
  pgTimeline: number;
  /** the PostgreSQL timelines the WAL went through; the last is the current one */
  pgTimelineHistory: PgTimelineHistory;
  /** the current PostgreSQL timeline's `.history` file as PostgreSQL wrote it ('' for none) */
  pgHistoryFile: string;
  /** first LSN of this timeline's WAL; 0 until the first ProposerElected */
  timelineStartLsn: Lsn;
  /** persisted lazily: may lag the in-memory value, never exceeds flushed WAL */
  commitLsn: Lsn;
  /** peer horizon: WAL below it is on every member and may be removed */
  truncateLsn: Lsn;
}

export interface NewTimelineParams {
  tenantId: string;
  timelineId: string;
  walSegSize: number;
  pgVersion?: number;
  systemId?: bigint;
  pgTimeline?: number;
}

/** State of a freshly created timeline: term 0 (never elected), no WAL. */
export function newTimelineState(p: NewTimelineParams): AcceptorPersistentState {
  return {
    tenantId: p.tenantId,
    timelineId: p.timelineId,
    term: 0n,
    termHistory: [],
    pgVersion: p.pgVersion ?? 0,
    systemId: p.systemId ?? 0n,
    walSegSize: p.walSegSize,
    pgTimeline: p.pgTimeline ?? 1,
    pgTimelineHistory: [{ tli: p.pgTimeline ?? 1, startLsn: 0n }],
    pgHistoryFile: '',
    timelineStartLsn: 0n,
    commitLsn: 0n,
    truncateLsn: 0n,
  };
}

/** Deep copy, so an emitted `persist` snapshot never changes under the shell's feet. */
export function cloneState(s: AcceptorPersistentState): AcceptorPersistentState {
  return { ...s, termHistory: cloneTermHistory(s.termHistory), pgTimelineHistory: clonePgTimelineHistory(s.pgTimelineHistory) };
}
