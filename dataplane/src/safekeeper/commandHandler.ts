// The commands of a replication connection on the safekeeper's Postgres port (Neon's
// handler.rs): IDENTIFY_SYSTEM, SHOW, TIMELINE_HISTORY, the slot commands, TIMELINE_STATUS,
// and START_WAL_PUSH / START_REPLICATION, which hand the connection to the WAL receiver or
// sender. It gets a parsed command and a session; sockets, TLS and auth are connection.ts's.
import {
  SqlState,
  encodeCommandComplete,
  encodeDataRow,
  encodeEmptyQueryResponse,
  encodeNoticeResponse,
  encodeReadyForQuery,
  encodeRowDescription,
  PgType,
} from '../protocol/pgServerCodec.js';
import type { ReplicationCommand } from '../protocol/replicationCommands.js';
import { formatLsn, type Lsn } from '../common/lsn.js';
import { currentPgTimeline, historyFileFor, historyFileName, type PgTimelineHistory } from '../consensus/pgTimeline.js';
import type { SafekeeperContext } from './context.js';
import type { Timeline } from './timeline.js';
import { WalReceiver } from './receiveWal.js';
import { WalSender } from './sendWal.js';
import { ConnectionError, type CopyHandler, type CopySession } from './copySession.js';
import { SlotSqlState, truncateSlotIdentifier, type SlotLease } from './slots.js';

/** The version a safekeeper reports, at startup and to SHOW: the PostgreSQL it stands in for. */
export const SERVER_VERSION = '15.0 (walkeeper)';

/** What the command handler needs of the connection it answers on. */
export interface CommandSession extends CopySession {
  /** from the startup options; undefined when the client named none */
  readonly tenantId: string | undefined;
  readonly timelineId: string | undefined;
  /** Hands the connection's CopyData stream to a sub-protocol until it calls endCopy. */
  startCopy(handler: CopyHandler): void;
}

export class CommandHandler {
  constructor(
    private readonly session: CommandSession,
    private readonly ctx: SafekeeperContext,
  ) {}

