// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) as PostgreSQL uses it for WAL records
// and as walkeeper uses it for its control file. Table-driven, slice-by-8, pure JS.

const POLY = 0x82f63b78;

/** Eight 256-entry tables; TABLES[k][b] is the CRC of byte b followed by k zero bytes. */
const TABLES: Uint32Array[] = buildTables();

function buildTables(): Uint32Array[] {
  const t0 = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t0[n] = c >>> 0;
  }
  const tables = [t0];
  for (let k = 1; k < 8; k++) {
    const prev = tables[k - 1];
    const t = new Uint32Array(256);
    for (let n = 0; n < 256; n++) t[n] = (prev[n] >>> 8) ^ t0[prev[n] & 0xff];
    tables.push(t);
  }
  return tables;
}

const [T0, T1, T2, T3, T4, T5, T6, T7] = TABLES;

/**
 * Advances a raw (non-inverted) CRC register over `data[start, end)`. This is PostgreSQL's
 * COMP_CRC32C: begin with CRC32C_INIT, finish with crc32cFinish.
 */
export function crc32cUpdate(register: number, data: Uint8Array, start = 0, end = data.length): number {
  let crc = register >>> 0;
  let i = start;
  const fastEnd = end - ((end - i) & 7);
  while (i < fastEnd) {
    const lo = (crc ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24))) >>> 0;
    crc =
      T7[lo & 0xff] ^
      T6[(lo >>> 8) & 0xff] ^
      T5[(lo >>> 16) & 0xff] ^
      T4[lo >>> 24] ^
      T3[data[i + 4]] ^
      T2[data[i + 5]] ^
      T1[data[i + 6]] ^
      T0[data[i + 7]];
    i += 8;
  }
  while (i < end) crc = (crc >>> 8) ^ T0[(crc ^ data[i++]) & 0xff];
  return crc >>> 0;
}

/** PostgreSQL's INIT_CRC32C. */
export const CRC32C_INIT = 0xffffffff;

/** PostgreSQL's FIN_CRC32C: the final CRC value from a register. */
export function crc32cFinish(register: number): number {
  return (register ^ 0xffffffff) >>> 0;
}

/**
 * The CRC-32C of `data`. Pass a previous result as `previous` to continue it, so that
 * crc32c(b, crc32c(a)) === crc32c(a ++ b).
 */
export function crc32c(data: Uint8Array, previous = 0): number {
  return crc32cFinish(crc32cUpdate(crc32cFinish(previous), data));
}
