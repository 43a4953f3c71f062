// A small PostgreSQL protocol client for the proposer: startup (any parameters, replication
// connections included), trust/cleartext/md5/SCRAM-SHA-256 auth, simple queries and
// CopyBoth streams (START_REPLICATION against PostgreSQL, START_WAL_PUSH against safekeepers).
// Built on pg-protocol's serializer and parser over node:net.
// (Over 400 lines: the connection and its CopyBoth stream drive one shared parser and op queue;
// apart they would import each other.)
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { serialize } from 'pg-protocol';
import type { BackendMessage, CopyDataMessage, DataRowMessage, NoticeMessage, RowDescriptionMessage } from 'pg-protocol/dist/messages.js';
import { Parser } from 'pg-protocol/dist/parser.js';

export interface PgConnectOptions {
  /** TCP host, or a directory holding the server's unix socket (starts with '/') */
  host?: string;
  /** default 5432 */
  port?: number;
  /** full path of a unix socket, overrides host/port */
  socketPath?: string;
  user: string;
  /** default: the user name; 'replication' for a physical replication connection */
  database?: string;
  password?: string;
  /** 'true' for physical replication, 'database' for logical */
  replication?: 'true' | 'database' | 'false';
  applicationName?: string;
  /** the `options` startup parameter, e.g. `-c tenant_id=... -c timeline_id=...` */
  options?: string;
  /** any further startup parameters (client_encoding=UTF8 is always sent last) */
  params?: Record<string, string>;
  /** covers TCP connect, startup and authentication; default 10 s */
  connectTimeoutMs?: number;
  /** called for every NoticeResponse */
  onNotice?: (notice: PgNotice) => void;
  /** highest PBKDF2 iteration count accepted from a server in SCRAM; default 100000 */
  maxScramIterations?: number;
  /**
   * Require TLS (SSLRequest first; a server answering 'N' is refused). The server's
   * certificate is verified against `ca` (default: the system's CAs) and, like libpq's
   * sslmode=verify-full, must name `servername` (default: the host) unless
   * `rejectUnauthorized` is false.
   */
  tls?: PgTlsOptions;
}

export interface PgTlsOptions {
  ca?: Buffer | string;
  servername?: string;
  rejectUnauthorized?: boolean;
}

export interface PgNotice {
  severity: string;
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

export interface PgField {
  name: string;
  typeOid: number;
  typeLen: number;
}

export interface PgQueryResult {
  fields: PgField[];
  rows: (string | null)[][];
  commandTag: string;
}

/** An ErrorResponse from the server. */
export class PgServerError extends Error {
  readonly severity: string;
  readonly code: string;
  readonly detail: string | undefined;
  readonly hint: string | undefined;

  constructor(fields: { message: string; severity?: string; code?: string; detail?: string; hint?: string }) {
    super(fields.message);
    this.name = 'PgServerError';
    this.severity = fields.severity ?? 'ERROR';
    this.code = fields.code ?? 'XX000';
    this.detail = fields.detail;
    this.hint = fields.hint;
  }
}

/** The connection failed, timed out, was closed, or the server broke the protocol. */
export class PgConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PgConnectionError';
  }
}

/** What follows the server's CopyDone: result sets (end-of-timeline rows) and command tags. */
export interface CopyBothEnd {
  results: PgQueryResult[];
}

type Op =
  | { kind: 'startup' }
  | { kind: 'query'; result: PgQueryResult | null; results: PgQueryResult[]; error: PgServerError | null; resolve: (r: PgQueryResult[]) => void; reject: (e: Error) => void }
  | { kind: 'copy'; stream: CopyBothStream; started: boolean; resolveStart: (s: CopyBothStream) => void; rejectStart: (e: Error) => void };

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** pause reading the socket when this many CopyData bytes wait for the consumer */
const COPY_HIGH_WATER_BYTES = 8 * 1024 * 1024;

/** Opens a connection and completes startup and authentication. */
export async function connectPg(options: PgConnectOptions): Promise<PgConnection> {
  const conn = new PgConnection(options);
  await conn.ready;
  return conn;
}

