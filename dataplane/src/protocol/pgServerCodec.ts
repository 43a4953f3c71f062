// Server side of the PostgreSQL v3 frontend/backend protocol: an incremental decoder of what
// clients send (fed arbitrary chunks) and encoders of what a backend answers.
// Only the messages a WAL service needs are understood: startup, simple query, COPY, password.
// (Over 400 lines: one decoder state machine and the encoders of the same messages, read side by
// side against the protocol's message formats.)
import { ProtocolError, SqlState } from './errors.js';

export { ProtocolError, SqlState } from './errors.js';

export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;
/** protocol 3.0 */
export const PROTOCOL_V3 = 196608;
/** same limit as the real server (MAX_STARTUP_PACKET_LENGTH) */
export const MAX_STARTUP_PACKET_LENGTH = 10000;
/** 1 MiB + 64: room for an AppendRequest with 128 KiB of WAL and then some */
export const DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024 + 64;

export type FrontendMessage =
  | { type: 'ssl_request' }
  | { type: 'gssenc_request' }
  | { type: 'cancel_request'; processId: number; secretKey: number }
  | { type: 'startup'; protocolVersion: number; params: Record<string, string> }
  | { type: 'query'; text: string }
  /** `data` is a view into the pushed chunk when the message arrived in one piece (no copy) */
  | { type: 'copy_data'; data: Buffer }
  | { type: 'copy_done' }
  | { type: 'copy_fail'; message: string }
  | { type: 'terminate' }
  /** PasswordMessage (also carries SASL responses): `password` is the text up to the first NUL */
  | { type: 'password'; password: string; body: Buffer };

export type DecoderPhase = 'startup' | 'normal' | 'closed';

export interface FrontendDecoderOptions {
  /** largest typed message accepted, counting the type byte and length (default 1 MiB + 64) */
  maxMessageSize?: number;
}

/**
 * Incremental decoder of frontend messages. `push` any chunk; it returns every message
 * completed so far. The length field is checked before any body is buffered, so a huge
 * length is refused at once. After a ProtocolError the decoder refuses further input.
 */
export class FrontendDecoder {
  readonly maxMessageSize: number;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private currentPhase: DecoderPhase = 'startup';
  private sslSeen = false;
  private gssSeen = false;
  private failed: ProtocolError | null = null;

  constructor(options: FrontendDecoderOptions = {}) {
    const max = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    if (!Number.isInteger(max) || max < 5 || max > 0x7fffffff) {
      throw new RangeError(`maxMessageSize must be an integer in [5, 2^31-1], got ${max}`);
    }
    this.maxMessageSize = max;
  }

  /** 'startup' until a StartupMessage, 'normal' after it, 'closed' after Terminate or CancelRequest */
  get phase(): DecoderPhase {
    return this.currentPhase;
  }

