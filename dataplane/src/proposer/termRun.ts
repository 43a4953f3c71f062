// One term of the proposer, from election to its end: it connects to PostgreSQL and the
// safekeepers, runs the election through the pure core (consensus/proposer.ts), checks that
// PostgreSQL's WAL is the WAL the quorum holds, then streams new WAL and reports the quorum
// commit LSN back to PostgreSQL. Anything that breaks the term (PostgreSQL gone, a higher
// term, a refusal) ends it; the service starts a fresh term, or stops when fenced.
import { Proposer, type ProposerEffect } from '../consensus/proposer.js';
import type { AcceptorMessage } from '../consensus/messages.js';
import { DEFAULT_WAL_SEG_SIZE, XLOG_BLCKSZ, formatLsn, segmentStart, type Lsn } from '../common/lsn.js';
import type { Logger } from '../common/log.js';
import type { ConnInfo } from '../common/conninfo.js';
import type { ProposerMetrics } from '../http/proposerApi.js';
import { PgWalSource } from './pgSource.js';
import { SafekeeperLink, readWalFromPeer, type LinkTarget } from './safekeeperLink.js';
import { WalBuffer } from './walBuffer.js';
import { PeerReader } from './peerReader.js';
import { PgAdmin } from './pgAdmin.js';
import { failOver } from './failover.js';
import { ProposerNode, type MemberTransport } from './proposerNode.js';
import { systemClock } from '../common/clock.js';
import type { TermOutcome } from './termOutcome.js';
import type { ProposerState } from '../api/index.js';

/** WAL kept in memory beyond what every streaming member acknowledged. */
const MAX_BUFFERED_BYTES = 256 * 1024 * 1024;
/** PostgreSQL's WAL just before the term start is compared with the donor's. */
const VERIFY_BYTES = BigInt(XLOG_BLCKSZ);