  /**
   * Answers one command. A ConnectionError with severity ERROR (or a SlotError) refuses this
   * command only; the caller reports it and the connection stays usable.
   */
  async run(cmd: ReplicationCommand): Promise<void> {
    switch (cmd.kind) {
      case 'empty':
        this.session.write(Buffer.concat([encodeEmptyQueryResponse(), encodeReadyForQuery('I')]));
        return;
      case 'identify_system': {
        const tl = await this.requireTimeline();
        const s = tl.snapshot();
        const xlogpos = this.isPeerRecovery() ? s.flushLsn : s.commitLsn;
        this.rows(
          [{ name: 'systemid', type: PgType.text }, { name: 'timeline', type: PgType.int4 }, { name: 'xlogpos', type: PgType.text }, { name: 'dbname', type: PgType.text }],
          [[s.systemId.toString(), String(currentPgTimeline(s.pgTimelineHistory).tli), formatLsn(xlogpos), null]],
          'IDENTIFY_SYSTEM',
        );
        return;
      }
      case 'show':
        return this.show(cmd.name);
      case 'set':
        this.session.write(Buffer.concat([encodeCommandComplete('SET'), encodeReadyForQuery('I')]));
        return;
      case 'timeline_history': {
        // The file PostgreSQL wrote at the promotion that started the timeline, byte for byte.
        const tl = await this.requireTimeline();
        const s = tl.snapshot();
        const name = historyFileName(cmd.timeline);
        const content = historyFileFor(s.pgTimelineHistory, s.pgHistoryFile, cmd.timeline);
        if (content === null || content === undefined) {
          const known = s.pgTimelineHistory.map((e) => e.tli).join(', ');
          throw new ConnectionError(
            `could not open file "pg_wal/${name}": No such file or directory (` +
              (content === null ? `timeline ${cmd.timeline} is the first timeline and has no history file` : `timeline ${cmd.timeline} is not in this server's history; it holds timelines ${known}`) +
              ')',
            '58P01',
            'ERROR',
          );
        }
        this.rows([{ name: 'filename', type: PgType.text }, { name: 'content', type: PgType.text }], [[name, content]], 'TIMELINE_HISTORY');
        return;
      }
      case 'read_replication_slot': {
        // As PostgreSQL 15: a row of NULLs for a slot that does not exist; restart_lsn and
        // restart_tli NULL for one without a restart position (new, or invalidated).
        const tl = await this.requireTimeline();
        const name = this.slotName(cmd.slot);
        const slot = tl.slots.get(name);
        const s = tl.snapshot();
        const row: (string | null)[] = !slot
          ? [null, null, null]
          : slot.restartLsn === 0n || slot.invalidation
            ? ['physical', null, null]
            : ['physical', formatLsn(slot.restartLsn), String(tliOf(s.pgTimelineHistory, slot.restartLsn))];
        this.rows([{ name: 'slot_type', type: PgType.text }, { name: 'restart_lsn', type: PgType.text }, { name: 'restart_tli', type: PgType.int8 }], [row], 'READ_REPLICATION_SLOT');
        return;
      }
      case 'create_replication_slot': {
        const tl = await this.requireTimeline();
        const name = this.slotName(cmd.slot);
        if (cmd.slotType === 'logical') {
          throw new ConnectionError('logical replication slots are not supported by a safekeeper: it serves physical replication only (CREATE_REPLICATION_SLOT name PHYSICAL)', SqlState.featureNotSupported, 'ERROR');
        }
        if (cmd.temporary) {
          throw new ConnectionError(
            'temporary replication slots are not supported by a safekeeper: create a permanent one (without TEMPORARY) and drop it when done, or stream without a slot',
            SqlState.featureNotSupported,
            'ERROR',
          );
        }
        let reserveWal = false;
        for (const [option, value] of Object.entries(cmd.options)) {
          if (option !== 'reserve_wal') throw new ConnectionError(`unrecognized option: ${option}`, SqlState.syntaxError, 'ERROR');
          const v = value.toLowerCase();
          if (['', 'true', 'on', '1'].includes(v)) reserveWal = true;
          else if (['false', 'off', '0'].includes(v)) reserveWal = false;
          else throw new ConnectionError(`reserve_wal requires a Boolean value`, SqlState.syntaxError, 'ERROR');
        }
        const s = tl.snapshot();
        const slot = await tl.slots.create(name, { reserveWal, commitLsn: s.commitLsn, timelineStartLsn: s.timelineStartLsn, walSegSize: s.walSegSize });
        // PostgreSQL's answer for a physical slot: consistent_point 0/0, no snapshot, no plugin
        this.rows(
          [{ name: 'slot_name', type: PgType.text }, { name: 'consistent_point', type: PgType.text }, { name: 'snapshot_name', type: PgType.text }, { name: 'output_plugin', type: PgType.text }],
          [[slot.name, '0/0', null, null]],
          'CREATE_REPLICATION_SLOT',
        );
        return;
      }
      case 'drop_replication_slot': {
        const tl = await this.requireTimeline();
        const name = this.slotName(cmd.slot);
        await tl.slots.drop(name, { wait: cmd.wait, cancelled: () => this.session.isClosed || tl.isClosed });
        this.session.write(Buffer.concat([encodeCommandComplete('DROP_REPLICATION_SLOT'), encodeReadyForQuery('I')]));
        return;
      }
      case 'timeline_status': {
        const { tenantId, timelineId } = this.session;
        const tl = tenantId && timelineId ? this.ctx.registry.getTimeline(tenantId, timelineId) : undefined;
        const s = tl?.snapshot();
        this.rows([{ name: 'flush_lsn', type: PgType.text }, { name: 'commit_lsn', type: PgType.text }], s ? [[formatLsn(s.flushLsn), formatLsn(s.commitLsn)]] : [], 'TIMELINE_STATUS');
        return;
      }
      case 'start_wal_push': {
        const tl = await this.requireTimeline();
        this.session.startCopy(new WalReceiver(this.session, tl, this.ctx));
        return;
      }
      case 'start_replication': {
        const tl = await this.requireTimeline();
        // As PostgreSQL: the slot is acquired first (it must exist, be valid and be free),
        // then the start is checked; the slot is let go when the stream ends.
        let lease: SlotLease | undefined;
        if (cmd.slot !== null && cmd.term === null) {
          lease = await tl.slots.acquire(this.slotName(cmd.slot), {
            remote: this.session.remote,
            applicationName: this.session.applicationName,
            kill: (err) => this.session.fail(ConnectionError.fromSlot(err, 'FATAL')),
          });
        }
        try {
          const sender = new WalSender(this.session, tl, this.ctx, cmd, lease);
          sender.validate();
          if (sender.endsAtOnce()) {
            lease?.release();
            return sender.sendEndOfTimelineOnly();
          }
          this.session.startCopy(sender);
          sender.start();
        } catch (err) {
          lease?.release();
          throw err;
        }
        return;
      }
      case 'unsupported':
        throw new ConnectionError(cmd.message, cmd.sqlState, 'ERROR');
      case 'unknown':
        throw new ConnectionError(`syntax error: walkeeper does not understand "${cmd.text.slice(0, 200)}"`, SqlState.syntaxError, 'ERROR');
    }
  }