export class PgConnection {
  /** ParameterStatus values reported by the server */
  readonly parameters = new Map<string, string>();
  backendProcessId = 0;
  backendSecretKey = 0;
  /** resolves when the connection is ready for queries */
  readonly ready: Promise<void>;

  /** the socket messages go through: the TCP socket, or TLS over it after the server's 'S' */
  private socket: net.Socket;
  private readonly rawSocket: net.Socket;
  private awaitingSslAnswer = false;
  private readonly onSocketData = (chunk: Buffer) => this.onData(chunk);
  private readonly parser = new Parser();
  private readonly opts: PgConnectOptions;
  private op: Op | null = { kind: 'startup' };
  private queue: Promise<unknown> = Promise.resolve();
  private closedError: Error | null = null;
  private readyResolve!: () => void;
  private readyReject!: (e: Error) => void;
  private connectTimer: NodeJS.Timeout | null = null;
  private scram: ScramState | null = null;
  private closeWaiters: (() => void)[] = [];
  private socketClosed = false;
  private corked = false;

  constructor(options: PgConnectOptions) {
    this.opts = options;
    this.ready = new Promise<void>((resolve, reject) => {
      this.readyResolve = resolve;
      this.readyReject = reject;
    });
    // connect() has no outstanding user promise until awaited; avoid unhandled rejections
    this.ready.catch(() => undefined);
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const target = this.targetDescription();
    this.connectTimer = setTimeout(() => {
      this.fail(new PgConnectionError(`timed out after ${timeoutMs} ms connecting to ${target}`));
    }, timeoutMs);
    const socketPath = options.socketPath ?? (options.host?.startsWith('/') ? `${options.host}/.s.PGSQL.${options.port ?? 5432}` : undefined);
    this.socket = this.rawSocket = socketPath
      ? net.createConnection({ path: socketPath })
      : net.createConnection({ host: options.host ?? '127.0.0.1', port: options.port ?? 5432 });
    this.socket.setNoDelay(true);
    this.socket.on('connect', () => {
      if (!options.tls) return this.sendStartup();
      this.awaitingSslAnswer = true;
      const sslRequest = Buffer.alloc(8);
      sslRequest.writeInt32BE(8, 0);
      sslRequest.writeInt32BE(80877103, 4);
      this.socket.write(sslRequest);
    });
    this.socket.on('data', this.onSocketData);
    this.watchSocket(this.socket);
  }

  private watchSocket(socket: net.Socket): void {
    const target = this.targetDescription();
    socket.on('error', (err) => this.fail(new PgConnectionError(`connection to ${target} failed: ${err.message}`, { cause: err })));
    socket.on('close', () => {
      this.socketClosed = true;
      this.fail(new PgConnectionError(`connection to ${target} closed`));
      for (const w of this.closeWaiters.splice(0)) w();
    });
  }

  /** The server's one-byte answer to SSLRequest: 'S' upgrades the socket to TLS, anything else fails. */
  private onSslAnswer(chunk: Buffer): void {
    this.awaitingSslAnswer = false;
    const target = this.targetDescription();
    const answer = String.fromCharCode(chunk[0]);
    if (answer !== 'S') {
      const why = answer === 'N' ? 'the server does not support TLS (it answered N to SSLRequest)' : answer === 'E' ? 'the server answered SSLRequest with an error' : `unexpected answer 0x${chunk[0].toString(16)} to SSLRequest`;
      this.fail(new PgConnectionError(`TLS is required but ${target} refused it: ${why}`));
      return;
    }
    // Bytes after the 'S' arrived before the handshake, unencrypted: a man in the middle
    // could have injected them (CVE-2021-23222). Refuse them.
    if (chunk.length > 1) {
      this.fail(new PgConnectionError(`received unencrypted data after SSL response from ${target}`));
      return;
    }
    const raw = this.rawSocket;
    raw.off('data', this.onSocketData);
    const o = this.opts.tls!;
    const host = this.opts.host ?? '127.0.0.1';
    const servername = o.servername ?? (net.isIP(host) ? undefined : host);
    const secure = tls.connect({
      socket: raw,
      ca: o.ca,
      servername,
      // hostname checks use `host` when no servername (SNI cannot carry an IP address)
      host: o.servername ?? host,
      rejectUnauthorized: o.rejectUnauthorized ?? true,
    });
    secure.setNoDelay(true);
    this.socket = secure;
    secure.on('secureConnect', () => this.sendStartup());
    secure.on('data', this.onSocketData);
    secure.on('error', (err) => this.fail(new PgConnectionError(`TLS connection to ${target} failed: ${err.message}`, { cause: err })));
    secure.on('close', () => this.fail(new PgConnectionError(`connection to ${target} closed`)));
  }

