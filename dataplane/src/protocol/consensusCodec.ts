// Wire codec of the proposer <-> acceptor messages (consensus/messages.ts) in the v3 layout:
// a 1-byte ASCII tag, big-endian integers, NUL-terminated hex ids. One message per CopyData.
// The same tag means different messages per direction, hence two decoders.
// (Over 400 lines: the encoder and decoder of each message sit next to each other so a field added
// to one is seen in the other.)
import type { Lsn } from '../common/lsn.js';
import { formatLsn } from '../common/lsn.js';
import type {
  AcceptorGreeting,
  AcceptorMessage,
  AppendRequest,
  AppendResponse,
  Member,
  MembershipConf,
  ProposerElected,
  ProposerGreeting,
  ProposerMessage,
  ProposerPgTimeline,
  TermHistory,
  VoteRequest,
  VoteResponse,
} from '../consensus/messages.js';
import { MAX_APPEND_PAYLOAD } from '../consensus/messages.js';
import { ProtocolError } from './errors.js';

const TAG_GREETING = 0x67; // 'g'
const TAG_VOTE = 0x76; // 'v'
const TAG_ELECTED = 0x65; // 'e'
const TAG_APPEND = 0x61; // 'a'
/** walkeeper extension: the elected proposer's PostgreSQL timeline */
const TAG_PG_TIMELINE = 0x74; // 't'
/** a history file longer than this is refused (PostgreSQL's grow by one short line per promotion) */
export const MAX_HISTORY_FILE_BYTES = 1024 * 1024;

/** header of an AppendRequest: tag, generation, term, begin, end, commit, truncate */
export const APPEND_REQUEST_HEADER_SIZE = 1 + 4 + 8 * 5;
/** the smallest encoding of one member: u64 id, empty cstring host, u16 port */
const MIN_MEMBER_SIZE = 8 + 1 + 2;
const TERM_SWITCH_SIZE = 16;
const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
const HEX_ID = /^[0-9a-f]{32}$/;

// ---------------------------------------------------------------------------------------
// Encoding

class Writer {
  private parts: Buffer[] = [];
  private cur = Buffer.allocUnsafe(256);
  private pos = 0;

  constructor(private readonly msg: string) {}

  private room(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    this.parts.push(this.cur.subarray(0, this.pos));
    this.cur = Buffer.allocUnsafe(Math.max(256, n));
    this.pos = 0;
  }

  u8(v: number): void {
    this.room(1);
    this.cur[this.pos++] = v;
  }

  u16(v: number, field: string): void {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw this.bad(field, `${v} is not a u16`);
    this.room(2);
    this.pos = this.cur.writeUInt16BE(v, this.pos);
  }

  u32(v: number, field: string): void {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw this.bad(field, `${v} is not a u32`);
    this.room(4);
    this.pos = this.cur.writeUInt32BE(v, this.pos);
  }

  u64(v: bigint, field: string): void {
    if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) throw this.bad(field, `${String(v)} is not a u64`);
    this.room(8);
    this.pos = this.cur.writeBigUInt64BE(v, this.pos);
  }

  i64(v: bigint, field: string): void {
    if (typeof v !== 'bigint' || v < I64_MIN || v > I64_MAX) throw this.bad(field, `${String(v)} is not an i64`);
    this.room(8);
    this.pos = this.cur.writeBigInt64BE(v, this.pos);
  }

  cstring(s: string, field: string): void {
    if (s.includes('\0')) throw this.bad(field, 'contains a NUL byte');
    const bytes = Buffer.from(s, 'utf8');
    this.raw(bytes);
    this.u8(0);
  }

  hexId(s: string, field: string): void {
    if (!HEX_ID.test(s)) throw this.bad(field, `${JSON.stringify(s)} is not 32 lowercase hex characters`);
    this.cstring(s, field);
  }

  raw(bytes: Uint8Array): void {
    this.parts.push(this.cur.subarray(0, this.pos));
    this.parts.push(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    this.cur = this.cur.subarray(this.pos);
    this.pos = 0;
  }

  finish(): Buffer {
    this.parts.push(this.cur.subarray(0, this.pos));
    return this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
  }

  bad(field: string, why: string): ProtocolError {
    return new ProtocolError(`cannot encode ${this.msg}: field ${field}: ${why}`);
  }
}