interface MemberRuntime {
  target: LinkTarget;
  link: SafekeeperLink | undefined;
  error: string | undefined;
  peer: PeerReader | undefined;
}

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
  source: PgWalSource | undefined;
  /** fenced and refused end the term: the service reports those, not a live term */
  state: Exclude<ProposerState, 'fenced' | 'refused'> = 'connecting';
  /** what the term waits for while promoting (for the status endpoint) */
  stateDetail: string | undefined;
  /** set while PostgreSQL is a standby to be promoted in this term */
  private admin: PgAdmin | undefined;
  readonly members: MemberRuntime[];
  private buffer: WalBuffer | undefined;
  private verified = false;
  private verifyFrom: Lsn = 0n;
  private bufferWaiters: (() => void)[] = [];
  private finished = false;
  private resolveOutcome!: (o: TermOutcome) => void;
  readonly outcome: Promise<TermOutcome>;

  constructor(private readonly deps: TermRunDeps) {
    this.members = deps.targets.map((target) => ({ target, link: undefined, error: undefined, peer: undefined }));
    this.outcome = new Promise((resolve) => (this.resolveOutcome = resolve));
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
    this.core = new Proposer({
      tenantId: this.deps.tenantId,
      timelineId: this.deps.timelineId,
      pgVersion: id.pgVersion,
      systemId: id.systemId,
      walSegSize: DEFAULT_WAL_SEG_SIZE,
      memberCount: this.members.length,
      // A new timeline starts at the segment holding PostgreSQL's flush position, so
      // safekeepers hold whole segments and stock readers can start anywhere in them.
      startLsnIfEmpty: segmentStart(id.flushLsn),
      // Under load the next AppendRequest carries the new commit LSN anyway; broadcastCommit()
      // sends heartbeats only to members that would otherwise not learn it soon.
      broadcastCommit: false,
      pgTimeline: id.pgTimelineInfo,
    });
    this.node = new ProposerNode({
      core: this.core,
      transport: this.transport(),
      wal: { read: (i, begin, end) => this.walFor(i, begin, end) },
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
          this.trimBuffer(commitLsn);
        },
        fenced: (reason) => this.finish({ kind: 'fenced', reason }),
        memberDropped: (i, reason) => {
          const m = this.members[i];
          m.error = reason;
          this.deps.log.warn({ safekeeper: m.target.address, err: reason }, 'dropping safekeeper connection; it reconnects');
        },
        walSent: (bytes) => this.deps.metrics.walSent.inc(bytes),
      },
    });
    this.state = 'electing';
    this.members.forEach((_, i) => void this.memberLoop(i));
    this.node.start();
  }

  /** The safekeeper links as the node's transport. */
  private transport(): MemberTransport {
    return {
      send: (i, msg) => {
        const link = this.members[i].link;
        if (link && !link.send(msg)) return link.drain();
      },
      close: (i) => this.members[i].link?.close(),
    };
  }

  /** Keeps one member connected for the life of the term, reconnecting with backoff. */
  private async memberLoop(i: number): Promise<void> {
    const m = this.members[i];
    let backoff = 200;
    while (!this.finished) {
      try {
        const { link, ended } = await SafekeeperLink.open(m.target, (msg) => this.onMemberMessage(i, msg));
        if (this.finished) {
          link.close();
          return;
        }
        m.link = link;
        m.error = undefined;
        backoff = 200;
        this.node!.connected(i);
        await ended;
      } catch (err) {
        m.error = (err as Error).message;
        if (!this.finished) this.deps.log.warn({ safekeeper: m.target.address, err: m.error }, 'safekeeper connection failed');
      }
      m.link?.close();
      m.link = undefined;
      if (this.finished) return;
      this.node!.disconnected(i);
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 5_000);
    }
  }

  private onMemberMessage(i: number, msg: AcceptorMessage): void {
    if (this.finished) return;
    this.node!.received(i, msg);
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
    const { log } = this.deps;
    if (this.admin) {
      this.state = 'promoting';
      const admin = this.admin;
      try {
        const outcome = await failOver({
          admin,
          core: this.core!,
          termStartLsn: e.termStartLsn,
          pg: this.deps.pg,
          log,
          isFinished: () => this.finished,
          setDetail: (d) => (this.stateDetail = d),
          replaceSource: (next) => {
            this.source?.close();
            this.source = next;
          },
          dispatch: (effects) => this.node!.dispatch(effects),
        });
        if (outcome) return this.finish(outcome);
      } finally {
        admin.close();
        this.admin = undefined;
        this.stateDetail = undefined;
      }
      if (this.finished) return;
    }
    const source = this.source!;
    const termStart = e.termStartLsn;
    const pgFlush = await source.currentFlushLsn();
    log.info({ term: e.term.toString(), term_start_lsn: formatLsn(termStart), donor: this.members[e.donor].target.address, pg_flush_lsn: formatLsn(pgFlush) }, 'elected');
    if (termStart > pgFlush) {
      return this.finish({
        kind: 'refused',
        reason:
          `the safekeepers hold WAL up to ${formatLsn(termStart)} but PostgreSQL's WAL ends at ${formatLsn(pgFlush)}: ` +
          `this PostgreSQL is not the primary that wrote the timeline (restored or diverged); refusing to push its WAL`,
      });
    }
    const timelineStart = e.termHistory[0].lsn;
    // Nor before the segment where PostgreSQL's current timeline began: asked for its timeline,
    // PostgreSQL reads that timeline's segment files, and the segments before the switchpoint's
    // exist only under the parent timeline (a standby promoted just past a segment boundary).
    const pgTimelineFirstSegment = segmentStart(source.identity.pgTimelineInfo.startLsn);
    const floor = pgTimelineFirstSegment > timelineStart && pgTimelineFirstSegment <= termStart ? pgTimelineFirstSegment : timelineStart;
    let from = termStart - VERIFY_BYTES > floor ? termStart - VERIFY_BYTES : floor;
    let started: { ended: Promise<void> };
    try {
      started = await this.startPgStream(from);
    } catch (err) {
      if (from === termStart || !/removed/.test((err as Error).message)) throw err;
      // PostgreSQL already recycled the WAL just before the term start: nothing to compare with.
      log.warn({ err: (err as Error).message }, 'cannot compare PostgreSQL WAL with the quorum: WAL before the term start is gone');
      from = termStart;
      started = await this.startPgStream(from);
    }
    started.ended.catch((err: Error) => this.finish({ kind: 'ended', reason: err.message }));
    this.wakeBufferWaiters();
    if (from < termStart) await this.verifyAgainstDonor(e.donor, e.term, from, termStart);
    if (this.finished) return;
    this.verified = true;
    this.state = 'streaming';
    this.wakeBufferWaiters();
    this.advance();
  }

  private async startPgStream(from: Lsn): Promise<{ ended: Promise<void> }> {
    this.buffer = new WalBuffer(from);
    this.verifyFrom = from;
    return this.source!.startStreaming(from, (start, data) => {
      if (this.finished) return;
      this.buffer!.append(start, data);
      this.deps.metrics.walReceived.inc(data.length);
      if (this.deps.hooks?.unsafeAckBeforeQuorum) this.source!.sendStatus(this.buffer!.end);
      this.wakeBufferWaiters();
      if (this.verified) this.advance();
    });
  }

  /** The bytes PostgreSQL has just before the term start must be the donor's bytes there. */
  private async verifyAgainstDonor(donor: number, term: bigint, from: Lsn, to: Lsn): Promise<void> {
    const parts: Buffer[] = [];
    const end = await readWalFromPeer(this.members[donor].target, term, from, to, (_start, data) => {
      parts.push(Buffer.from(data));
    });
    if (end < to) throw new Error(`donor ${this.members[donor].target.address} served WAL only up to ${formatLsn(end)}, not ${formatLsn(to)}`);
    const theirs = Buffer.concat(parts);
    await this.until(() => this.buffer!.end >= to);
    const ours = this.buffer!.read(from, Number(to - from));
    if (!ours.equals(theirs)) {
      let at = 0;
      while (at < ours.length && ours[at] === theirs[at]) at++;
      this.finish({
        kind: 'refused',
        reason:
          `PostgreSQL's WAL differs from the WAL the safekeepers hold at ${formatLsn(from + BigInt(at))} (before the term start ${formatLsn(to)}): ` +
          `this PostgreSQL diverged from the timeline (restored from a backup?); refusing to push its WAL`,
      });
    }
  }

  /** New WAL from PostgreSQL beyond the term start goes to the core, which schedules sends. */
  private advance(): void {
    this.node!.walAppended(this.buffer!.end);
  }

  private wakeBufferWaiters(): void {
    const waiters = this.bufferWaiters;
    this.bufferWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once cond() holds; re-checked whenever WAL arrives or the term's state moves. */
  private until(cond: () => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.finished) return reject(new Error('term ended'));
        if (cond()) return resolve();
        this.bufferWaiters.push(check);
      };
      check();
    });
  }

  private async walFor(i: number, begin: Lsn, end: Lsn): Promise<Buffer> {
    if (begin === end) return Buffer.alloc(0);
    // WAL below the term start is the donor's. While a standby is being promoted there is no
    // stream from PostgreSQL yet, and the promotion waits for exactly this catch-up.
    const beforeStream = this.buffer === undefined && end <= this.core!.termStartLsn;
    if (!beforeStream) await this.until(() => this.buffer !== undefined);
    if (!beforeStream && begin >= this.verifyFrom) {
      // From PostgreSQL's stream, once it was found to match the quorum's WAL.
      await this.until(() => this.verified && this.buffer!.end >= end);
      if (begin >= this.buffer!.start) return this.buffer!.read(begin, Number(end - begin));
    }
    const m = this.members[i];
    m.peer ??= new PeerReader(() => this.catchUpPeer(i), this.core!.term);
    return m.peer.read(begin, end);
  }

  /** Where member i catches up from: the donor (it had everything up to the term start), else the most advanced member. */
  private catchUpPeer(i: number): LinkTarget | undefined {
    const st = this.core!.status();
    if (st.donor !== null && st.donor !== i && st.members[st.donor].state === 'streaming') return this.members[st.donor].target;
    let best: number | undefined;
    for (const ms of st.members) {
      if (ms.member === i || ms.state !== 'streaming') continue;
      if (best === undefined || ms.flushLsn > st.members[best].flushLsn) best = ms.member;
    }
    return best === undefined ? undefined : this.members[best].target;
  }

  private trimBuffer(commitLsn: Lsn): void {
    const buffer = this.buffer;
    if (!buffer || !this.verified) return;
    const st = this.core!.status();
    let floor = commitLsn;
    for (const ms of st.members) if (ms.state === 'streaming' && ms.flushLsn < floor) floor = ms.flushLsn;
    const cap = buffer.end - BigInt(MAX_BUFFERED_BYTES);
    buffer.trimTo(floor > cap ? floor : cap);
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
    this.wakeBufferWaiters();
    for (const m of this.members) m.link?.close();
    this.source?.close();
    this.admin?.close();
  }
}
