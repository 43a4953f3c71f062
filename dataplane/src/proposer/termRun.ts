// One term of the proposer, from election to its end: it connects to PostgreSQL, wires the
// safekeeper links (memberLinks.ts), the term's WAL (termWal.ts) and the system clock into the
// proposer node, which runs the pure core (consensus/proposer.ts); once elected it fails over
// a standby first when asked to (failover.ts), then lets new WAL flow and reports the quorum
// commit LSN back to PostgreSQL. Anything that breaks the term (PostgreSQL gone, a higher
// term, a refusal) ends it; the service starts a fresh term, or stops when fenced.
import { Proposer, type ProposerEffect } from '../consensus/proposer.js';
import { ProposerError } from '../consensus/errors.js';
import type { PgTimelineInfo } from '../consensus/pgTimeline.js';
import { DEFAULT_WAL_SEG_SIZE, formatLsn, segmentStart } from '../common/lsn.js';
import type { Logger } from '../common/log.js';
import type { ConnInfo } from '../common/conninfo.js';
import type { ProposerMetrics } from '../http/proposerApi.js';
import { PgWalSource } from './pgSource.js';
import type { LinkTarget } from './safekeeperLink.js';
import { MemberLinks, type Member } from './memberLinks.js';
import { TermWal } from './termWal.js';
import { PgAdmin } from './pgAdmin.js';
import { failOver } from './failover.js';
import { ProposerNode } from './proposerNode.js';
import { systemClock } from '../common/clock.js';
import type { TermOutcome } from './termOutcome.js';
import type { ProposerState } from '../api/index.js';

/** Test-only behaviour injected by test tools, never read from the environment here. */
export interface ProposerHooks {
  /**
   * A deliberately broken rule for the durability tests only (torture/primaryLoss.ts): report
   * PostgreSQL's own flush position as ours, acknowledging commits before any quorum has them.
   */
  unsafeAckBeforeQuorum?: boolean;
}

export interface TermRunDeps {
  pg: ConnInfo;
  targets: LinkTarget[];
  tenantId: string;
  timelineId: string;
  log: Logger;
  metrics: ProposerMetrics;
  /**
   * Failover mode (`--promote`): PostgreSQL may be a hot standby following a safekeeper; the
   * term fences the old proposer, commits the quorum's WAL, waits for the standby to replay
   * it, promotes it and records the timeline switch (failover.ts). Without it a standby is refused.
   */
  promote?: boolean;
  hooks?: ProposerHooks;
}

export class TermRun {
  core: Proposer | undefined;
  private node: ProposerNode | undefined;
  private wal: TermWal | undefined;
  source: PgWalSource | undefined;
  /** fenced and refused end the term: the service reports those, not a live term */
  state: Exclude<ProposerState, 'fenced' | 'refused'> = 'connecting';
  /** what the term waits for while promoting (for the status endpoint) */
  stateDetail: string | undefined;
  /** set while PostgreSQL is a standby to be promoted in this term */
  private admin: PgAdmin | undefined;
  private readonly links: MemberLinks;
  private finished = false;
  private resolveOutcome!: (o: TermOutcome) => void;
  readonly outcome: Promise<TermOutcome>;

  constructor(private readonly deps: TermRunDeps) {
    this.links = new MemberLinks(deps.targets, deps.log, () => this.finished);
    this.outcome = new Promise((resolve) => (this.resolveOutcome = resolve));
  }

  /** The safekeepers of the term and their last errors (for the status endpoint). */
  get members(): readonly Member[] {
    return this.links.members;
  }

  /** Runs the term until it ends; never throws (failures become an `ended` outcome). */
  async run(): Promise<TermOutcome> {
    try {
      await this.start();
    } catch (err) {
      this.finish({ kind: 'ended', reason: (err as Error).message });
    }
    const outcome = await this.outcome;
    this.dispose();
    return outcome;
  }

