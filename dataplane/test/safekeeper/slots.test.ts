// Readers' physical replication slots on a safekeeper's Postgres port, command by command and
// error by error, answered as PostgreSQL 15 answers them (fields, types, tags, SQLSTATEs,
// messages and hints as captured from a real server); the restart LSN follows the reader's
// flush report and survives a restart; a slot past --max-slot-wal-keep-size is invalidated,
// reported, and refused to readers; a corrupt slots.control takes its timeline out of service
// and is never rewritten.
import { jest } from '@jest/globals';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { newId } from '../../src/common/ids.js';
import { DEFAULT_WAL_SEG_SIZE, formatLsn, type Lsn } from '../../src/common/lsn.js';
import { PgServerError, type PgConnection, type PgNotice } from '../../src/protocol/pgClient.js';
import { encodeStandbyStatusUpdate, decodeSenderMessage, pgNowMicros } from '../../src/protocol/replicationMessages.js';
import { SLOTS_FILE_NAME } from '../../src/storage/slotsFile.js';
import { WalBuilder } from '@walkeeper/testkit/walBuilder';
import { FakeProposer, START_LSN, connectReplication, hashTree, http, removeDir, sleep, startTestSafekeeper, tempDir, type TestSafekeeper } from '@walkeeper/testkit/safekeeperHarness';

jest.setTimeout(60_000);

const TENANT = newId();
/** commands and errors */
const TL = newId();
/** the size limit */
const LIMITED = newId();
/** the corrupt slot file */
const BROKEN = newId();
const TERM = 2n;
/** 1 MiB: the limited timeline's slot is pushed past it */
const LIMIT = '1MB';

let dir: string;
let ts: TestSafekeeper;

/** 600 KB of WAL, then (for the limited timeline) 1.2 MB more, split at a record boundary. */
const builder = new WalBuilder(START_LSN, DEFAULT_WAL_SEG_SIZE);
for (let i = 0; i < 300; i++) builder.addRecord(2000);
const firstEnd = builder.position;
for (let i = 0; i < 600; i++) builder.addRecord(2000);
const secondEnd = builder.position;
const allWal = builder.bytes();
const firstWal = allWal.subarray(0, Number(firstEnd - START_LSN));
const secondWal = allWal.subarray(Number(firstEnd - START_LSN));

const tlDir = (t: string) => join(dir, 'tenants', TENANT, t);
const status = async (t: string) => (await http(ts.httpUrl, 'GET', `/v1/tenants/${TENANT}/timelines/${t}`)).json;
const slotStatus = async (t: string, name: string) => (await status(t)).slots.find((s: { slot_name: string }) => s.slot_name === name);

async function push(t: string, begin: Lsn, data: Buffer, elect: boolean): Promise<void> {
  const p = await FakeProposer.connect(ts.pgPort, TENANT, t);
  try {
    if (elect) await p.elect(TENANT, t, TERM, START_LSN);
    else {
      p.send(p.greeting(TENANT, t));
      await p.recv();
      p.send({ tag: 'vote_request', generation: 0, term: TERM + 1n });
      await p.recv();
      p.send({ tag: 'proposer_elected', generation: 0, term: TERM + 1n, startStreamingAt: begin, termHistory: [{ term: TERM, lsn: START_LSN }, { term: TERM + 1n, lsn: begin }] });
    }
    const r = await p.pushWal(elect ? TERM : TERM + 1n, begin, data);
    expect(r.commitLsn).toBe(begin + BigInt(data.length));
  } finally {
    await p.close();
  }
}

async function repl(t: string, notices?: PgNotice[], applicationName?: string): Promise<PgConnection> {
  return connectReplication(ts.pgPort, TENANT, t, { applicationName, onNotice: notices ? (n) => notices.push(n) : undefined });
}

/** Runs one command and returns its error (or fails the test if it succeeded). */
async function refused(c: PgConnection, q: string): Promise<PgServerError> {
  const err = await c.query(q).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PgServerError);
  return err as PgServerError;
}

function statusUpdate(flush: Lsn, replyRequested = false): Buffer {
  return encodeStandbyStatusUpdate({ writeLsn: flush, flushLsn: flush, applyLsn: 0n, sendTime: pgNowMicros(), replyRequested });
}