  /** `server_version` as reported at startup, e.g. "15.20 (Debian 15.20-0+deb12u1)" */
  get serverVersion(): string | undefined {
    return this.parameters.get('server_version');
  }

  /** server_version as a number like PQserverVersion: 150020 for 15.20; undefined if unknown */
  get serverVersionNum(): number | undefined {
    const v = this.serverVersion;
    const m = v ? /^(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(v) : null;
    if (!m) return undefined;
    const major = Number(m[1]);
    if (major >= 10) return major * 10000 + Number(m[2] ?? 0);
    return major * 10000 + Number(m[2] ?? 0) * 100 + Number(m[3] ?? 0);
  }

  get isClosed(): boolean {
    return this.closedError !== null;
  }

  /** Runs one simple query; a multi-statement query returns the last result. */
  async query(text: string): Promise<PgQueryResult> {
    const results = await this.queryAll(text);
    return results[results.length - 1] ?? { fields: [], rows: [], commandTag: '' };
  }

  /** Runs one simple query and returns every result set it produced. */
  queryAll(text: string): Promise<PgQueryResult[]> {
    return this.exclusive(
      () =>
        new Promise<PgQueryResult[]>((resolve, reject) => {
          this.op = { kind: 'query', result: null, results: [], error: null, resolve, reject };
          this.write(serialize.query(text));
        }),
    );
  }

  /** Sends a query answered by CopyBothResponse (START_REPLICATION, START_WAL_PUSH) and returns the stream. */
  startCopyBoth(text: string): Promise<CopyBothStream> {
    let release!: () => void;
    const done = new Promise<void>((r) => (release = r));
    return this.exclusiveUntil(done, () => {
      return new Promise<CopyBothStream>((resolveStart, rejectStart) => {
        const stream = new CopyBothStream(this, release);
        this.op = { kind: 'copy', stream, started: false, resolveStart, rejectStart };
        this.write(serialize.query(text));
      });
    });
  }

  /** Sends Terminate and waits for the socket to close. */
  async close(): Promise<void> {
    if (!this.socketClosed && !this.socket.destroyed && this.socket.writable) {
      try {
        this.socket.end(serialize.end());
      } catch {
        /* already gone */
      }
    }
    const closed = new Promise<void>((resolve) => {
      if (this.socketClosed) resolve();
      else this.closeWaiters.push(resolve);
    });
    const timer = setTimeout(() => this.socket.destroy(), 2000);
    await closed;
    clearTimeout(timer);
    this.fail(new PgConnectionError('connection closed by client'));
  }

  /** Closes the socket at once. */
  destroy(err?: Error): void {
    this.fail(err ?? new PgConnectionError('connection destroyed by client'));
  }

  // -------------------------------------------------------------------------------------
  // internals shared with CopyBothStream

  /** @internal writes raw bytes; returns socket.write's answer (false: wait for drain) */
  /**
   * Holds writes until the end of the current tick, then sends them in one writev: every
   * message produced while handling one event costs one syscall per socket, not one each.
   */
  corkUntilNextTick(): void {
    if (this.corked || this.socketClosed) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(() => {
      this.corked = false;
      this.socket.uncork();
    });
  }

  write(buf: Buffer): boolean {
    if (this.closedError) throw this.closedError;
    return this.socket.write(buf);
  }

  /** @internal writes several buffers as one burst */
  writev(bufs: Buffer[]): boolean {
    if (this.closedError) throw this.closedError;
    this.socket.cork();
    let ok = true;
    for (const b of bufs) ok = this.socket.write(b);
    this.socket.uncork();
    return ok;
  }

  /** @internal resolves when the socket's write buffer has drained (or the connection failed) */
  drain(): Promise<void> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (!this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        cleanup();
        resolve();
      };
      const onClose = () => {
        cleanup();
        reject(this.closedError ?? new PgConnectionError('connection closed while waiting for drain'));
      };
      const cleanup = () => {
        this.socket.off('drain', onDrain);
        this.socket.off('close', onClose);
      };
      this.socket.on('drain', onDrain);
      this.socket.on('close', onClose);
    });
  }

  /** @internal flow control from the copy stream's consumer */
  setReading(on: boolean): void {
    if (on) this.socket.resume();
    else this.socket.pause();
  }

  // -------------------------------------------------------------------------------------

  private targetDescription(): string {
    const o = this.opts;
    if (o.socketPath) return o.socketPath;
    return `${o.host ?? '127.0.0.1'}:${o.port ?? 5432}`;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      await this.ready;
      if (this.closedError) throw this.closedError;
      return fn();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** like exclusive, but the next operation waits for `until` too (a copy stream's end) */
  private exclusiveUntil<T>(until: Promise<void>, fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      await this.ready;
      if (this.closedError) throw this.closedError;
      return fn();
    });
    this.queue = run.then(
      () => until,
      () => undefined,
    );
    return run;
  }

  private sendStartup(): void {
    const o = this.opts;
    const params: Record<string, string> = { user: o.user };
    const database = o.database ?? (o.replication === 'true' ? 'replication' : undefined);
    if (database !== undefined) params.database = database;
    if (o.replication !== undefined) params.replication = o.replication;
    if (o.applicationName !== undefined) params.application_name = o.applicationName;
    if (o.options !== undefined) params.options = o.options;
    Object.assign(params, o.params ?? {});
    this.socket.write(serialize.startup(params));
  }

  private onData(chunk: Buffer): void {
    if (this.awaitingSslAnswer) return this.onSslAnswer(chunk);
    try {
      this.parser.parse(chunk, (msg) => this.onMessage(msg));
    } catch (err) {
      // a malformed message, an unsupported auth method, or an exception from an onData handler
      this.fail(
        err instanceof PgConnectionError || err instanceof PgServerError
          ? err
          : new PgConnectionError(`error handling a message from ${this.targetDescription()}: ${err instanceof Error ? err.message : String(err)}`, { cause: err }),
      );
    }
  }

  private onMessage(msg: BackendMessage): void {
    if (this.closedError) return;
    switch (msg.name) {
      case 'parameterStatus': {
        const m = msg as unknown as { parameterName: string; parameterValue: string };
        this.parameters.set(m.parameterName, m.parameterValue);
        return;
      }
      case 'notice': {
        const n = msg as NoticeMessage;
        this.opts.onNotice?.({ severity: n.severity ?? 'NOTICE', code: n.code ?? '00000', message: n.message ?? '', detail: n.detail, hint: n.hint });
        return;
      }
      case 'notification':
        return;
    }
    const op = this.op;
    if (!op) {
      if (msg.name === 'error') {
        // e.g. FATAL: terminating connection due to administrator command
        this.fail(toServerError(msg));
        return;
      }
      this.fail(new PgConnectionError(`unexpected message ${msg.name} from ${this.targetDescription()} while idle`));
      return;
    }
    switch (op.kind) {
      case 'startup':
        this.onStartupMessage(msg);
        return;
      case 'query':
        this.onQueryMessage(op, msg);
        return;
      case 'copy':
        this.onCopyMessage(op, msg);
        return;
    }
  }

  private onStartupMessage(msg: BackendMessage): void {
    switch (msg.name) {
      case 'authenticationOk':
        return;
      case 'authenticationCleartextPassword':
        this.write(serialize.password(this.requirePassword('cleartext')));
        return;
      case 'authenticationMD5Password': {
        const salt = (msg as unknown as { salt: Buffer }).salt;
        const password = this.requirePassword('md5');
        const inner = md5Hex(Buffer.concat([Buffer.from(password, 'utf8'), Buffer.from(this.opts.user, 'utf8')]));
        this.write(serialize.password('md5' + md5Hex(Buffer.concat([Buffer.from(inner), salt]))));
        return;
      }
      case 'authenticationSASL': {
        const mechanisms = (msg as unknown as { mechanisms: string[] }).mechanisms;
        if (!mechanisms.includes('SCRAM-SHA-256')) {
          throw new PgConnectionError(`server offers SASL mechanisms [${mechanisms.join(', ')}]; only SCRAM-SHA-256 is supported`);
        }
        this.scram = scramStart(this.requirePassword('SCRAM-SHA-256'));
        this.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', this.scram.clientFirst));
        return;
      }
      case 'authenticationSASLContinue': {
        if (!this.scram) throw new PgConnectionError('SASLContinue without a SASL exchange');
        const data = (msg as unknown as { data: string }).data;
        this.write(serialize.sendSCRAMClientFinalMessage(scramContinue(this.scram, data, this.opts.maxScramIterations ?? 100_000)));
        return;
      }
      case 'authenticationSASLFinal': {
        if (!this.scram) throw new PgConnectionError('SASLFinal without a SASL exchange');
        scramFinish(this.scram, (msg as unknown as { data: string }).data);
        return;
      }
      case 'backendKeyData': {
        const m = msg as unknown as { processID: number; secretKey: number };
        this.backendProcessId = m.processID;
        this.backendSecretKey = m.secretKey;
        return;
      }
      case 'readyForQuery':
        if (this.scram && !this.scram.verified) {
          throw new PgConnectionError('server completed SCRAM authentication without proving it knows the password');
        }
        this.op = null;
        if (this.connectTimer) clearTimeout(this.connectTimer);
        this.connectTimer = null;
        this.readyResolve();
        return;
      case 'error':
        this.fail(toServerError(msg));
        return;
      default:
        throw new PgConnectionError(`unexpected message ${msg.name} during startup`);
    }
  }

  private onQueryMessage(op: Extract<Op, { kind: 'query' }>, msg: BackendMessage): void {
    switch (msg.name) {
      case 'rowDescription': {
        const rd = msg as RowDescriptionMessage;
        op.result = { fields: rd.fields.map((f) => ({ name: f.name, typeOid: f.dataTypeID, typeLen: f.dataTypeSize })), rows: [], commandTag: '' };
        return;
      }
      case 'dataRow': {
        if (!op.result) op.result = { fields: [], rows: [], commandTag: '' };
        op.result.rows.push((msg as DataRowMessage).fields as (string | null)[]);
        return;
      }
      case 'commandComplete': {
        const r = op.result ?? { fields: [], rows: [], commandTag: '' };
        r.commandTag = (msg as unknown as { text: string }).text;
        op.results.push(r);
        op.result = null;
        return;
      }
      case 'emptyQuery':
        op.results.push({ fields: [], rows: [], commandTag: '' });
        return;
      case 'error':
        op.error = toServerError(msg);
        return;
      case 'readyForQuery':
        this.op = null;
        if (op.error) op.reject(op.error);
        else op.resolve(op.results);
        return;
      case 'replicationStart':
      case 'copyInResponse':
      case 'copyOutResponse':
        // not expected from query(): refuse the copy and wait for ReadyForQuery
        op.error ??= new PgServerError({ message: `query() got a ${msg.name}; use startCopyBoth() for COPY`, code: '08P01' });
        if (msg.name !== 'copyOutResponse') this.write(serialize.copyFail('query() does not do COPY'));
        return;
      case 'copyData':
      case 'copyDone':
        return;
      default:
        throw new PgConnectionError(`unexpected message ${msg.name} in query response`);
    }
  }

  private onCopyMessage(op: Extract<Op, { kind: 'copy' }>, msg: BackendMessage): void {
    const stream = op.stream;
    if (!op.started) {
      switch (msg.name) {
        case 'replicationStart':
          op.started = true;
          op.resolveStart(stream);
          return;
        case 'error':
          stream.pendingError = toServerError(msg);
          return;
        case 'readyForQuery': {
          this.op = null;
          const err = stream.pendingError ?? new PgServerError({ message: 'server did not start COPY BOTH', code: '08P01' });
          op.rejectStart(err);
          stream.finish(err);
          return;
        }
        case 'rowDescription':
        case 'dataRow':
        case 'commandComplete':
        case 'emptyQuery':
          stream.pendingError ??= new PgServerError({ message: `expected CopyBothResponse, got ${msg.name}`, code: '08P01' });
          return;
        default:
          throw new PgConnectionError(`unexpected message ${msg.name} waiting for CopyBothResponse`);
      }
    }
    switch (msg.name) {
      case 'copyData': {
        // the parser's chunk may be a view into a buffer it reuses: copy it
        const chunk = Buffer.from((msg as CopyDataMessage).chunk);
        stream.push(chunk);
        return;
      }
      case 'copyDone':
        stream.serverCopyDone();
        return;
      case 'rowDescription': {
        const rd = msg as RowDescriptionMessage;
        stream.tail.current = { fields: rd.fields.map((f) => ({ name: f.name, typeOid: f.dataTypeID, typeLen: f.dataTypeSize })), rows: [], commandTag: '' };
        return;
      }
      case 'dataRow':
        stream.tail.current ??= { fields: [], rows: [], commandTag: '' };
        stream.tail.current.rows.push((msg as DataRowMessage).fields as (string | null)[]);
        return;
      case 'commandComplete': {
        const r = stream.tail.current ?? { fields: [], rows: [], commandTag: '' };
        r.commandTag = (msg as unknown as { text: string }).text;
        stream.tail.results.push(r);
        stream.tail.current = null;
        return;
      }
      case 'error':
        stream.pendingError = toServerError(msg);
        stream.serverCopyDone();
        return;
      case 'readyForQuery':
        this.op = null;
        stream.finish(stream.pendingError);
        return;
      default:
        throw new PgConnectionError(`unexpected message ${msg.name} during COPY BOTH`);
    }
  }

  private requirePassword(method: string): string {
    if (this.opts.password === undefined) {
      throw new PgConnectionError(`server at ${this.targetDescription()} requested ${method} password authentication for user "${this.opts.user}" but no password was given`);
    }
    return this.opts.password;
  }

  /** Ends the connection with an error: every pending operation fails with it. */
  private fail(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    const op = this.op;
    this.op = null;
    this.readyReject(err);
    if (op?.kind === 'query') op.reject(err);
    if (op?.kind === 'copy') {
      if (!op.started) op.rejectStart(err);
      op.stream.finish(err);
    }
    if (!this.socket.destroyed) this.socket.destroy();
    if (!this.rawSocket.destroyed) this.rawSocket.destroy();
  }
}

