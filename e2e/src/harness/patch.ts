// Patch formats (JSON merge, JSON patch, an approximation of strategic merge) and
// server-side apply with field ownership tracking (managedFields).
import { ApiError, clone, deepEqual, isObj, nowIso, type JsonObject, type KObject, type ManagedFieldsEntry } from './util.js';

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return clone(patch);
  const out: Record<string, unknown> = isObj(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function unescapePointer(s: string): string {
  return s.replace(/~1/g, '/').replace(/~0/g, '~');
}

export function jsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new ApiError(400, 'BadRequest', 'json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  let root: unknown = clone(doc);
  const parse = (p: string) => (p === '' ? [] : p.split('/').slice(1).map(unescapePointer));
  const get = (p: string): unknown => {
    let cur: unknown = root;
    for (const seg of parse(p)) {
      if (Array.isArray(cur)) cur = cur[Number(seg)];
      else if (isObj(cur)) cur = cur[seg];
      else return undefined;
    }
    return cur;
  };
  const fail = (msg: string) => new ApiError(422, 'Invalid', msg);
  const setAt = (p: string, val: unknown, mode: 'add' | 'replace') => {
    const segs = parse(p);
    if (segs.length === 0) { root = val; return; }
    const last = segs.pop()!;
    let parent: unknown = root;
    for (const seg of segs) {
      parent = Array.isArray(parent) ? parent[Number(seg)] : isObj(parent) ? parent[seg] : undefined;
      if (parent === undefined) throw fail(`add operation does not apply: doc is missing path: "${p}": missing value`);
    }
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last);
      if (mode === 'add') parent.splice(i, 0, val);
      else parent[i] = val;
    } else if (isObj(parent)) {
      if (mode === 'replace' && !(last in parent)) throw fail(`replace operation does not apply: doc is missing key: ${p}: missing value`);
      parent[last] = val;
    } else throw fail(`doc is missing path: "${p}"`);
  };
  const remove = (p: string) => {
    const segs = parse(p);
    const last = segs.pop()!;
    let parent: unknown = root;
    for (const seg of segs) parent = Array.isArray(parent) ? parent[Number(seg)] : isObj(parent) ? parent[seg] : undefined;
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else if (isObj(parent) && last in parent) delete parent[last];
    else throw fail(`remove operation does not apply: doc is missing path: "${p}": missing value`);
  };
  for (const op of ops as { op: string; path: string; value?: unknown; from?: string }[]) {
    switch (op.op) {
      case 'add': setAt(op.path, clone(op.value), 'add'); break;
      case 'replace': setAt(op.path, clone(op.value), 'replace'); break;
      case 'remove': remove(op.path); break;
      case 'move': { const v = get(op.from!); remove(op.from!); setAt(op.path, v, 'add'); break; }
      case 'copy': setAt(op.path, clone(get(op.from!)), 'add'); break;
      case 'test': if (!deepEqual(get(op.path), op.value)) throw fail(`testing value ${op.path} failed: test failed`); break;
      default: throw new ApiError(400, 'BadRequest', `Unexpected kind: ${op.op}`);
    }
  }
  return root;
}

/** Merge keys of well-known built-in list fields (strategic merge patch approximation). */
const MERGE_KEYS: Record<string, string | ((items: Record<string, unknown>[]) => string)> = {
  containers: 'name', initContainers: 'name', ephemeralContainers: 'name', env: 'name', volumes: 'name',
  volumeMounts: 'mountPath', volumeDevices: 'devicePath', imagePullSecrets: 'name', conditions: 'type', ownerReferences: 'uid',
  hostAliases: 'ip', topologySpreadConstraints: 'topologyKey', volumeClaimTemplates: 'name', subsets: 'ip', envFrom: '',
  ports: (items) => (items.some((i) => 'containerPort' in i) ? 'containerPort' : 'port'),
};
const PRIMITIVE_MERGE = new Set(['finalizers']);

export function mergeKeyFor(field: string, items: unknown[]): string | undefined {
  const k = MERGE_KEYS[field];
  if (!k) return undefined;
  const objs = items.filter(isObj);
  if (objs.length !== items.length) return undefined;
  const key = typeof k === 'function' ? k(objs) : k;
  return objs.every((o) => o[key] !== undefined) ? key : undefined;
}