  /** bytes received but not yet part of a complete message */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): FrontendMessage[] {
    if (this.failed) throw this.failed;
    if (chunk.length > 0) {
      this.chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
      this.buffered += chunk.length;
    }
    const out: FrontendMessage[] = [];
    try {
      for (;;) {
        const msg = this.currentPhase === 'startup' ? this.nextStartup() : this.nextTyped();
        if (!msg) break;
        out.push(msg);
      }
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.failed = err;
        this.chunks = [];
        this.buffered = 0;
      }
      throw err;
    }
    return out;
  }

  private nextStartup(): FrontendMessage | null {
    if (this.buffered < 4) return null;
    const len = this.peekInt32(0);
    if (len < 8) throw new ProtocolError(`invalid length of startup packet: ${len} (at least 8 bytes)`);
    if (len > MAX_STARTUP_PACKET_LENGTH) {
      throw new ProtocolError(`invalid length of startup packet: ${len} (at most ${MAX_STARTUP_PACKET_LENGTH} bytes)`);
    }
    if (this.buffered < len) return null;
    const packet = this.take(len);
    const code = packet.readInt32BE(4);
    switch (code) {
      case SSL_REQUEST_CODE:
      case GSSENC_REQUEST_CODE: {
        const name = code === SSL_REQUEST_CODE ? 'SSLRequest' : 'GSSENCRequest';
        if (len !== 8) throw new ProtocolError(`invalid length of ${name}: ${len} (expected 8)`);
        if (code === SSL_REQUEST_CODE) {
          if (this.sslSeen) throw new ProtocolError('received a second SSLRequest');
          this.sslSeen = true;
          return { type: 'ssl_request' };
        }
        if (this.gssSeen) throw new ProtocolError('received a second GSSENCRequest');
        this.gssSeen = true;
        return { type: 'gssenc_request' };
      }
      case CANCEL_REQUEST_CODE:
        if (len !== 16) throw new ProtocolError(`invalid length of CancelRequest: ${len} (expected 16)`);
        this.currentPhase = 'closed';
        return { type: 'cancel_request', processId: packet.readInt32BE(8), secretKey: packet.readInt32BE(12) };
      case PROTOCOL_V3: {
        const params = parseStartupParams(packet.subarray(8));
        this.currentPhase = 'normal';
        return { type: 'startup', protocolVersion: code, params };
      }
      default: {
        const major = code >>> 16;
        const minor = code & 0xffff;
        if (major === 3) {
          // 3.x with x > 0: the real server would negotiate down; we only speak 3.0.
          throw new ProtocolError(`unsupported frontend protocol ${major}.${minor}: server supports 3.0 only`, SqlState.featureNotSupported);
        }
        throw new ProtocolError(`unsupported frontend protocol ${major}.${minor} (code ${code}): server supports 3.0 only`, SqlState.featureNotSupported);
      }
    }
  }

  private nextTyped(): FrontendMessage | null {
    if (this.currentPhase === 'closed') {
      if (this.buffered > 0) throw new ProtocolError('data received after Terminate or CancelRequest');
      return null;
    }
    if (this.buffered < 5) return null;
    const head = this.peek(5);
    const type = head[0];
    const len = head.readInt32BE(1);
    const typeName = describeType(type);
    if (!KNOWN_TYPES.has(type)) throw new ProtocolError(`invalid frontend message type ${typeName}`);
    if (len < 4) throw new ProtocolError(`invalid message length ${len} for message ${typeName} (at least 4)`);
    if (len + 1 > this.maxMessageSize) {
      throw new ProtocolError(`message ${typeName} of ${len + 1} bytes exceeds the limit of ${this.maxMessageSize} bytes`);
    }
    if (this.buffered < len + 1) return null;
    const whole = this.take(len + 1);
    const body = whole.subarray(5);
    switch (type) {
      case 0x51: // 'Q'
        return { type: 'query', text: oneCString(body, 'Query') };
      case 0x64: // 'd'
        return { type: 'copy_data', data: body };
      case 0x63: // 'c'
        expectEmpty(body, 'CopyDone');
        return { type: 'copy_done' };
      case 0x66: // 'f'
        return { type: 'copy_fail', message: oneCString(body, 'CopyFail') };
      case 0x58: // 'X'
        expectEmpty(body, 'Terminate');
        this.currentPhase = 'closed';
        return { type: 'terminate' };
      case 0x70: {
        // 'p'
        const nul = body.indexOf(0);
        if (nul < 0) throw new ProtocolError('invalid PasswordMessage: missing NUL terminator');
        return { type: 'password', password: body.toString('utf8', 0, nul), body };
      }
      default:
        throw new ProtocolError(`invalid frontend message type ${typeName}`);
    }
  }

  private peekInt32(offset: number): number {
    return this.peek(offset + 4).readInt32BE(offset);
  }

  /** the first n buffered bytes without consuming them (n <= buffered, n small) */
  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first.length >= n) return first;
    const parts: Buffer[] = [];
    let got = 0;
    for (const c of this.chunks) {
      parts.push(c);
      got += c.length;
      if (got >= n) break;
    }
    const merged = Buffer.concat(parts, got);
    // keep the merge so repeated peeks of a header split into tiny chunks stay cheap
    this.chunks.splice(0, parts.length, merged);
    return merged;
  }

  /** consume exactly n buffered bytes (n <= buffered); a view when they lie in one chunk */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const c = this.chunks[0];
      const want = n - got;
      if (c.length <= want) {
        c.copy(out, got);
        got += c.length;
        this.chunks.shift();
      } else {
        c.copy(out, got, 0, want);
        got += want;
        this.chunks[0] = c.subarray(want);
      }
    }
    this.buffered -= n;
    return out;
  }
}

const KNOWN_TYPES = new Set([0x51, 0x64, 0x63, 0x66, 0x58, 0x70]);

function describeType(type: number): string {
  return type >= 0x20 && type < 0x7f ? `'${String.fromCharCode(type)}'` : `0x${type.toString(16).padStart(2, '0')}`;
}

function expectEmpty(body: Buffer, name: string): void {
  if (body.length !== 0) throw new ProtocolError(`invalid ${name} message: expected an empty body, got ${body.length} bytes`);
}

/** A body that is exactly one NUL-terminated string. */
function oneCString(body: Buffer, name: string): string {
  const nul = body.indexOf(0);
  if (nul < 0) throw new ProtocolError(`invalid ${name} message: missing NUL terminator`);
  if (nul !== body.length - 1) throw new ProtocolError(`invalid ${name} message: ${body.length - nul - 1} bytes after the NUL terminator`);
  return body.toString('utf8', 0, nul);
}

function parseStartupParams(body: Buffer): Record<string, string> {
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  let pos = 0;
  for (;;) {
    if (pos >= body.length) throw new ProtocolError('invalid startup packet layout: expected terminator as last byte');
    if (body[pos] === 0) {
      if (pos !== body.length - 1) throw new ProtocolError('invalid startup packet layout: data after the terminator');
      break;
    }
    const keyEnd = body.indexOf(0, pos);
    if (keyEnd < 0) throw new ProtocolError('invalid startup packet layout: parameter name without NUL terminator');
    const key = body.toString('utf8', pos, keyEnd);
    const valEnd = body.indexOf(0, keyEnd + 1);
    if (valEnd < 0) throw new ProtocolError(`invalid startup packet layout: value of parameter "${key}" without NUL terminator`);
    params[key] = body.toString('utf8', keyEnd + 1, valEnd);
    pos = valEnd + 1;
  }
  return params;
}