/** Reads the stream until `end` was sent (the reader has been sent WAL up to there). */
async function readUntil(stream: { next(): Promise<Buffer | null> }, end: Lsn): Promise<void> {
  for (;;) {
    const b = await stream.next();
    if (b === null) throw new Error('stream ended');
    const m = decodeSenderMessage(b);
    if (m.tag === 'xlog_data' && m.dataStart + BigInt(m.data.length) >= end) return;
  }
}

/** The value of one slot's series in a Prometheus scrape (labels in any order). */
function metric(scrape: string, name: string, timelineId: string, slot: string): number | undefined {
  for (const line of scrape.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (line.includes(`tenant_id="${TENANT}"`) && line.includes(`timeline_id="${timelineId}"`) && line.includes(`slot_name="${slot}"`)) return Number(line.split(' ').pop());
  }
  return undefined;
}

async function nextKeepalive(stream: { next(): Promise<Buffer | null> }): Promise<void> {
  for (;;) {
    const b = await stream.next();
    if (b === null) throw new Error('stream ended');
    if (decodeSenderMessage(b).tag === 'keepalive') return;
  }
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

beforeAll(async () => {
  dir = tempDir('slots');
  ts = await startTestSafekeeper(dir, { maxSlotWalKeepSize: LIMIT });
  expect((await http(ts.httpUrl, 'POST', '/v1/tenants', { body: { tenant_id: TENANT } })).status).toBe(201);
  for (const t of [TL, LIMITED, BROKEN]) {
    expect((await http(ts.httpUrl, 'POST', `/v1/tenants/${TENANT}/timelines`, { body: { timeline_id: t } })).status).toBe(201);
    await push(t, START_LSN, firstWal, true);
  }
  // let the lazily kept commit LSN reach the control files (checkpoint every second), so the
  // "nothing stored changes" checks see only what the commands under test would change
  await sleep(1500);
});

afterAll(async () => {
  await ts?.sk.stop().catch(() => undefined);
  removeDir(dir);
});

describe('CREATE_REPLICATION_SLOT', () => {
  test('a physical slot is answered as PostgreSQL 15 answers: slot_name, consistent_point 0/0, NULL snapshot and plugin', async () => {
    const c = await repl(TL);
    try {
      const [r] = await c.queryAll('CREATE_REPLICATION_SLOT "s1" PHYSICAL');
      expect(r.fields).toEqual(['slot_name', 'consistent_point', 'snapshot_name', 'output_plugin'].map((name) => ({ name, typeOid: 25, typeLen: -1 })));
      expect(r.rows).toEqual([['s1', '0/0', null, null]]);
      expect(r.commandTag).toBe('CREATE_REPLICATION_SLOT');
      expect(existsSync(join(tlDir(TL), SLOTS_FILE_NAME))).toBe(true);
      // without RESERVE_WAL it has no restart position yet, as in PostgreSQL
      const [read] = await c.queryAll('READ_REPLICATION_SLOT "s1"');
      expect(read.fields).toEqual([
        { name: 'slot_type', typeOid: 25, typeLen: -1 },
        { name: 'restart_lsn', typeOid: 25, typeLen: -1 },
        { name: 'restart_tli', typeOid: 20, typeLen: 8 },
      ]);
      expect(read.rows).toEqual([['physical', null, null]]);
      expect(read.commandTag).toBe('READ_REPLICATION_SLOT');
    } finally {
      c.destroy();
    }
  });

  test('RESERVE_WAL (new and legacy syntax) reserves from the start of the commit LSN\'s segment', async () => {
    const c = await repl(TL);
    try {
      expect((await c.query('CREATE_REPLICATION_SLOT "r1" PHYSICAL (RESERVE_WAL)')).rows).toEqual([['r1', '0/0', null, null]]);
      expect((await c.query('CREATE_REPLICATION_SLOT r2 PHYSICAL RESERVE_WAL')).rows).toEqual([['r2', '0/0', null, null]]);
      for (const name of ['r1', 'r2']) expect((await c.query(`READ_REPLICATION_SLOT ${name}`)).rows).toEqual([['physical', formatLsn(START_LSN), '1']]);
      expect(await slotStatus(TL, 'r1')).toMatchObject({ restart_lsn: formatLsn(START_LSN), active: false, wal_status: 'reserved', invalidation_reason: null });
    } finally {
      c.destroy();
    }
  });

  test('an existing name is refused with 42710 and nothing stored changes', async () => {
    const before = hashTree(tlDir(TL));
    const c = await repl(TL);
    try {
      const e = await refused(c, 'CREATE_REPLICATION_SLOT "s1" PHYSICAL RESERVE_WAL');
      expect(e).toMatchObject({ code: '42710', message: 'replication slot "s1" already exists' });
      expect((await c.query('READ_REPLICATION_SLOT s1')).rows).toEqual([['physical', null, null]]);
    } finally {
      c.destroy();
    }
    expect(hashTree(tlDir(TL))).toEqual(before);
  });

  test.each([['Bad'], ['a-b'], ['x y']])('the invalid name %p is refused with 42602 and PostgreSQL\'s hint; nothing stored changes', async (name) => {
    const before = hashTree(tlDir(TL));
    const c = await repl(TL);
    try {
      const e = await refused(c, `CREATE_REPLICATION_SLOT "${name}" PHYSICAL`);
      expect(e).toMatchObject({
        code: '42602',
        message: `replication slot name "${name}" contains invalid character`,
        hint: 'Replication slot names may only contain lower case letters, numbers, and the underscore character.',
      });
    } finally {
      c.destroy();
    }
    expect(hashTree(tlDir(TL))).toEqual(before);
  });

  test('a name of 64 bytes or more is truncated to 63 with PostgreSQL\'s NOTICE', async () => {
    const notices: PgNotice[] = [];
    const c = await repl(TL, notices);
    try {
      const long = 'a'.repeat(64);
      expect((await c.query(`CREATE_REPLICATION_SLOT "${long}" PHYSICAL`)).rows).toEqual([['a'.repeat(63), '0/0', null, null]]);
      expect(notices).toEqual([expect.objectContaining({ severity: 'NOTICE', code: '42622', message: `identifier "${long}" will be truncated to "${'a'.repeat(63)}"` })]);
      await c.query(`DROP_REPLICATION_SLOT "${'a'.repeat(63)}"`);
    } finally {
      c.destroy();
    }
  });

  test('logical and temporary slots are refused clearly (0A000) and nothing is stored', async () => {
    const before = hashTree(tlDir(TL));
    const c = await repl(TL);
    try {
      expect(await refused(c, 'CREATE_REPLICATION_SLOT "l1" LOGICAL pgoutput')).toMatchObject({ code: '0A000', message: expect.stringMatching(/logical replication slots are not supported by a safekeeper/) });
      expect(await refused(c, 'CREATE_REPLICATION_SLOT "t1" TEMPORARY PHYSICAL')).toMatchObject({ code: '0A000', message: expect.stringMatching(/temporary replication slots are not supported/) });
      expect(await refused(c, 'CREATE_REPLICATION_SLOT "o1" PHYSICAL (TWO_PHASE)')).toMatchObject({ code: '42601', message: 'unrecognized option: two_phase' });
      expect((await c.query('READ_REPLICATION_SLOT t1')).rows).toEqual([[null, null, null]]);
    } finally {
      c.destroy();
    }
    expect(hashTree(tlDir(TL))).toEqual(before);
  });
});

describe('READ_REPLICATION_SLOT and DROP_REPLICATION_SLOT', () => {
  test('an unknown slot reads as one row of NULLs, as PostgreSQL 15', async () => {
    const c = await repl(TL);
    try {
      for (const q of ['READ_REPLICATION_SLOT "nope"', 'READ_REPLICATION_SLOT "Bad"']) {
        const [r] = await c.queryAll(q);
        expect(r.rows).toEqual([[null, null, null]]);
        expect(r.commandTag).toBe('READ_REPLICATION_SLOT');
      }
    } finally {
      c.destroy();
    }
  });

  test('dropping an unknown slot is 42704; dropping one removes it', async () => {
    const c = await repl(TL);
    try {
      expect(await refused(c, 'DROP_REPLICATION_SLOT "nope"')).toMatchObject({ code: '42704', message: 'replication slot "nope" does not exist' });
      await c.query('CREATE_REPLICATION_SLOT "gone" PHYSICAL RESERVE_WAL');
      const [r] = await c.queryAll('DROP_REPLICATION_SLOT "gone"');
      expect(r).toEqual({ fields: [], rows: [], commandTag: 'DROP_REPLICATION_SLOT' });
      expect((await c.query('READ_REPLICATION_SLOT gone')).rows).toEqual([[null, null, null]]);
      expect(await refused(c, 'DROP_REPLICATION_SLOT gone WAIT')).toMatchObject({ code: '42704' });
      expect(await slotStatus(TL, 'gone')).toBeUndefined();
    } finally {
      c.destroy();
    }
  });
});

describe('START_REPLICATION SLOT', () => {
  test('a slot that was never created is refused with 42704, even with a name PostgreSQL would never create', async () => {
    const c = await repl(TL);
    try {
      for (const name of ['nope', 'Bad!']) {
        expect(await refused(c, `START_REPLICATION SLOT "${name}" ${formatLsn(START_LSN)} TIMELINE 1`)).toMatchObject({ code: '42704', message: `replication slot "${name}" does not exist` });
      }
    } finally {
      c.destroy();
    }
  });

  test('the restart LSN follows the reported flush position, never moves back, and never passes what was sent', async () => {
    const c = await repl(TL, undefined, 'reader1');
    try {
      await c.query('CREATE_REPLICATION_SLOT "follow" PHYSICAL');
      const stream = await c.startCopyBoth(`START_REPLICATION SLOT "follow" ${formatLsn(START_LSN)} TIMELINE 1`);
      await readUntil(stream, firstEnd);
      await nextKeepalive(stream); // the one saying it is caught up
      const mid = START_LSN + 100_000n;
      stream.sendCopyData(statusUpdate(mid));
      await waitFor('restart LSN at mid', async () => ((await slotStatus(TL, 'follow'))?.restart_lsn === formatLsn(mid) ? true : undefined));
      expect(await slotStatus(TL, 'follow')).toMatchObject({ active: true, active_client: expect.stringContaining('reader1') });
      // backwards, and 0/0 (nothing flushed): ignored. The last asks for a reply, so once a
      // keepalive comes back all three were handled.
      stream.sendCopyData(statusUpdate(START_LSN));
      stream.sendCopyData(statusUpdate(0n));
      stream.sendCopyData(statusUpdate(START_LSN, true));
      await nextKeepalive(stream);
      expect((await slotStatus(TL, 'follow')).restart_lsn).toBe(formatLsn(mid));
      // beyond what it was sent: held at what it was sent
      stream.sendCopyData(statusUpdate(firstEnd + 10_000_000n));
      await waitFor('restart LSN at the sent end', async () => ((await slotStatus(TL, 'follow'))?.restart_lsn === formatLsn(firstEnd) ? true : undefined));
      stream.sendCopyDone();
      await stream.end;
    } finally {
      c.destroy();
    }
    // let go: inactive, and the advance is saved
    const s = await waitFor('the slot saved and inactive', async () => {
      const v = await slotStatus(TL, 'follow');
      return v && !v.active && v.persisted_restart_lsn === formatLsn(firstEnd) ? v : undefined;
    });
    expect(s.restart_lsn).toBe(formatLsn(firstEnd));
    const tl = ts.sk.ctx.registry.getTimeline(TENANT, TL)!;
    expect(tl.slots.holdingLsns()).toEqual(expect.arrayContaining([{ name: 'follow', restartLsn: firstEnd }, { name: 'r1', restartLsn: START_LSN }]));
    expect(tl.slots.holdingLsns().map((h) => h.name)).not.toContain('s1'); // no restart position: holds nothing
  });

  test('a slot active on another connection is refused with 55006 for START and DROP; DROP ... WAIT waits for it', async () => {
    const holder = await repl(TL, undefined, 'holder');
    const other = await repl(TL);
    try {
      await holder.query('CREATE_REPLICATION_SLOT "busy" PHYSICAL');
      const stream = await holder.startCopyBoth(`START_REPLICATION SLOT "busy" ${formatLsn(START_LSN)} TIMELINE 1`);
      await readUntil(stream, firstEnd);
      const active = /^replication slot "busy" is active for PID \d+$/;
      expect(await refused(other, `START_REPLICATION SLOT "busy" ${formatLsn(START_LSN)} TIMELINE 1`)).toMatchObject({ code: '55006', message: expect.stringMatching(active) });
      const e = await refused(other, 'DROP_REPLICATION_SLOT "busy"');
      expect(e).toMatchObject({ code: '55006', message: expect.stringMatching(active), detail: expect.stringContaining('holder') });
      let dropped = false;
      const waiting = other.query('DROP_REPLICATION_SLOT "busy" WAIT').then((r) => {
        dropped = true;
        return r;
      });
      await sleep(500);
      expect(dropped).toBe(false);
      expect(await slotStatus(TL, 'busy')).toMatchObject({ active: true });
      holder.destroy();
      expect((await waiting).commandTag).toBe('DROP_REPLICATION_SLOT');
      expect(await slotStatus(TL, 'busy')).toBeUndefined();
    } finally {
      holder.destroy();
      other.destroy();
    }
  });

  test('slots and their restart LSNs survive a restart of the safekeeper', async () => {
    const before = (await status(TL)).slots;
    await ts.sk.stop();
    ts = await startTestSafekeeper(dir, { maxSlotWalKeepSize: LIMIT });
    const after = (await status(TL)).slots;
    const pick = (list: { slot_name: string; restart_lsn: string | null }[]) => Object.fromEntries(list.map((s) => [s.slot_name, s.restart_lsn]));
    expect(pick(after)).toEqual(pick(before));
    expect(pick(after)).toMatchObject({ s1: null, r1: formatLsn(START_LSN), follow: formatLsn(firstEnd) });
    const c = await repl(TL);
    try {
      expect((await c.query('READ_REPLICATION_SLOT "follow"')).rows).toEqual([['physical', formatLsn(firstEnd), '1']]);
    } finally {
      c.destroy();
    }
  });
});

describe('--max-slot-wal-keep-size', () => {
  test('a slot further behind the commit LSN than the limit is invalidated, reported, refused to readers, and holds nothing', async () => {
    const c = await repl(LIMITED);
    try {
      await c.query('CREATE_REPLICATION_SLOT "stale" PHYSICAL RESERVE_WAL');
      await c.query('CREATE_REPLICATION_SLOT "live" PHYSICAL');
      // a reader streaming from "live" that never reports progress: its slot is invalidated under it
      const liveConn = await repl(LIMITED);
      const live = await liveConn.startCopyBoth(`START_REPLICATION SLOT "live" ${formatLsn(START_LSN)} TIMELINE 1`);
      live.sendCopyData(statusUpdate(START_LSN + 8192n));
      await waitFor('live restart LSN', async () => ((await slotStatus(LIMITED, 'live'))?.restart_lsn ? true : undefined));
      const tl = ts.sk.ctx.registry.getTimeline(TENANT, LIMITED)!;
      await waitFor('both slots saved', async () => (tl.slots.holdingLsns().length === 2 ? true : undefined));
      expect(await slotStatus(LIMITED, 'stale')).toMatchObject({ wal_status: 'reserved' });

      await push(LIMITED, firstEnd, secondWal, false); // commit LSN now > 1 MiB past both restart LSNs
      const lost = await waitFor('stale lost', async () => {
        const s = await slotStatus(LIMITED, 'stale');
        return s?.wal_status === 'lost' ? s : undefined;
      });
      expect(lost).toMatchObject({ restart_lsn: null, active: false, retained_bytes: '0', invalidation_reason: expect.stringMatching(new RegExp(`restart LSN ${formatLsn(START_LSN)} was \\d+ bytes behind the commit LSN ${formatLsn(secondEnd)}, more than max_slot_wal_keep_size \\(1048576 bytes\\)`)) });
      // the live reader was ended with the reason
      const ended = await (async () => {
        for (;;) {
          const b = await live.next();
          if (b === null) return null;
        }
      })().catch((e: unknown) => e);
      expect(ended).toMatchObject({ code: '55000', message: expect.stringMatching(/can no longer access replication slot "live": it was invalidated/) });
      expect(await slotStatus(LIMITED, 'live')).toMatchObject({ wal_status: 'lost', active: false });
      liveConn.destroy();
      expect(tl.slots.holdingLsns()).toEqual([]);

      // a reader starting from it gets the clear error naming the slot and why
      const e = await refused(c, `START_REPLICATION SLOT "stale" ${formatLsn(START_LSN)} TIMELINE 1`);
      expect(e).toMatchObject({ code: '55000', message: expect.stringMatching(/can no longer access replication slot "stale": it was invalidated: its restart LSN .* more than max_slot_wal_keep_size/) });
      expect((await c.query('READ_REPLICATION_SLOT stale')).rows).toEqual([['physical', null, null]]);
      // metrics name the slots
      const m = (await http(ts.httpUrl, 'GET', '/metrics')).text;
      expect(metric(m, 'walkeeper_slot_invalidations_total', LIMITED, 'stale')).toBe(1);
      expect(metric(m, 'walkeeper_slot_invalidations_total', LIMITED, 'live')).toBe(1);
      expect(metric(m, 'walkeeper_slot_lost', LIMITED, 'stale')).toBe(1);
      expect(metric(m, 'walkeeper_slot_retained_bytes', LIMITED, 'stale')).toBe(0);
      expect(metric(m, 'walkeeper_slot_lost', TL, 'r1')).toBe(0);
      expect(metric(m, 'walkeeper_slot_retained_bytes', TL, 'r1')).toBe(Number(firstEnd - START_LSN));
    } finally {
      c.destroy();
    }
  });

  test('the invalidation is persisted: still lost after a restart; dropping and creating the slot again works', async () => {
    await ts.sk.stop();
    ts = await startTestSafekeeper(dir, { maxSlotWalKeepSize: LIMIT });
    expect(await slotStatus(LIMITED, 'stale')).toMatchObject({ wal_status: 'lost', invalidation_reason: expect.stringMatching(/max_slot_wal_keep_size/) });
    const c = await repl(LIMITED);
    try {
      await c.query('DROP_REPLICATION_SLOT stale');
      await c.query('CREATE_REPLICATION_SLOT stale PHYSICAL RESERVE_WAL');
      expect(await slotStatus(LIMITED, 'stale')).toMatchObject({ wal_status: 'reserved', restart_lsn: formatLsn(START_LSN) });
    } finally {
      c.destroy();
    }
  });
});

describe('a corrupt slots.control', () => {
  let corrupt: Record<string, string>;
  const file = () => join(tlDir(BROKEN), SLOTS_FILE_NAME);

  beforeAll(async () => {
    const c = await repl(BROKEN);
    await c.query('CREATE_REPLICATION_SLOT keep PHYSICAL RESERVE_WAL');
    c.destroy();
    await ts.sk.stop();
    const bytes = readFileSync(file());
    bytes[14] ^= 0x01;
    writeFileSync(file(), bytes);
    corrupt = hashTree(tlDir(BROKEN));
    ts = await startTestSafekeeper(dir, { maxSlotWalKeepSize: LIMIT });
  });

  test('takes that timeline out of service with an error naming the file, and only that one', async () => {
    const r = await http(ts.httpUrl, 'GET', `/v1/tenants/${TENANT}/timelines/${BROKEN}`);
    expect(r.status).toBe(500);
    expect(r.json.error).toMatch(/slot file .*slots\.control: checksum mismatch/);
    const c = await repl(BROKEN);
    try {
      expect(await refused(c, 'READ_REPLICATION_SLOT keep')).toMatchObject({ code: 'XX000', message: expect.stringMatching(/unavailable .*slots\.control: checksum mismatch/) });
    } finally {
      c.destroy();
    }
    expect((await status(TL)).slots.length).toBeGreaterThan(0);
  });

  test('is never rewritten or reset', async () => {
    await sleep(1200);
    expect(hashTree(tlDir(BROKEN))).toEqual(corrupt);
    await ts.sk.stop();
    ts = await startTestSafekeeper(dir, { maxSlotWalKeepSize: LIMIT });
    expect(hashTree(tlDir(BROKEN))).toEqual(corrupt);
  });
});