function writeMembers(w: Writer, members: readonly Member[], field: string): void {
  w.u32(members.length, `${field}.length`);
  members.forEach((m, i) => {
    w.u64(m.id, `${field}[${i}].id`);
    w.cstring(m.host, `${field}[${i}].host`);
    w.u16(m.pgPort, `${field}[${i}].pgPort`);
  });
}

function writeMconf(w: Writer, c: MembershipConf): void {
  w.u32(c.generation, 'mconf.generation');
  writeMembers(w, c.members, 'mconf.members');
  // an empty new-member list and "no joint configuration" share the encoding 0
  writeMembers(w, c.newMembers ?? [], 'mconf.newMembers');
}

function writeTermHistory(w: Writer, h: TermHistory): void {
  w.u32(h.length, 'termHistory.length');
  h.forEach((e, i) => {
    w.u64(e.term, `termHistory[${i}].term`);
    w.u64(e.lsn, `termHistory[${i}].lsn`);
  });
}

export function encodeProposerGreeting(m: ProposerGreeting): Buffer {
  const w = new Writer('ProposerGreeting');
  w.u8(TAG_GREETING);
  w.hexId(m.tenantId, 'tenantId');
  w.hexId(m.timelineId, 'timelineId');
  writeMconf(w, m.mconf);
  w.u32(m.pgVersion, 'pgVersion');
  w.u64(m.systemId, 'systemId');
  w.u32(m.walSegSize, 'walSegSize');
  // trailing extension: absent means "not told", and the message is the plain v3 layout
  if (m.pgTimeline !== undefined) w.u32(m.pgTimeline, 'pgTimeline');
  return w.finish();
}

export function encodeProposerPgTimeline(m: ProposerPgTimeline): Buffer {
  const w = new Writer('PgTimeline');
  w.u8(TAG_PG_TIMELINE);
  w.u32(m.generation, 'generation');
  w.u64(m.term, 'term');
  w.u32(m.tli, 'tli');
  w.u64(m.startLsn, 'startLsn');
  const file = Buffer.from(m.historyFile, 'utf8');
  if (file.length > MAX_HISTORY_FILE_BYTES) throw w.bad('historyFile', `${file.length} bytes exceed the maximum of ${MAX_HISTORY_FILE_BYTES}`);
  w.u32(file.length, 'historyFile.length');
  w.raw(file);
  return w.finish();
}

export function encodeVoteRequest(m: VoteRequest): Buffer {
  const w = new Writer('VoteRequest');
  w.u8(TAG_VOTE);
  w.u32(m.generation, 'generation');
  w.u64(m.term, 'term');
  return w.finish();
}

export function encodeProposerElected(m: ProposerElected): Buffer {
  const w = new Writer('ProposerElected');
  w.u8(TAG_ELECTED);
  w.u32(m.generation, 'generation');
  w.u64(m.term, 'term');
  w.u64(m.startStreamingAt, 'startStreamingAt');
  writeTermHistory(w, m.termHistory);
  return w.finish();
}

/** The header alone (tag ... truncateLsn); the WAL bytes follow it on the wire. */
export function encodeAppendRequestHeader(m: Omit<AppendRequest, 'walData'>, walLength: number): Buffer {
  const w = new Writer('AppendRequest');
  checkAppendBounds(m.beginLsn, m.endLsn, walLength, (field, why) => w.bad(field, why));
  w.u8(TAG_APPEND);
  w.u32(m.generation, 'generation');
  w.u64(m.term, 'term');
  w.u64(m.beginLsn, 'beginLsn');
  w.u64(m.endLsn, 'endLsn');
  w.u64(m.commitLsn, 'commitLsn');
  w.u64(m.truncateLsn, 'truncateLsn');
  return w.finish();
}

export function encodeAppendRequest(m: AppendRequest): Buffer {
  const header = encodeAppendRequestHeader(m, m.walData.length);
  const out = Buffer.allocUnsafe(header.length + m.walData.length);
  header.copy(out, 0);
  out.set(m.walData, header.length);
  return out;
}