/**
 * The CopyBoth phase of a connection. Read incoming CopyData payloads with `for await`, `next()`
 * or `onData`; the iteration ends when the server sends CopyDone, and throws the server's
 * ErrorResponse (PgServerError) or the connection failure. `end` resolves after ReadyForQuery.
 */
export class CopyBothStream implements AsyncIterable<Buffer> {
  /** @internal */ pendingError: PgServerError | null = null;
  /** @internal */ tail: { results: PgQueryResult[]; current: PgQueryResult | null } = { results: [], current: null };
  /** resolves after the stream ended cleanly and the connection is ready again */
  readonly end: Promise<CopyBothEnd>;

  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private paused = false;
  private serverDone = false;
  private clientDone = false;
  private failure: Error | null = null;
  private finished = false;
  private waiter: { resolve: (b: Buffer | null) => void; reject: (e: Error) => void } | null = null;
  private handler: ((payload: Buffer) => void) | null = null;
  private resolveEnd!: (e: CopyBothEnd) => void;
  private rejectEnd!: (e: Error) => void;

  constructor(
    private readonly conn: PgConnection,
    private readonly release: () => void,
  ) {
    this.end = new Promise<CopyBothEnd>((resolve, reject) => {
      this.resolveEnd = resolve;
      this.rejectEnd = reject;
    });
    this.end.catch(() => undefined);
  }

