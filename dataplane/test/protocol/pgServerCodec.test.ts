// Server-side PostgreSQL protocol codec: frontend messages decoded from any chunking, limits
// enforced with ProtocolError, fuzzed input never raising anything else; backend messages as a
// real client library (pg-protocol) reads them.
import fc from 'fast-check';
import { serialize } from 'pg-protocol';
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import { Parser } from 'pg-protocol/dist/parser.js';
import {
  DEFAULT_MAX_MESSAGE_SIZE,
  FrontendDecoder,
  type FrontendMessage,
  PgType,
  ProtocolError,
  encodeAuthenticationCleartextPassword,
  encodeAuthenticationOk,
  encodeBackendKeyData,
  encodeCommandComplete,
  encodeCopyBothResponse,
  encodeCopyData,
  encodeCopyDone,
  encodeDataRow,
  encodeEmptyQueryResponse,
  encodeEncryptionRefused,
  encodeErrorResponse,
  encodeNoticeResponse,
  encodeParameterStatus,
  encodeReadyForQuery,
  encodeRowDescription,
} from '../../src/protocol/pgServerCodec.js';

/** A v3 StartupMessage with exactly these parameters (pg-protocol's adds client_encoding). */
function startup(params: Record<string, string>): Buffer {
  const body = Buffer.concat([...Object.entries(params).map(([k, v]) => Buffer.from(`${k}\0${v}\0`)), Buffer.from([0])]);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(196608, 4);
  return Buffer.concat([head, body]);
}

function int32Packet(...values: number[]): Buffer {
  const b = Buffer.alloc(4 + values.length * 4);
  b.writeInt32BE(b.length, 0);
  values.forEach((v, i) => b.writeInt32BE(v, 4 + i * 4));
  return b;
}

function typed(type: string, body: Buffer): Buffer {
  const b = Buffer.alloc(5 + body.length);
  b.write(type, 0, 'latin1');
  b.writeInt32BE(4 + body.length, 1);
  body.copy(b, 5);
  return b;
}

/** Feeds `bytes` split at the given cut points and collects the decoded messages. */
function decodeChunked(decoder: FrontendDecoder, bytes: Buffer, cuts: number[]): FrontendMessage[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: FrontendMessage[] = [];
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    out.push(...decoder.push(bytes.subarray(prev, p)));
    prev = p;
  }
  return out;
}

function expectProtocolError(fn: () => unknown, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ProtocolError);
  expect((caught as ProtocolError).message).toMatch(pattern);
  expect((caught as ProtocolError).code).toMatch(/^[0-9A-Z]{5}$/);
}