// ---------------------------------------------------------------------------------------
// Backend encoders

/** A typed backend message: type byte, int32 length (incl. itself), body. */
function message(type: string, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function cstr(s: string): Buffer {
  if (s.includes('\0')) throw new ProtocolError(`string to send contains a NUL byte: ${JSON.stringify(s.slice(0, 40))}`, SqlState.internalError);
  return Buffer.from(s + '\0', 'utf8');
}

function int32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(v);
  return b;
}

function int16(v: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeInt16BE(v);
  return b;
}

/** The single-byte answer refusing SSL or GSS encryption. */
export function encodeEncryptionRefused(): Buffer {
  return Buffer.from('N');
}

export function encodeAuthenticationOk(): Buffer {
  return message('R', int32(0));
}

export function encodeAuthenticationCleartextPassword(): Buffer {
  return message('R', int32(3));
}

export function encodeParameterStatus(name: string, value: string): Buffer {
  return message('S', Buffer.concat([cstr(name), cstr(value)]));
}

export function encodeBackendKeyData(processId: number, secretKey: number): Buffer {
  return message('K', Buffer.concat([int32(processId), int32(secretKey)]));
}

export type TransactionStatus = 'I' | 'T' | 'E';

export function encodeReadyForQuery(status: TransactionStatus = 'I'): Buffer {
  return message('Z', Buffer.from(status));
}

/** Type OIDs used by replication commands. */
export const PgType = { int8: 20, int4: 23, text: 25 } as const;

export interface FieldDescription {
  name: string;
  typeOid: number;
  /** 8 for int8, 4 for int4, -1 for varlena types such as text */
  typeLen: number;
}

export function encodeRowDescription(fields: readonly FieldDescription[]): Buffer {
  const parts: Buffer[] = [int16(fields.length)];
  for (const f of fields) {
    const fixed = Buffer.allocUnsafe(18);
    fixed.writeInt32BE(0, 0); // table oid
    fixed.writeInt16BE(0, 4); // column attribute number
    fixed.writeInt32BE(f.typeOid, 6);
    fixed.writeInt16BE(f.typeLen, 10);
    fixed.writeInt32BE(-1, 12); // type modifier
    fixed.writeInt16BE(0, 16); // text format
    parts.push(cstr(f.name), fixed);
  }
  return message('T', Buffer.concat(parts));
}

export function encodeDataRow(values: readonly (string | null)[]): Buffer {
  const parts: Buffer[] = [int16(values.length)];
  for (const v of values) {
    if (v === null) {
      parts.push(int32(-1));
    } else {
      const bytes = Buffer.from(v, 'utf8');
      parts.push(int32(bytes.length), bytes);
    }
  }
  return message('D', Buffer.concat(parts));
}

export function encodeCommandComplete(tag: string): Buffer {
  return message('C', cstr(tag));
}

export function encodeEmptyQueryResponse(): Buffer {
  return message('I', Buffer.alloc(0));
}

export type Severity = 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG';

export interface ErrorFields {
  severity: Severity;
  /** SQLSTATE, five characters */
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

function noticeBody(f: ErrorFields): Buffer {
  if (!/^[0-9A-Z]{5}$/.test(f.code)) throw new ProtocolError(`invalid SQLSTATE "${f.code}" to send`, SqlState.internalError);
  const parts: Buffer[] = [];
  const field = (tag: string, value: string) => parts.push(Buffer.from(tag), cstr(value));
  field('S', f.severity);
  field('V', f.severity);
  field('C', f.code);
  field('M', f.message.replace(/\0/g, ''));
  if (f.detail !== undefined) field('D', f.detail.replace(/\0/g, ''));
  if (f.hint !== undefined) field('H', f.hint.replace(/\0/g, ''));
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

export function encodeErrorResponse(f: ErrorFields): Buffer {
  return message('E', noticeBody(f));
}

export function encodeNoticeResponse(f: ErrorFields): Buffer {
  return message('N', noticeBody(f));
}

/** As the real walsender: overall format 0 (text), 0 columns. */
export function encodeCopyBothResponse(): Buffer {
  return message('W', Buffer.from([0, 0, 0]));
}

export function encodeCopyData(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + payload.length);
  out[0] = 0x64;
  out.writeInt32BE(4 + payload.length, 1);
  out.set(payload, 5);
  return out;
}

/** The 5-byte header of a CopyData message, for writing a large payload without copying it. */
export function encodeCopyDataHeader(payloadLength: number): Buffer {
  const out = Buffer.allocUnsafe(5);
  out[0] = 0x64;
  out.writeInt32BE(4 + payloadLength, 1);
  return out;
}

export function encodeCopyDone(): Buffer {
  return message('c', Buffer.alloc(0));
}