  /** true once the server has sent CopyDone (or an error) */
  get serverEnded(): boolean {
    return this.serverDone;
  }

  /**
   * Delivers every payload to `handler` as it arrives, instead of queueing it for `next()`.
   * Payloads already queued are delivered first.
   */
  onData(handler: (payload: Buffer) => void): void {
    this.handler = handler;
    for (const b of this.queue.splice(0)) handler(b);
    this.queuedBytes = 0;
    this.updateFlow();
  }

  /** The next payload, or null after the server's CopyDone. Throws PgServerError or PgConnectionError. */
  next(): Promise<Buffer | null> {
    if (this.waiter) return Promise.reject(new Error('CopyBothStream.next() called while another next() is pending'));
    const b = this.queue.shift();
    if (b) {
      this.queuedBytes -= b.length;
      this.updateFlow();
      return Promise.resolve(b);
    }
    if (this.failure) return Promise.reject(this.failure);
    if (this.serverDone || this.finished) return Promise.resolve(null);
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    for (;;) {
      const b = await this.next();
      if (b === null) return;
      yield b;
    }
  }

  /** Sends one CopyData; returns false when the socket buffer is full (await `drain()`). */
  /**
   * Sends one CopyData message. A payload given in parts is sent as those parts (writev), so
   * a header and a large body need not be copied into one buffer first.
   */
  sendCopyData(payload: Uint8Array | readonly Uint8Array[]): boolean {
    if (this.clientDone) throw new Error('sendCopyData after sendCopyDone');
    const parts = (Array.isArray(payload) ? payload : [payload]) as readonly Uint8Array[];
    const bodies = parts.filter((p) => p.length > 0).map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
    const header = Buffer.allocUnsafe(5);
    header[0] = 0x64;
    header.writeInt32BE(4 + bodies.reduce((n, b) => n + b.length, 0), 1);
    this.conn.corkUntilNextTick();
    return this.conn.writev([header, ...bodies]);
  }