  /**
   * The timeline named in the startup options; readers and proposers need one. It is never
   * created implicitly: an empty timeline appearing where one was lost (a deleted directory, a
   * wiped volume) must not vote as if it had never seen any WAL. Timelines are created through
   * the HTTP API.
   */
  private async requireTimeline(): Promise<Timeline> {
    const { tenantId, timelineId } = this.session;
    if (!tenantId || !timelineId) {
      throw new ConnectionError('tenant_id and timeline_id are required: connect with options=\'-c tenant_id=<32 hex> -c timeline_id=<32 hex>\'', SqlState.invalidParameterValue, 'ERROR');
    }
    const tl = this.ctx.registry.getTimeline(tenantId, timelineId);
    if (tl) return tl;
    const broken = this.ctx.registry.brokenReason(tenantId, timelineId);
    if (broken) throw new ConnectionError(`timeline ${timelineId} of tenant ${tenantId} is unavailable on safekeeper ${this.ctx.nodeId}: ${broken}`, SqlState.internalError, 'ERROR');
    throw new ConnectionError(
      `timeline ${timelineId} of tenant ${tenantId} does not exist on safekeeper ${this.ctx.nodeId}; create it with POST /v1/tenants/${tenantId}/timelines`,
      SqlState.undefinedObject,
      'ERROR',
    );
  }

  /**
   * A slot name as PostgreSQL's lexer leaves it: 64 bytes or more are cut to 63, with the
   * NOTICE PostgreSQL sends before the command's answer.
   */
  private slotName(raw: string): string {
    const { name, notice } = truncateSlotIdentifier(raw);
    if (notice) this.session.write(encodeNoticeResponse({ severity: 'NOTICE', code: SlotSqlState.nameTooLong, message: notice }));
    return name;
  }

  private rows(fields: { name: string; type: number }[], rows: (string | null)[][], tag: string): void {
    const out = [encodeRowDescription(fields.map((f) => ({ name: f.name, typeOid: f.type, typeLen: f.type === PgType.int4 ? 4 : f.type === PgType.int8 ? 8 : -1 })))];
    for (const r of rows) out.push(encodeDataRow(r));
    out.push(encodeCommandComplete(tag), encodeReadyForQuery('I'));
    this.session.write(Buffer.concat(out));
  }

  /** A proposer recovering WAL from a peer reads up to the flush LSN, not only the committed part. */
  private isPeerRecovery(): boolean {
    return this.session.applicationName.startsWith('walkeeper_proposer');
  }

  private show(name: string): void {
    const values: Record<string, string> = {
      wal_segment_size: '16MB',
      data_directory_mode: '0700',
      server_version: SERVER_VERSION,
      server_version_num: '150000',
      integer_datetimes: 'on',
      wal_block_size: '8192',
      block_size: '8192',
      max_connections: '1000',
      server_encoding: 'UTF8',
      client_encoding: 'UTF8',
      timezone: 'Etc/UTC',
    };
    const key = name.toLowerCase();
    const { tenantId, timelineId } = this.session;
    if (key === 'wal_segment_size' && tenantId && timelineId) {
      const tl = this.ctx.registry.getTimeline(tenantId, timelineId);
      if (tl) values.wal_segment_size = `${tl.snapshot().walSegSize / (1024 * 1024)}MB`;
    }
    if (!(key in values)) throw new ConnectionError(`unrecognized configuration parameter "${name}"`, SqlState.undefinedObject, 'ERROR');
    this.rows([{ name: key, type: PgType.text }], [[values[key]]], 'SHOW');
  }
}

/** The PostgreSQL timeline that holds `lsn`: the last one starting at or before it. */
function tliOf(history: PgTimelineHistory, lsn: Lsn): number {
  let tli = history[0]?.tli ?? 1;
  for (const e of history) if (e.startLsn <= lsn) tli = e.tli;
  return tli;
}
