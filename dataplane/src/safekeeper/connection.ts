// One client connection on the safekeeper's Postgres-protocol port: startup and auth, then
// the commands of a replication connection. START_WAL_PUSH hands the connection to the WAL
// receiver (proposers), START_REPLICATION to the WAL sender (readers).
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import {
  FrontendDecoder,
  ProtocolError,
  SqlState,
  encodeAuthenticationCleartextPassword,
  encodeAuthenticationOk,
  encodeBackendKeyData,
  encodeCommandComplete,
  encodeDataRow,
  encodeEmptyQueryResponse,
  encodeEncryptionRefused,
  encodeErrorResponse,
  encodeNoticeResponse,
  encodeParameterStatus,
  encodeReadyForQuery,
  encodeRowDescription,
  PgType,
  type FrontendMessage,
} from '../protocol/pgServerCodec.js';
import { parseReplicationCommand, type ReplicationCommand } from '../protocol/replicationCommands.js';
import { formatLsn } from '../common/lsn.js';
import { isValidId } from '../common/ids.js';
import { AuthError, authorize, type Claims } from '../auth/jwt.js';
import type { SafekeeperContext } from './context.js';
import type { Timeline } from './timeline.js';
import { WalReceiver } from './receiveWal.js';
import { ConnectionError, type CopyHandler, type CopySession } from './copySession.js';
import { WalSender } from './sendWal.js';
import { randomInt } from 'node:crypto';
import { currentPgTimeline, historyFileFor, historyFileName, type PgTimelineHistory } from '../consensus/pgTimeline.js';
import { SlotError, SlotSqlState, truncateSlotIdentifier, type SlotLease } from './slots.js';
import type { Lsn } from '../common/lsn.js';

const SERVER_VERSION = '15.0 (walkeeper)';
/** How long a client may take from connecting to finishing authentication. */
const STARTUP_TIMEOUT_MS = 10_000;
/** How long a message may stay half-received: a slow-drip client must not hold its buffer. */
const PARTIAL_MESSAGE_TIMEOUT_MS = 10_000;

export class PgConnection implements CopySession {
  private readonly decoder = new FrontendDecoder();
  private pending: FrontendMessage[] = [];
  private processing = false;
  private closed = false;
  private startupDone = false;
  private awaitingPassword = false;
  private params: Record<string, string> = {};
  private claims: Claims | undefined;
  tenantId: string | undefined;
  timelineId: string | undefined;
  applicationName = '';
  private copy: CopyHandler | undefined;
  private readonly startupTimer: NodeJS.Timeout;
  private partialTimer: NodeJS.Timeout | undefined;
  /** the socket messages are read from and written to: the TCP socket, or TLS over it after SSLRequest */
  socket: Socket;
  private tlsActive = false;
  private readonly onSocketData = (chunk: Buffer) => this.onData(chunk);
  private readonly onSocketGone = () => this.close();

  constructor(
    private readonly rawSocket: Socket,
    private readonly ctx: SafekeeperContext,
  ) {
    this.socket = rawSocket;
    rawSocket.setNoDelay(true);
    rawSocket.on('data', this.onSocketData);
    rawSocket.on('error', this.onSocketGone);
    rawSocket.on('close', this.onSocketGone);
    this.startupTimer = setTimeout(() => {
      if (!this.startupDone) this.fail(new ConnectionError(`startup not completed within ${STARTUP_TIMEOUT_MS} ms`, SqlState.protocolViolation));
    }, STARTUP_TIMEOUT_MS);
  }

  get remote(): string {
    return `${this.socket.remoteAddress}:${this.socket.remotePort}`;
  }

  write(buf: Buffer): boolean {
    if (this.closed) return false;
    return this.socket.write(buf);
  }

