// Sizes written as PostgreSQL writes them in its settings (`64MB`, `1GB`), for flags such as
// --max-slot-wal-keep-size: one parser, so every size flag takes the same units.
const SIZE_UNITS: Record<string, bigint> = { B: 1n, kB: 1024n, MB: 1024n ** 2n, GB: 1024n ** 3n, TB: 1024n ** 4n };

/**
 * A size in PostgreSQL's units (`64MB`, `1GB`, `512kB`, `100B`; a bare number is MB, as for
 * PostgreSQL's MB-based settings; unit names are case-sensitive as in PostgreSQL) in bytes;
 * `-1` (unlimited, where `allowUnlimited`) is -1n.
 */
export function parseSizeFlag(name: string, value: string, opts: { allowUnlimited?: boolean } = {}): bigint {
  const text = value.trim();
  if (opts.allowUnlimited && text === '-1') return -1n;
  const m = /^([0-9]+)\s*([A-Za-z]*)$/.exec(text);
  const unit = m ? (m[2] === '' ? 'MB' : m[2]) : '';
  if (!m || !(unit in SIZE_UNITS)) {
    throw new Error(`invalid --${name} "${value}": expected a size such as 64MB or 1GB (units B, kB, MB, GB, TB)${opts.allowUnlimited ? ', or -1 for unlimited' : ''}`);
  }
  return BigInt(m[1]) * SIZE_UNITS[unit];
}
