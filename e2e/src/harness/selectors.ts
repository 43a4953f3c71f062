// Label selectors (equality and set-based) and field selectors.
import { ApiError, isObj, type KObject } from './util.js';

type Req = { key: string; op: 'in' | 'notin' | 'exists' | '!' | '=' | '!='; values: string[] };
export type Selector = (o: KObject) => boolean;

function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) { out.push(cur); cur = ''; } else cur += ch;
  }
  if (cur.trim()) out.push(cur);
  return out.map((x) => x.trim()).filter(Boolean);
}

export function parseLabelSelector(s: string | null | undefined): Selector {
  if (!s) return () => true;
  const reqs: Req[] = [];
  for (const part of splitTopLevel(s)) {
    let m: RegExpMatchArray | null;
    if ((m = part.match(/^(\S+)\s+(in|notin)\s+\((.*)\)$/))) reqs.push({ key: m[1]!, op: m[2] as 'in', values: m[3]!.split(',').map((x) => x.trim()).filter(Boolean) });
    else if ((m = part.match(/^!\s*(\S+)$/))) reqs.push({ key: m[1]!, op: '!', values: [] });
    else if ((m = part.match(/^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/))) reqs.push({ key: m[1]!, op: m[2] === '!=' ? '!=' : '=', values: [m[3]!] });
    else if ((m = part.match(/^([^=!\s()]+)$/))) reqs.push({ key: m[1]!, op: 'exists', values: [] });
    else throw new ApiError(400, 'BadRequest', `unable to parse requirement: <nil>: Invalid value: "${part}": found '${part}', expected: identifier`);
  }
  return (o) => {
    const l = o.metadata.labels ?? {};
    return reqs.every((r) => {
      const has = Object.prototype.hasOwnProperty.call(l, r.key);
      switch (r.op) {
        case 'in': return has && r.values.includes(l[r.key]!);
        case 'notin': return !has || !r.values.includes(l[r.key]!);
        case 'exists': return has;
        case '!': return !has;
        case '=': return has && l[r.key] === r.values[0];
        case '!=': return !has || l[r.key] !== r.values[0];
      }
      return false;
    });
  };
}

/** metav1.LabelSelector → string form. */
export function labelSelectorToString(sel: unknown): string {
  if (!isObj(sel)) return '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries((sel.matchLabels as Record<string, string>) ?? {})) parts.push(`${k}=${v}`);
  for (const e of (sel.matchExpressions as { key: string; operator: string; values?: string[] }[]) ?? []) {
    if (e.operator === 'In') parts.push(`${e.key} in (${(e.values ?? []).join(',')})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${(e.values ?? []).join(',')})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}

export function matchesLabelSelector(sel: unknown, o: KObject): boolean {
  if (!isObj(sel)) return false;
  const s = labelSelectorToString(sel);
  return parseLabelSelector(s)(o);
}

function fieldValue(o: KObject, path: string): string {
  let cur: unknown = o;
  for (const seg of path.split('.')) {
    if (!isObj(cur)) return '';
    cur = cur[seg];
  }
  if (cur === undefined || cur === null) return '';
  return String(cur);
}

export function parseFieldSelector(s: string | null | undefined): Selector {
  if (!s) return () => true;
  const reqs = s.split(',').filter(Boolean).map((part) => {
    const m = part.match(/^([^=!]+)(==|=|!=)(.*)$/);
    if (!m) throw new ApiError(400, 'BadRequest', `invalid selector: '${s}'; can't understand '${part}'`);
    return { key: m[1]!.trim(), neg: m[2] === '!=', value: m[3]!.trim() };
  });
  return (o) => reqs.every((r) => (fieldValue(o, r.key) === r.value) !== r.neg);
}
