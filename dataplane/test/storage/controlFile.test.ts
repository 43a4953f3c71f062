import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CONTROL_FILE_NAME,
  decodeControlFile,
  encodeControlFile,
  readControlFile,
  writeControlFile,
  type TimelinePersistentState,
} from '../../src/storage/controlFile.js';
import { StorageError } from '../../src/storage/errors.js';
import { crc32c } from '../../src/storage/crc32c.js';

/** The version 1 layout (before PostgreSQL timeline switches), written by hand. */
function encodeVersion1(s: TimelinePersistentState): Buffer {
  const buf = Buffer.alloc(8 + 32 + 8 + 4 + s.termHistory.length * 16 + 4 + 8 + 4 + 4 + 8 * 4 + 4);
  let o = buf.writeUInt32LE(0x57414c4b, 0);
  o = buf.writeUInt32LE(1, o);
  o += buf.write(s.tenantId, o, 16, 'hex');
  o += buf.write(s.timelineId, o, 16, 'hex');
  o = buf.writeBigUInt64LE(s.term, o);
  o = buf.writeUInt32LE(s.termHistory.length, o);
  for (const e of s.termHistory) {
    o = buf.writeBigUInt64LE(e.term, o);
    o = buf.writeBigUInt64LE(e.lsn, o);
  }
  o = buf.writeUInt32LE(s.pgVersion, o);
  o = buf.writeBigUInt64LE(s.systemId, o);
  o = buf.writeUInt32LE(s.walSegSize, o);
  o = buf.writeUInt32LE(s.pgTimeline, o);
  o = buf.writeBigUInt64LE(s.timelineStartLsn, o);
  o = buf.writeBigUInt64LE(s.commitLsn, o);
  o = buf.writeBigUInt64LE(s.truncateLsn, o);
  o = buf.writeBigUInt64LE(s.createdAt, o);
  buf.writeUInt32LE(crc32c(buf.subarray(0, o)), o);
  return buf;
}

const state: TimelinePersistentState = {
  tenantId: '0123456789abcdef0123456789abcdef',
  timelineId: 'fedcba9876543210fedcba9876543210',
  term: 7n,
  termHistory: [
    { term: 0n, lsn: 0x1000000n },
    { term: 3n, lsn: 0x1234568n },
    { term: 7n, lsn: 0x2fffff8n },
  ],
  pgVersion: 150004,
  systemId: 7300000000000000001n,
  walSegSize: 16 * 1024 * 1024,
  pgTimeline: 1,
  pgTimelineHistory: [
    { tli: 1, startLsn: 0n },
    { tli: 2, startLsn: 0x1800000n },
  ],
  pgHistoryFile: '1\t0/1800000\tno recovery target specified\n',
  timelineStartLsn: 0x1000000n,
  commitLsn: 0x2fffff0n,
  truncateLsn: 0x1800000n,
  createdAt: 1764000000000n,
  backupLsn: 0x2000000n,
  walStartLsn: 0x1000000n,
};

/** The version 2 layout (before the WAL lifecycle positions): version 3 without them. */
function encodeVersion2(s: TimelinePersistentState): Buffer {
  const v3 = encodeControlFile(s);
  const body = Buffer.from(v3.subarray(0, v3.length - 4 - 16));
  body.writeUInt32LE(2, 4);
  return Buffer.concat([body, Buffer.from(new Uint32Array([crc32c(body)]).buffer)]);
}

