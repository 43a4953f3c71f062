// The WAL receiver: a proposer's START_WAL_PUSH stream. Each CopyData is one consensus
// message for the timeline's acceptor; all messages that arrived together are applied and
// then made durable by one fdatasync (group commit) before their replies go out.
import { ConnectionError, type CopyHandler, type CopySession } from './copySession.js';
import type { SafekeeperContext } from './context.js';
import type { Timeline } from './timeline.js';
import { AcceptorError } from '../consensus/errors.js';
import { decodeProposerMessage, encodeAcceptorMessage } from '../protocol/consensusCodec.js';
import { encodeCopyBothResponse, encodeCopyData, encodeCopyDone, ProtocolError, SqlState } from '../protocol/pgServerCodec.js';
import { isStorageError } from '../storage/errors.js';

const MISMATCH_CODES = new Set(['tenant_mismatch', 'timeline_mismatch', 'wal_seg_size_mismatch', 'pg_version_mismatch', 'system_id_mismatch', 'generation_mismatch', 'pg_timeline_regressed', 'pg_timeline_mismatch', 'invalid_history_file']);

export class WalReceiver implements CopyHandler {
  private readonly connId: number;
  private detached = false;

  constructor(
    private readonly conn: CopySession,
    private readonly timeline: Timeline,
    private readonly ctx: SafekeeperContext,
  ) {
    conn.write(encodeCopyBothResponse());
    this.connId = timeline.attachProposer(
      (msg) => conn.write(encodeCopyData(encodeAcceptorMessage(msg))),
      (err) => conn.fail(new ConnectionError(`timeline ${timeline.timelineId}: ${err.message}`, isStorageError(err, 'disk_full') ? '53100' : SqlState.internalError)),
    );
    ctx.metrics.proposers.inc();
    ctx.log.info({ conn: conn.remote, tenant_id: timeline.tenantId, timeline_id: timeline.timelineId }, 'proposer connected');
  }

  async onCopyData(data: Buffer): Promise<void> {
    let msg;
    try {
      msg = decodeProposerMessage(data);
    } catch (err) {
      if (err instanceof ProtocolError) throw new ConnectionError(`malformed message from proposer: ${err.message}`, err.code);
      throw err;
    }
    try {
      await this.timeline.handle(this.connId, msg);
    } catch (err) {
      if (err instanceof AcceptorError) {
        throw new ConnectionError(`${err.code}: ${err.message}`, MISMATCH_CODES.has(err.code) ? SqlState.invalidParameterValue : SqlState.protocolViolation);
      }
      if (isStorageError(err)) throw new ConnectionError(`${err.code}: ${err.message}`, err.code === 'disk_full' ? '53100' : SqlState.internalError);
      throw err;
    }
  }

  async onBatchEnd(): Promise<void> {
    try {
      await this.timeline.endOfBatch();
    } catch (err) {
      if (isStorageError(err)) throw new ConnectionError(`${err.code}: ${err.message}`, err.code === 'disk_full' ? '53100' : SqlState.internalError);
      throw err;
    }
  }

  async onCopyDone(): Promise<void> {
    await this.detach();
    this.conn.write(encodeCopyDone());
    this.conn.endCopy(['START_WAL_PUSH']);
  }

  onClose(): void {
    void this.detach();
  }

  private async detach(): Promise<void> {
    if (this.detached) return;
    this.detached = true;
    this.ctx.metrics.proposers.dec();
    this.ctx.log.info({ conn: this.conn.remote, tenant_id: this.timeline.tenantId, timeline_id: this.timeline.timelineId }, 'proposer disconnected');
    await this.timeline.detachProposer(this.connId).catch(() => undefined);
  }
}