  private async start(): Promise<void> {
    const { log } = this.deps;
    let source: PgWalSource;
    try {
      source = await PgWalSource.connect(this.deps.pg, log);
    } catch (err) {
      throw new Error(`cannot connect to PostgreSQL at ${this.deps.pg.host}:${this.deps.pg.port}: ${(err as Error).message}`);
    }
    this.source = source;
    if (this.finished) return;
    if (await this.isStandby()) {
      if (!this.deps.promote) {
        return this.finish({
          kind: 'refused',
          reason:
            `PostgreSQL at ${this.deps.pg.host}:${this.deps.pg.port} is a standby (pg_is_in_recovery() is true): its WAL is not a primary's; ` +
            `to fail over to it, start the proposer with --promote`,
        });
      }
      log.info({ postgres: `${this.deps.pg.host}:${this.deps.pg.port}` }, 'failover: PostgreSQL is a standby; it is promoted once this term has committed the quorum\'s WAL and it has replayed it');
    } else {
      await source.ensureSlot();
    }
    if (this.finished) return;
    const id = source.identity;
    if (this.deps.hooks?.unsafeAckBeforeQuorum) log.error('TEST MODE: acknowledging commits on PostgreSQL\'s flush, before any quorum has them');
    log.info({ system_id: id.systemId.toString(), pg_timeline: id.pgTimeline, flush_lsn: formatLsn(id.flushLsn), pg_version: id.pgVersion }, 'connected to PostgreSQL');
    const core = new Proposer({
      tenantId: this.deps.tenantId,
      timelineId: this.deps.timelineId,
      pgVersion: id.pgVersion,
      systemId: id.systemId,
      walSegSize: DEFAULT_WAL_SEG_SIZE,
      memberCount: this.links.members.length,
      // A new timeline starts at the segment holding PostgreSQL's flush position, so
      // safekeepers hold whole segments and stock readers can start anywhere in them.
      startLsnIfEmpty: segmentStart(id.flushLsn),
      // Under load the next AppendRequest carries the new commit LSN anyway; broadcastCommit()
      // sends heartbeats only to members that would otherwise not learn it soon.
      broadcastCommit: false,
      pgTimeline: id.pgTimelineInfo,
    });
    this.core = core;
    const wal = new TermWal({
      core,
      targets: this.deps.targets,
      log,
      metrics: this.deps.metrics,
      isFinished: () => this.finished,
      streamEnded: (err) => this.finish({ kind: 'ended', reason: err.message }),
      appended: (endLsn) => this.node!.walAppended(endLsn),
      unsafeAckBeforeQuorum: this.deps.hooks?.unsafeAckBeforeQuorum,
    });
    this.wal = wal;
    this.node = new ProposerNode({
      core,
      transport: this.links.transport(),
      wal,
      clock: systemClock,
      events: {
        elected: (e) => {
          this.deps.metrics.elections.inc();
          this.deps.metrics.term.set(Number(e.term));
          void this.onElected(e).catch((err: Error) => this.finish({ kind: 'ended', reason: err.message }));
        },
        commitAdvanced: (commitLsn) => {
          this.source?.sendStatus(commitLsn);
          this.deps.metrics.commitLsn.set(Number(commitLsn));
          wal.trim(commitLsn);
        },
        // A standby to promote that is behind the acceptors' PostgreSQL timeline is still
        // replaying towards it (a rebuilt volume starts on the backup's timeline), not an old
        // primary: a later term finds it caught up.
        fenced: (reason, by) =>
          this.finish(by === 'pg_timeline' && this.admin ? { kind: 'ended', reason: `${reason}; but PostgreSQL is a standby, which follows the newer timeline as it replays: trying again` } : { kind: 'fenced', reason }),
        memberDropped: (i, reason) => this.links.dropped(i, reason),
        walSent: (bytes) => this.deps.metrics.walSent.inc(bytes),
      },
    });
    this.state = 'electing';
    const node = this.node;
    this.links.start({
      connected: (i) => node.connected(i),
      disconnected: (i) => node.disconnected(i),
      received: (i, msg) => {
        if (!this.finished) node.received(i, msg);
      },
    });
    node.start();
  }

