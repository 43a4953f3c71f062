// Failover to a new primary (`walkeeper proposer --promote`), run inside a term that was
// elected while PostgreSQL is still a hot standby following a safekeeper. The election
// itself fenced the old proposer (a higher term); this then:
//   1. waits until the quorum commits F, the donor's flush LSN (the term start): every WAL
//      byte anyone may have acknowledged is now on a majority, and safekeepers serve it;
//   2. waits until the standby has replayed to F (pg_last_wal_replay_lsn; F is a record end);
//   3. promotes it (pg_promote): PostgreSQL starts timeline N+1 at F;
//   4. reads the new timeline and its history file (IDENTIFY_SYSTEM, TIMELINE_HISTORY) and
//      checks that it starts at F.
// These are PostgreSQL's steps only: the term (termRun.ts) records the switch in the core, and
// so on the safekeepers, before any WAL of the new timeline, then streams the new primary's
// WAL from F as usual. Promotion happens only while this term holds the majority: if a newer
// term appears first, the term ends fenced and the standby is never promoted.
import { formatLsn, type Lsn } from '../common/lsn.js';
import type { Logger } from '../common/log.js';
import type { ConnInfo } from '../common/conninfo.js';
import type { PgTimelineInfo } from '../consensus/pgTimeline.js';
import { PgWalSource } from './pgSource.js';
import type { PgAdmin } from './pgAdmin.js';
import type { TermOutcome } from './termOutcome.js';

const POLL_MS = 100;
const PROGRESS_LOG_MS = 10_000;
const PROMOTE_WAIT_SECONDS = 60;
/** record ends are MAXALIGNed: a switchpoint may lie up to 7 bytes past an unaligned end */
const MAX_ALIGN = 8n;

export interface FailOverDeps {
  admin: PgAdmin;
  /** F: the donor's flush LSN, where this term's log begins */
  termStartLsn: Lsn;
  /** the term's quorum commit LSN, as it moves */
  commitLsn: () => Lsn;
  /** the PostgreSQL timeline the term's WAL is on (the standby's) */
  pgTimeline: () => PgTimelineInfo;
  pg: ConnInfo;
  log: Logger;
  isFinished: () => boolean;
  setDetail: (detail: string) => void;
  /** the replication connection opened after the promotion replaces the standby's */
  replaceSource: (source: PgWalSource) => void;
}

/** PostgreSQL is a primary now, on `pgTimeline`, whose switch the term must record. */
export type FailOverResult = { kind: 'promoted'; pgTimeline: PgTimelineInfo } | TermOutcome;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref());

/** Resolves the new timeline once PostgreSQL is promoted, the outcome ending the term, or undefined if the term ended meanwhile. */
export async function failOver(d: FailOverDeps): Promise<FailOverResult | undefined> {
  const f = d.termStartLsn;
  const { log } = d;
  let lastLog = Date.now();
  const progress = (detail: string) => {
    d.setDetail(detail);
    if (Date.now() - lastLog >= PROGRESS_LOG_MS) {
      lastLog = Date.now();
      log.info({ term_start_lsn: formatLsn(f) }, `failover: ${detail}`);
    }
  };

  // 1. the quorum commits everything up to F in our term
  log.info({ term_start_lsn: formatLsn(f) }, 'failover: elected; waiting for the quorum to commit the WAL up to the term start');
  while (d.commitLsn() < f) {
    if (d.isFinished()) return undefined;
    progress(`waiting for the quorum to commit ${formatLsn(f)} (commit LSN ${formatLsn(d.commitLsn())})`);
    await sleep(POLL_MS);
  }

  // 2. the standby has replayed it (it receives WAL from a safekeeper up to the commit LSN)
  let replayed: Lsn | null = null;
  for (;;) {
    if (d.isFinished()) return undefined;
    if (!(await d.admin.inRecovery())) break; // promoted by someone else: checked below
    replayed = await d.admin.replayLsn();
    if (replayed !== null && replayed >= f) break;
    progress(`waiting for the standby to replay to ${formatLsn(f)} (replayed ${replayed === null ? 'nothing' : formatLsn(replayed)}); it must follow a safekeeper`);
    await sleep(POLL_MS);
  }
  if (replayed !== null && replayed - f >= MAX_ALIGN) {
    return {
      kind: 'refused',
      reason:
        `failover: the standby has replayed WAL up to ${formatLsn(replayed)}, past the quorum's end of WAL ${formatLsn(f)}: ` +
        `it holds WAL the safekeepers do not (did it follow another primary?); not promoting it`,
    };
  }

  // 3. promote, while our term still holds the majority
  if (d.isFinished()) return undefined;
  d.setDetail(`promoting PostgreSQL at ${formatLsn(f)}`);
  if (await d.admin.inRecovery()) {
    log.info({ replay_lsn: replayed === null ? null : formatLsn(replayed), term_start_lsn: formatLsn(f) }, 'failover: promoting PostgreSQL');
    if (!(await d.admin.promote(PROMOTE_WAIT_SECONDS))) {
      return { kind: 'ended', reason: `failover: pg_promote() did not finish within ${PROMOTE_WAIT_SECONDS} s` };
    }
  }

  // 4. the new timeline, which must begin where the quorum's WAL ends
  const source = await PgWalSource.connect(d.pg, log);
  d.replaceSource(source);
  const before = d.pgTimeline();
  const info = source.identity.pgTimelineInfo;
  if (info.tli <= before.tli) {
    return { kind: 'ended', reason: `failover: PostgreSQL still reports timeline ${info.tli} after its promotion (was ${before.tli})` };
  }
  if (info.startLsn < f || info.startLsn - f >= MAX_ALIGN) {
    return {
      kind: 'refused',
      reason:
        `failover: PostgreSQL switched to timeline ${info.tli} at ${formatLsn(info.startLsn)}, but the quorum's WAL ends at ${formatLsn(f)}: ` +
        `its timeline ${before.tli} does not end where the safekeepers' does; refusing to push its WAL`,
    };
  }
  await source.ensureSlot();
  return { kind: 'promoted', pgTimeline: info };
}
