// The per-timeline control file `safekeeper.control`: the acceptor's persistent state in an
// explicit little-endian layout (magic, version, body, CRC-32C of all preceding bytes),
// replaced atomically (write .partial, fsync, rename, fsync the directory). A corrupt file is
// a hard error naming the file; it is never reset.

import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { isValidId } from '../common/ids.js';
import { formatLsn, isValidU64, type Lsn } from '../common/lsn.js';
import { crc32c } from './crc32c.js';
import { errnoCode, StorageError } from './errors.js';
import { hex32 } from './walRecords.js';
import type { AcceptorPersistentState } from '../consensus/state.js';
import type { TermSwitch } from '../consensus/messages.js';
import { validatePgTimelineHistory, type PgTimelineHistory } from '../consensus/pgTimeline.js';

export const CONTROL_FILE_NAME = 'safekeeper.control';
export const CONTROL_FILE_MAGIC = 0x57414c4b; // "WALK"
/**
 * Format versions: 1 = up to the term history and the fixed fields; 2 adds the PostgreSQL
 * timeline history (tli, start LSN pairs) and the current timeline's `.history` file; 3 adds
 * the WAL lifecycle positions (backup LSN, first LSN held locally). A version 1 file is read
 * as a timeline that never switched: history [(pgTimeline, 0/0)]; a version 1 or 2 file as one
 * that never offloaded nor removed WAL. Files are always written in the current version.
 */
export const CONTROL_FILE_VERSION = 3;
const OLDEST_READABLE_VERSION = 1;

export type TermHistoryEntry = TermSwitch;

/**
 * What the safekeeper itself keeps about a timeline's WAL, beside the acceptor's state: the
 * consensus never reads these, the WAL lifecycle (offload, removal) owns them.
 */
export interface TimelineLifecycleState {
  /** Creation time, milliseconds since the epoch. */
  createdAt: bigint;
  /** All WAL below it is in remote storage, verified (0 = nothing offloaded). Only moves forward. */
  backupLsn: Lsn;
  /**
   * First LSN whose segment is still on local disk: removal moved it there (0 = nothing ever
   * removed, WAL starts at timelineStartLsn). Persisted before the files go, so start-up and
   * readers never look for WAL below it. Only moves forward.
   */
  walStartLsn: Lsn;
}

/** What the control file holds: the acceptor's persistent state and the lifecycle state. */
export type TimelinePersistentState = AcceptorPersistentState & TimelineLifecycleState;

const HEADER_SIZE = 8; // magic + version
const ID_BYTES = 16;
const FIXED_BODY_SIZE = ID_BYTES * 2 + 8 + 4 + 4 + 8 + 4 + 4 + 8 * 4; // without history entries
const HISTORY_ENTRY_SIZE = 16;
const PG_TIMELINE_ENTRY_SIZE = 12; // u32 tli, u64 start LSN
const LIFECYCLE_SIZE = 16; // version 3: u64 backup LSN, u64 local WAL start
/** Refuse absurd history counts before allocating (a corrupt count would otherwise). */
const MAX_HISTORY_ENTRIES = 1 << 20;
const MAX_HISTORY_FILE_BYTES = 1 << 20;

