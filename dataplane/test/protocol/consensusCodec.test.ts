// The v3 consensus wire codec: exact roundtrips of every message, and refusal (ProtocolError
// only) of truncated, malformed or oversized input.
import fc from 'fast-check';
import type {
  AcceptorMessage,
  AppendRequest,
  Member,
  MembershipConf,
  ProposerMessage,
  TermHistory,
} from '../../src/consensus/messages.js';
import { MAX_APPEND_PAYLOAD } from '../../src/consensus/messages.js';
import {
  decodeAcceptorMessage,
  decodeProposerMessage,
  encodeAcceptorMessage,
  encodeAppendRequest,
  encodeAppendRequestHeader,
  encodeAppendResponse,
  encodeProposerGreeting,
  encodeProposerMessage,
  encodeVoteResponse,
} from '../../src/protocol/consensusCodec.js';
import { ProtocolError } from '../../src/protocol/errors.js';

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const i64 = fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const hexId = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b).toString('hex'));
const host = fc.string({ maxLength: 30 }).filter((s) => !s.includes('\0'));
const member: fc.Arbitrary<Member> = fc.record({ id: u64, host, pgPort: fc.integer({ min: 0, max: 0xffff }) });
const mconf: fc.Arbitrary<MembershipConf> = fc.record({
  generation: u32,
  members: fc.array(member, { maxLength: 5 }),
  newMembers: fc.option(fc.array(member, { minLength: 1, maxLength: 5 }), { nil: null }),
});
const termHistory: fc.Arbitrary<TermHistory> = fc.array(fc.record({ term: u64, lsn: u64 }), { maxLength: 8 });

const appendRequest: fc.Arbitrary<AppendRequest> = fc
  .record({
    generation: u32,
    term: u64,
    beginLsn: fc.bigInt({ min: 0n, max: (1n << 63n) }),
    commitLsn: u64,
    truncateLsn: u64,
    walData: fc.uint8Array({ maxLength: 2048 }),
  })
  .map((r) => ({ tag: 'append_request' as const, ...r, endLsn: r.beginLsn + BigInt(r.walData.length) }));

const proposerMessage: fc.Arbitrary<ProposerMessage> = fc.oneof(
  fc.record({
    tag: fc.constant('proposer_greeting' as const),
    tenantId: hexId,
    timelineId: hexId,
    mconf,
    pgVersion: u32,
    systemId: u64,
    walSegSize: u32,
    pgTimeline: u32,
  }, { requiredKeys: ['tag', 'tenantId', 'timelineId', 'mconf', 'pgVersion', 'systemId', 'walSegSize'] }),
  fc.record({ tag: fc.constant('vote_request' as const), generation: u32, term: u64 }),
  fc.record({
    tag: fc.constant('pg_timeline' as const),
    generation: u32,
    term: u64,
    tli: fc.integer({ min: 1, max: 0xffffffff }),
    startLsn: u64,
    historyFile: fc.string({ maxLength: 200, unit: 'grapheme' }),
  }),
  fc.record({ tag: fc.constant('proposer_elected' as const), generation: u32, term: u64, startStreamingAt: u64, termHistory }),
  appendRequest,
);

const acceptorMessage: fc.Arbitrary<AcceptorMessage> = fc.oneof(
  fc.record({ tag: fc.constant('acceptor_greeting' as const), nodeId: u64, mconf, term: u64 }),
  fc.record({ tag: fc.constant('acceptor_greeting' as const), nodeId: u64, mconf, term: u64, pgTimeline: u32, pgTimelineStartLsn: u64 }),
  fc.record({
    tag: fc.constant('vote_response' as const),
    generation: u32,
    term: u64,
    voteGiven: fc.boolean(),
    flushLsn: u64,
    truncateLsn: u64,
    termHistory,
  }),
  fc.record({
    tag: fc.constant('append_response' as const),
    generation: u32,
    term: u64,
    flushLsn: u64,
    commitLsn: u64,
    hsFeedback: fc.record({ ts: i64, xmin: u64, catalogXmin: u64 }),
  }),
);

/** WAL bytes as a plain Buffer so Buffer and Uint8Array compare equal */
function normalize<T extends { tag: string }>(m: T): T {
  if (m.tag === 'append_request') {
    const a = m as unknown as AppendRequest;
    return { ...a, walData: Buffer.from(a.walData) } as unknown as T;
  }
  return m;
}