describe('frontend decoder: what stock clients send', () => {
  const pgReceivewalStart = Buffer.concat([
    int32Packet(80877103),
    startup({ user: 'postgres', database: 'replication', replication: 'true', application_name: 'recv' }),
    serialize.query('SHOW data_directory_mode'),
    serialize.query('START_REPLICATION SLOT "slot1" 0/12000000 TIMELINE 1'),
    serialize.copyData(Buffer.from('r-status-update')),
    serialize.copyDone(),
    serialize.end(),
  ]);
  const expected: FrontendMessage[] = [
    { type: 'ssl_request' },
    { type: 'startup', protocolVersion: 196608, params: Object.assign(Object.create(null), { user: 'postgres', database: 'replication', replication: 'true', application_name: 'recv' }) },
    { type: 'query', text: 'SHOW data_directory_mode' },
    { type: 'query', text: 'START_REPLICATION SLOT "slot1" 0/12000000 TIMELINE 1' },
    { type: 'copy_data', data: Buffer.from('r-status-update') },
    { type: 'copy_done' },
    { type: 'terminate' },
  ];

  test('a whole session in one chunk decodes to every message in order', () => {
    const d = new FrontendDecoder();
    expect(d.push(pgReceivewalStart)).toEqual(expected);
    expect(d.phase).toBe('closed');
  });

  test('the same session split at any bytes decodes the same', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 40 }), (cuts) => {
        expect(decodeChunked(new FrontendDecoder(), pgReceivewalStart, cuts)).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });

  test('one byte at a time decodes the same', () => {
    const d = new FrontendDecoder();
    const out: FrontendMessage[] = [];
    for (const byte of pgReceivewalStart) out.push(...d.push(Buffer.from([byte])));
    expect(out).toEqual(expected);
  });

  test('GSSENCRequest, CancelRequest, password and CopyFail', () => {
    const d = new FrontendDecoder();
    expect(d.push(int32Packet(80877104))).toEqual([{ type: 'gssenc_request' }]);
    expect(d.push(startup({ user: 'u' }))).toMatchObject([{ type: 'startup' }]);
    expect(d.push(serialize.password('eyJhbGciOi.jwt'))).toMatchObject([{ type: 'password', password: 'eyJhbGciOi.jwt' }]);
    expect(d.push(serialize.copyFail('client gave up'))).toEqual([{ type: 'copy_fail', message: 'client gave up' }]);
    const c = new FrontendDecoder();
    expect(c.push(serialize.cancel(1234, 5678))).toEqual([{ type: 'cancel_request', processId: 1234, secretKey: 5678 }]);
    expect(c.phase).toBe('closed');
  });

  test('an AppendRequest-sized CopyData (128 KiB of WAL) fits the default limit', () => {
    const d = new FrontendDecoder();
    d.push(startup({ user: 'u' }));
    const payload = Buffer.alloc(45 + 128 * 1024, 1);
    const [m] = d.push(serialize.copyData(payload));
    expect(m).toEqual({ type: 'copy_data', data: payload });
    expect(DEFAULT_MAX_MESSAGE_SIZE).toBe(1024 * 1024 + 64);
  });
});

describe('frontend decoder: limits and malformed input', () => {
  const started = () => {
    const d = new FrontendDecoder({ maxMessageSize: 1000 });
    d.push(startup({ user: 'u' }));
    return d;
  };

  test('a startup packet over 10000 bytes is refused from its length alone', () => {
    const head = Buffer.alloc(4);
    head.writeInt32BE(10001);
    expectProtocolError(() => new FrontendDecoder().push(head), /invalid length of startup packet: 10001/);
  });

  test('a startup length below 8 is refused', () => {
    expectProtocolError(() => new FrontendDecoder().push(Buffer.from([0, 0, 0, 3])), /invalid length of startup packet: 3/);
  });

  test('an unsupported protocol version is refused, naming it', () => {
    expectProtocolError(() => new FrontendDecoder().push(int32Packet(0x00020000, 0)), /unsupported frontend protocol 2\.0/);
    expectProtocolError(() => new FrontendDecoder().push(int32Packet(0x00030002, 0)), /unsupported frontend protocol 3\.2/);
  });

  test('startup parameters without NUL terminators are refused', () => {
    const p = Buffer.concat([int32Packet(196608), Buffer.from('user\0u')]);
    p.writeInt32BE(p.length, 0);
    expectProtocolError(() => new FrontendDecoder().push(p), /value of parameter "user" without NUL terminator/);
    const q = Buffer.concat([int32Packet(196608), Buffer.from('user\0u\0')]);
    q.writeInt32BE(q.length, 0);
    expectProtocolError(() => new FrontendDecoder().push(q), /expected terminator as last byte/);
  });

  test('a message over the configured maximum is refused as soon as its header arrives', () => {
    const d = started();
    expectProtocolError(() => d.push(Buffer.from([0x64, 0x7f, 0xff, 0xff, 0xff])), /'d' of 2147483648 bytes exceeds the limit of 1000 bytes/);
    // poisoned afterwards
    expectProtocolError(() => d.push(serialize.query('x')), /exceeds the limit/);
  });

  test('a typed length below 4 and an unknown type are refused', () => {
    expectProtocolError(() => started().push(Buffer.from([0x51, 0, 0, 0, 3])), /invalid message length 3 for message 'Q'/);
    expectProtocolError(() => started().push(typed('P', Buffer.from('\0x\0\0\0'))), /invalid frontend message type 'P'/);
    expectProtocolError(() => started().push(Buffer.from([0x00, 0, 0, 0, 4])), /invalid frontend message type 0x00/);
  });

  test('a Query without NUL terminator, or with bytes after it, is refused', () => {
    expectProtocolError(() => started().push(typed('Q', Buffer.from('SELECT 1'))), /Query.*missing NUL/);
    expectProtocolError(() => started().push(typed('Q', Buffer.from('SELECT 1\0x'))), /Query.*after the NUL/);
  });

  test('CopyDone and Terminate with a body are refused; bytes after Terminate are refused', () => {
    expectProtocolError(() => started().push(typed('c', Buffer.from('x'))), /CopyDone.*empty body/);
    expectProtocolError(() => started().push(Buffer.concat([serialize.end(), Buffer.from('Q')])), /after Terminate/);
  });

  test('a second SSLRequest is refused', () => {
    expectProtocolError(() => new FrontendDecoder().push(Buffer.concat([int32Packet(80877103), int32Packet(80877103)])), /second SSLRequest/);
  });
});