export function strategicMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return clone(patch);
  if (patch.$patch === 'replace') { const p = clone(patch); delete p.$patch; return p; }
  if (patch.$patch === 'delete') return undefined;
  const out: Record<string, unknown> = isObj(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$setElementOrder/') || k === '$retainKeys' || k === '$patch') continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const f = k.slice('$deleteFromPrimitiveList/'.length);
      if (Array.isArray(out[f]) && Array.isArray(v)) out[f] = (out[f] as unknown[]).filter((x) => !v.some((y) => deepEqual(x, y)));
      continue;
    }
    if (v === null) { delete out[k]; continue; }
    if (Array.isArray(v)) {
      const cur = out[k];
      if (PRIMITIVE_MERGE.has(k) && Array.isArray(cur)) {
        out[k] = [...cur, ...v.filter((x) => !cur.some((y) => deepEqual(x, y)))];
        continue;
      }
      const key = mergeKeyFor(k, [...v.filter((x) => !(isObj(x) && x.$patch)), ...(Array.isArray(cur) ? cur : [])]) ?? (v.every((x) => isObj(x) && (x.name !== undefined)) && MERGE_KEYS[k] !== undefined ? 'name' : undefined);
      if (key && Array.isArray(cur)) {
        const res = clone(cur) as Record<string, unknown>[];
        for (const item of v as Record<string, unknown>[]) {
          const idx = res.findIndex((x) => deepEqual(x[key], item[key]));
          if (item.$patch === 'delete') { if (idx >= 0) res.splice(idx, 1); continue; }
          if (idx >= 0) res[idx] = strategicMergePatch(res[idx], item) as Record<string, unknown>;
          else res.push(strategicMergePatch(undefined, item) as Record<string, unknown>);
        }
        out[k] = res;
      } else out[k] = v.filter((x) => !(isObj(x) && x.$patch === 'delete')).map((x) => strategicMergePatch(undefined, x));
      continue;
    }
    const r = strategicMergePatch(out[k], v);
    if (r === undefined) delete out[k];
    else out[k] = r;
  }
  return out;
}

// ---------------------------------------------------------------- field ownership

type PathEl = { f: string } | { k: Record<string, unknown> } | { v: unknown };
export type FieldPath = PathEl[];

