// Fuzzing of everything a safekeeper parses from the network: the pure decoders of the
// Postgres-protocol port (startup packets and typed messages, replication commands, reader
// feedback in CopyData, every consensus message) and a live in-process safekeeper reached
// over sockets (mutated startup packets, mutated commands, valid sessions carrying mutated
// consensus messages, mutated reader feedback, random framing) and its HTTP API.
// Invariants: a decoder either returns or throws ProtocolError (anything else is a robustness
// bug); the live server never crashes, keeps answering, never changes committed WAL or a
// timeline nobody touched, and its memory stays bounded. Every generated input is counted.
import fc from 'fast-check';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { newId } from '@walkeeper/dataplane/common/ids';
import { formatLsn, parseLsn, segmentOffset, walFileName, type Lsn } from '@walkeeper/dataplane/common/lsn';
import { LEGACY_MCONF, type ProposerMessage } from '@walkeeper/dataplane/consensus/messages';
import { decodeProposerMessage, encodeProposerMessage } from '@walkeeper/dataplane/protocol/consensusCodec';
import { ProtocolError } from '@walkeeper/dataplane/protocol/errors';
import { FrontendDecoder } from '@walkeeper/dataplane/protocol/pgServerCodec';
import { parseReplicationCommand } from '@walkeeper/dataplane/protocol/replicationCommands';
import { decodeReceiverMessage, encodeHotStandbyFeedback, encodeStandbyStatusUpdate } from '@walkeeper/dataplane/protocol/replicationMessages';
import {
  FakeProposer,
  PG_VERSION,
  START_LSN,
  SYSTEM_ID,
  buildWal,
  connectReplication,
  copyData,
  hashTree,
  http,
  queryMessage,
  readWal,
  removeDir,
  replicationStartup,
  startTestSafekeeper,
  startupPacket,
  tempDir,
  type TestSafekeeper,
} from '../safekeeperHarness.js';

export interface FuzzOptions {
  seed?: number;
  /** inputs per pure decoder (5 decoders) */
  decoderRuns?: number;
  /** live sessions on the Postgres port */
  sessions?: number;
  /** live HTTP requests */
  httpRequests?: number;
  /** concurrent live connections */
  concurrency?: number;
  /** allowed RSS growth of this process over the whole run, MiB */
  rssLimitMiB?: number;
  log?: (line: string) => void;
}

export interface FuzzReport {
  seed: number;
  inputs: { decoders: Record<string, number>; pgSessions: number; pgMessages: number; http: number; total: number };
  /** exceptions other than ProtocolError out of a pure decoder, or uncaught errors in the live server */
  crashes: number;
  crashSamples: string[];
  /** live sessions still open at our per-session deadline (not an error: the server may rightly wait) */
  openAtDeadline: number;
  /** HTTP answers with a 5xx status */
  http5xx: number;
  http5xxSamples: string[];
  /** sibling timeline hash and committed WAL prefix unchanged, committed WAL still served identically */
  walUnchanged: boolean;
  walProblems: string[];
  /** the server answered probes during and after the run */
  responsive: boolean;
  rssStartMiB: number;
  rssPeakMiB: number;
  rssGrowthMiB: number;
  rssLimitMiB: number;
  durationMs: number;
  ok: boolean;
}

// ---------------------------------------------------------------------------------------
// Generators

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
/** LSNs near the interesting region (the WAL we hold) or anywhere */
const lsnArb = fc.oneof(fc.bigInt({ min: START_LSN - 100n, max: START_LSN + 2_000_000n }), u64, fc.constantFrom(0n, START_LSN, (1n << 64n) - 1n));
const termArb = fc.oneof(fc.bigInt({ min: 0n, max: 10n }), u64);

