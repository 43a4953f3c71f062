// PostgreSQL timelines (TLIs) as the safekeepers keep them. A promotion starts a new TLI at
// a switchpoint and writes a `.history` file listing every ancestor TLI and where it ended.
// The safekeepers' WAL stays one LSN-indexed stream; alongside it they keep the list of
// (tli, startLsn) it went through and the history file of the newest TLI exactly as
// PostgreSQL wrote it, from which readers' TIMELINE_HISTORY and START_REPLICATION of a
// historic TLI are answered. Pure: parsing, validation and the acceptor's switch rule.
import { formatLsn, type Lsn } from '../common/lsn.js';

/** From `startLsn` on (until the next entry), the WAL belongs to PostgreSQL timeline `tli`. */
export interface PgTimelineEntry {
  tli: number;
  startLsn: Lsn;
}

/** Strictly increasing TLIs with non-decreasing start LSNs; the first starts at 0. */
export type PgTimelineHistory = PgTimelineEntry[];

/** A PostgreSQL's current timeline as a proposer reports it to the safekeepers. */
export interface PgTimelineInfo {
  tli: number;
  /** where `tli` begins (its parent's switchpoint); 0 for a timeline without parent */
  startLsn: Lsn;
  /** content of `<tli>.history` exactly as PostgreSQL returned it; '' when there is none */
  historyFile: string;
}

/** Timeline 1 from the beginning of time: a cluster that was never promoted. */
export const FIRST_PG_TIMELINE: PgTimelineInfo = { tli: 1, startLsn: 0n, historyFile: '' };

/** One line of a history file: `parentTli`, which ended at `switchpoint`, and why. */
export interface HistoryFileLine {
  parentTli: number;
  switchpoint: Lsn;
  reason: string;
}

export class PgTimelineError extends Error {
  constructor(
    readonly code: 'invalid_history_file' | 'pg_timeline_regressed' | 'pg_timeline_mismatch',
    message: string,
  ) {
    super(message);
  }
}

/** `0000000N.history`, as PostgreSQL names the file of timeline N. */
export function historyFileName(tli: number): string {
  return `${tli.toString(16).toUpperCase().padStart(8, '0')}.history`;
}

function isTli(v: number): boolean {
  return Number.isInteger(v) && v >= 1 && v <= 0xffffffff;
}

/**
 * Parses a history file as PostgreSQL's readTimeLineHistory does: blank lines and lines
 * starting with '#' are skipped; every other line is `tli<TAB>X/X[<TAB>reason]`, with
 * strictly increasing TLIs. Switchpoints must not decrease either.
 */
export function parseHistoryFile(content: string, what = 'history file'): HistoryFileLine[] {
  const out: HistoryFileLine[] = [];
  const lines = content.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.replace(/^\s+/, '');
    if (line === '' || line.startsWith('#')) return;
    const m = /^([0-9]+)\s+([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})(?:\s+(.*))?$/.exec(line.replace(/\r$/, ''));
    if (!m) throw new PgTimelineError('invalid_history_file', `syntax error in ${what} line ${i + 1}: ${JSON.stringify(raw.slice(0, 120))} (expected "tli<TAB>X/X<TAB>reason")`);
    const parentTli = Number(m[1]);
    if (!isTli(parentTli)) throw new PgTimelineError('invalid_history_file', `invalid timeline ${m[1]} in ${what} line ${i + 1}`);
    const switchpoint = (BigInt('0x' + m[2]) << 32n) | BigInt('0x' + m[3]);
    const prev = out.at(-1);
    if (prev && parentTli <= prev.parentTli) {
      throw new PgTimelineError('invalid_history_file', `invalid data in ${what} line ${i + 1}: timeline ${parentTli} does not increase over ${prev.parentTli} (timeline IDs must be in increasing sequence)`);
    }
    if (prev && switchpoint < prev.switchpoint) {
      throw new PgTimelineError('invalid_history_file', `invalid data in ${what} line ${i + 1}: switchpoint ${formatLsn(switchpoint)} is before the previous one ${formatLsn(prev.switchpoint)}`);
    }
    out.push({ parentTli, switchpoint, reason: m[4] ?? '' });
  });
  return out;
}