function expectProtocolError(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    return err as ProtocolError;
  }
  throw new Error('expected a ProtocolError, nothing was thrown');
}

const TENANT = '0123456789abcdef0123456789abcdef';
const TIMELINE = 'fedcba9876543210fedcba9876543210';

describe('consensus codec roundtrips', () => {
  test('every proposer message decodes to itself', () => {
    fc.assert(
      fc.property(proposerMessage, (m) => {
        expect(normalize(decodeProposerMessage(encodeProposerMessage(m)))).toEqual(normalize(m));
      }),
      { numRuns: 1000 },
    );
  });

  test('every acceptor message decodes to itself', () => {
    fc.assert(
      fc.property(acceptorMessage, (m) => {
        expect(decodeAcceptorMessage(encodeAcceptorMessage(m))).toEqual(m);
      }),
      { numRuns: 1000 },
    );
  });

  test('an AppendRequest carrying the maximum payload roundtrips and its WAL is a view, not a copy', () => {
    const walData = Buffer.alloc(MAX_APPEND_PAYLOAD, 7);
    const m: AppendRequest = { tag: 'append_request', generation: 0, term: 3n, beginLsn: 0x1000000n, endLsn: 0x1000000n + BigInt(MAX_APPEND_PAYLOAD), commitLsn: 5n, truncateLsn: 4n, walData };
    const wire = encodeAppendRequest(m);
    const decoded = decodeProposerMessage(wire) as AppendRequest;
    expect(decoded.walData.length).toBe(MAX_APPEND_PAYLOAD);
    expect(decoded.walData.buffer).toBe(wire.buffer);
    expect(encodeAppendRequestHeader(m, walData.length)).toEqual(wire.subarray(0, 45));
  });

  test('the greeting has the documented byte layout', () => {
    const wire = encodeProposerGreeting({
      tag: 'proposer_greeting',
      tenantId: TENANT,
      timelineId: TIMELINE,
      mconf: { generation: 0, members: [], newMembers: null },
      pgVersion: 150004,
      systemId: 7712009180769680781n,
      walSegSize: 16 * 1024 * 1024,
    });
    const expected = Buffer.concat([
      Buffer.from('g'),
      Buffer.from(TENANT + '\0'),
      Buffer.from(TIMELINE + '\0'),
      Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), // generation, members_len, new_members_len
      Buffer.from([0x00, 0x02, 0x49, 0xf4]), // 150004
      Buffer.from('6b068f7d6c53fd8d', 'hex'),
      Buffer.from([0x01, 0x00, 0x00, 0x00]),
    ]);
    expect(wire).toEqual(expected);
  });

  test('an AppendResponse followed by pageserver feedback bytes decodes, ignoring them', () => {
    const m = { tag: 'append_response' as const, generation: 1, term: 2n, flushLsn: 3n, commitLsn: 4n, hsFeedback: { ts: -5n, xmin: 6n, catalogXmin: 7n } };
    const wire = Buffer.concat([encodeAppendResponse(m), Buffer.from([1, 0x61, 0, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8])]);
    expect(decodeAcceptorMessage(wire)).toEqual(m);
  });
});