function mutate(b: Buffer, kind: number, rnd: number[], extra: Uint8Array): Buffer {
  const out = Buffer.from(b);
  if (out.length === 0) return Buffer.from(extra);
  const at = (i: number) => rnd[i % rnd.length] % out.length;
  switch (kind) {
    case 0: // flip bits
      for (let i = 0; i < 1 + (rnd[0] % 4); i++) out[at(i + 1)] ^= 1 << (rnd[i + 2] % 8);
      return out;
    case 1: // truncate
      return out.subarray(0, at(0));
    case 2: // append garbage
      return Buffer.concat([out, Buffer.from(extra)]);
    case 3: {
      // overwrite a 32-bit field with an extreme value (length and count fields)
      const v = [0xffffffff, 0x7fffffff, 0x80000000, 0, 1, 0x10000][rnd[1] % 6];
      const o = Math.min(at(0), Math.max(0, out.length - 4));
      if (out.length >= 4) out.writeUInt32BE(v >>> 0, o);
      return out;
    }
    case 4: // random tag
      out[0] = rnd[0] & 0xff;
      return out;
    case 5: {
      // overwrite a 64-bit field with an extreme value (LSNs, terms)
      if (out.length >= 9) out.writeBigUInt64BE([0xffffffffffffffffn, 0n, 1n << 63n, START_LSN - 1n][rnd[1] % 4], 1 + (at(0) % (out.length - 8)));
      return out;
    }
    default: // splice in random bytes
      return Buffer.concat([out.subarray(0, at(0)), Buffer.from(extra), out.subarray(at(0))]);
  }
}

const mutation = fc.tuple(fc.nat(6), fc.array(fc.nat(), { minLength: 8, maxLength: 8 }), fc.uint8Array({ maxLength: 64 }));

function proposerMessageArb(tenantId: string, timelineId: string, walSample: Buffer): fc.Arbitrary<ProposerMessage> {
  const greeting = fc.record({
    tenantId: fc.oneof(fc.constant(tenantId), fc.stringMatching(/^[0-9a-f]{32}$/)),
    timelineId: fc.oneof(fc.constant(timelineId), fc.stringMatching(/^[0-9a-f]{32}$/)),
    pgVersion: fc.oneof(fc.constant(PG_VERSION), fc.nat()),
    systemId: fc.oneof(fc.constant(SYSTEM_ID), u64),
    walSegSize: fc.oneof(fc.constant(16 * 1024 * 1024), fc.nat()),
    pgTimeline: fc.oneof(fc.constant(1), fc.constant(2), fc.nat()),
  }, { requiredKeys: ['tenantId', 'timelineId', 'pgVersion', 'systemId', 'walSegSize'] }).map((g): ProposerMessage => ({ tag: 'proposer_greeting', mconf: LEGACY_MCONF, ...g }));
  // a PostgreSQL timeline report: well-formed history files, and random text
  const historyFile = fc.oneof(
    fc.constant(''),
    fc.tuple(lsnArb, fc.string({ maxLength: 30 })).map(([lsn, reason]) => `1\t${formatLsn(lsn)}\t${reason.replace(/\n/g, ' ')}\n`),
    fc.string({ maxLength: 120 }),
  );
  const pgTimeline = fc
    .record({ term: termArb, tli: fc.oneof(fc.constant(1), fc.constant(2), fc.integer({ min: 1, max: 0xffffffff })), startLsn: lsnArb, historyFile })
    .map((t): ProposerMessage => ({ tag: 'pg_timeline', generation: 0, ...t }));
  const vote = fc.record({ generation: fc.constantFrom(0, 1), term: termArb }).map((v): ProposerMessage => ({ tag: 'vote_request', ...v }));
  const elected = fc
    .record({ term: termArb, startStreamingAt: lsnArb, termHistory: fc.array(fc.record({ term: termArb, lsn: lsnArb }), { maxLength: 4 }) })
    .map((e): ProposerMessage => ({ tag: 'proposer_elected', generation: 0, ...e }));
  const append = fc
    .record({ term: termArb, beginLsn: lsnArb, commitLsn: lsnArb, truncateLsn: lsnArb, off: fc.nat(walSample.length), len: fc.nat(8192) })
    .map(({ off, len, ...a }): ProposerMessage => {
      const walData = walSample.subarray(off, Math.min(walSample.length, off + len));
      const beginLsn = a.beginLsn + BigInt(walData.length) > (1n << 64n) - 1n ? (1n << 64n) - 1n - BigInt(walData.length) : a.beginLsn;
      return { tag: 'append_request', generation: 0, ...a, beginLsn, endLsn: beginLsn + BigInt(walData.length), walData };
    });
  return fc.oneof(greeting, vote, elected, append, pgTimeline);
}

