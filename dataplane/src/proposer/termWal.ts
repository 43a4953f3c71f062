// The WAL of one proposer term: PostgreSQL's replication stream read into the WAL buffer from
// just before the term start, checked against the donor's bytes there, and the node's WAL
// port: AppendRequest bytes come from the buffer, or from a peer safekeeper below it.
import type { Proposer, ProposerEffect } from '../consensus/proposer.js';
import { XLOG_BLCKSZ, formatLsn, segmentStart, type Lsn } from '../common/lsn.js';
import type { Logger } from '../common/log.js';
import type { ProposerMetrics } from '../http/proposerApi.js';
import type { PgWalSource } from './pgSource.js';
import { readWalFromPeer, type LinkTarget } from './safekeeperLink.js';
import { WalBuffer } from './walBuffer.js';
import { PeerReader } from './peerReader.js';
import type { WalReader } from './proposerNode.js';
import type { TermOutcome } from './termOutcome.js';

/** WAL kept in memory beyond what every streaming member acknowledged. */
const MAX_BUFFERED_BYTES = 256 * 1024 * 1024;
/** PostgreSQL's WAL just before the term start is compared with the donor's. */
const VERIFY_BYTES = BigInt(XLOG_BLCKSZ);

export interface TermWalDeps {
  core: Proposer;
  targets: readonly LinkTarget[];
  log: Logger;
  metrics: ProposerMetrics;
  isFinished: () => boolean;
  /** PostgreSQL's stream failed or ended: the term is over */
  streamEnded: (err: Error) => void;
  /** WAL beyond what the node was told about has arrived (once verified) */
  appended: (endLsn: Lsn) => void;
  /** test hook (ProposerHooks): report PostgreSQL's own flush as ours */
  unsafeAckBeforeQuorum?: boolean;
}

export class TermWal implements WalReader {
  private buffer: WalBuffer | undefined;
  private verified = false;
  private verifyFrom: Lsn = 0n;
  private waiters: (() => void)[] = [];
  private readonly peers: (PeerReader | undefined)[];

  constructor(private readonly deps: TermWalDeps) {
    this.peers = deps.targets.map(() => undefined);
  }

  /**
   * Once elected: starts PostgreSQL's stream at (shortly before) the term start and checks the
   * overlap against the donor. Resolves a refusal if PostgreSQL's WAL is not the quorum's,
   * undefined once new WAL flows to the node.
   */
  async start(source: PgWalSource, e: Extract<ProposerEffect, { kind: 'elected' }>): Promise<TermOutcome | undefined> {
    const { log } = this.deps;
    const termStart = e.termStartLsn;
    const pgFlush = await source.currentFlushLsn();
    log.info({ term: e.term.toString(), term_start_lsn: formatLsn(termStart), donor: this.deps.targets[e.donor].address, pg_flush_lsn: formatLsn(pgFlush) }, 'elected');
    if (termStart > pgFlush) {
      return {
        kind: 'refused',
        reason:
          `the safekeepers hold WAL up to ${formatLsn(termStart)} but PostgreSQL's WAL ends at ${formatLsn(pgFlush)}: ` +
          `this PostgreSQL is not the primary that wrote the timeline (restored or diverged); refusing to push its WAL`,
      };
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
      started = await this.startStream(source, from);
    } catch (err) {
      if (from === termStart || !/removed/.test((err as Error).message)) throw err;
      // PostgreSQL already recycled the WAL just before the term start: nothing to compare with.
      log.warn({ err: (err as Error).message }, 'cannot compare PostgreSQL WAL with the quorum: WAL before the term start is gone');
      from = termStart;
      started = await this.startStream(source, from);
    }
    started.ended.catch((err: Error) => this.deps.streamEnded(err));
    this.wake();
    if (from < termStart) {
      const refused = await this.verifyAgainstDonor(e.donor, e.term, from, termStart);
      if (refused) return refused;
    }
    if (this.deps.isFinished()) return undefined;
    this.verified = true;
    this.wake();
    this.deps.appended(this.buffer!.end);
    return undefined;
  }