  /**
   * Whether PostgreSQL is in recovery. In failover mode the answer is required; otherwise a
   * failed SQL connection only skips the check (a standby's WAL would then be refused by the
   * comparison with the quorum's anyway, unless it matches).
   */
  private async isStandby(): Promise<boolean> {
    let admin: PgAdmin;
    try {
      admin = await PgAdmin.connect(this.deps.pg);
    } catch (err) {
      if (this.deps.promote) throw new Error(`failover: cannot open an SQL connection to PostgreSQL: ${(err as Error).message}`);
      this.deps.log.warn({ err: (err as Error).message }, 'cannot check whether PostgreSQL is a standby (SQL connection failed); going on');
      return false;
    }
    let standby = false;
    try {
      standby = await admin.inRecovery();
    } finally {
      if (standby && this.deps.promote) this.admin = admin;
      else admin.close();
    }
    return standby;
  }

  private async onElected(e: Extract<ProposerEffect, { kind: 'elected' }>): Promise<void> {
    if (this.admin && e.timelineEmpty) {
      // A standby beside an empty timeline is a point-in-time restore (a fork of another
      // tenant) still replaying towards its target: promoting it now would cut the recovery
      // short. It promotes itself at the target; the next term then starts the timeline.
      this.admin.close();
      this.admin = undefined;
      return this.finish({
        kind: 'refused',
        reason: `PostgreSQL at ${this.deps.pg.host}:${this.deps.pg.port} is a standby and timeline ${this.deps.timelineId} holds no WAL: it is not promoted into an empty timeline; a recovering standby promotes itself at its recovery target, then this proposer streams its WAL`,
      });
    }
    if (this.admin) {
      this.state = 'promoting';
      const admin = this.admin;
      const core = this.core!;
      try {
        const result = await failOver({
          admin,
          termStartLsn: e.termStartLsn,
          commitLsn: () => core.commitLsn,
          pgTimeline: () => core.pgTimeline,
          pg: this.deps.pg,
          log: this.deps.log,
          isFinished: () => this.finished,
          setDetail: (d) => (this.stateDetail = d),
          replaceSource: (next) => {
            this.source?.close();
            this.source = next;
          },
        });
        const outcome = result?.kind === 'promoted' ? this.recordPgTimelineSwitch(result.pgTimeline) : result;
        if (outcome) return this.finish(outcome);
      } finally {
        admin.close();
        this.admin = undefined;
        this.stateDetail = undefined;
      }
      if (this.finished) return;
    }
    const refused = await this.wal!.start(this.source!, e);
    if (refused) return this.finish(refused);
    if (this.finished) return;
    this.state = 'streaming';
  }

  /** The promoted PostgreSQL's new timeline goes to the core, and so to the safekeepers, before any of its WAL. */
  private recordPgTimelineSwitch(info: PgTimelineInfo): TermOutcome | undefined {
    try {
      this.node!.dispatch(this.core!.switchPgTimeline(info));
    } catch (err) {
      if (!(err instanceof ProposerError)) throw err;
      return { kind: 'refused', reason: `failover: ${err.message}` };
    }
    this.deps.log.info({ pg_timeline: info.tli, switchpoint: formatLsn(info.startLsn), history_file: info.historyFile }, 'failover: PostgreSQL promoted; timeline switch recorded');
    return undefined;
  }

  private finish(outcome: TermOutcome): void {
    if (this.finished) return;
    this.finished = true;
    this.node?.stop();
    this.resolveOutcome(outcome);
  }

  /** Ends the term from outside (shutdown). */
  stop(reason: string): void {
    this.finish({ kind: 'ended', reason });
  }

  private dispose(): void {
    this.node?.stop();
    this.wal?.wake();
    this.links.closeAll();
    this.source?.close();
    this.admin?.close();
  }
}