function expectCorrupt(bytes: Buffer, pattern: RegExp): void {
  let caught: unknown;
  try {
    decodeControlFile(bytes, '/x/safekeeper.control');
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(StorageError);
  expect((caught as StorageError).code).toBe('control_corrupt');
  expect((caught as StorageError).message).toMatch(/^control file \/x\/safekeeper\.control: /);
  expect((caught as StorageError).message).toMatch(pattern);
}

describe('control file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'walkeeper-control-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('round-trips every field through the byte layout', () => {
    expect(decodeControlFile(encodeControlFile(state), 'mem')).toEqual(state);
    const empty = { ...state, termHistory: [] };
    expect(decodeControlFile(encodeControlFile(empty), 'mem')).toEqual(empty);
  });

  it('starts with the magic and version, and ends with the CRC-32C of all preceding bytes', () => {
    const bytes = encodeControlFile(state);
    expect(bytes.readUInt32LE(0)).toBe(0x57414c4b);
    expect(bytes.readUInt32LE(4)).toBe(3);
    const historyFile = Buffer.byteLength(state.pgHistoryFile);
    expect(bytes.length).toBe(8 + 32 + 8 + 4 + 3 * 16 + 4 + 8 + 4 + 4 + 8 * 4 + 4 + 2 * 12 + 4 + historyFile + 16 + 4);
    expect(bytes.readBigUInt64LE(bytes.length - 20)).toBe(state.backupLsn);
    expect(bytes.readBigUInt64LE(bytes.length - 12)).toBe(state.walStartLsn);
    expect(bytes.readUInt32LE(bytes.length - 4)).toBe(crc32c(bytes.subarray(0, bytes.length - 4)));
  });

  it('reads a version 1 file as a timeline that never switched PostgreSQL timelines', () => {
    const old = encodeVersion1(state);
    const read = decodeControlFile(old, 'mem');
    expect(read).toEqual({ ...state, pgTimelineHistory: [{ tli: 1, startLsn: 0n }], pgHistoryFile: '', backupLsn: 0n, walStartLsn: 0n });
    // written back, it is the current version with the same content
    const upgraded = encodeControlFile(read);
    expect(upgraded.readUInt32LE(4)).toBe(3);
    expect(decodeControlFile(upgraded, 'mem')).toEqual(read);
    // a flipped bit in a version 1 file is still caught by its checksum
    const bad = Buffer.from(old);
    bad[60] ^= 0x04;
    expectCorrupt(bad, /checksum mismatch/);
  });

  it('reads a version 2 file as a timeline that never offloaded nor removed WAL', () => {
    const old = encodeVersion2(state);
    expect(old.readUInt32LE(4)).toBe(2);
    expect(decodeControlFile(old, 'mem')).toEqual({ ...state, backupLsn: 0n, walStartLsn: 0n });
    const bad = Buffer.from(old);
    bad[60] ^= 0x04;
    expectCorrupt(bad, /checksum mismatch/);
  });

  it('refuses a version 3 file cut inside the lifecycle positions', () => {
    const bytes = encodeControlFile(state);
    const cut = Buffer.from(bytes.subarray(0, bytes.length - 12));
    expectCorrupt(cut, /too short for the WAL lifecycle positions|checksum mismatch/);
  });

  it('refuses a PostgreSQL timeline history that contradicts its history file', () => {
    const wrong = { ...state, pgTimelineHistory: [{ tli: 1, startLsn: 0n }, { tli: 2, startLsn: 0x1900000n }] };
    expect(() => encodeControlFile(wrong)).toThrow(/does not match its history file|said to start at 0\/1900000/);
  });

  it('writes atomically and reads back; no temp file is left behind', async () => {
    await writeControlFile(dir, state);
    await writeControlFile(dir, { ...state, term: 8n });
    expect((await readControlFile(dir))?.term).toBe(8n);
    expect(readdirSync(dir)).toEqual([CONTROL_FILE_NAME]);
  });

  it('reads null when there is no control file', async () => {
    expect(await readControlFile(dir)).toBeNull();
  });

  it('detects a flipped bit anywhere in the file', () => {
    const good = encodeControlFile(state);
    for (let off = 0; off < good.length; off++) {
      const bad = Buffer.from(good);
      bad[off] ^= 0x10;
      let threw = false;
      try {
        decodeControlFile(bad, '/x/safekeeper.control');
      } catch (err) {
        threw = err instanceof StorageError && err.code === 'control_corrupt';
      }
      if (!threw) throw new Error(`flip at offset ${off} was not detected`);
    }
  });

  it('names each kind of corruption', () => {
    const good = encodeControlFile(state);
    const magic = Buffer.from(good);
    magic.writeUInt32LE(0xdeadbeef, 0);
    expectCorrupt(magic, /bad magic 0xDEADBEEF/);
    const version = Buffer.from(good);
    version.writeUInt32LE(4, 4);
    expectCorrupt(version, /unsupported format version 4 \(this build reads 1 to 3\)/);
    const body = Buffer.from(good);
    body[20] ^= 0xff;
    expectCorrupt(body, /checksum mismatch \(stored 0x[0-9A-F]{8}, computed 0x[0-9A-F]{8}\)/);
    const crc = Buffer.from(good);
    crc[crc.length - 1] ^= 0x01;
    expectCorrupt(crc, /checksum mismatch/);
    expectCorrupt(Buffer.concat([good, Buffer.from([0])]), /1 trailing bytes/);
  });

  it('detects a file truncated at any length', () => {
    const good = encodeControlFile(state);
    for (let len = 0; len < good.length; len++) {
      expect(() => decodeControlFile(good.subarray(0, len), 'p')).toThrow(StorageError);
    }
  });

  it('reports a corrupt file on disk with its path, never resetting it', async () => {
    await writeControlFile(dir, state);
    const path = join(dir, CONTROL_FILE_NAME);
    const bytes = readFileSync(path);
    bytes[30] ^= 0x01;
    writeFileSync(path, bytes);
    await expect(readControlFile(dir)).rejects.toThrow(`control file ${path}: checksum mismatch`);
    expect(readFileSync(path).equals(bytes)).toBe(true);
  });

  it('refuses to write invalid ids or out-of-range numbers', async () => {
    await expect(writeControlFile(dir, { ...state, tenantId: 'nope' })).rejects.toThrow(/invalid tenant_id/);
    await expect(writeControlFile(dir, { ...state, term: -1n })).rejects.toThrow(/term -1 is not a u64/);
    await expect(writeControlFile(dir, { ...state, pgTimeline: 2 ** 32 })).rejects.toThrow(/pgTimeline/);
  });
});