const IGNORED_ROOT = new Set(['apiVersion', 'kind']);
const IGNORED_META = new Set(['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'selfLink', 'generateName']);

/** Leaf paths of an object (keyed lists are descended by merge key, other lists are atomic). */
export function leafPaths(obj: unknown): Map<string, { path: FieldPath; value: unknown }> {
  const out = new Map<string, { path: FieldPath; value: unknown }>();
  const walk = (v: unknown, path: FieldPath, field: string) => {
    if (isObj(v) && Object.keys(v).length > 0) {
      for (const [k, x] of Object.entries(v)) {
        if (path.length === 0 && IGNORED_ROOT.has(k)) continue;
        if (path.length === 1 && 'f' in path[0]! && path[0].f === 'metadata' && IGNORED_META.has(k)) continue;
        walk(x, [...path, { f: k }], k);
      }
      return;
    }
    if (Array.isArray(v) && v.length > 0) {
      if (PRIMITIVE_MERGE.has(field) && v.every((x) => typeof x === 'string')) {
        for (const x of v) { const p = [...path, { v: x }]; out.set(JSON.stringify(p), { path: p, value: x }); }
        return;
      }
      const key = mergeKeyFor(field, v);
      if (key) {
        for (const item of v as Record<string, unknown>[]) walk(item, [...path, { k: { [key]: item[key] } }], '');
        return;
      }
    }
    if (path.length === 0) return;
    out.set(JSON.stringify(path), { path, value: v });
  };
  walk(obj, [], '');
  return out;
}

export function pathString(p: FieldPath): string {
  return p.map((e) => ('f' in e ? `.${e.f}` : 'k' in e ? `[${Object.entries(e.k).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}]` : `[=${JSON.stringify(e.v)}]`)).join('');
}

export function toFieldsV1(paths: Iterable<FieldPath>): JsonObject {
  const root: JsonObject = {};
  for (const p of paths) {
    let cur = root;
    for (const e of p) {
      const key = 'f' in e ? `f:${e.f}` : 'k' in e ? `k:${JSON.stringify(e.k)}` : `v:${JSON.stringify(e.v)}`;
      if (!isObj(cur[key])) cur[key] = {};
      cur = cur[key] as JsonObject;
      if ('k' in e && !cur['.']) cur['.'] = {};
    }
  }
  return root;
}

export function fromFieldsV1(f: unknown, prefix: FieldPath = [], out: FieldPath[] = []): FieldPath[] {
  if (!isObj(f)) return out;
  const keys = Object.keys(f).filter((k) => k !== '.');
  if (keys.length === 0 && prefix.length > 0) out.push(prefix);
  for (const k of keys) {
    let e: PathEl;
    if (k.startsWith('f:')) e = { f: k.slice(2) };
    else if (k.startsWith('k:')) e = { k: JSON.parse(k.slice(2)) as Record<string, unknown> };
    else if (k.startsWith('v:')) e = { v: JSON.parse(k.slice(2)) };
    else continue;
    const sub = f[k];
    const onlyKey = 'k' in e && isObj(sub) && Object.keys(sub).filter((x) => x !== '.').every((x) => x.startsWith('f:') && Object.keys(e.k as object).includes(x.slice(2)));
    if (onlyKey) out.push([...prefix, e]);
    else fromFieldsV1(sub, [...prefix, e], out);
  }
  return out;
}

function getAt(obj: unknown, p: FieldPath): { found: boolean; value?: unknown } {
  let cur: unknown = obj;
  for (const e of p) {
    if ('f' in e) {
      if (!isObj(cur) || !(e.f in cur)) return { found: false };
      cur = cur[e.f];
    } else if ('k' in e) {
      if (!Array.isArray(cur)) return { found: false };
      const kk = e.k;
      cur = cur.find((x) => isObj(x) && Object.entries(kk).every(([k, v]) => deepEqual(x[k], v)));
      if (cur === undefined) return { found: false };
    } else {
      if (!Array.isArray(cur) || !cur.some((x) => deepEqual(x, e.v))) return { found: false };
      cur = e.v;
    }
  }
  return { found: true, value: cur };
}

function removeAt(obj: unknown, p: FieldPath): void {
  if (p.length === 0) return;
  const parent = getAt(obj, p.slice(0, -1));
  if (!parent.found) return;
  const e = p[p.length - 1]!;
  const pv = parent.value;
  if ('f' in e && isObj(pv)) delete pv[e.f];
  else if ('k' in e && Array.isArray(pv)) {
    const i = pv.findIndex((x) => isObj(x) && Object.entries(e.k).every(([k, v]) => deepEqual(x[k], v)));
    if (i >= 0) pv.splice(i, 1);
  } else if ('v' in e && Array.isArray(pv)) {
    const i = pv.findIndex((x) => deepEqual(x, e.v));
    if (i >= 0) pv.splice(i, 1);
  }
  // drop containers left empty by the removal
  const pp = getAt(obj, p.slice(0, -1));
  if (pp.found && ((isObj(pp.value) && Object.keys(pp.value).length === 0) || (Array.isArray(pp.value) && pp.value.length === 0))) removeAt(obj, p.slice(0, -1));
}

/** Deep merge used by server-side apply: keyed lists merge by key, other lists are replaced. */
function applyMerge(live: unknown, cfg: unknown, field = ''): unknown {
  if (isObj(cfg)) {
    const out: Record<string, unknown> = isObj(live) ? clone(live) : {};
    for (const [k, v] of Object.entries(cfg)) {
      if (v === null) delete out[k];
      else out[k] = applyMerge(out[k], v, k);
    }
    return out;
  }
  if (Array.isArray(cfg) && Array.isArray(live)) {
    if (PRIMITIVE_MERGE.has(field)) return [...live, ...cfg.filter((x) => !live.some((y) => deepEqual(x, y)))];
    const key = mergeKeyFor(field, [...cfg, ...live]);
    if (key) {
      const res = clone(live) as Record<string, unknown>[];
      for (const item of cfg as Record<string, unknown>[]) {
        const i = res.findIndex((x) => deepEqual(x[key], item[key]));
        if (i >= 0) res[i] = applyMerge(res[i], item) as Record<string, unknown>;
        else res.push(clone(item));
      }
      return res;
    }
  }
  return clone(cfg);
}

function entryKey(e: { manager: string; operation: string; subresource?: string }): string {
  return `${e.manager}\u0000${e.operation}\u0000${e.subresource ?? ''}`;
}

/** Updates managedFields after a non-apply write by `manager`. */
export function trackUpdate(oldObj: KObject | undefined, newObj: KObject, manager: string, apiVersion: string, subresource?: string): void {
  const entries: ManagedFieldsEntry[] = clone(newObj.metadata.managedFields ?? oldObj?.metadata.managedFields ?? []);
  const oldLeaves = oldObj ? leafPaths(oldObj) : new Map<string, { path: FieldPath; value: unknown }>();
  const newLeaves = leafPaths(newObj);
  const changed = new Set<string>();
  for (const [k, v] of newLeaves) {
    const o = oldLeaves.get(k);
    if (!o || !deepEqual(o.value, v.value)) changed.add(k);
  }
  const removed = [...oldLeaves.keys()].filter((k) => !newLeaves.has(k));
  if (changed.size === 0 && removed.length === 0 && newObj.metadata.managedFields === undefined) {
    newObj.metadata.managedFields = oldObj?.metadata.managedFields;
    if (newObj.metadata.managedFields === undefined) delete newObj.metadata.managedFields;
    return;
  }
  const sets = entries.map((e) => new Set(fromFieldsV1(e.fieldsV1).map((p) => JSON.stringify(p))));
  sets.forEach((s) => { for (const k of [...changed, ...removed]) s.delete(k); });
  const me = { manager, operation: 'Update' as const, subresource };
  let idx = entries.findIndex((e) => entryKey(e) === entryKey(me));
  if (idx < 0) {
    entries.push({ manager, operation: 'Update', apiVersion, time: nowIso(), fieldsType: 'FieldsV1', fieldsV1: {}, ...(subresource ? { subresource } : {}) });
    sets.push(new Set());
    idx = entries.length - 1;
  }
  for (const k of changed) sets[idx]!.add(k);
  if (changed.size > 0) { entries[idx]!.time = nowIso(); entries[idx]!.apiVersion = apiVersion; }
  finishEntries(newObj, entries, sets);
}

function finishEntries(obj: KObject, entries: ManagedFieldsEntry[], sets: Set<string>[]): void {
  const kept: ManagedFieldsEntry[] = [];
  entries.forEach((e, i) => {
    if (sets[i]!.size === 0) return;
    e.fieldsV1 = toFieldsV1([...sets[i]!].map((s) => JSON.parse(s) as FieldPath));
    kept.push(e);
  });
  if (kept.length) obj.metadata.managedFields = kept;
  else delete obj.metadata.managedFields;
}

/** Server-side apply of `cfg` onto `live` (undefined: create). Throws a 409 on conflicts unless force. */
export function serverSideApply(live: KObject | undefined, cfg: KObject, manager: string, apiVersion: string, force: boolean, subresource?: string): KObject {
  const cfgLeaves = leafPaths(cfg);
  const entries: ManagedFieldsEntry[] = clone(live?.metadata.managedFields ?? []);
  const sets = entries.map((e) => new Set(fromFieldsV1(e.fieldsV1).map((p) => JSON.stringify(p))));
  const me = { manager, operation: 'Apply' as const, subresource };
  let idx = entries.findIndex((e) => entryKey(e) === entryKey(me));
  const conflicts = new Map<number, string[]>();
  if (live) {
    for (const [k, v] of cfgLeaves) {
      const cur = getAt(live, v.path);
      if (!cur.found || deepEqual(cur.value, v.value)) continue;
      sets.forEach((s, i) => {
        if (i === idx || !s.has(k)) return;
        if (force) s.delete(k);
        else conflicts.set(i, [...(conflicts.get(i) ?? []), pathString(v.path)]);
      });
    }
  }
  if (conflicts.size > 0) {
    const n = [...conflicts.values()].reduce((a, b) => a + b.length, 0);
    const parts: string[] = [];
    const causes: { reason: string; message: string; field: string }[] = [];
    for (const [i, fields] of conflicts) {
      const e = entries[i]!;
      const who = `"${e.manager}"${e.operation === 'Update' ? ` using ${e.apiVersion}` : ''}`;
      if (n === 1) parts.push(`conflict with ${who}: ${fields[0]}`);
      else parts.push(`conflicts with ${who}:\n${fields.map((f) => `- ${f}`).join('\n')}`);
      for (const f of fields) causes.push({ reason: 'FieldManagerConflict', message: `conflict with ${who}`, field: f });
    }
    throw new ApiError(409, 'Conflict', `Apply failed with ${n} conflict${n === 1 ? '' : 's'}: ${parts.join('\n')}`, { causes });
  }
  const base: KObject = live ? clone(live) : { metadata: {} };
  const merged = applyMerge(base, cfg) as KObject;
  if (idx >= 0) {
    for (const k of sets[idx]!) {
      if (cfgLeaves.has(k)) continue;
      if (sets.some((s, i) => i !== idx && s.has(k))) continue;
      removeAt(merged, JSON.parse(k) as FieldPath);
    }
  } else {
    entries.push({ manager, operation: 'Apply', apiVersion, time: nowIso(), fieldsType: 'FieldsV1', fieldsV1: {}, ...(subresource ? { subresource } : {}) });
    sets.push(new Set());
    idx = entries.length - 1;
  }
  sets[idx] = new Set(cfgLeaves.keys());
  entries[idx]!.time = nowIso();
  entries[idx]!.apiVersion = apiVersion;
  finishEntries(merged, entries, sets);
  return merged;
}
