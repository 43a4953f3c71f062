// The WAL sender: serves START_REPLICATION to stock readers (pg_receivewal, hot standbys)
// up to the commit LSN, and to a proposer catching a member up (`(term 'N')`) up to the
// flush LSN for as long as that term is current. A reader on a PostgreSQL timeline that has
// ended (historic, or ended while it streamed) gets WAL up to the switchpoint, then what
// PostgreSQL's walsender sends: CopyDone and, after the client's CopyDone, the one-row
// result (next_tli, next_tli_startpos) followed by CommandComplete.
import { ConnectionError, type CopyHandler, type CopySession } from './copySession.js';
import type { SafekeeperContext } from './context.js';
import type { Timeline } from './timeline.js';
import type { ReplicationCommand } from '../protocol/replicationCommands.js';
import { encodeCopyBothResponse, encodeCopyData, encodeCopyDone, encodeDataRow, encodeRowDescription, PgType, SqlState } from '../protocol/pgServerCodec.js';
import { currentPgTimeline, formatPgTimelineHistory, pgTimelineEnd } from '../consensus/pgTimeline.js';
import { decodeReceiverMessage, encodePrimaryKeepalive, encodeXLogData, pgNowMicros } from '../protocol/replicationMessages.js';
import { ProtocolError } from '../protocol/errors.js';
import { formatLsn, walFileName, XLOG_BLCKSZ, type Lsn } from '../common/lsn.js';
import { isStorageError } from '../storage/errors.js';
import type { SlotLease } from './slots.js';
import type { ReaderInfo } from './readerInfo.js';

type StartReplication = Extract<ReplicationCommand, { kind: 'start_replication' }>;

/** Largest XLogData payload, as the real walsender sends. */
const MAX_SEND = 128 * 1024;
const KEEPALIVE_INTERVAL_MS = 1_000;

export class WalSender implements CopyHandler {
  private position: Lsn;
  private stopped = false;
  /** the PostgreSQL timeline streamed (readers only; a term-mode peer reads bytes by LSN) */
  private tli: number | null = null;
  /** CopyDone sent at the end of a historic timeline: nothing more is sent until the client's CopyDone */
  private doneSending = false;
  private wake: (() => void) | undefined;
  readonly info: ReaderInfo;

  constructor(
    private readonly conn: CopySession,
    private readonly timeline: Timeline,
    private readonly ctx: SafekeeperContext,
    private readonly cmd: StartReplication,
    /** the replication slot streamed from, if any: it follows the reader's flush position */
    private readonly slot?: SlotLease,
  ) {
    this.position = cmd.startLsn;
    this.info = { applicationName: conn.applicationName, remote: conn.remote, position: cmd.startLsn, writeLsn: 0n, flushLsn: 0n, applyLsn: 0n, xmin: 0n };
  }

  /** Refuses, as an ERROR the client can read, a start the timeline cannot serve. */
  validate(): void {
    const s = this.timeline.snapshot();
    if (this.cmd.term === null) {
      this.tli = this.cmd.timeline ?? currentPgTimeline(s.pgTimelineHistory).tli;
      const end = pgTimelineEnd(s.pgTimelineHistory, this.tli);
      if (end === undefined) {
        throw new ConnectionError(
          `requested timeline ${this.tli} is not in this server's history`,
          SqlState.invalidParameterValue,
          'ERROR',
          `This server holds PostgreSQL timelines ${formatPgTimelineHistory(s.pgTimelineHistory)} (timeline@start).`,
        );
      }
      // A start before the timeline's own start is fine (readers restart at a segment's start;
      // the bytes are the same by LSN); a start past the end of a historic timeline is not.
      if (end !== null && this.cmd.startLsn > end.end) {
        throw new ConnectionError(
          `requested starting point ${formatLsn(this.cmd.startLsn)} on timeline ${this.tli} is not in this server's history`,
          SqlState.invalidParameterValue,
          'ERROR',
          `This server's history forked from timeline ${this.tli} at ${formatLsn(end.end)}.`,
        );
      }
    }
    if (s.timelineStartLsn === 0n) {
      throw new ConnectionError(`timeline ${this.timeline.timelineId} holds no WAL yet: no proposer has written to it`, '58P01', 'ERROR');
    }
    if (this.cmd.startLsn < s.timelineStartLsn) {
      throw new ConnectionError(
        `requested WAL at ${formatLsn(this.cmd.startLsn)} is before the start of this timeline; the first LSN available is ${formatLsn(s.timelineStartLsn)}`,
        '58P01',
        'ERROR',
      );
    }
    const limit = this.limit();
    if (limit !== undefined && this.cmd.startLsn > limit && this.cmd.startLsn - limit >= BigInt(s.walSegSize)) {
      throw new ConnectionError(`requested starting point ${formatLsn(this.cmd.startLsn)} is ahead of the WAL flush position of this server ${formatLsn(limit)}`, SqlState.invalidParameterValue, 'ERROR');
    }
  }

