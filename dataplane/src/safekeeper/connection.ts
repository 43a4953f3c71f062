// The transport of one client connection on the safekeeper's Postgres-protocol port: the
// socket and its TLS upgrade, message framing and batching, the startup packet and auth
// (JWT as the password). Each query is parsed and given to the command handler
// (commandHandler.ts); after START_* the CopyData stream belongs to the WAL receiver or sender.
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { randomInt } from 'node:crypto';
import {
  FrontendDecoder,
  ProtocolError,
  SqlState,
  encodeAuthenticationCleartextPassword,
  encodeAuthenticationOk,
  encodeBackendKeyData,
  encodeCommandComplete,
  encodeEncryptionRefused,
  encodeErrorResponse,
  encodeParameterStatus,
  encodeReadyForQuery,
  type FrontendMessage,
} from '../protocol/pgServerCodec.js';
import { parseReplicationCommand, type ReplicationCommand } from '../protocol/replicationCommands.js';
import { isValidId } from '../common/ids.js';
import { AuthError, authorize } from '../auth/jwt.js';
import type { SafekeeperContext } from './context.js';
import { ConnectionError, type CopyHandler } from './copySession.js';
import { CommandHandler, SERVER_VERSION, type CommandSession } from './commandHandler.js';
import { SlotError } from './slots.js';

/** How long a client may take from connecting to finishing authentication. */
const STARTUP_TIMEOUT_MS = 10_000;
/** How long a message may stay half-received: a slow-drip client must not hold its buffer. */
const PARTIAL_MESSAGE_TIMEOUT_MS = 10_000;

export class PgConnection implements CommandSession {
  private readonly decoder = new FrontendDecoder();
  private pending: FrontendMessage[] = [];
  private processing = false;
  private closed = false;
  private startupDone = false;
  private awaitingPassword = false;
  private params: Record<string, string> = {};
  tenantId: string | undefined;
  timelineId: string | undefined;
  applicationName = '';
  private copy: CopyHandler | undefined;
  private readonly commands: CommandHandler;
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
    this.commands = new CommandHandler(this, ctx);
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
      authorize(await this.ctx.auth!.verify(password), this.tenantId);
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
      await this.commands.run(cmd);
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

  startCopy(handler: CopyHandler): void {
    this.copy = handler;
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