  /** Resolves when the socket can take more data. */
  drain(): Promise<void> {
    return this.conn.drain();
  }

  /** Sends CopyDone (ends our half of the stream); the server answers CopyDone and ends too. */
  sendCopyDone(): void {
    if (this.clientDone) return;
    this.clientDone = true;
    if (this.finished) return;
    this.conn.write(serialize.copyDone());
  }

  /** @internal */
  push(payload: Buffer): void {
    if (this.handler) {
      this.handler(payload);
      return;
    }
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve(payload);
      return;
    }
    this.queue.push(payload);
    this.queuedBytes += payload.length;
    this.updateFlow();
  }

  /** @internal the server sent CopyDone or an ErrorResponse */
  serverCopyDone(): void {
    this.serverDone = true;
    if (this.pendingError) this.failure ??= this.pendingError;
    this.wake();
  }

  /** @internal the exchange is over (ReadyForQuery, or the connection failed) */
  finish(err: Error | null): void {
    if (this.finished) return;
    this.finished = true;
    this.serverDone = true;
    if (err) {
      this.failure ??= err;
      this.rejectEnd(err);
    } else {
      this.resolveEnd({ results: this.tail.results });
    }
    if (this.paused) this.conn.setReading(true);
    this.paused = false;
    this.wake();
    this.release();
  }

  private wake(): void {
    if (!this.waiter || this.queue.length > 0) return;
    const w = this.waiter;
    this.waiter = null;
    if (this.failure) w.reject(this.failure);
    else w.resolve(null);
  }

  private updateFlow(): void {
    if (this.finished) return;
    const shouldPause = this.queuedBytes > COPY_HIGH_WATER_BYTES;
    if (shouldPause !== this.paused) {
      this.paused = shouldPause;
      this.conn.setReading(!shouldPause);
    }
  }
}