/** valid encodings, mutated ones and raw garbage */
function encodedProposerArb(tenantId: string, timelineId: string, walSample: Buffer): fc.Arbitrary<Buffer> {
  const valid = proposerMessageArb(tenantId, timelineId, walSample).map((m) => encodeProposerMessage(m));
  return fc.oneof(
    { arbitrary: valid, weight: 2 },
    { arbitrary: fc.tuple(valid, mutation).map(([b, [k, r, e]]) => mutate(b, k, r, e)), weight: 5 },
    { arbitrary: fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.from(u)), weight: 1 },
  );
}

const COMMANDS = [
  'IDENTIFY_SYSTEM', 'SHOW wal_segment_size', 'SHOW data_directory_mode', 'TIMELINE_HISTORY 2', 'READ_REPLICATION_SLOT s',
  'START_REPLICATION SLOT "s" PHYSICAL 0/1000000 TIMELINE 1', 'START_REPLICATION 0/1000000', "START_REPLICATION PHYSICAL 0/1000000 (term '3')",
  'CREATE_REPLICATION_SLOT s PHYSICAL RESERVE_WAL', 'DROP_REPLICATION_SLOT s WAIT', 'TIMELINE_STATUS', "SET x = 'y'", 'BASE_BACKUP', '',
];
const commandArb = fc.oneof(
  fc.constantFrom(...COMMANDS),
  fc.tuple(fc.constantFrom(...COMMANDS), mutation).map(([c, [k, r, e]]) => mutate(Buffer.from(c), k, r, e).toString('latin1').replace(/\0/g, ' ')),
  fc.tuple(fc.constantFrom(...COMMANDS), fc.string({ maxLength: 40 }), fc.nat()).map(([c, s, at]) => c.slice(0, at % (c.length + 1)) + s + c.slice(at % (c.length + 1))),
  fc.string({ maxLength: 120 }),
  fc.stringMatching(/^(START_REPLICATION|SHOW|TIMELINE_HISTORY|READ_REPLICATION_SLOT) ["'(]?[A-Za-z0-9_/ ()'"]{0,40}$/),
);

const feedbackArb = fc.oneof(
  fc.record({ writeLsn: lsnArb, flushLsn: lsnArb, applyLsn: lsnArb, sendTime: fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }), replyRequested: fc.boolean() }).map((m) => encodeStandbyStatusUpdate(m)),
  fc.record({ sendTime: fc.bigInt({ min: 0n, max: 1n << 60n }), xmin: fc.nat(), xminEpoch: fc.nat(), catalogXmin: fc.nat(), catalogXminEpoch: fc.nat() }).map((m) => encodeHotStandbyFeedback(m)),
);
const mutatedFeedbackArb = fc.oneof(feedbackArb, fc.tuple(feedbackArb, mutation).map(([b, [k, r, e]]) => mutate(b, k, r, e)), fc.uint8Array({ maxLength: 60 }).map((u) => Buffer.from(u)));

function startupArb(tenantId: string, timelineId: string): fc.Arbitrary<Buffer> {
  const params = fc.dictionary(fc.constantFrom('user', 'database', 'replication', 'options', 'application_name', 'x'), fc.string({ maxLength: 80 }), { maxKeys: 5 });
  const valid = fc.constant(replicationStartup(tenantId, timelineId));
  return fc.oneof(
    params.map((p) => startupPacket(p)),
    fc.tuple(valid, mutation).map(([b, [k, r, e]]) => mutate(b, k, r, e)),
    fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
    // SSL/GSS/cancel requests, oversized and undersized lengths
    fc.tuple(fc.constantFrom(80877103, 80877104, 80877102, 196608, 196609, 131072), fc.integer({ min: -10, max: 20_000_000 })).map(([code, len]) => {
      const b = Buffer.alloc(8);
      b.writeInt32BE(len, 0);
      b.writeInt32BE(code, 4);
      return b;
    }),
  );
}