/** The (tli, startLsn) list of a PostgreSQL on timeline `info.tli` with history file `info.historyFile`. */
export function pgTimelineHistoryOf(info: PgTimelineInfo): PgTimelineHistory {
  if (!isTli(info.tli)) throw new PgTimelineError('invalid_history_file', `invalid timeline ${info.tli}: expected 1..4294967295`);
  const lines = parseHistoryFile(info.historyFile, `history file of timeline ${info.tli}`);
  const history: PgTimelineHistory = lines.map((l, i) => ({ tli: l.parentTli, startLsn: i === 0 ? 0n : lines[i - 1].switchpoint }));
  const last = lines.at(-1);
  if (last && info.tli <= last.parentTli) {
    throw new PgTimelineError('invalid_history_file', `history file of timeline ${info.tli} names timeline ${last.parentTli} as an ancestor: a timeline's ancestors have lower IDs`);
  }
  const start = last ? last.switchpoint : 0n;
  if (info.startLsn !== start) {
    throw new PgTimelineError(
      'invalid_history_file',
      last
        ? `timeline ${info.tli} is said to start at ${formatLsn(info.startLsn)} but its history file says timeline ${last.parentTli} ended at ${formatLsn(start)}`
        : `timeline ${info.tli} has no history file, so it starts at 0/0, not at ${formatLsn(info.startLsn)}`,
    );
  }
  history.push({ tli: info.tli, startLsn: start });
  return history;
}

/** Throws unless `history` is exactly what `historyFile` of its last timeline says. */
export function validatePgTimelineHistory(history: PgTimelineHistory, historyFile: string, what = 'PostgreSQL timeline history'): void {
  const last = history.at(-1);
  if (!last) throw new PgTimelineError('invalid_history_file', `${what} is empty`);
  const derived = pgTimelineHistoryOf({ tli: last.tli, startLsn: last.startLsn, historyFile });
  if (derived.length !== history.length || derived.some((e, i) => e.tli !== history[i].tli || e.startLsn !== history[i].startLsn)) {
    throw new PgTimelineError('invalid_history_file', `${what} ${formatPgTimelineHistory(history)} does not match its history file (${formatPgTimelineHistory(derived)})`);
  }
}

/**
 * The timeline whose name a WAL segment file carries, as PostgreSQL names it: the newest
 * timeline that began before the segment's end (the segment holding a switchpoint is the new
 * timeline's file; the parent's copy of it ends at the switch and is only ever partial).
 */
export function pgTimelineOfSegment(history: PgTimelineHistory, segStartLsn: Lsn, segSize: number): number {
  if (history.length === 0) throw new Error('empty PostgreSQL timeline history');
  let tli = history[0].tli;
  for (const e of history) if (e.startLsn < segStartLsn + BigInt(segSize)) tli = e.tli;
  return tli;
}

export function currentPgTimeline(history: PgTimelineHistory): PgTimelineEntry {
  const last = history.at(-1);
  if (!last) throw new Error('empty PostgreSQL timeline history');
  return last;
}

/**
 * Where timeline `tli` ends: null while it is the current one, the next timeline's start
 * otherwise; undefined if `tli` is not in the history.
 */
export function pgTimelineEnd(history: PgTimelineHistory, tli: number): { end: Lsn; nextTli: number } | null | undefined {
  const i = history.findIndex((e) => e.tli === tli);
  if (i < 0) return undefined;
  if (i === history.length - 1) return null;
  return { end: history[i + 1].startLsn, nextTli: history[i + 1].tli };
}

/**
 * The history file of timeline `tli`, derived from the current one: PostgreSQL writes a new
 * timeline's file as its parent's file, a newline, and one line for the parent, so every
 * ancestor's file is the current file cut after the line of that ancestor's parent.
 * null: `tli` has no history file (the first timeline); undefined: `tli` is unknown.
 */