/** Serializes a state to the on-disk bytes (with magic, version and checksum). */
export function encodeControlFile(state: TimelinePersistentState): Buffer {
  validateState(state);
  const historyFile = Buffer.from(state.pgHistoryFile, 'utf8');
  const size =
    HEADER_SIZE + FIXED_BODY_SIZE + state.termHistory.length * HISTORY_ENTRY_SIZE +
    4 + state.pgTimelineHistory.length * PG_TIMELINE_ENTRY_SIZE + 4 + historyFile.length + LIFECYCLE_SIZE + 4;
  const buf = Buffer.alloc(size);
  let o = 0;
  o = buf.writeUInt32LE(CONTROL_FILE_MAGIC, o);
  o = buf.writeUInt32LE(CONTROL_FILE_VERSION, o);
  o += buf.write(state.tenantId, o, ID_BYTES, 'hex');
  o += buf.write(state.timelineId, o, ID_BYTES, 'hex');
  o = buf.writeBigUInt64LE(state.term, o);
  o = buf.writeUInt32LE(state.termHistory.length, o);
  for (const entry of state.termHistory) {
    o = buf.writeBigUInt64LE(entry.term, o);
    o = buf.writeBigUInt64LE(entry.lsn, o);
  }
  o = buf.writeUInt32LE(state.pgVersion, o);
  o = buf.writeBigUInt64LE(state.systemId, o);
  o = buf.writeUInt32LE(state.walSegSize, o);
  o = buf.writeUInt32LE(state.pgTimeline, o);
  o = buf.writeBigUInt64LE(state.timelineStartLsn, o);
  o = buf.writeBigUInt64LE(state.commitLsn, o);
  o = buf.writeBigUInt64LE(state.truncateLsn, o);
  o = buf.writeBigUInt64LE(state.createdAt, o);
  // version 2
  o = buf.writeUInt32LE(state.pgTimelineHistory.length, o);
  for (const entry of state.pgTimelineHistory) {
    o = buf.writeUInt32LE(entry.tli, o);
    o = buf.writeBigUInt64LE(entry.startLsn, o);
  }
  o = buf.writeUInt32LE(historyFile.length, o);
  o += historyFile.copy(buf, o);
  // version 3
  o = buf.writeBigUInt64LE(state.backupLsn, o);
  o = buf.writeBigUInt64LE(state.walStartLsn, o);
  o = buf.writeUInt32LE(crc32c(buf.subarray(0, o)), o);
  if (o !== size) throw new Error(`control file encoder wrote ${o} bytes, expected ${size}`);
  return buf;
}