const typedArb = fc.tuple(fc.nat(255), fc.integer({ min: -5, max: 0x7fffffff }), fc.uint8Array({ maxLength: 64 })).map(([t, len, body]) => {
  const head = Buffer.alloc(5);
  head[0] = t;
  head.writeInt32BE(len, 1);
  return Buffer.concat([head, Buffer.from(body)]);
});

// ---------------------------------------------------------------------------------------
// Pure decoders

function fuzzDecoder<T>(name: string, arb: fc.Arbitrary<T>, runs: number, seed: number, fn: (input: T) => void, report: FuzzReport): void {
  let n = 0;
  fc.assert(
    fc.property(arb, (input) => {
      n++;
      try {
        fn(input);
      } catch (err) {
        if (err instanceof ProtocolError) return;
        report.crashes++;
        if (report.crashSamples.length < 10) report.crashSamples.push(`${name}: ${(err as Error).stack?.split('\n').slice(0, 3).join(' | ')} on input ${inspectInput(input)}`);
      }
    }),
    { numRuns: runs, seed, endOnFailure: true },
  );
  report.inputs.decoders[name] = n;
}

function inspectInput(x: unknown): string {
  if (Buffer.isBuffer(x) || x instanceof Uint8Array) return `hex ${Buffer.from(x).toString('hex').slice(0, 200)}`;
  if (Array.isArray(x)) return x.map(inspectInput).join(' + ');
  return JSON.stringify(x)?.slice(0, 200) ?? String(x);
}

export function fuzzDecoders(runs: number, seed: number, report: FuzzReport): void {
  const tenant = newId();
  const timeline = newId();
  const walSample = buildWal(20, 500).bytes;
  // the frontend decoder is fed a stream: a startup packet then typed messages, in random chunks
  const stream = fc.tuple(
    startupArb(tenant, timeline),
    fc.array(fc.oneof(typedArb, commandArb.map((c) => queryMessage(c)), encodedProposerArb(tenant, timeline, walSample).map((b) => copyData(b))), { maxLength: 5 }),
    fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 6 }),
  );
  fuzzDecoder('frontend decoder (startup + typed messages, chunked)', stream, runs, seed, ([startup, msgs, cuts]) => {
    const d = new FrontendDecoder();
    const all = Buffer.concat([startup, ...msgs]);
    let o = 0;
    for (let i = 0; o < all.length; i++) {
      const n = cuts[i % cuts.length];
      d.push(all.subarray(o, o + n));
      o += n;
    }
    if (d.bufferedBytes > d.maxMessageSize) throw new Error(`decoder buffered ${d.bufferedBytes} bytes, above its limit ${d.maxMessageSize}`);
  }, report);
  fuzzDecoder('replication command parser', commandArb, runs, seed + 1, (t) => void parseReplicationCommand(t), report);
  fuzzDecoder('reader feedback (CopyData r/h)', mutatedFeedbackArb, runs, seed + 2, (b) => void decodeReceiverMessage(b), report);
  fuzzDecoder('consensus messages (g/v/e/a/t)', encodedProposerArb(tenant, timeline, walSample), runs, seed + 3, (b) => {
    const m = decodeProposerMessage(b);
    // whatever decodes must re-encode to the same bytes (no silently ignored fields)
    const again = encodeProposerMessage(m);
    if (!again.equals(b)) throw new Error(`decoded ${m.tag} re-encodes differently (${again.length} vs ${b.length} bytes)`);
  }, report);
  fuzzDecoder('consensus messages (raw bytes)', fc.uint8Array({ maxLength: 120 }).map((u) => Buffer.concat([Buffer.from([[0x67, 0x76, 0x65, 0x61, 0x74][u.length % 5]]), Buffer.from(u)])), runs, seed + 4, (b) => void decodeProposerMessage(b), report);
}

// ---------------------------------------------------------------------------------------
// Live safekeeper

interface SessionResult {
  closedByServer: boolean;
  error?: Error;
}