describe('consensus codec refuses bad input', () => {
  test('every truncation of every message is refused with a ProtocolError', () => {
    fc.assert(
      fc.property(fc.oneof(proposerMessage.map((m) => ['p', encodeProposerMessage(m), m] as const), acceptorMessage.map((m) => ['a', encodeAcceptorMessage(m), m] as const)), ([dir, wire, m]) => {
        // AppendResponse may be followed by optional bytes, so only its fixed part can be cut;
        // a greeting cut right before its timeline extension is the plain v3 greeting
        const v3Length =
          m.tag === 'proposer_greeting' && m.pgTimeline !== undefined ? wire.length - 4 : m.tag === 'acceptor_greeting' && m.pgTimeline !== undefined ? wire.length - 12 : -1;
        for (let len = 0; len < wire.length; len++) {
          if (len === v3Length) continue;
          const cut = wire.subarray(0, len);
          const decode = dir === 'p' ? decodeProposerMessage : decodeAcceptorMessage;
          expectProtocolError(() => decode(cut));
        }
      }),
      { numRuns: 300 },
    );
  });

  test('random bytes never raise anything but ProtocolError', () => {
    fc.assert(
      fc.property(fc.constantFrom(0x67, 0x76, 0x65, 0x61, 0x74, 0x00, 0x7a), fc.uint8Array({ maxLength: 200 }), (tag, rest) => {
        const wire = Buffer.concat([Buffer.from([tag]), rest]);
        for (const decode of [decodeProposerMessage, decodeAcceptorMessage]) {
          try {
            decode(wire);
          } catch (err) {
            expect(err).toBeInstanceOf(ProtocolError);
          }
        }
      }),
      { numRuns: 3000 },
    );
  });

  test('an unknown tag is named in the error', () => {
    expect(expectProtocolError(() => decodeProposerMessage(Buffer.from('z'))).message).toMatch(/unknown proposer message tag 'z'/);
    expect(expectProtocolError(() => decodeAcceptorMessage(Buffer.from('e'))).message).toMatch(/unknown acceptor message tag 'e'/);
    expect(expectProtocolError(() => decodeAcceptorMessage(Buffer.alloc(0))).message).toMatch(/empty/);
  });

  test('tenant ids that are not 32 lowercase hex characters are refused, naming the field', () => {
    const good = encodeProposerGreeting({ tag: 'proposer_greeting', tenantId: TENANT, timelineId: TIMELINE, mconf: { generation: 0, members: [], newMembers: null }, pgVersion: 1, systemId: 0n, walSegSize: 1 });
    const upper = Buffer.from(good);
    upper.write(TENANT.toUpperCase(), 1);
    expect(expectProtocolError(() => decodeProposerMessage(upper)).message).toMatch(/ProposerGreeting.*tenantId/);
    const short = Buffer.concat([Buffer.from('g'), Buffer.from('abc\0'), good.subarray(34)]);
    expect(expectProtocolError(() => decodeProposerMessage(short)).message).toMatch(/tenantId/);
    expect(() => encodeProposerGreeting({ tag: 'proposer_greeting', tenantId: 'XYZ', timelineId: TIMELINE, mconf: { generation: 0, members: [], newMembers: null }, pgVersion: 1, systemId: 0n, walSegSize: 1 })).toThrow(/tenantId/);
  });

  test('a member count larger than the remaining bytes is refused before anything is allocated', () => {
    const wire = Buffer.concat([Buffer.from('g'), Buffer.alloc(8), Buffer.from([0, 0, 0, 0]), Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.alloc(20)]);
    expect(expectProtocolError(() => decodeAcceptorMessage(wire)).message).toMatch(/AcceptorGreeting.*mconf\.members\.length.*4294967295/);
  });

  test('a term history count larger than the remaining bytes is refused', () => {
    const vote = encodeVoteResponse({ tag: 'vote_response', generation: 0, term: 1n, voteGiven: true, flushLsn: 2n, truncateLsn: 1n, termHistory: [{ term: 1n, lsn: 0n }] });
    vote.writeUInt32BE(0x10000000, 1 + 4 + 8 + 1 + 8 + 8);
    expect(expectProtocolError(() => decodeAcceptorMessage(vote)).message).toMatch(/VoteResponse.*termHistory\.length/);
  });

  test('trailing garbage after a fixed message is refused', () => {
    const wire = Buffer.concat([encodeProposerMessage({ tag: 'vote_request', generation: 0, term: 9n }), Buffer.from([0])]);
    expect(expectProtocolError(() => decodeProposerMessage(wire)).message).toMatch(/VoteRequest.*trailing garbage/);
  });

  test('greetings without the timeline extension are the plain v3 layout; with it, a trailing u32 (and u64)', () => {
    const base = { tag: 'proposer_greeting' as const, tenantId: TENANT, timelineId: TIMELINE, mconf: { generation: 0, members: [], newMembers: null }, pgVersion: 1, systemId: 0n, walSegSize: 1 };
    const v3 = encodeProposerGreeting(base);
    const ext = encodeProposerGreeting({ ...base, pgTimeline: 2 });
    expect(ext.subarray(0, v3.length)).toEqual(v3);
    expect(ext.subarray(v3.length)).toEqual(Buffer.from([0, 0, 0, 2]));
    expect(decodeProposerMessage(v3)).not.toHaveProperty('pgTimeline');
    expect(expectProtocolError(() => decodeProposerMessage(Buffer.concat([ext, Buffer.from([1])]))).message).toMatch(/ProposerGreeting.*trailing garbage/);
  });

  test('PgTimeline: timeline 0, an oversized or short history file, invalid UTF-8 and trailing bytes are refused, naming the field', () => {
    const good = encodeProposerMessage({ tag: 'pg_timeline', generation: 0, term: 3n, tli: 2, startLsn: 0x2000n, historyFile: '1\t0/2000\tx\n' });
    const tli0 = Buffer.from(good);
    tli0.writeUInt32BE(0, 13);
    expect(expectProtocolError(() => decodeProposerMessage(tli0)).message).toMatch(/PgTimeline.*tli.*start at 1/);
    const huge = Buffer.from(good);
    huge.writeUInt32BE(0x7fffffff, 25);
    expect(expectProtocolError(() => decodeProposerMessage(huge)).message).toMatch(/historyFile\.length.*exceed/);
    const long = Buffer.from(good);
    long.writeUInt32BE(1000, 25);
    expect(expectProtocolError(() => decodeProposerMessage(long)).message).toMatch(/truncated PgTimeline.*historyFile/);
    const extra = Buffer.concat([good, Buffer.from('z')]);
    expect(expectProtocolError(() => decodeProposerMessage(extra)).message).toMatch(/trailing garbage/);
    const badUtf8 = Buffer.from(good);
    badUtf8[29] = 0xff;
    expect(expectProtocolError(() => decodeProposerMessage(badUtf8)).message).toMatch(/historyFile: is not valid UTF-8/);
  });

  test('vote_given other than 0 or 1 is refused', () => {
    const vote = encodeVoteResponse({ tag: 'vote_response', generation: 0, term: 1n, voteGiven: true, flushLsn: 2n, truncateLsn: 1n, termHistory: [] });
    vote[13] = 2;
    expect(expectProtocolError(() => decodeAcceptorMessage(vote)).message).toMatch(/voteGiven/);
  });

  test('AppendRequest: end before begin, oversized payload, missing or extra WAL bytes are refused', () => {
    const base: AppendRequest = { tag: 'append_request', generation: 0, term: 1n, beginLsn: 100n, endLsn: 104n, commitLsn: 0n, truncateLsn: 0n, walData: Buffer.from([1, 2, 3, 4]) };
    const wire = encodeAppendRequest(base);
    const backwards = Buffer.from(wire);
    backwards.writeBigUInt64BE(99n, 21);
    expect(expectProtocolError(() => decodeProposerMessage(backwards)).message).toMatch(/AppendRequest.*endLsn.*before beginLsn/);
    const huge = Buffer.from(wire);
    huge.writeBigUInt64BE(100n + BigInt(MAX_APPEND_PAYLOAD) + 1n, 21);
    expect(expectProtocolError(() => decodeProposerMessage(huge)).message).toMatch(/AppendRequest.*walData.*maximum/);
    expect(expectProtocolError(() => decodeProposerMessage(wire.subarray(0, wire.length - 1))).message).toMatch(/truncated AppendRequest.*walData/);
    expect(expectProtocolError(() => decodeProposerMessage(Buffer.concat([wire, Buffer.from([0])]))).message).toMatch(/AppendRequest.*walData/);
    expect(() => encodeAppendRequest({ ...base, endLsn: 105n })).toThrow(ProtocolError);
    expect(() => encodeAppendRequest({ ...base, endLsn: 100n + BigInt(MAX_APPEND_PAYLOAD) + 1n, walData: Buffer.alloc(MAX_APPEND_PAYLOAD + 1) })).toThrow(/maximum/);
  });

  test('out-of-range numbers are refused at encoding, naming the field', () => {
    expect(() => encodeProposerMessage({ tag: 'vote_request', generation: -1, term: 1n })).toThrow(/VoteRequest.*generation/);
    expect(() => encodeProposerMessage({ tag: 'vote_request', generation: 0, term: 1n << 64n })).toThrow(/VoteRequest.*term/);
  });
});
