// Checks a live HTTP answer against the key list of its wire type (src/api): every required key
// present, no key the type does not name. tsc keeps the lists equal to the types; this keeps the
// producers' JSON equal to the lists, including what tsc cannot see (an undefined that JSON drops).
import type { Presence } from '../../src/api/index.js';

export function wireKeyProblems(what: string, json: unknown, keys: Readonly<Record<string, Presence>>): string[] {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return [`${what}: expected a JSON object, got ${String(JSON.stringify(json)).slice(0, 80)}`];
  const problems: string[] = [];
  for (const [key, presence] of Object.entries(keys)) if (presence === 'required' && !(key in json)) problems.push(`${what}: missing ${key}`);
  for (const key of Object.keys(json)) if (!(key in keys)) problems.push(`${what}: ${key} is not in the wire type`);
  return problems;
}

/** Every element of a list; a list that is not one, or is empty when the scenario has entries, is a problem too. */
export function wireListProblems(what: string, list: unknown, keys: Readonly<Record<string, Presence>>): string[] {
  if (!Array.isArray(list)) return [`${what}: expected a list, got ${String(JSON.stringify(list)).slice(0, 80)}`];
  if (list.length === 0) return [`${what}: empty, so its entries' keys went unchecked`];
  return list.flatMap((item, i) => wireKeyProblems(`${what}[${i}]`, item, keys));
}
