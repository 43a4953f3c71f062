// LSN helpers: one place to parse, format and do segment arithmetic on PostgreSQL WAL positions.
// LSNs are bigint everywhere (a u64 does not fit a JS number).

export type Lsn = bigint;

export const INVALID_LSN: Lsn = 0n;
export const XLOG_BLCKSZ = 8192;
export const DEFAULT_WAL_SEG_SIZE = 16 * 1024 * 1024;
const U64_MAX = (1n << 64n) - 1n;

/** Formats an LSN the way PostgreSQL does: upper and lower 32 bits in hex, `X/X`. */
export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Parses `X/X`; throws an Error naming the bad text. */
export function parseLsn(text: string): Lsn {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!m) throw new Error(`invalid LSN "${text}": expected X/X with up to 8 hex digits on each side`);
  return (BigInt('0x' + m[1]) << 32n) | BigInt('0x' + m[2]);
}

export function isValidU64(v: bigint): boolean {
  return v >= 0n && v <= U64_MAX;
}

export function segmentNo(lsn: Lsn, segSize: number = DEFAULT_WAL_SEG_SIZE): bigint {
  return lsn / BigInt(segSize);
}

export function segmentStart(lsn: Lsn, segSize: number = DEFAULT_WAL_SEG_SIZE): Lsn {
  return lsn - (lsn % BigInt(segSize));
}

export function segmentOffset(lsn: Lsn, segSize: number = DEFAULT_WAL_SEG_SIZE): number {
  return Number(lsn % BigInt(segSize));
}

/** PostgreSQL's WAL file name for a segment: TTTTTTTTXXXXXXXXYYYYYYYY. */
export function walFileName(pgTimeline: number, segNo: bigint, segSize: number = DEFAULT_WAL_SEG_SIZE): string {
  const segsPerXlogId = 0x100000000n / BigInt(segSize);
  const hex8 = (v: bigint | number) => v.toString(16).toUpperCase().padStart(8, '0');
  return hex8(pgTimeline) + hex8(segNo / segsPerXlogId) + hex8(segNo % segsPerXlogId);
}

/** Inverse of walFileName; returns null for names that are not WAL segment names. */
export function parseWalFileName(
  name: string,
  segSize: number = DEFAULT_WAL_SEG_SIZE,
): { pgTimeline: number; segNo: bigint } | null {
  const m = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/.exec(name);
  if (!m) return null;
  const segsPerXlogId = 0x100000000n / BigInt(segSize);
  const low = BigInt('0x' + m[3]);
  if (low >= segsPerXlogId) return null;
  return { pgTimeline: parseInt(m[1], 16), segNo: BigInt('0x' + m[2]) * segsPerXlogId + low };
}

export function maxLsn(a: Lsn, b: Lsn): Lsn {
  return a > b ? a : b;
}

export function minLsn(a: Lsn, b: Lsn): Lsn {
  return a < b ? a : b;
}