function toServerError(msg: BackendMessage): PgServerError {
  const e = msg as unknown as { message?: string; severity?: string; code?: string; detail?: string; hint?: string };
  return new PgServerError({ message: e.message ?? 'unknown server error', severity: e.severity, code: e.code, detail: e.detail, hint: e.hint });
}

function md5Hex(data: Buffer): string {
  return createHash('md5').update(data).digest('hex');
}

// ---------------------------------------------------------------------------------------
// SCRAM-SHA-256 (RFC 5802 / 7677), without channel binding, as libpq does over plain TCP.

interface ScramState {
  password: string;
  clientNonce: string;
  clientFirstBare: string;
  clientFirst: string;
  serverSignature: Buffer | null;
  verified: boolean;
}

function scramStart(password: string): ScramState {
  const clientNonce = randomBytes(18).toString('base64');
  // PostgreSQL takes the user from the startup packet and ignores the SCRAM user name
  const clientFirstBare = `n=*,r=${clientNonce}`;
  return { password, clientNonce, clientFirstBare, clientFirst: `n,,${clientFirstBare}`, serverSignature: null, verified: false };
}

function scramContinue(s: ScramState, serverFirst: string, maxIterations: number): string {
  const attrs = parseScramAttributes(serverFirst);
  const nonce = attrs.get('r');
  const salt = attrs.get('s');
  const iterText = attrs.get('i');
  if (!nonce || !salt || !iterText) throw new PgConnectionError(`invalid SCRAM server-first-message: ${serverFirst}`);
  if (!nonce.startsWith(s.clientNonce) || nonce.length === s.clientNonce.length) {
    throw new PgConnectionError('invalid SCRAM server-first-message: server nonce does not extend the client nonce');
  }
  const iterations = Number(iterText);
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > maxIterations) {
    throw new PgConnectionError(`invalid SCRAM iteration count ${iterText} (accepted: 1..${maxIterations})`);
  }
  // SASLprep is approximated by NFKC normalization (identical for ASCII passwords)
  const salted = pbkdf2Sync(Buffer.from(s.password.normalize('NFKC'), 'utf8'), Buffer.from(salt, 'base64'), iterations, 32, 'sha256');
  const clientKey = hmac(salted, 'Client Key');
  const storedKey = createHash('sha256').update(clientKey).digest();
  const clientFinalWithoutProof = `c=biws,r=${nonce}`;
  const authMessage = `${s.clientFirstBare},${serverFirst},${clientFinalWithoutProof}`;
  const clientSignature = hmac(storedKey, authMessage);
  const proof = Buffer.alloc(clientKey.length);
  for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i] ^ clientSignature[i];
  s.serverSignature = hmac(hmac(salted, 'Server Key'), authMessage);
  return `${clientFinalWithoutProof},p=${proof.toString('base64')}`;
}

function scramFinish(s: ScramState, serverFinal: string): void {
  const attrs = parseScramAttributes(serverFinal);
  if (attrs.has('e')) throw new PgConnectionError(`SCRAM authentication failed: ${attrs.get('e')}`);
  const v = attrs.get('v');
  if (!v || !s.serverSignature) throw new PgConnectionError(`invalid SCRAM server-final-message: ${serverFinal}`);
  const got = Buffer.from(v, 'base64');
  if (got.length !== s.serverSignature.length || !timingSafeEqual(got, s.serverSignature)) {
    throw new PgConnectionError('SCRAM server signature does not match: the server does not know the password');
  }
  s.verified = true;
}

function parseScramAttributes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) out.set(part[0], part.slice(2));
  }
  return out;
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}