/** Parses on-disk bytes; `path` is only for messages. Throws StorageError 'control_corrupt'. */
export function decodeControlFile(bytes: Uint8Array, path: string): TimelinePersistentState {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (what: string) => new StorageError('control_corrupt', `control file ${path}: ${what}`);
  if (buf.length < HEADER_SIZE + FIXED_BODY_SIZE + 4) {
    throw bad(`too short (${buf.length} bytes, at least ${HEADER_SIZE + FIXED_BODY_SIZE + 4} expected)`);
  }
  const magic = buf.readUInt32LE(0);
  if (magic !== CONTROL_FILE_MAGIC) throw bad(`bad magic 0x${hex32(magic)} (expected 0x${hex32(CONTROL_FILE_MAGIC)})`);
  const version = buf.readUInt32LE(4);
  if (version < OLDEST_READABLE_VERSION || version > CONTROL_FILE_VERSION) {
    throw bad(`unsupported format version ${version} (this build reads ${OLDEST_READABLE_VERSION} to ${CONTROL_FILE_VERSION})`);
  }
  const checkCrcOverWholeFile = () => {
    const stored = buf.readUInt32LE(buf.length - 4);
    const computed = crc32c(buf.subarray(0, buf.length - 4));
    if (stored !== computed) throw bad(`checksum mismatch (stored 0x${hex32(stored)}, computed 0x${hex32(computed)})`);
  };
  // The length depends on the counts inside; check the checksum over what the counts imply
  // only after they are plausible, so a short or long file is reported as such. A count that
  // points past the end could be a corrupt count or a truncated file: the checksum over the
  // whole file decides the wording.
  const countOffset = HEADER_SIZE + ID_BYTES * 2 + 8;
  const count = buf.readUInt32LE(countOffset);
  const v1BodyEnd = HEADER_SIZE + FIXED_BODY_SIZE + count * HISTORY_ENTRY_SIZE;
  if (count > MAX_HISTORY_ENTRIES || buf.length < v1BodyEnd + 4) {
    checkCrcOverWholeFile();
    throw bad(`too short for ${count} term history entries (${buf.length} bytes, ${v1BodyEnd + 4} expected)`);
  }
  let bodyEnd = v1BodyEnd;
  let pgCount = 0;
  let fileLength = 0;
  if (version >= 2) {
    if (buf.length < bodyEnd + 4 + 4) {
      checkCrcOverWholeFile();
      throw bad(`too short for the PostgreSQL timeline history (${buf.length} bytes)`);
    }
    pgCount = buf.readUInt32LE(bodyEnd);
    const fileLengthAt = bodyEnd + 4 + pgCount * PG_TIMELINE_ENTRY_SIZE;
    if (pgCount > MAX_HISTORY_ENTRIES || buf.length < fileLengthAt + 4 + 4) {
      checkCrcOverWholeFile();
      throw bad(`too short for ${pgCount} PostgreSQL timeline history entries (${buf.length} bytes)`);
    }
    fileLength = buf.readUInt32LE(fileLengthAt);
    bodyEnd = fileLengthAt + 4 + fileLength;
    if (fileLength > MAX_HISTORY_FILE_BYTES || buf.length < bodyEnd + 4) {
      checkCrcOverWholeFile();
      throw bad(`too short for a ${fileLength}-byte history file (${buf.length} bytes, ${bodyEnd + 4} expected)`);
    }
  }
  const lifecycleAt = bodyEnd;
  if (version >= 3) {
    bodyEnd += LIFECYCLE_SIZE;
    if (buf.length < bodyEnd + 4) {
      checkCrcOverWholeFile();
      throw bad(`too short for the WAL lifecycle positions (${buf.length} bytes, ${bodyEnd + 4} expected)`);
    }
  }
  const expectedSize = bodyEnd + 4;
  if (buf.length > expectedSize) {
    const stored = buf.readUInt32LE(expectedSize - 4);
    const computed = crc32c(buf.subarray(0, expectedSize - 4));
    if (stored !== computed) throw bad(`checksum mismatch (stored 0x${hex32(stored)}, computed 0x${hex32(computed)})`);
    throw bad(`${buf.length - expectedSize} trailing bytes after the checksum`);
  }
  const stored = buf.readUInt32LE(expectedSize - 4);
  const computed = crc32c(buf.subarray(0, expectedSize - 4));
  if (stored !== computed) throw bad(`checksum mismatch (stored 0x${hex32(stored)}, computed 0x${hex32(computed)})`);

  let o = HEADER_SIZE;
  const tenantId = buf.toString('hex', o, o + ID_BYTES);
  o += ID_BYTES;
  const timelineId = buf.toString('hex', o, o + ID_BYTES);
  o += ID_BYTES;
  const term = buf.readBigUInt64LE(o);
  o += 8 + 4;
  const termHistory: TermHistoryEntry[] = [];
  for (let k = 0; k < count; k++) {
    termHistory.push({ term: buf.readBigUInt64LE(o), lsn: buf.readBigUInt64LE(o + 8) });
    o += HISTORY_ENTRY_SIZE;
  }
  const pgVersion = buf.readUInt32LE(o);
  const systemId = buf.readBigUInt64LE(o + 4);
  const walSegSize = buf.readUInt32LE(o + 12);
  const pgTimeline = buf.readUInt32LE(o + 16);
  const timelineStartLsn = buf.readBigUInt64LE(o + 20);
  const commitLsn = buf.readBigUInt64LE(o + 28);
  const truncateLsn = buf.readBigUInt64LE(o + 36);
  const createdAt = buf.readBigUInt64LE(o + 44);
  o += 52;
  // Version 1 predates timeline switches: its WAL is all of the timeline it was created with.
  let pgTimelineHistory: PgTimelineHistory = [{ tli: pgTimeline, startLsn: 0n }];
  let pgHistoryFile = '';
  if (version >= 2) {
    o += 4;
    pgTimelineHistory = [];
    for (let k = 0; k < pgCount; k++) {
      pgTimelineHistory.push({ tli: buf.readUInt32LE(o), startLsn: buf.readBigUInt64LE(o + 4) });
      o += PG_TIMELINE_ENTRY_SIZE;
    }
    o += 4;
    try {
      pgHistoryFile = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(buf.subarray(o, o + fileLength));
    } catch {
      throw bad('the PostgreSQL history file is not valid UTF-8');
    }
    try {
      validatePgTimelineHistory(pgTimelineHistory, pgHistoryFile);
    } catch (err) {
      throw bad((err as Error).message);
    }
  }
  const backupLsn = version >= 3 ? buf.readBigUInt64LE(lifecycleAt) : 0n;
  const walStartLsn = version >= 3 ? buf.readBigUInt64LE(lifecycleAt + 8) : 0n;
  return {
    tenantId,
    timelineId,
    term,
    termHistory,
    pgVersion,
    systemId,
    walSegSize,
    pgTimeline,
    pgTimelineHistory,
    pgHistoryFile,
    timelineStartLsn,
    commitLsn,
    truncateLsn,
    createdAt,
    backupLsn,
    walStartLsn,
  };
}