  /** The start is exactly the end of a historic timeline: PostgreSQL answers with the result alone, no COPY. */
  endsAtOnce(): boolean {
    const end = this.timelineEnd();
    return end !== null && this.cmd.startLsn === end.end;
  }

  /** Answers START_REPLICATION without streaming (endsAtOnce): next timeline and where it starts. */
  sendEndOfTimelineOnly(): void {
    this.conn.endCopy(['START_STREAMING', 'START_REPLICATION'], this.endOfTimelineResult());
  }

  /** The requested timeline's end if it has ended (readers only), else null. */
  private timelineEnd(): { end: Lsn; nextTli: number } | null {
    if (this.tli === null) return null;
    return pgTimelineEnd(this.timeline.snapshot().pgTimelineHistory, this.tli) ?? null;
  }

  private endOfTimelineResult(): Buffer[] {
    const end = this.timelineEnd();
    if (!end) return [];
    // int8 next_tli, text next_tli_startpos: as PostgreSQL's walsender (StartReplication)
    return [
      encodeRowDescription([
        { name: 'next_tli', typeOid: PgType.int8, typeLen: 8 },
        { name: 'next_tli_startpos', typeOid: PgType.text, typeLen: -1 },
      ]),
      encodeDataRow([String(end.nextTli), formatLsn(end.end)]),
    ];
  }

  start(): void {
    this.conn.write(encodeCopyBothResponse());
    this.timeline.readers.add(this.info);
    this.ctx.metrics.readers.inc();
    const onAdvance = () => this.wake?.();
    this.timeline.on('advance', onAdvance);
    void this.loop()
      .catch((err) => this.conn.fail(err))
      .finally(() => this.timeline.off('advance', onAdvance));
  }

  /**
   * How far this reader may be sent: the commit LSN (and no further than the end of its
   * timeline, if that has ended), or in term mode the flush LSN.
   */
  private limit(): Lsn | undefined {
    const s = this.timeline.snapshot();
    if (this.cmd.term === null) {
      const end = this.timelineEnd();
      return end && end.end < s.commitLsn ? end.end : s.commitLsn;
    }
    if (s.term !== this.cmd.term) return undefined;
    return s.flushLsn;
  }

