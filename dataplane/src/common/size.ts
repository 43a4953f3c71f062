// Sizes and ratios as PostgreSQL writes them in its settings: an integer with a unit of
// B, kB, MB, GB or TB (powers of 1024; `64MB`, `1GB`, `512 kB`), and percentages (`90%`).
// One parser for every size flag, so `--wal-keep-size 1GB` means what `wal_keep_size = 1GB` does.

const UNITS: Record<string, bigint> = {
  B: 1n,
  kB: 1024n,
  MB: 1024n ** 2n,
  GB: 1024n ** 3n,
  TB: 1024n ** 4n,
};

/**
 * Parses `text` as a PostgreSQL memory size and returns bytes. Units are case-sensitive, as
 * in PostgreSQL. A bare integer is taken in `defaultUnit` when given (PostgreSQL's
 * wal_keep_size counts in MB), and refused otherwise. `what` names the flag in errors.
 */
export function parsePgSize(text: string, what: string, defaultUnit?: keyof typeof UNITS): bigint {
  const m = /^\s*(\d+)\s*([A-Za-z]*)\s*$/.exec(text);
  if (!m) {
    throw new Error(`invalid ${what} "${text}": expected a non-negative integer with a unit, such as 64MB or 1GB (units: B, kB, MB, GB, TB)`);
  }
  const unitName = m[2] === '' ? defaultUnit : m[2];
  if (unitName === undefined) throw new Error(`invalid ${what} "${text}": a unit is required (B, kB, MB, GB, TB), e.g. ${m[1]}MB`);
  const unit = UNITS[unitName];
  if (unit === undefined) {
    const folded = unitName.toLowerCase().replace(/ib$/, 'b'); // 64mb, 64MiB
    const hint = Object.keys(UNITS).find((u) => u.toLowerCase() === folded);
    throw new Error(`invalid ${what} "${text}": unknown unit "${unitName}"; valid units are B, kB, MB, GB, TB (case-sensitive, as in PostgreSQL)${hint ? `; did you mean ${m[1]}${hint}?` : ''}`);
  }
  return BigInt(m[1]) * unit;
}

/** Parses a percentage `90%` (or `90`) into a ratio in [0, 1]. */
export function parsePercent(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*%?\s*$/.exec(text);
  const value = m ? Number(m[1]) : NaN;
  if (!m || !(value >= 0 && value <= 100)) throw new Error(`invalid ${what} "${text}": expected a percentage from 0% to 100%, such as 90%`);
  return value / 100;
}

/** Bytes as PostgreSQL prints sizes (`16 MB`), for logs and status text. */
export function formatPgSize(bytes: bigint): string {
  for (const unit of ['TB', 'GB', 'MB', 'kB'] as const) {
    if (bytes >= UNITS[unit] && bytes % UNITS[unit] === 0n) return `${bytes / UNITS[unit]}${unit}`;
  }
  return `${bytes}B`;
}

/**
 * A size flag: parsePgSize with a bare number in MB (as PostgreSQL's MB-based settings), and
 * `-1` for unlimited (-1n) where `allowUnlimited`.
 */
export function parseSizeFlag(name: string, value: string, opts: { allowUnlimited?: boolean } = {}): bigint {
  if (opts.allowUnlimited && value.trim() === '-1') return -1n;
  return parsePgSize(value, `--${name}`, 'MB');
}