  private async startStream(source: PgWalSource, from: Lsn): Promise<{ ended: Promise<void> }> {
    this.buffer = new WalBuffer(from);
    this.verifyFrom = from;
    return source.startStreaming(from, (start, data) => {
      if (this.deps.isFinished()) return;
      this.buffer!.append(start, data);
      this.deps.metrics.walReceived.inc(data.length);
      if (this.deps.unsafeAckBeforeQuorum) source.sendStatus(this.buffer!.end);
      this.wake();
      if (this.verified) this.deps.appended(this.buffer!.end);
    });
  }

  /** The bytes PostgreSQL has just before the term start must be the donor's bytes there. */
  private async verifyAgainstDonor(donor: number, term: bigint, from: Lsn, to: Lsn): Promise<TermOutcome | undefined> {
    const target = this.deps.targets[donor];
    const parts: Buffer[] = [];
    const end = await readWalFromPeer(target, term, from, to, (_start, data) => {
      parts.push(Buffer.from(data));
    });
    if (end < to) throw new Error(`donor ${target.address} served WAL only up to ${formatLsn(end)}, not ${formatLsn(to)}`);
    const theirs = Buffer.concat(parts);
    await this.until(() => this.buffer!.end >= to);
    const ours = this.buffer!.read(from, Number(to - from));
    if (ours.equals(theirs)) return undefined;
    let at = 0;
    while (at < ours.length && ours[at] === theirs[at]) at++;
    return {
      kind: 'refused',
      reason:
        `PostgreSQL's WAL differs from the WAL the safekeepers hold at ${formatLsn(from + BigInt(at))} (before the term start ${formatLsn(to)}): ` +
        `this PostgreSQL diverged from the timeline (restored from a backup?); refusing to push its WAL`,
    };
  }

  /** The node's WAL port: bytes [begin, end) of an AppendRequest to member i. */
  async read(i: number, begin: Lsn, end: Lsn): Promise<Buffer> {
    if (begin === end) return Buffer.alloc(0);
    const core = this.deps.core;
    // WAL below the term start is the donor's. While a standby is being promoted there is no
    // stream from PostgreSQL yet, and the promotion waits for exactly this catch-up.
    const beforeStream = this.buffer === undefined && end <= core.termStartLsn;
    if (!beforeStream) await this.until(() => this.buffer !== undefined);
    if (!beforeStream && begin >= this.verifyFrom) {
      // From PostgreSQL's stream, once it was found to match the quorum's WAL.
      await this.until(() => this.verified && this.buffer!.end >= end);
      if (begin >= this.buffer!.start) return this.buffer!.read(begin, Number(end - begin));
    }
    this.peers[i] ??= new PeerReader(() => this.catchUpPeer(i), core.term);
    return this.peers[i].read(begin, end);
  }

  /** Where member i catches up from: the donor (it had everything up to the term start), else the most advanced member. */
  private catchUpPeer(i: number): LinkTarget | undefined {
    const st = this.deps.core.status();
    if (st.donor !== null && st.donor !== i && st.members[st.donor].state === 'streaming') return this.deps.targets[st.donor];
    let best: number | undefined;
    for (const ms of st.members) {
      if (ms.member === i || ms.state !== 'streaming') continue;
      if (best === undefined || ms.flushLsn > st.members[best].flushLsn) best = ms.member;
    }
    return best === undefined ? undefined : this.deps.targets[best];
  }

  /** Lets go of WAL every streaming member has, keeping at most MAX_BUFFERED_BYTES beyond it. */
  trim(commitLsn: Lsn): void {
    const buffer = this.buffer;
    if (!buffer || !this.verified) return;
    const st = this.deps.core.status();
    let floor = commitLsn;
    for (const ms of st.members) if (ms.state === 'streaming' && ms.flushLsn < floor) floor = ms.flushLsn;
    const cap = buffer.end - BigInt(MAX_BUFFERED_BYTES);
    buffer.trimTo(floor > cap ? floor : cap);
  }

  /** Re-checks every wait; after the term finished, they reject. */
  wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once cond() holds; re-checked whenever WAL arrives or the term's state moves. */
  private until(cond: () => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.deps.isFinished()) return reject(new Error('term ended'));
        if (cond()) return resolve();
        this.waiters.push(check);
      };
      check();
    });
  }
}