function checkAppendBounds(begin: Lsn, end: Lsn, walLength: number, bad: (field: string, why: string) => ProtocolError): void {
  if (typeof begin !== 'bigint' || typeof end !== 'bigint') throw bad('beginLsn', 'LSNs must be bigint');
  if (end < begin) throw bad('endLsn', `endLsn ${formatLsn(end)} is before beginLsn ${formatLsn(begin)}`);
  if (end - begin > BigInt(MAX_APPEND_PAYLOAD)) {
    throw bad('walData', `${end - begin} bytes of WAL exceed the maximum of ${MAX_APPEND_PAYLOAD}`);
  }
  if (BigInt(walLength) !== end - begin) {
    throw bad('walData', `${walLength} bytes of WAL for ${formatLsn(begin)}..${formatLsn(end)} (${end - begin} expected)`);
  }
}

export function encodeAcceptorGreeting(m: AcceptorGreeting): Buffer {
  const w = new Writer('AcceptorGreeting');
  w.u8(TAG_GREETING);
  w.u64(m.nodeId, 'nodeId');
  writeMconf(w, m.mconf);
  w.u64(m.term, 'term');
  if (m.pgTimeline !== undefined) {
    w.u32(m.pgTimeline, 'pgTimeline');
    w.u64(m.pgTimelineStartLsn ?? 0n, 'pgTimelineStartLsn');
  }
  return w.finish();
}

export function encodeVoteResponse(m: VoteResponse): Buffer {
  const w = new Writer('VoteResponse');
  w.u8(TAG_VOTE);
  w.u32(m.generation, 'generation');
  w.u64(m.term, 'term');
  w.u8(m.voteGiven ? 1 : 0);
  w.u64(m.flushLsn, 'flushLsn');
  w.u64(m.truncateLsn, 'truncateLsn');
  writeTermHistory(w, m.termHistory);
  return w.finish();
}

export function encodeAppendResponse(m: AppendResponse): Buffer {
  const w = new Writer('AppendResponse');
  w.u8(TAG_APPEND);
  w.u32(m.generation, 'generation');
  w.u64(m.term, 'term');
  w.u64(m.flushLsn, 'flushLsn');
  w.u64(m.commitLsn, 'commitLsn');
  w.i64(m.hsFeedback.ts, 'hsFeedback.ts');
  w.u64(m.hsFeedback.xmin, 'hsFeedback.xmin');
  w.u64(m.hsFeedback.catalogXmin, 'hsFeedback.catalogXmin');
  return w.finish();
}

export function encodeProposerMessage(m: ProposerMessage): Buffer {
  switch (m.tag) {
    case 'proposer_greeting':
      return encodeProposerGreeting(m);
    case 'vote_request':
      return encodeVoteRequest(m);
    case 'proposer_elected':
      return encodeProposerElected(m);
    case 'append_request':
      return encodeAppendRequest(m);
    case 'pg_timeline':
      return encodeProposerPgTimeline(m);
  }
}

export function encodeAcceptorMessage(m: AcceptorMessage): Buffer {
  switch (m.tag) {
    case 'acceptor_greeting':
      return encodeAcceptorGreeting(m);
    case 'vote_response':
      return encodeVoteResponse(m);
    case 'append_response':
      return encodeAppendResponse(m);
  }
}

// ---------------------------------------------------------------------------------------
// Decoding

class Reader {
  private pos = 1; // after the tag

  constructor(
    private readonly b: Buffer,
    private readonly msg: string,
  ) {}

  get remaining(): number {
    return this.b.length - this.pos;
  }

  private need(n: number, field: string): void {
    if (this.remaining < n) {
      throw new ProtocolError(`truncated ${this.msg}: field ${field} needs ${n} bytes at offset ${this.pos}, ${this.remaining} left`);
    }
  }

  u8(field: string): number {
    this.need(1, field);
    return this.b[this.pos++];
  }

