// Helpers for the safekeeper black-box tests: an in-process safekeeper in a temp directory on
// loopback port 0, a tiny HTTP client, raw-socket Postgres exchanges (for malformed input), a
// fake proposer speaking the consensus protocol inside START_WAL_PUSH, and file hashing.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSafekeeper, type RunningSafekeeper } from '@walkeeper/dataplane/safekeeper/main';
import { connectPg, type CopyBothStream, type PgConnection, type PgNotice } from '@walkeeper/dataplane/protocol/pgClient';
import { decodeAcceptorMessage, encodeProposerMessage } from '@walkeeper/dataplane/protocol/consensusCodec';
import { LEGACY_MCONF, MAX_APPEND_PAYLOAD, type AcceptorMessage, type AppendResponse, type ProposerMessage } from '@walkeeper/dataplane/consensus/messages';
import { DEFAULT_WAL_SEG_SIZE, type Lsn } from '@walkeeper/dataplane/common/lsn';
import { decodeSenderMessage } from '@walkeeper/dataplane/protocol/replicationMessages';
import { WalBuilder } from './walBuilder.js';

// Keep test output readable: the safekeeper logs JSON lines at info by default.
process.env.WALKEEPER_LOG_LEVEL ??= 'silent';

/** The system id WalBuilder writes into long page headers. */
export const SYSTEM_ID = 7000000000000000000n;
export const PG_VERSION = 150004;
/** A timeline starts at a segment boundary (here the second segment, 0/1000000). */
export const START_LSN: Lsn = BigInt(DEFAULT_WAL_SEG_SIZE);

export interface TestSafekeeper {
  sk: RunningSafekeeper;
  datadir: string;
  pgPort: number;
  httpUrl: string;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `walkeeper-${prefix}-`));
}

export async function startTestSafekeeper(datadir: string, opts: { id?: number; authPublicKey?: string; tlsCert?: string; tlsKey?: string; maxSlotWalKeepSize?: string } = {}): Promise<TestSafekeeper> {
  const sk = await startSafekeeper({
    id: String(opts.id ?? 1),
    datadir,
    listenPg: '127.0.0.1:0',
    listenHttp: '127.0.0.1:0',
    authPublicKey: opts.authPublicKey,
    tlsCert: opts.tlsCert,
    tlsKey: opts.tlsKey,
    maxSlotWalKeepSize: opts.maxSlotWalKeepSize,
    logFormat: 'json',
  });
  return { sk, datadir, pgPort: Number(sk.pgAddress.split(':').pop()), httpUrl: `${opts.tlsCert ? 'https' : 'http'}://${sk.httpAddress}` };
}

export function removeDir(dir: string | undefined): void {
  if (dir && !process.env.WALKEEPER_KEEP_TEST_DIRS) rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------
// HTTP

export interface HttpReply {
  status: number;
  text: string;
  /** parsed body, undefined when the body is not JSON */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  contentType: string;
}

export async function http(base: string, method: string, path: string, opts: { body?: unknown; rawBody?: string; token?: string; headers?: Record<string, string> } = {}): Promise<HttpReply> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  let body: string | undefined;
  if (opts.rawBody !== undefined) {
    body = opts.rawBody;
    headers['content-type'] ??= 'application/json';
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] = 'application/json';
  }
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  const res = await fetch(`${base}${path}`, { method, headers, body, signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, contentType: res.headers.get('content-type') ?? '' };
}

// ---------------------------------------------------------------------------------------
// Raw Postgres protocol

export function startupPacket(params: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(params)) parts.push(Buffer.from(`${k}\0${v}\0`, 'utf8'));
  parts.push(Buffer.from([0]));
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(196608, 4);
  return Buffer.concat([head, body]);
}

