// The per-timeline file `slots.control`: the readers' physical replication slots, in an
// explicit little-endian layout (magic, version, slots, CRC-32C of all preceding bytes),
// replaced atomically like the control file. A corrupt file is a hard error naming the file;
// it is never reset (a reset would silently let go of WAL a reader still needs).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isValidU64, type Lsn } from '../common/lsn.js';
import { crc32c } from './crc32c.js';
import { replaceFileAtomically, type ControlFileWriteOptions } from './controlFile.js';
import { errnoCode, StorageError } from './errors.js';
import { hex32 } from './walRecords.js';

export const SLOTS_FILE_NAME = 'slots.control';
export const SLOTS_FILE_MAGIC = 0x534c4f54; // "SLOT"
/** Format versions: 1 = name, restart LSN, creation time, invalidation. */
export const SLOTS_FILE_VERSION = 1;

/** Why a slot stopped holding WAL (PostgreSQL 15 has one cause: the size limit). */
export type SlotInvalidationCause = 'wal_removed';

export interface PersistedSlot {
  name: string;
  /** 0 = no restart position yet (created without RESERVE_WAL, never streamed) */
  restartLsn: Lsn;
  /** creation time, milliseconds since the epoch */
  createdAt: bigint;
  /** set once the slot was invalidated; it then holds no WAL */
  invalidation: {
    cause: SlotInvalidationCause;
    /** the restart LSN it had when it was invalidated */
    restartLsn: Lsn;
    /** the commit LSN that was too far ahead of it */
    commitLsn: Lsn;
    /** the limit in force (bytes) */
    limitBytes: bigint;
    /** milliseconds since the epoch */
    at: bigint;
  } | null;
}

const HEADER_SIZE = 12; // magic, version, count
const MAX_NAME_BYTES = 63;
const MAX_SLOTS = 1 << 16;
const CAUSES: SlotInvalidationCause[] = ['wal_removed'];

export function encodeSlotsFile(slots: readonly PersistedSlot[]): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(HEADER_SIZE);
  head.writeUInt32LE(SLOTS_FILE_MAGIC, 0);
  head.writeUInt32LE(SLOTS_FILE_VERSION, 4);
  head.writeUInt32LE(slots.length, 8);
  parts.push(head);
  for (const s of slots) {
    const name = Buffer.from(s.name, 'utf8');
    if (name.length === 0 || name.length > MAX_NAME_BYTES) throw new StorageError('invalid_argument', `cannot write slot "${s.name}": name must be 1 to ${MAX_NAME_BYTES} bytes`);
    const u64s = [s.restartLsn, s.createdAt, s.invalidation?.restartLsn ?? 0n, s.invalidation?.commitLsn ?? 0n, s.invalidation?.limitBytes ?? 0n, s.invalidation?.at ?? 0n];
    for (const v of u64s) if (!isValidU64(v)) throw new StorageError('invalid_argument', `cannot write slot "${s.name}": ${String(v)} is not a u64`);
    const b = Buffer.alloc(1 + name.length + 8 + 8 + 1 + 8 * 4);
    let o = b.writeUInt8(name.length, 0);
    o += name.copy(b, o);
    o = b.writeBigUInt64LE(s.restartLsn, o);
    o = b.writeBigUInt64LE(s.createdAt, o);
    o = b.writeUInt8(s.invalidation ? CAUSES.indexOf(s.invalidation.cause) + 1 : 0, o);
    for (const v of u64s.slice(2)) o = b.writeBigUInt64LE(v, o);
    parts.push(b);
  }
  const body = Buffer.concat(parts);
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32c(body), 0);
  return Buffer.concat([body, crc]);
}