  u16(field: string): number {
    this.need(2, field);
    const v = this.b.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.b.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  u64(field: string): bigint {
    this.need(8, field);
    const v = this.b.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  i64(field: string): bigint {
    this.need(8, field);
    const v = this.b.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  cstring(field: string): string {
    const nul = this.b.indexOf(0, this.pos);
    if (nul < 0) throw new ProtocolError(`truncated ${this.msg}: field ${field} has no NUL terminator (offset ${this.pos})`);
    const s = this.b.toString('utf8', this.pos, nul);
    this.pos = nul + 1;
    return s;
  }

  hexId(field: string): string {
    const at = this.pos;
    const s = this.cstring(field);
    if (!HEX_ID.test(s)) {
      throw new ProtocolError(`invalid ${this.msg}: field ${field} at offset ${at} is not 32 lowercase hex characters: ${JSON.stringify(s.slice(0, 64))}`);
    }
    return s;
  }

  /** a count of items of at least itemSize bytes each, checked against what is left */
  count(field: string, itemSize: number): number {
    const n = this.u32(field);
    if (n * itemSize > this.remaining) {
      throw new ProtocolError(`invalid ${this.msg}: field ${field} says ${n} entries (>= ${n * itemSize} bytes) but ${this.remaining} bytes are left`);
    }
    return n;
  }

  rest(): Buffer {
    const r = this.b.subarray(this.pos);
    this.pos = this.b.length;
    return r;
  }

  end(): void {
    if (this.remaining !== 0) {
      throw new ProtocolError(`invalid ${this.msg}: ${this.remaining} bytes of trailing garbage at offset ${this.pos}`);
    }
  }

  invalid(field: string, why: string): ProtocolError {
    return new ProtocolError(`invalid ${this.msg}: field ${field}: ${why}`);
  }
}

function readMembers(r: Reader, field: string): Member[] {
  const n = r.count(`${field}.length`, MIN_MEMBER_SIZE);
  const members: Member[] = [];
  for (let i = 0; i < n; i++) {
    const id = r.u64(`${field}[${i}].id`);
    const host = r.cstring(`${field}[${i}].host`);
    const pgPort = r.u16(`${field}[${i}].pgPort`);
    members.push({ id, host, pgPort });
  }
  return members;
}

function readMconf(r: Reader): MembershipConf {
  const generation = r.u32('mconf.generation');
  const members = readMembers(r, 'mconf.members');
  const newMembers = readMembers(r, 'mconf.newMembers');
  return { generation, members, newMembers: newMembers.length === 0 ? null : newMembers };
}

function readTermHistory(r: Reader): TermHistory {
  const n = r.count('termHistory.length', TERM_SWITCH_SIZE);
  const history: TermHistory = [];
  for (let i = 0; i < n; i++) {
    const term = r.u64(`termHistory[${i}].term`);
    const lsn = r.u64(`termHistory[${i}].lsn`);
    history.push({ term, lsn });
  }
  return history;
}

function view(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

function tagName(b: Buffer): string {
  const t = b[0];
  return t >= 0x20 && t < 0x7f ? `'${String.fromCharCode(t)}'` : `0x${t.toString(16).padStart(2, '0')}`;
}

/** Decodes a message sent by a proposer (what an acceptor receives). */
export function decodeProposerMessage(buf: Uint8Array): ProposerMessage {
  const b = view(buf);
  if (b.length === 0) throw new ProtocolError('empty proposer message: no tag');
  switch (b[0]) {
    case TAG_GREETING: {
      const r = new Reader(b, 'ProposerGreeting');
      const tenantId = r.hexId('tenantId');
      const timelineId = r.hexId('timelineId');
      const mconf = readMconf(r);
      const pgVersion = r.u32('pgVersion');
      const systemId = r.u64('systemId');
      const walSegSize = r.u32('walSegSize');
      const greeting: ProposerGreeting = { tag: 'proposer_greeting', tenantId, timelineId, mconf, pgVersion, systemId, walSegSize };
      if (r.remaining > 0) greeting.pgTimeline = r.u32('pgTimeline');
      r.end();
      return greeting;
    }
    case TAG_VOTE: {
      const r = new Reader(b, 'VoteRequest');
      const generation = r.u32('generation');
      const term = r.u64('term');
      r.end();
      return { tag: 'vote_request', generation, term };
    }
    case TAG_ELECTED: {
      const r = new Reader(b, 'ProposerElected');
      const generation = r.u32('generation');
      const term = r.u64('term');
      const startStreamingAt = r.u64('startStreamingAt');
      const termHistory = readTermHistory(r);
      r.end();
      return { tag: 'proposer_elected', generation, term, startStreamingAt, termHistory };
    }
    case TAG_APPEND: {
      const r = new Reader(b, 'AppendRequest');
      const generation = r.u32('generation');
      const term = r.u64('term');
      const beginLsn = r.u64('beginLsn');
      const endLsn = r.u64('endLsn');
      const commitLsn = r.u64('commitLsn');
      const truncateLsn = r.u64('truncateLsn');
      if (endLsn < beginLsn) throw r.invalid('endLsn', `endLsn ${formatLsn(endLsn)} is before beginLsn ${formatLsn(beginLsn)}`);
      const size = endLsn - beginLsn;
      if (size > BigInt(MAX_APPEND_PAYLOAD)) {
        throw r.invalid('walData', `${formatLsn(beginLsn)}..${formatLsn(endLsn)} is ${size} bytes, more than the maximum of ${MAX_APPEND_PAYLOAD}`);
      }
      if (BigInt(r.remaining) < size) {
        throw new ProtocolError(`truncated AppendRequest: field walData needs ${size} bytes for ${formatLsn(beginLsn)}..${formatLsn(endLsn)}, ${r.remaining} present`);
      }
      if (BigInt(r.remaining) > size) {
        throw r.invalid('walData', `${r.remaining} bytes present for ${formatLsn(beginLsn)}..${formatLsn(endLsn)} (${size} expected)`);
      }
      const walData = r.rest();
      return { tag: 'append_request', generation, term, beginLsn, endLsn, commitLsn, truncateLsn, walData };
    }
    case TAG_PG_TIMELINE: {
      const r = new Reader(b, 'PgTimeline');
      const generation = r.u32('generation');
      const term = r.u64('term');
      const tli = r.u32('tli');
      if (tli === 0) throw r.invalid('tli', 'PostgreSQL timeline IDs start at 1');
      const startLsn = r.u64('startLsn');
      const length = r.u32('historyFile.length');
      if (length > MAX_HISTORY_FILE_BYTES) throw r.invalid('historyFile.length', `${length} bytes exceed the maximum of ${MAX_HISTORY_FILE_BYTES}`);
      if (length > r.remaining) throw new ProtocolError(`truncated PgTimeline: field historyFile needs ${length} bytes, ${r.remaining} left`);
      const bytes = r.rest();
      if (bytes.length !== length) throw r.invalid('historyFile', `${bytes.length - length} bytes of trailing garbage after the history file`);
      let historyFile: string;
      try {
        historyFile = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
      } catch {
        throw r.invalid('historyFile', 'is not valid UTF-8');
      }
      return { tag: 'pg_timeline', generation, term, tli, startLsn, historyFile };
    }
    default:
      throw new ProtocolError(`unknown proposer message tag ${tagName(b)}`);
  }
}

/** Decodes a message sent by an acceptor (what a proposer receives). */
export function decodeAcceptorMessage(buf: Uint8Array): AcceptorMessage {
  const b = view(buf);
  if (b.length === 0) throw new ProtocolError('empty acceptor message: no tag');
  switch (b[0]) {
    case TAG_GREETING: {
      const r = new Reader(b, 'AcceptorGreeting');
      const nodeId = r.u64('nodeId');
      const mconf = readMconf(r);
      const term = r.u64('term');
      const greeting: AcceptorGreeting = { tag: 'acceptor_greeting', nodeId, mconf, term };
      if (r.remaining > 0) {
        greeting.pgTimeline = r.u32('pgTimeline');
        greeting.pgTimelineStartLsn = r.u64('pgTimelineStartLsn');
      }
      r.end();
      return greeting;
    }
    case TAG_VOTE: {
      const r = new Reader(b, 'VoteResponse');
      const generation = r.u32('generation');
      const term = r.u64('term');
      const voteGivenByte = r.u8('voteGiven');
      if (voteGivenByte > 1) throw r.invalid('voteGiven', `must be 0 or 1, got ${voteGivenByte}`);
      const flushLsn = r.u64('flushLsn');
      const truncateLsn = r.u64('truncateLsn');
      const termHistory = readTermHistory(r);
      r.end();
      return { tag: 'vote_response', generation, term, voteGiven: voteGivenByte === 1, flushLsn, truncateLsn, termHistory };
    }
    case TAG_APPEND: {
      const r = new Reader(b, 'AppendResponse');
      const generation = r.u32('generation');
      const term = r.u64('term');
      const flushLsn = r.u64('flushLsn');
      const commitLsn = r.u64('commitLsn');
      const ts = r.i64('hsFeedback.ts');
      const xmin = r.u64('hsFeedback.xmin');
      const catalogXmin = r.u64('hsFeedback.catalogXmin');
      // an optional PageserverFeedback may follow; walkeeper does not use it
      return { tag: 'append_response', generation, term, flushLsn, commitLsn, hsFeedback: { ts, xmin, catalogXmin } };
    }
    default:
      throw new ProtocolError(`unknown acceptor message tag ${tagName(b)}`);
  }
}