export function typedMessage(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

export const queryMessage = (text: string) => typedMessage('Q', Buffer.from(text + '\0', 'utf8'));
export const copyData = (payload: Buffer) => typedMessage('d', payload);
export const passwordMessage = (password: string) => typedMessage('p', Buffer.from(password + '\0', 'utf8'));

export interface BackendMsg {
  type: string;
  body: Buffer;
}

export interface ErrorInfo {
  severity: string;
  code: string;
  message: string;
  detail?: string;
}

export function parseBackend(buf: Buffer): BackendMsg[] {
  const out: BackendMsg[] = [];
  let o = 0;
  // a lone 'N'/'S' byte answers an SSLRequest; the tests here never send one
  while (o + 5 <= buf.length) {
    const len = buf.readInt32BE(o + 1);
    if (o + 1 + len > buf.length) break;
    out.push({ type: String.fromCharCode(buf[o]), body: buf.subarray(o + 5, o + 1 + len) });
    o += 1 + len;
  }
  return out;
}

export function errorFields(body: Buffer): ErrorInfo {
  const f: Record<string, string> = {};
  let o = 0;
  while (o < body.length && body[o] !== 0) {
    const tag = String.fromCharCode(body[o]);
    const end = body.indexOf(0, o + 1);
    f[tag] = body.toString('utf8', o + 1, end);
    o = end + 1;
  }
  return { severity: f.S, code: f.C, message: f.M, detail: f.D };
}

export interface RawResult {
  messages: BackendMsg[];
  /** the first ErrorResponse, if any */
  error: ErrorInfo | undefined;
  /** the server closed the connection (rather than our timeout) */
  closedByServer: boolean;
  elapsedMs: number;
}

/**
 * Opens a TCP connection, writes each chunk in order (a function chunk is called with the
 * bytes received so far and returns what to write, for replies that depend on the server),
 * then collects everything until the server closes or `waitMs` passes.
 */
export async function rawExchange(port: number, chunks: (Buffer | ((received: Buffer) => Buffer))[], opts: { waitMs?: number; endAfterWrite?: boolean; gapMs?: number } = {}): Promise<RawResult> {
  const started = Date.now();
  const socket: Socket = netConnect({ host: '127.0.0.1', port });
  const received: Buffer[] = [];
  let closedByServer = false;
  const closed = new Promise<void>((resolve) => {
    socket.on('data', (d: Buffer) => received.push(d));
    socket.on('end', () => {
      closedByServer = true;
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  for (const c of chunks) {
    if (socket.destroyed) break;
    const bytes = typeof c === 'function' ? c(Buffer.concat(received)) : c;
    socket.write(bytes);
    await new Promise((r) => setTimeout(r, opts.gapMs ?? 50));
  }
  if (opts.endAfterWrite) socket.end();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise<void>((r) => (timer = setTimeout(r, opts.waitMs ?? 3000)))]);
  clearTimeout(timer);
  socket.destroy();
  const messages = parseBackend(Buffer.concat(received));
  const e = messages.find((m) => m.type === 'E');
  return { messages, error: e ? errorFields(e.body) : undefined, closedByServer, elapsedMs: Date.now() - started };
}

/** Waits until `received` holds a message of `type` (for rawExchange function chunks). */
export function has(received: Buffer, type: string): boolean {
  return parseBackend(received).some((m) => m.type === type);
}

export function replicationStartup(tenantId: string | undefined, timelineId: string | undefined, extra: Record<string, string> = {}): Buffer {
  const opts: string[] = [];
  if (tenantId !== undefined) opts.push(`-c tenant_id=${tenantId}`);
  if (timelineId !== undefined) opts.push(`-c timeline_id=${timelineId}`);
  return startupPacket({ user: 'walkeeper', database: 'replication', replication: 'true', ...(opts.length ? { options: opts.join(' ') } : {}), ...extra });
}

// ---------------------------------------------------------------------------------------
// Clients built on walkeeper's own pgClient

export async function connectReplication(port: number, tenantId: string | undefined, timelineId: string | undefined, opts: { password?: string; applicationName?: string; onNotice?: (n: PgNotice) => void } = {}): Promise<PgConnection> {
  const o: string[] = [];
  if (tenantId !== undefined) o.push(`-c tenant_id=${tenantId}`);
  if (timelineId !== undefined) o.push(`-c timeline_id=${timelineId}`);
  return connectPg({
    host: '127.0.0.1',
    port,
    user: 'walkeeper',
    replication: 'true',
    password: opts.password,
    applicationName: opts.applicationName ?? 'sk_test',
    options: o.length ? o.join(' ') : undefined,
    connectTimeoutMs: 5000,
    onNotice: opts.onNotice,
  });
}

/** A proposer speaking the consensus protocol, one message at a time. */
export class FakeProposer {
  private constructor(
    readonly conn: PgConnection,
    readonly stream: CopyBothStream,
  ) {}

  static async connect(port: number, tenantId: string, timelineId: string, password?: string): Promise<FakeProposer> {
    const conn = await connectReplication(port, tenantId, timelineId, { password, applicationName: 'walkeeper_proposer' });
    try {
      const stream = await conn.startCopyBoth('START_WAL_PUSH');
      return new FakeProposer(conn, stream);
    } catch (err) {
      conn.destroy();
      throw err;
    }
  }

  send(msg: ProposerMessage): void {
    this.stream.sendCopyData(encodeProposerMessage(msg));
  }

  sendRaw(payload: Buffer): void {
    this.stream.sendCopyData(payload);
  }

  async recv(timeoutMs = 5000): Promise<AcceptorMessage> {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no reply within ${timeoutMs} ms`)), timeoutMs)));
    try {
      const b = await Promise.race([this.stream.next(), t]);
      if (b === null) throw new Error('server ended the stream');
      return decodeAcceptorMessage(b);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves with the server's error (PgServerError) or rejects if none arrives in time. */
  async expectError(timeoutMs = 5000): Promise<{ code: string; message: string; severity: string }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no error from the server');
      try {
        const m = await this.recv(left);
        // replies to messages sent before the bad one are skipped
        void m;
      } catch (err) {
        const e = err as { name?: string; code?: string; message: string; severity?: string };
        if (e.name !== 'PgServerError') throw err;
        return { code: e.code!, message: e.message, severity: e.severity! };
      }
    }
  }

  greeting(tenantId: string, timelineId: string, systemId: bigint = SYSTEM_ID): ProposerMessage {
    return { tag: 'proposer_greeting', tenantId, timelineId, mconf: LEGACY_MCONF, pgVersion: PG_VERSION, systemId, walSegSize: DEFAULT_WAL_SEG_SIZE };
  }

  /** Greeting, vote and (if elected) ProposerElected; returns the vote response. */
  async elect(tenantId: string, timelineId: string, term: bigint, startStreamingAt: Lsn, historyStart: Lsn = START_LSN) {
    this.send(this.greeting(tenantId, timelineId));
    const g = await this.recv();
    if (g.tag !== 'acceptor_greeting') throw new Error(`expected an AcceptorGreeting, got ${g.tag}`);
    this.send({ tag: 'vote_request', generation: 0, term });
    const v = await this.recv();
    if (v.tag !== 'vote_response') throw new Error(`expected a VoteResponse, got ${v.tag}`);
    this.send({ tag: 'proposer_elected', generation: 0, term, startStreamingAt, termHistory: [{ term, lsn: historyStart }] });
    return v;
  }

  append(term: bigint, beginLsn: Lsn, data: Buffer, commitLsn: Lsn = beginLsn + BigInt(data.length)): void {
    this.send({ tag: 'append_request', generation: 0, term, beginLsn, endLsn: beginLsn + BigInt(data.length), commitLsn, truncateLsn: 0n, walData: data });
  }

  /** Sends `data` from `beginLsn` in maximal AppendRequests and waits until it is flushed. */
  async pushWal(term: bigint, beginLsn: Lsn, data: Buffer): Promise<AppendResponse> {
    const end = beginLsn + BigInt(data.length);
    for (let off = 0; off < data.length; off += MAX_APPEND_PAYLOAD) {
      const chunk = data.subarray(off, Math.min(data.length, off + MAX_APPEND_PAYLOAD));
      this.append(term, beginLsn + BigInt(off), chunk, end);
    }
    // a heartbeat carries the final commit LSN once everything is flushed
    for (;;) {
      const r = await this.recv();
      if (r.tag !== 'append_response') throw new Error(`expected an AppendResponse, got ${r.tag}`);
      if (r.flushLsn >= end) {
        this.append(term, end, Buffer.alloc(0), end);
        const hb = await this.recv();
        if (hb.tag !== 'append_response') throw new Error(`expected an AppendResponse, got ${hb.tag}`);
        return hb;
      }
    }
  }

  async close(): Promise<void> {
    this.conn.destroy();
  }
}

/** Valid synthetic WAL from START_LSN: `records` records of `payload` bytes. */
export function buildWal(records: number, payload = 2000): { bytes: Buffer; end: Lsn } {
  const b = new WalBuilder(START_LSN, DEFAULT_WAL_SEG_SIZE);
  for (let i = 0; i < records; i++) b.addRecord(payload);
  return { bytes: b.bytes(), end: b.position };
}

/** Reads committed WAL from `start` through START_REPLICATION until `end`. */
export async function readWal(port: number, tenantId: string, timelineId: string, start: Lsn, end: Lsn, password?: string): Promise<Buffer> {
  const conn = await connectReplication(port, tenantId, timelineId, { password });
  try {
    const stream = await conn.startCopyBoth(`START_REPLICATION PHYSICAL ${(start >> 32n).toString(16).toUpperCase()}/${(start & 0xffffffffn).toString(16).toUpperCase()}`);
    const parts: Buffer[] = [];
    let pos = start;
    const deadline = Date.now() + 10_000;
    while (pos < end) {
      if (Date.now() > deadline) throw new Error(`read only up to ${pos} of ${end}`);
      const b = await stream.next();
      if (b === null) break;
      const m = decodeSenderMessage(b);
      if (m.tag !== 'xlog_data') continue;
      parts.push(Buffer.from(m.data));
      pos = m.dataStart + BigInt(m.data.length);
    }
    return Buffer.concat(parts);
  } finally {
    conn.destroy();
  }
}

/** sha256 of every file under dir, by relative path. */
export function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const r = rel ? `${rel}/${name}` : name;
      if (statSync(p).isDirectory()) walk(p, r);
      else out[r] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir, '');
  return out;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