  private async loop(): Promise<void> {
    let lastSend = Date.now();
    let sentData = false;
    while (!this.stopped && !this.conn.isClosed) {
      if (this.timeline.isClosed) {
        // deleted (or the safekeeper is stopping): readers must not idle on a timeline that is gone
        throw new ConnectionError(`timeline ${this.timeline.timelineId} of tenant ${this.timeline.tenantId} is no longer served: it was deleted or the safekeeper is shutting down`, '57P01');
      }
      const limit = this.limit();
      if (limit === undefined) {
        throw new ConnectionError(`term changed: this safekeeper is now in term ${this.timeline.snapshot().term}, the reader asked for term ${this.cmd.term}`, '40001');
      }
      const tlEnd = this.timelineEnd();
      if (tlEnd && this.position >= tlEnd.end) {
        if (this.position > tlEnd.end) {
          throw new ConnectionError(`timeline ${this.tli} ended at ${formatLsn(tlEnd.end)} (timeline ${tlEnd.nextTli} starts there), but WAL up to ${formatLsn(this.position)} was already sent on it`, SqlState.internalError);
        }
        // End of this timeline: CopyDone; the result follows the client's CopyDone.
        this.conn.write(encodeCopyDone());
        this.doneSending = true;
        return;
      }
      if (this.position < limit) {
        const pageEnd = this.position - (this.position % BigInt(XLOG_BLCKSZ)) + BigInt(MAX_SEND);
        const end = limit < pageEnd ? limit : pageEnd;
        let data: Buffer;
        try {
          data = await this.timeline.readWal(this.position, Number(end - this.position));
        } catch (err) {
          if (isStorageError(err, 'wal_removed') && this.position < this.timeline.localStartLsn) {
            // PostgreSQL's words (walsender.c), so clients and people recognise it, and where WAL starts now.
            const segment = walFileName(this.tli ?? this.timeline.snapshot().pgTimeline, this.position / BigInt(this.timeline.snapshot().walSegSize), this.timeline.snapshot().walSegSize);
            throw new ConnectionError(`requested WAL segment ${segment} has already been removed`, '58P01', 'FATAL', `The first LSN available on this safekeeper is ${formatLsn(this.timeline.localStartLsn)}.`);
          }
          if (isStorageError(err)) throw new ConnectionError(err.message, '58P01');
          throw err;
        }
        if (data.length === 0) throw new ConnectionError(`no WAL readable at ${formatLsn(this.position)} although it is below ${formatLsn(limit)}`, SqlState.internalError);
        this.conn.write(encodeCopyData(encodeXLogData(this.position, limit, pgNowMicros(), data)));
        this.position += BigInt(data.length);
        this.info.position = this.position;
        this.ctx.metrics.walSentBytes.inc(data.length);
        lastSend = Date.now();
        sentData = true;
        await this.conn.drained();
        continue;
      }
      // Caught up: say so at once (a catching-up proposer stops reading on it), then idle.
      if (sentData || Date.now() - lastSend >= KEEPALIVE_INTERVAL_MS) {
        sentData = false;
        this.conn.write(encodeCopyData(encodePrimaryKeepalive(limit, pgNowMicros(), false)));
        lastSend = Date.now();
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, KEEPALIVE_INTERVAL_MS);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  onCopyData(data: Buffer): void {
    let msg;
    try {
      msg = decodeReceiverMessage(data);
    } catch (err) {
      if (err instanceof ProtocolError) throw new ConnectionError(`bad message from replication client: ${err.message}`, err.code);
      throw err;
    }
    if (msg.tag === 'status_update') {
      this.info.writeLsn = msg.writeLsn;
      this.info.flushLsn = msg.flushLsn;
      this.info.applyLsn = msg.applyLsn;
      this.slot?.confirmFlush(msg.flushLsn, this.position);
      if (msg.replyRequested && !this.doneSending) this.conn.write(encodeCopyData(encodePrimaryKeepalive(this.limit() ?? this.position, pgNowMicros(), false)));
    } else {
      this.info.xmin = (BigInt(msg.xminEpoch) << 32n) | BigInt(msg.xmin);
    }
  }

  onBatchEnd(): void {}

  onCopyDone(): void {
    this.finish();
    if (!this.doneSending) this.conn.write(encodeCopyDone());
    this.conn.endCopy(['START_STREAMING', 'START_REPLICATION'], this.endOfTimelineResult());
  }

  onClose(): void {
    this.finish();
  }

  private finish(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.wake?.();
    if (this.timeline.readers.delete(this.info)) this.ctx.metrics.readers.dec();
    this.slot?.release();
  }
}