describe('frontend decoder fuzzing', () => {
  const validMessage = fc.oneof(
    fc.string({ maxLength: 50 }).map((s) => serialize.query(s.replace(/\0/g, ''))),
    fc.uint8Array({ maxLength: 100 }).map((b) => serialize.copyData(Buffer.from(b))),
    fc.constant(serialize.copyDone()),
    fc.string({ maxLength: 20 }).map((s) => serialize.copyFail(s.replace(/\0/g, ''))),
    fc.string({ maxLength: 20 }).map((s) => serialize.password(s.replace(/\0/g, ''))),
    fc.constant(serialize.end()),
  );
  const validStream = fc
    .tuple(fc.boolean(), fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }).filter((s) => !s.includes('\0')), fc.string({ maxLength: 8 }).filter((s) => !s.includes('\0')), { maxKeys: 4 }), fc.array(validMessage, { maxLength: 6 }))
    .map(([ssl, params, msgs]) => Buffer.concat([ssl ? int32Packet(80877103) : Buffer.alloc(0), startup(params), ...msgs]));
  const mutated = fc.tuple(validStream, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 })).map(([b, muts]) => {
    const c = Buffer.from(b);
    for (const [at, v] of muts) if (c.length > 0) c[at % c.length] = v;
    return c;
  });
  const randomBytes = fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b));
  // random bytes after a valid startup exercise the typed phase
  const typedRandom = fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.concat([startup({ user: 'u' }), Buffer.from(b)]));

  test('20,000+ random inputs in random chunks never raise anything but ProtocolError and never buffer past the limit', () => {
    const maxMessageSize = 256;
    const started = Date.now();
    let runs = 0;
    fc.assert(
      fc.property(fc.oneof(randomBytes, typedRandom, mutated, validStream), fc.array(fc.nat(), { maxLength: 12 }), (bytes, cuts) => {
        runs++;
        const d = new FrontendDecoder({ maxMessageSize });
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        let prev = 0;
        try {
          for (const p of [...points, bytes.length]) {
            d.push(bytes.subarray(prev, p));
            prev = p;
            // waits for at most one message (or startup packet) worth of bytes
            expect(d.bufferedBytes).toBeLessThanOrEqual(10000);
          }
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
          expect(err.message.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 24_000 },
    );
    expect(runs).toBeGreaterThanOrEqual(20_000);
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  test('a length field promising 2 GiB is refused at once rather than awaited', () => {
    fc.assert(
      fc.property(fc.integer({ min: 257, max: 0x7fffffff }), fc.constantFrom(0x51, 0x64, 0x66, 0x70), (len, type) => {
        const d = new FrontendDecoder({ maxMessageSize: 256 });
        d.push(startup({ user: 'u' }));
        const head = Buffer.alloc(5);
        head[0] = type;
        head.writeInt32BE(len, 1);
        expect(() => d.push(head)).toThrow(ProtocolError);
      }),
      { numRuns: 500 },
    );
  });
});

describe('backend encoders as a client library reads them', () => {
  function parseAll(bytes: Buffer): BackendMessage[] {
    const out: BackendMessage[] = [];
    new Parser().parse(bytes, (m) => out.push(m));
    return out;
  }

  test('the startup answer of a server', () => {
    const msgs = parseAll(
      Buffer.concat([
        encodeAuthenticationCleartextPassword(),
        encodeAuthenticationOk(),
        encodeParameterStatus('server_version', '15.0'),
        encodeParameterStatus('integer_datetimes', 'on'),
        encodeBackendKeyData(42, -7),
        encodeReadyForQuery('I'),
      ]),
    );
    expect(msgs.map((m) => m.name)).toEqual(['authenticationCleartextPassword', 'authenticationOk', 'parameterStatus', 'parameterStatus', 'backendKeyData', 'readyForQuery']);
    expect(msgs[2]).toMatchObject({ parameterName: 'server_version', parameterValue: '15.0' });
    expect(msgs[4]).toMatchObject({ processID: 42, secretKey: -7 });
    expect(msgs[5]).toMatchObject({ status: 'I' });
  });

  test('an IDENTIFY_SYSTEM result as PostgreSQL sends it', () => {
    const msgs = parseAll(
      Buffer.concat([
        encodeRowDescription([
          { name: 'systemid', typeOid: PgType.text, typeLen: -1 },
          { name: 'timeline', typeOid: PgType.int4, typeLen: 4 },
          { name: 'xlogpos', typeOid: PgType.text, typeLen: -1 },
          { name: 'dbname', typeOid: PgType.text, typeLen: -1 },
        ]),
        encodeDataRow(['7712009180769680781', '1', '0/1259AC68', null]),
        encodeCommandComplete('IDENTIFY_SYSTEM'),
        encodeEmptyQueryResponse(),
      ]),
    );
    expect(msgs[0]).toMatchObject({ name: 'rowDescription', fieldCount: 4 });
    expect((msgs[0] as unknown as { fields: { name: string; dataTypeID: number; dataTypeSize: number; format: string }[] }).fields[1]).toMatchObject({ name: 'timeline', dataTypeID: 23, dataTypeSize: 4, format: 'text' });
    expect(msgs[1]).toMatchObject({ name: 'dataRow', fields: ['7712009180769680781', '1', '0/1259AC68', null] });
    expect(msgs[2]).toMatchObject({ name: 'commandComplete', text: 'IDENTIFY_SYSTEM' });
    expect(msgs[3]).toMatchObject({ name: 'emptyQuery' });
  });

  test('errors and notices carry severity, SQLSTATE, message, detail and hint', () => {
    const [e, n] = parseAll(
      Buffer.concat([
        encodeErrorResponse({ severity: 'ERROR', code: '58P01', message: 'requested WAL segment has already been removed', detail: 'd', hint: 'h' }),
        encodeNoticeResponse({ severity: 'NOTICE', code: '00000', message: 'hello' }),
      ]),
    );
    expect(e).toMatchObject({ name: 'error', severity: 'ERROR', code: '58P01', message: 'requested WAL segment has already been removed', detail: 'd', hint: 'h' });
    expect(n).toMatchObject({ name: 'notice', severity: 'NOTICE', code: '00000', message: 'hello' });
  });

  test('CopyBothResponse is byte-identical to the real server: W, length 7, format 0, 0 columns', () => {
    expect(encodeCopyBothResponse()).toEqual(Buffer.from([0x57, 0, 0, 0, 7, 0, 0, 0]));
    const msgs = parseAll(Buffer.concat([encodeCopyBothResponse(), encodeCopyData(Buffer.from('wal')), encodeCopyDone()]));
    expect(msgs.map((m) => m.name)).toEqual(['replicationStart', 'copyData', 'copyDone']);
    expect((msgs[1] as unknown as { chunk: Buffer }).chunk).toEqual(Buffer.from('wal'));
  });

  test('the answer to SSLRequest is the single byte N', () => {
    expect(encodeEncryptionRefused()).toEqual(Buffer.from('N'));
  });
});