/** Writes chunks (gap between them), then waits for the server to close or the deadline. */
function session(port: number, chunks: Buffer[], deadlineMs: number, gapMs = 0): Promise<SessionResult> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port });
    let closedByServer = false;
    let done = false;
    const finish = (error?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ closedByServer, error });
    };
    const timer = setTimeout(() => finish(), deadlineMs);
    s.on('data', () => undefined);
    s.on('end', () => {
      closedByServer = true;
      finish();
    });
    s.on('close', () => finish());
    s.on('error', (err) => finish(err));
    s.once('connect', async () => {
      for (const c of chunks) {
        if (s.destroyed) return;
        s.write(c);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}

async function pool<T>(items: T[], concurrency: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  }));
}

const mib = (b: number) => Math.round((b / 1048576) * 10) / 10;

/** Everything the fuzz asserts about stored WAL, computed before and after. */
function committedPrefix(dir: string, commit: Lsn): string {
  const file = join(dir, `${walFileName(1, START_LSN / BigInt(16 * 1024 * 1024))}.partial`);
  return readFileSync(file).subarray(0, segmentOffset(commit)).toString('base64');
}

export async function runFuzz(opts: FuzzOptions = {}): Promise<FuzzReport> {
  const seed = opts.seed ?? (Date.now() % 1_000_000_007);
  const log = opts.log ?? (() => undefined);
  const t0 = Date.now();
  const report: FuzzReport = {
    seed, inputs: { decoders: {}, pgSessions: 0, pgMessages: 0, http: 0, total: 0 }, crashes: 0, crashSamples: [], openAtDeadline: 0,
    http5xx: 0, http5xxSamples: [], walUnchanged: true, walProblems: [], responsive: true,
    rssStartMiB: mib(process.memoryUsage().rss), rssPeakMiB: 0, rssGrowthMiB: 0, rssLimitMiB: opts.rssLimitMiB ?? 256, durationMs: 0, ok: false,
  };
  const sampleRss = () => (report.rssPeakMiB = Math.max(report.rssPeakMiB, mib(process.memoryUsage().rss)));

  log(`fuzz: seed ${seed}`);
  fuzzDecoders(opts.decoderRuns ?? 20_000, seed, report);
  sampleRss();
  log(`fuzz: pure decoders done: ${JSON.stringify(report.inputs.decoders)}, ${report.crashes} unexpected exception(s)`);

  // live safekeeper: one timeline that the fuzz targets, one nobody touches
  const uncaught = (err: unknown) => {
    report.crashes++;
    if (report.crashSamples.length < 10) report.crashSamples.push(`live server: uncaught ${(err as Error)?.stack ?? String(err)}`);
  };
  process.on('uncaughtException', uncaught);
  process.on('unhandledRejection', uncaught);
  const dir = tempDir('fuzz');
  let ts: TestSafekeeper | undefined;
  try {
    ts = await startTestSafekeeper(dir);
    const tenant = newId();
    const target = newId();
    const sibling = newId();
    await http(ts.httpUrl, 'POST', '/v1/tenants', { body: { tenant_id: tenant } });
    const wal = buildWal(300);
    for (const tl of [target, sibling]) {
      await http(ts.httpUrl, 'POST', `/v1/tenants/${tenant}/timelines`, { body: { timeline_id: tl } });
      const p = await FakeProposer.connect(ts.pgPort, tenant, tl);
      try {
        await p.elect(tenant, tl, 2n, START_LSN);
        await p.pushWal(2n, START_LSN, wal.bytes);
      } finally {
        await p.close();
      }
    }
    await new Promise((r) => setTimeout(r, 1500)); // commit LSN reaches the control file
    const tlDir = (t: string) => join(dir, 'tenants', tenant, t);
    const siblingBefore = hashTree(tlDir(sibling));
    const prefixBefore = committedPrefix(tlDir(target), wal.end);
    const port = ts.pgPort;
    const httpUrl = ts.httpUrl;
    log(`fuzz: live safekeeper on ${ts.sk.pgAddress} (HTTP ${ts.sk.httpAddress}), ${wal.bytes.length} bytes of committed WAL up to ${formatLsn(wal.end)}`);

    const sessions = opts.sessions ?? 4000;
    const concurrency = opts.concurrency ?? 24;
    const walSample = wal.bytes.subarray(0, 200_000);
    const consensusSession = fc.array(encodedProposerArb(tenant, target, walSample), { minLength: 1, maxLength: 12 });
    const kinds = fc.oneof(
      { weight: 2, arbitrary: startupArb(tenant, target).map((b) => ({ kind: 'startup', chunks: [b], messages: 1 })) },
      { weight: 2, arbitrary: fc.array(commandArb, { minLength: 1, maxLength: 8 }).map((cs) => ({ kind: 'commands', chunks: [replicationStartup(tenant, target), ...cs.map((c) => queryMessage(c))], messages: cs.length })) },
      {
        weight: 6,
        arbitrary: fc.tuple(fc.boolean(), consensusSession).map(([greetFirst, msgs]) => {
          const greeting: ProposerMessage = { tag: 'proposer_greeting', tenantId: tenant, timelineId: target, mconf: LEGACY_MCONF, pgVersion: PG_VERSION, systemId: SYSTEM_ID, walSegSize: 16 * 1024 * 1024, pgTimeline: 1 };
          const first = greetFirst ? [encodeProposerMessage(greeting)] : [];
          const all = [...first, ...msgs];
          return { kind: 'consensus', chunks: [replicationStartup(tenant, target, { application_name: 'walkeeper_proposer' }), queryMessage('START_WAL_PUSH'), ...all.map((m) => copyData(m))], messages: all.length };
        }),
      },
      { weight: 2, arbitrary: fc.array(mutatedFeedbackArb, { minLength: 1, maxLength: 8 }).map((fb) => ({ kind: 'feedback', chunks: [replicationStartup(tenant, target), queryMessage('START_REPLICATION PHYSICAL 0/1000000'), ...fb.map((b) => copyData(b))], messages: fb.length })) },
      { weight: 1, arbitrary: fc.array(typedArb, { minLength: 1, maxLength: 4 }).map((ms) => ({ kind: 'framing', chunks: [replicationStartup(tenant, target), ...ms], messages: ms.length })) },
    );
    const plan = fc.sample(kinds, { numRuns: sessions, seed: seed + 10 });
    let probeFailures = 0;
    await pool(plan, concurrency, async (s, i) => {
      const r = await session(port, s.chunks, 400);
      report.inputs.pgSessions++;
      report.inputs.pgMessages += s.messages;
      if (!r.closedByServer) report.openAtDeadline++;
      if (i % 500 === 0) {
        sampleRss();
        const h = await fetch(`${httpUrl}/healthz`, { signal: AbortSignal.timeout(5000) }).then((x) => x.status, () => 0);
        if (h !== 200) probeFailures++;
      }
    });
    log(`fuzz: ${report.inputs.pgSessions} live sessions, ${report.inputs.pgMessages} messages, ${report.openAtDeadline} still open at the 400 ms deadline`);

    // HTTP: random methods, paths (some hitting real routes and ids), bodies and content types
    const seg = fc.oneof(fc.constantFrom('v1', 'tenants', 'timelines', 'status', 'metrics', 'healthz', 'readyz', tenant, sibling, target, '..', '%00', '%zz', ''), fc.stringMatching(/^[0-9a-f]{32}$/), fc.string({ maxLength: 20 }).map(encodeURIComponent));
    const reqArb = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'OPTIONS', 'HEAD', 'DELETE'),
      path: fc.array(seg, { minLength: 0, maxLength: 6 }).map((p) => '/' + p.join('/')),
      body: fc.oneof(fc.constant(undefined), fc.json({ maxDepth: 3 }), fc.string({ maxLength: 200 }), fc.constant('{"tenant_id":' + '['.repeat(5000) + ']'.repeat(5000) + '}')),
      ctype: fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-16'),
    });
    const reqs = fc.sample(reqArb, { numRuns: opts.httpRequests ?? 3000, seed: seed + 11 });
    await pool(reqs, 8, async (r) => {
      // deleting the tenant under test would be a legitimate, not a fuzzed, change of its WAL
      const method = r.method === 'DELETE' && r.path.includes(tenant) ? 'GET' : r.method;
      report.inputs.http++;
      try {
        const res = await fetch(`${httpUrl}${r.path}`, { method, headers: { 'content-type': r.ctype }, body: method === 'GET' || method === 'HEAD' ? undefined : r.body, signal: AbortSignal.timeout(5000) });
        const text = await res.text();
        if (res.status >= 500 && res.status !== 507) {
          report.http5xx++;
          if (report.http5xxSamples.length < 10) report.http5xxSamples.push(`${method} ${r.path} (${r.ctype}, body ${JSON.stringify(r.body)?.slice(0, 80)}) -> ${res.status} ${text.slice(0, 160)}`);
        }
      } catch (err) {
        if ((err as Error).name === 'TimeoutError') probeFailures++;
      }
    });
    sampleRss();
    log(`fuzz: ${report.inputs.http} HTTP requests, ${report.http5xx} answered 5xx`);

    // still serving, nothing committed changed, sibling untouched
    const h = await http(httpUrl, 'GET', '/healthz').catch(() => undefined);
    if (h?.status !== 200) probeFailures++;
    const c = await connectReplication(port, tenant, target).catch(() => undefined);
    if (!c) probeFailures++;
    else {
      try {
        const r = await c.query('IDENTIFY_SYSTEM');
        if (r.rows[0][0] !== SYSTEM_ID.toString()) report.walProblems.push(`IDENTIFY_SYSTEM answers system id ${r.rows[0][0]}`);
      } finally {
        c.destroy();
      }
    }
    report.responsive = probeFailures === 0;
    const siblingAfter = hashTree(tlDir(sibling));
    if (JSON.stringify(siblingAfter) !== JSON.stringify(siblingBefore)) report.walProblems.push(`files of the untouched timeline ${sibling} changed`);
    if (committedPrefix(tlDir(target), wal.end) !== prefixBefore) report.walProblems.push(`committed WAL [${formatLsn(START_LSN)}, ${formatLsn(wal.end)}) of ${target} changed on disk`);
    const served = await readWal(port, tenant, target, START_LSN, wal.end).catch((err: Error) => err);
    if (served instanceof Error) report.walProblems.push(`committed WAL of ${target} no longer served: ${served.message}`);
    else if (!served.subarray(0, wal.bytes.length).equals(wal.bytes)) report.walProblems.push(`committed WAL of ${target} is served with different bytes`);
    const st = await http(httpUrl, 'GET', `/v1/tenants/${tenant}/timelines/${target}`);
    if (st.status !== 200) report.walProblems.push(`timeline status answered ${st.status}`);
    else if (parseLsn(String(st.json.commit_lsn)) < wal.end) report.walProblems.push(`commit LSN went backwards: ${String(st.json.commit_lsn)} < ${formatLsn(wal.end)}`);
    report.walUnchanged = report.walProblems.length === 0;
  } finally {
    process.off('uncaughtException', uncaught);
    process.off('unhandledRejection', uncaught);
    await ts?.sk.stop().catch(() => undefined);
    removeDir(dir);
  }
  sampleRss();
  report.rssGrowthMiB = Math.round((report.rssPeakMiB - report.rssStartMiB) * 10) / 10;
  const d = report.inputs.decoders;
  report.inputs.total = Object.values(d).reduce((a, b) => a + b, 0) + report.inputs.pgMessages + report.inputs.pgSessions + report.inputs.http;
  report.durationMs = Date.now() - t0;
  report.ok = report.crashes === 0 && report.walUnchanged && report.responsive && report.rssGrowthMiB <= report.rssLimitMiB;
  log(`fuzz: ${report.inputs.total} inputs in ${(report.durationMs / 1000).toFixed(1)} s; crashes ${report.crashes}; WAL unchanged ${report.walUnchanged}; RSS ${report.rssStartMiB} -> peak ${report.rssPeakMiB} MiB`);
  return report;
}