function validateState(state: TimelinePersistentState): void {
  const fail = (what: string) => {
    throw new StorageError('invalid_argument', `cannot write control file for ${state.tenantId}/${state.timelineId}: ${what}`);
  };
  if (!isValidId(state.tenantId)) fail(`invalid tenant_id ${JSON.stringify(state.tenantId)}`);
  if (!isValidId(state.timelineId)) fail(`invalid timeline_id ${JSON.stringify(state.timelineId)}`);
  const u64s: [string, bigint][] = [
    ['term', state.term],
    ['systemId', state.systemId],
    ['timelineStartLsn', state.timelineStartLsn],
    ['commitLsn', state.commitLsn],
    ['truncateLsn', state.truncateLsn],
    ['createdAt', state.createdAt],
    ['backupLsn', state.backupLsn],
    ['walStartLsn', state.walStartLsn],
  ];
  state.termHistory.forEach((e, k) => {
    u64s.push([`termHistory[${k}].term`, e.term], [`termHistory[${k}].lsn`, e.lsn]);
  });
  for (const [name, v] of u64s) if (typeof v !== 'bigint' || !isValidU64(v)) fail(`${name} ${String(v)} is not a u64`);
  const u32s: [string, number][] = [
    ['pgVersion', state.pgVersion],
    ['walSegSize', state.walSegSize],
    ['pgTimeline', state.pgTimeline],
  ];
  for (const [name, v] of u32s) if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) fail(`${name} ${v} is not a u32`);
  if (state.termHistory.length > MAX_HISTORY_ENTRIES) fail(`term history has ${state.termHistory.length} entries`);
  state.pgTimelineHistory.forEach((e, k) => {
    if (!Number.isInteger(e.tli) || e.tli < 1 || e.tli > 0xffffffff) fail(`pgTimelineHistory[${k}].tli ${e.tli} is not a timeline ID`);
    if (typeof e.startLsn !== 'bigint' || !isValidU64(e.startLsn)) fail(`pgTimelineHistory[${k}].startLsn ${String(e.startLsn)} is not a u64`);
  });
  if (Buffer.byteLength(state.pgHistoryFile, 'utf8') > MAX_HISTORY_FILE_BYTES) fail(`history file of ${Buffer.byteLength(state.pgHistoryFile, 'utf8')} bytes is too large`);
  try {
    validatePgTimelineHistory(state.pgTimelineHistory, state.pgHistoryFile);
  } catch (err) {
    fail((err as Error).message);
  }
}

export interface ControlFileWriteOptions {
  syncMode?: 'fsync' | 'none';
}

/** Reads `<timelineDir>/safekeeper.control`; null if it does not exist. */
export async function readControlFile(timelineDir: string): Promise<TimelinePersistentState | null> {
  const path = join(timelineDir, CONTROL_FILE_NAME);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw new StorageError('io_error', `control file ${path}: cannot read: ${String(err)}`, { cause: err });
  }
  return decodeControlFile(bytes, path);
}

/** Atomically replaces `<timelineDir>/safekeeper.control` with `state`. */
export async function writeControlFile(
  timelineDir: string,
  state: TimelinePersistentState,
  options: ControlFileWriteOptions = {},
): Promise<void> {
  const bytes = encodeControlFile(state);
  const path = join(timelineDir, CONTROL_FILE_NAME);
  try {
    await replaceFileAtomically(timelineDir, CONTROL_FILE_NAME, bytes, options);
  } catch (err) {
    const code = errnoCode(err) === 'ENOSPC' ? 'disk_full' : 'io_error';
    throw new StorageError(code, `control file ${path}: cannot write: ${String(err)}`, { cause: err });
  }
}

/**
 * Replaces `<dir>/<name>` with `bytes` so that a crash leaves either the old or the new file:
 * write `<name>.partial`, fsync it, rename it over `<name>`, fsync the directory. Throws the
 * raw system error; callers name their file in the message.
 */
export async function replaceFileAtomically(dir: string, name: string, bytes: Uint8Array, options: ControlFileWriteOptions = {}): Promise<void> {
  const path = join(dir, name);
  const tmp = `${path}.partial`;
  const sync = (options.syncMode ?? 'fsync') === 'fsync';
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(bytes);
    if (sync) await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  if (sync) await fsyncDirectory(dir);
}

export async function fsyncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** A one-line summary for logs. */
export function describeControlState(state: TimelinePersistentState): string {
  return (
    `${state.tenantId}/${state.timelineId} term ${state.term} commit ${formatLsn(state.commitLsn)} ` +
    `start ${formatLsn(state.timelineStartLsn)} history ${state.termHistory.map((e) => `${e.term}@${formatLsn(e.lsn)}`).join(',')} ` +
    `pg timelines ${state.pgTimelineHistory.map((e) => `${e.tli}@${formatLsn(e.startLsn)}`).join(',')}`
  );
}
