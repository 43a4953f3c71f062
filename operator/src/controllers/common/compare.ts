// Semantic comparison of a desired object against what the API server holds: only the fields we set
// count (server-set fields and defaults are ignored), quantities compare by value ("1000m" == "1").

const QUANTITY = /^([+-]?[0-9.]+)([eE][-+]?[0-9]+|[numkMGTPE]i?)?$/;
const SUFFIX: Record<string, number> = {
  n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

export function parseQuantity(q: string | number): number | undefined {
  if (typeof q === 'number') return q;
  const m = QUANTITY.exec(q.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const suffix = m[2] ?? '';
  if (/^[eE]/.test(suffix)) return n * 10 ** Number(suffix.slice(1));
  const mult = SUFFIX[suffix];
  return mult === undefined ? undefined : n * mult;
}

const QUANTITY_PARENTS = new Set(['limits', 'requests', 'capacity']);

/** Returns the path of the first difference, or undefined when `observed` satisfies `desired`. */
export function firstDifference(desired: unknown, observed: unknown, path = ''): string | undefined {
  if (desired === undefined) return undefined;
  if (Array.isArray(desired)) {
    if (!Array.isArray(observed)) return desired.length === 0 && observed === undefined ? undefined : path || '<root>';
    if (desired.length !== observed.length) return `${path} (length ${observed.length} != ${desired.length})`;
    for (let i = 0; i < desired.length; i++) {
      const d = firstDifference(desired[i], observed[i], `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  if (desired !== null && typeof desired === 'object') {
    const d = desired as Record<string, unknown>;
    if (observed === undefined || observed === null) return Object.keys(d).length === 0 ? undefined : path || '<root>';
    if (typeof observed !== 'object' || Array.isArray(observed)) return path || '<root>';
    const o = observed as Record<string, unknown>;
    for (const k of Object.keys(d)) {
      const diff = firstDifference(d[k], o[k], path ? `${path}.${k}` : k);
      if (diff) return diff;
    }
    return undefined;
  }
  if (desired === observed) return undefined;
  const segments = path.split('.');
  if (QUANTITY_PARENTS.has(segments[segments.length - 2] ?? '')) {
    const a = parseQuantity(desired as string | number);
    const b = observed === undefined ? undefined : parseQuantity(observed as string | number);
    if (a !== undefined && b !== undefined && a === b) return undefined;
  }
  return path || '<root>';
}

/** Deep merge: objects merge key by key, arrays and scalars from `desired` replace. */
export function overlay<T>(observed: T, desired: unknown): T {
  if (desired === undefined) return observed;
  if (desired === null || typeof desired !== 'object' || Array.isArray(desired)) return desired as T;
  const base = (observed && typeof observed === 'object' && !Array.isArray(observed) ? { ...(observed as Record<string, unknown>) } : {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(desired as Record<string, unknown>)) base[k] = overlay(base[k], v);
  return base as T;
}