/** Parses on-disk bytes; `path` is only for messages. Throws StorageError 'control_corrupt'. */
export function decodeSlotsFile(bytes: Uint8Array, path: string): PersistedSlot[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (what: string) => new StorageError('control_corrupt', `slot file ${path}: ${what}`);
  if (buf.length < HEADER_SIZE + 4) throw bad(`too short (${buf.length} bytes, at least ${HEADER_SIZE + 4} expected)`);
  const magic = buf.readUInt32LE(0);
  if (magic !== SLOTS_FILE_MAGIC) throw bad(`bad magic 0x${hex32(magic)} (expected 0x${hex32(SLOTS_FILE_MAGIC)})`);
  const version = buf.readUInt32LE(4);
  if (version !== SLOTS_FILE_VERSION) throw bad(`unsupported format version ${version} (this build reads ${SLOTS_FILE_VERSION})`);
  // The checksum covers everything before the last 4 bytes: checked first, so a torn or
  // flipped file is reported as such rather than as whatever its damaged counts imply.
  const stored = buf.readUInt32LE(buf.length - 4);
  const computed = crc32c(buf.subarray(0, buf.length - 4));
  if (stored !== computed) throw bad(`checksum mismatch (stored 0x${hex32(stored)}, computed 0x${hex32(computed)})`);
  const count = buf.readUInt32LE(8);
  if (count > MAX_SLOTS) throw bad(`implausible slot count ${count}`);
  const end = buf.length - 4;
  const out: PersistedSlot[] = [];
  let o = HEADER_SIZE;
  for (let k = 0; k < count; k++) {
    if (o + 1 > end) throw bad(`truncated at slot ${k} of ${count}`);
    const nameLen = buf.readUInt8(o);
    const need = 1 + nameLen + 8 + 8 + 1 + 8 * 4;
    if (nameLen === 0 || nameLen > MAX_NAME_BYTES || o + need > end) throw bad(`slot ${k} of ${count}: bad name length ${nameLen} or truncated entry`);
    const name = buf.toString('utf8', o + 1, o + 1 + nameLen);
    let p = o + 1 + nameLen;
    const restartLsn = buf.readBigUInt64LE(p);
    const createdAt = buf.readBigUInt64LE(p + 8);
    const causeCode = buf.readUInt8(p + 16);
    p += 17;
    const [invRestart, invCommit, invLimit, invAt] = [0, 1, 2, 3].map((i) => buf.readBigUInt64LE(p + 8 * i));
    if (causeCode > CAUSES.length) throw bad(`slot "${name}": unknown invalidation cause ${causeCode}`);
    if (out.some((s) => s.name === name)) throw bad(`slot "${name}" appears twice`);
    out.push({
      name,
      restartLsn,
      createdAt,
      invalidation: causeCode === 0 ? null : { cause: CAUSES[causeCode - 1], restartLsn: invRestart, commitLsn: invCommit, limitBytes: invLimit, at: invAt },
    });
    o += need;
  }
  if (o !== end) throw bad(`${end - o} trailing bytes after ${count} slots`);
  return out;
}

/** Reads `<timelineDir>/slots.control`; no file means no slots. */
export async function readSlotsFile(timelineDir: string): Promise<PersistedSlot[]> {
  const path = join(timelineDir, SLOTS_FILE_NAME);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw new StorageError('io_error', `slot file ${path}: cannot read: ${String(err)}`, { cause: err });
  }
  return decodeSlotsFile(bytes, path);
}

/** Atomically replaces `<timelineDir>/slots.control`. */
export async function writeSlotsFile(timelineDir: string, slots: readonly PersistedSlot[], options: ControlFileWriteOptions = {}): Promise<void> {
  const bytes = encodeSlotsFile(slots);
  const path = join(timelineDir, SLOTS_FILE_NAME);
  try {
    await replaceFileAtomically(timelineDir, SLOTS_FILE_NAME, bytes, options);
  } catch (err) {
    const code = errnoCode(err) === 'ENOSPC' ? 'disk_full' : 'io_error';
    throw new StorageError(code, `slot file ${path}: cannot write: ${String(err)}`, { cause: err });
  }
}