export function historyFileFor(history: PgTimelineHistory, currentFile: string, tli: number): string | null | undefined {
  const i = history.findIndex((e) => e.tli === tli);
  if (i < 0) return undefined;
  if (i === history.length - 1) return i === 0 ? null : currentFile;
  if (i === 0) return null;
  // cut after the i-th data line (lines that are not blank or comments)
  let seen = 0;
  let pos = 0;
  while (pos < currentFile.length) {
    const nl = currentFile.indexOf('\n', pos);
    const end = nl < 0 ? currentFile.length : nl + 1;
    const line = currentFile.slice(pos, end).replace(/^\s+/, '');
    if (line !== '' && !line.startsWith('#')) seen++;
    pos = end;
    if (seen === i) return currentFile.slice(0, pos);
  }
  return undefined;
}

export function formatPgTimelineHistory(history: PgTimelineHistory): string {
  return '[' + history.map((e) => `${e.tli}@${formatLsn(e.startLsn)}`).join(', ') + ']';
}

export function clonePgTimelineHistory(history: PgTimelineHistory): PgTimelineHistory {
  return history.map((e) => ({ tli: e.tli, startLsn: e.startLsn }));
}

/**
 * The acceptor's rule for a proposer reporting its PostgreSQL timeline. Returns the history
 * to store (the proposer's), or null when nothing changes. Throws PgTimelineError:
 * - `pg_timeline_regressed`: the proposer's TLI is older than the one stored (an old
 *   primary after a newer one was promoted);
 * - `pg_timeline_mismatch`: the same TLI with another start or history file (a second
 *   promotion of another standby), a history that disagrees with the stored ancestors, or a
 *   switch below WAL this acceptor already holds (it would relabel stored WAL);
 * - `invalid_history_file`: the history file does not parse or contradicts the message.
 * `heldWalEnd` is the end of WAL written on this acceptor (0 when it holds none: WAL below
 * the timeline's start is not held).
 */
export function applyPgTimeline(stored: PgTimelineHistory, storedFile: string, proposed: PgTimelineInfo, heldWalEnd: Lsn): PgTimelineHistory | null {
  const next = pgTimelineHistoryOf(proposed);
  const cur = currentPgTimeline(stored);
  if (proposed.tli < cur.tli) {
    throw new PgTimelineError(
      'pg_timeline_regressed',
      `the proposer's PostgreSQL is on timeline ${proposed.tli} but this safekeeper already holds timeline ${cur.tli} (from ${formatLsn(cur.startLsn)}): ` +
        `a newer primary was promoted; an old primary must not push WAL`,
    );
  }
  if (proposed.tli === cur.tli) {
    if (proposed.startLsn !== cur.startLsn || proposed.historyFile !== storedFile) {
      throw new PgTimelineError(
        'pg_timeline_mismatch',
        `the proposer's PostgreSQL timeline ${proposed.tli} starts at ${formatLsn(proposed.startLsn)}, but this safekeeper's timeline ${cur.tli} starts at ${formatLsn(cur.startLsn)}` +
          (proposed.startLsn === cur.startLsn ? ' with a different history file' : '') +
          `: two promotions produced the same timeline ID`,
      );
    }
    return null;
  }
  // A switch: our ancestors must be the proposer's, entry for entry.
  for (let i = 0; i < stored.length; i++) {
    const a = stored[i];
    const b = next[i];
    if (!b || a.tli !== b.tli || a.startLsn !== b.startLsn) {
      throw new PgTimelineError(
        'pg_timeline_mismatch',
        `the proposer's PostgreSQL timeline history ${formatPgTimelineHistory(next)} does not continue this safekeeper's ${formatPgTimelineHistory(stored)}`,
      );
    }
  }
  const first = next[stored.length];
  if (first.startLsn < heldWalEnd) {
    throw new PgTimelineError(
      'pg_timeline_mismatch',
      `timeline ${first.tli} would start at ${formatLsn(first.startLsn)}, but this safekeeper already holds WAL of timeline ${cur.tli} up to ${formatLsn(heldWalEnd)}: ` +
        `the switch must not relabel WAL already written`,
    );
  }
  return next;
}