  /** Resolves once the socket can take more (backpressure for WAL senders). */
  drained(): Promise<void> {
    if (this.closed || !this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.once('drain', done);
      this.socket.once('close', done);
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    let completed: FrontendMessage[];
    try {
      completed = this.decoder.push(chunk);
    } catch (err) {
      this.fail(err);
      return;
    }
    this.pending.push(...completed);
    this.watchPartialMessage(completed.length > 0);
    void this.drain();
  }

  /** Arms a timer while a message is half-received; any completed message restarts it. */
  private watchPartialMessage(progressed: boolean): void {
    if (progressed || this.decoder.bufferedBytes === 0) {
      clearTimeout(this.partialTimer);
      this.partialTimer = undefined;
    }
    if (this.decoder.bufferedBytes > 0 && !this.partialTimer) {
      this.partialTimer = setTimeout(() => {
        this.fail(new ConnectionError(`incomplete message: ${this.decoder.bufferedBytes} bytes of a message arrived and the rest did not within ${PARTIAL_MESSAGE_TIMEOUT_MS} ms`, SqlState.protocolViolation));
      }, PARTIAL_MESSAGE_TIMEOUT_MS);
    }
  }

  /** Handles queued messages one at a time; the messages that arrived together form one batch. */
  private async drain(): Promise<void> {
    if (this.processing) return;
    this.processing = true;
    try {
      while (this.pending.length && !this.closed) {
        const batch = this.pending;
        this.pending = [];
        // Replies to one batch leave in one write: one syscall instead of one per message.
        const socket = this.socket;
        socket.cork();
        try {
          for (let i = 0; i < batch.length; i++) {
            if (this.closed) return;
            const msg = batch[i];
            if (msg.type === 'ssl_request' && this.ctx.tls) {
              // Anything the client sent after the SSLRequest, before the handshake, was not
              // encrypted: refuse it rather than read it as if it were (CVE-2021-23214).
              if (i + 1 < batch.length || this.pending.length || this.decoder.bufferedBytes > 0) {
                throw new ConnectionError('received unencrypted data after SSL request', SqlState.protocolViolation);
              }
              await this.startTls(socket);
              continue;
            }
            await this.handle(msg);
          }
          if (this.copy && !this.closed) await this.copy.onBatchEnd();
        } finally {
          socket.uncork();
        }
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.processing = false;
    }
  }

  /**
   * Answers an SSLRequest with 'S' and continues the connection over TLS: the startup packet
   * and everything after it arrive through the TLS socket.
   */
  private async startTls(raw: Socket): Promise<void> {
    if (this.tlsActive) throw new ConnectionError('received an SSLRequest inside TLS', SqlState.protocolViolation);
    // Nothing more is read as plaintext: the next bytes are the client's TLS handshake.
    raw.off('data', this.onSocketData);
    raw.pause();
    await new Promise<void>((resolve, reject) => {
      raw.write(Buffer.from('S'), (err) => (err ? reject(err) : resolve()));
      raw.uncork();
    });
    if (this.closed) return;
    const secure = new TLSSocket(raw, { isServer: true, secureContext: this.ctx.tls });
    secure.on('data', this.onSocketData);
    secure.on('error', (err: Error) => {
      if (!this.startupDone) this.ctx.log.warn({ conn: this.remote, error: err.message }, 'TLS handshake failed');
      this.close();
    });
    secure.on('close', this.onSocketGone);
    this.socket = secure;
    this.tlsActive = true;
  }

  private async handle(msg: FrontendMessage): Promise<void> {
    switch (msg.type) {
      case 'ssl_request':
      case 'gssenc_request':
        this.write(encodeEncryptionRefused());
        return;
      case 'cancel_request':
        this.close();
        return;
      case 'startup':
        return this.onStartup(msg.params);
      case 'password':
        return this.onPassword(msg.password);
      case 'terminate':
        this.close();
        return;
      case 'query':
        return this.onQuery(msg.text);
      case 'copy_data':
        if (!this.copy) throw new ConnectionError('unexpected CopyData outside of COPY', SqlState.protocolViolation);
        return this.copy.onCopyData(msg.data);
      case 'copy_done':
        if (!this.copy) throw new ConnectionError('unexpected CopyDone outside of COPY', SqlState.protocolViolation);
        return this.copy.onCopyDone();
      case 'copy_fail':
        throw new ConnectionError(`client aborted COPY: ${msg.message}`, '57014', 'ERROR');
    }
  }

  private async onStartup(params: Record<string, string>): Promise<void> {
    // With TLS configured it is required: a plaintext startup must not bypass it.
    if (this.ctx.tls && !this.tlsActive) {
      throw new ConnectionError('this safekeeper requires TLS: connect with sslmode=require', SqlState.invalidAuthorization);
    }
    this.params = params;
    this.applicationName = params.application_name ?? '';
    const opts = parseStartupOptions(params.options ?? '');
    for (const [key, value] of Object.entries(opts)) {
      if ((key === 'tenant_id' || key === 'timeline_id') && !isValidId(value)) {
        throw new ConnectionError(`invalid ${key} "${value}" in startup options: expected 32 lowercase hex characters`, SqlState.invalidParameterValue);
      }
    }
    this.tenantId = opts.tenant_id;
    this.timelineId = opts.timeline_id;
    if (this.ctx.auth) {
      this.awaitingPassword = true;
      this.write(encodeAuthenticationCleartextPassword());
      return;
    }
    this.finishStartup();
  }

  private async onPassword(password: string): Promise<void> {
    if (!this.awaitingPassword) throw new ConnectionError('unexpected password message', SqlState.protocolViolation);
    this.awaitingPassword = false;
    try {
      this.claims = await this.ctx.auth!.verify(password);
      authorize(this.claims, this.tenantId);
    } catch (err) {
      if (err instanceof AuthError) throw new ConnectionError(err.message, SqlState.invalidPassword);
      throw err;
    }
    this.finishStartup();
  }

  private finishStartup(): void {
    if (this.tenantId !== undefined && !this.ctx.registry.hasTenant(this.tenantId)) {
      throw new ConnectionError(`tenant ${this.tenantId} does not exist on safekeeper ${this.ctx.nodeId}`, SqlState.undefinedObject);
    }
    clearTimeout(this.startupTimer);
    this.startupDone = true;
    const out = [encodeAuthenticationOk()];
    const status: Record<string, string> = {
      application_name: this.applicationName,
      client_encoding: 'UTF8',
      DateStyle: 'ISO, MDY',
      default_transaction_read_only: 'off',
      in_hot_standby: 'off',
      integer_datetimes: 'on',
      IntervalStyle: 'postgres',
      is_superuser: 'on',
      server_encoding: 'UTF8',
      server_version: SERVER_VERSION,
      session_authorization: this.params.user ?? 'walkeeper',
      standard_conforming_strings: 'on',
      TimeZone: 'Etc/UTC',
    };
    for (const [k, v] of Object.entries(status)) out.push(encodeParameterStatus(k, v));
    out.push(encodeBackendKeyData(process.pid, randomInt(0x7fffffff)), encodeReadyForQuery('I'));
    this.write(Buffer.concat(out));
  }

  private async onQuery(text: string): Promise<void> {
    if (!this.startupDone) throw new ConnectionError('query before startup completed', SqlState.protocolViolation);
    let cmd: ReplicationCommand;
    try {
      cmd = parseReplicationCommand(text);
    } catch (err) {
      if (err instanceof ProtocolError) return this.queryError(err.message, err.code);
      throw err;
    }
    this.ctx.log.debug({ conn: this.remote, cmd: cmd.kind }, 'command');
    try {
      await this.runCommand(cmd);
    } catch (err) {
      if (err instanceof ConnectionError && err.severity === 'ERROR') return this.queryError(err.message, err.sqlState, err.detail, err.hint);
      if (err instanceof SlotError) return this.queryError(err.message, err.sqlState, err.detail, err.hint);
      throw err;
    }
  }

  /** An ERROR for one query: the connection stays usable. */
  private queryError(message: string, code: string, detail?: string, hint?: string): void {
    this.write(Buffer.concat([encodeErrorResponse({ severity: 'ERROR', code, message, detail, hint }), encodeReadyForQuery('I')]));
  }

  /**
   * A slot name as PostgreSQL's lexer leaves it: 64 bytes or more are cut to 63, with the
   * NOTICE PostgreSQL sends before the command's answer.
   */
  private slotName(raw: string): string {
    const { name, notice } = truncateSlotIdentifier(raw);
    if (notice) this.write(encodeNoticeResponse({ severity: 'NOTICE', code: SlotSqlState.nameTooLong, message: notice }));
    return name;
  }

  /** The timeline named in the startup options; readers and proposers need one. */
  /**
   * The timeline named in the startup options. It is never created implicitly: an empty
   * timeline appearing where one was lost (a deleted directory, a wiped volume) must not
   * vote as if it had never seen any WAL. Timelines are created through the HTTP API.
   */
  private async requireTimeline(): Promise<Timeline> {
    if (!this.tenantId || !this.timelineId) {
      throw new ConnectionError('tenant_id and timeline_id are required: connect with options=\'-c tenant_id=<32 hex> -c timeline_id=<32 hex>\'', SqlState.invalidParameterValue, 'ERROR');
    }
    const tl = this.ctx.registry.getTimeline(this.tenantId, this.timelineId);
    if (tl) return tl;
    const broken = this.ctx.registry.brokenReason(this.tenantId, this.timelineId);
    if (broken) throw new ConnectionError(`timeline ${this.timelineId} of tenant ${this.tenantId} is unavailable on safekeeper ${this.ctx.nodeId}: ${broken}`, SqlState.internalError, 'ERROR');
    throw new ConnectionError(
      `timeline ${this.timelineId} of tenant ${this.tenantId} does not exist on safekeeper ${this.ctx.nodeId}; create it with POST /v1/tenants/${this.tenantId}/timelines`,
      SqlState.undefinedObject,
      'ERROR',
    );
  }


  private rows(fields: { name: string; type: number }[], rows: (string | null)[][], tag: string): void {
    const out = [encodeRowDescription(fields.map((f) => ({ name: f.name, typeOid: f.type, typeLen: f.type === PgType.int4 ? 4 : f.type === PgType.int8 ? 8 : -1 })))];
    for (const r of rows) out.push(encodeDataRow(r));
    out.push(encodeCommandComplete(tag), encodeReadyForQuery('I'));
    this.write(Buffer.concat(out));
  }

  private async runCommand(cmd: ReplicationCommand): Promise<void> {
    switch (cmd.kind) {
      case 'empty':
        this.write(Buffer.concat([encodeEmptyQueryResponse(), encodeReadyForQuery('I')]));
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
        this.write(Buffer.concat([encodeCommandComplete('SET'), encodeReadyForQuery('I')]));
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
        await tl.slots.drop(name, { wait: cmd.wait, cancelled: () => this.closed || tl.isClosed });
        this.write(Buffer.concat([encodeCommandComplete('DROP_REPLICATION_SLOT'), encodeReadyForQuery('I')]));
        return;
      }
      case 'timeline_status': {
        const tl = this.tenantId && this.timelineId ? this.ctx.registry.getTimeline(this.tenantId, this.timelineId) : undefined;
        const s = tl?.snapshot();
        this.rows([{ name: 'flush_lsn', type: PgType.text }, { name: 'commit_lsn', type: PgType.text }], s ? [[formatLsn(s.flushLsn), formatLsn(s.commitLsn)]] : [], 'TIMELINE_STATUS');
        return;
      }
      case 'start_wal_push': {
        const tl = await this.requireTimeline();
        this.copy = new WalReceiver(this, tl, this.ctx);
        return;
      }
      case 'start_replication': {
        const tl = await this.requireTimeline();
        // As PostgreSQL: the slot is acquired first (it must exist, be valid and be free),
        // then the start is checked; the slot is let go when the stream ends.
        let lease: SlotLease | undefined;
        if (cmd.slot !== null && cmd.term === null) {
          lease = await tl.slots.acquire(this.slotName(cmd.slot), {
            remote: this.remote,
            applicationName: this.applicationName,
            kill: (err) => this.fail(ConnectionError.fromSlot(err, 'FATAL')),
          });
        }
        try {
          const sender = new WalSender(this, tl, this.ctx, cmd, lease);
          sender.validate();
          if (sender.endsAtOnce()) {
            lease?.release();
            return sender.sendEndOfTimelineOnly();
          }
          this.copy = sender;
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

  private isPeerRecovery(): boolean {
    return this.applicationName.startsWith('walkeeper_proposer');
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
    if (key === 'wal_segment_size' && this.tenantId && this.timelineId) {
      const tl = this.ctx.registry.getTimeline(this.tenantId, this.timelineId);
      if (tl) values.wal_segment_size = `${tl.snapshot().walSegSize / (1024 * 1024)}MB`;
    }
    if (!(key in values)) throw new ConnectionError(`unrecognized configuration parameter "${name}"`, SqlState.undefinedObject, 'ERROR');
    this.rows([{ name: key, type: PgType.text }], [[values[key]]], 'SHOW');
  }

  /** The copy sub-protocol ended normally: back to command mode (`before`: a result set to send first). */
  endCopy(tags: string[], before: Buffer[] = []): void {
    this.copy = undefined;
    this.write(Buffer.concat([...before, ...tags.map((t) => encodeCommandComplete(t)), encodeReadyForQuery('I')]));
  }

  /** Ends the connection with an error the client can read. */
  fail(err: unknown): void {
    if (this.closed) return;
    let fields: { code: string; message: string; detail?: string; severity: 'ERROR' | 'FATAL' };
    if (err instanceof ConnectionError) fields = { code: err.sqlState, message: err.message, detail: err.detail, severity: 'FATAL' };
    else if (err instanceof ProtocolError) fields = { code: err.code, message: err.message, severity: 'FATAL' };
    else {
      const e = err as { code?: string; message?: string };
      fields = { code: SqlState.internalError, message: e?.message ?? String(err), severity: 'FATAL' };
      if (typeof e?.code !== 'string' || !/^[a-z_]+$/.test(e.code)) this.ctx.log.error({ err, conn: this.remote }, 'connection failed');
    }
    this.ctx.metrics.protocolErrors.inc({ code: fields.code });
    this.ctx.log.warn({ conn: this.remote, tenant_id: this.tenantId, timeline_id: this.timelineId, code: fields.code, error: fields.message }, 'closing connection');
    try {
      this.socket.write(encodeErrorResponse({ severity: 'FATAL', code: fields.code, message: fields.message, detail: fields.detail }));
    } catch {
      // socket already broken
    }
    this.socket.end();
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.startupTimer);
    clearTimeout(this.partialTimer);
    this.pending = [];
    this.copy?.onClose();
    this.copy = undefined;
    this.socket.destroySoon?.();
    setTimeout(() => {
      this.socket.destroy();
      this.rawSocket.destroy();
    }, 1000).unref();
  }

  get claimsForTest(): Claims | undefined {
    return this.claims;
  }
}

/**
 * Parses libpq `options`: `-c tenant_id=X -c timeline_id=Y` (also `--tenant_id=X`). Unknown
 * settings are kept but ignored, as PostgreSQL tools may pass their own.
 */
export function parseStartupOptions(options: string): Record<string, string> {
  const out: Record<string, string> = {};
  const words = options.trim().split(/\s+/).filter(Boolean);
  for (let i = 0; i < words.length; i++) {
    let w = words[i];
    if (w === '-c' && i + 1 < words.length) w = words[++i];
    else if (w.startsWith('-c')) w = w.slice(2);
    else if (w.startsWith('--')) w = w.slice(2);
    const eq = w.indexOf('=');
    if (eq > 0) out[w.slice(0, eq).replace(/-/g, '_')] = w.slice(eq + 1);
  }
  return out;
}

/** The PostgreSQL timeline that holds `lsn`: the last one starting at or before it. */
function tliOf(history: PgTimelineHistory, lsn: Lsn): number {
  let tli = history[0]?.tli ?? 1;
  for (const e of history) if (e.startLsn <= lsn) tli = e.tli;
  return tli;
}
