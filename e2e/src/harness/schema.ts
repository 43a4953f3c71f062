// CRD structural schema handling: pruning, defaulting, OpenAPI v3 validation and CEL rules,
// with the error texts of kube-apiserver.
import { evaluate } from '@marcbachmann/cel-js';
import { clone, deepEqual, isObj, type StatusCause } from './util.js';

export interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  nullable?: boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  pattern?: string;
  format?: string;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-validations'?: { rule: string; message?: string; messageExpression?: string; reason?: string; fieldPath?: string }[];
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
}

const META_FIELDS = new Set([
  'name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
  'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels', 'annotations', 'ownerReferences', 'finalizers', 'managedFields',
]);

/** Drops unknown fields; returns the dotted paths of what was dropped (for fieldValidation). */
export function prune(obj: Record<string, unknown>, schema: Schema | undefined): string[] {
  const dropped: string[] = [];
  if (isObj(obj.metadata)) {
    for (const k of Object.keys(obj.metadata)) if (!META_FIELDS.has(k)) { delete obj.metadata[k]; dropped.push(`metadata.${k}`); }
  }
  if (!schema) return dropped;
  const root: Schema = { ...schema, properties: { ...(schema.properties ?? {}), apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } };
  pruneValue(obj, root, '', dropped);
  return dropped;
}

export function pruneValue(v: unknown, s: Schema, path: string, dropped: string[]): void {
  if (s['x-kubernetes-preserve-unknown-fields'] && !s.properties && !s.additionalProperties && !s.items) return;
  if (Array.isArray(v)) {
    if (s.items) v.forEach((x, i) => pruneValue(x, s.items!, `${path}[${i}]`, dropped));
    return;
  }
  if (!isObj(v)) return;
  if (s['x-kubernetes-embedded-resource'] && isObj(v.metadata)) {
    for (const k of Object.keys(v.metadata)) if (!META_FIELDS.has(k)) delete v.metadata[k];
  }
  for (const k of Object.keys(v)) {
    const p = path ? `${path}.${k}` : k;
    const ps = s.properties?.[k];
    if (ps) pruneValue(v[k], ps, p, dropped);
    else if (isObj(s.additionalProperties)) pruneValue(v[k], s.additionalProperties, p, dropped);
    else if (s.additionalProperties === true || s['x-kubernetes-preserve-unknown-fields']) continue;
    else if (s['x-kubernetes-embedded-resource'] && (k === 'apiVersion' || k === 'kind' || k === 'metadata')) continue;
    else {
      delete v[k];
      dropped.push(p);
    }
  }
}

/** Applies schema defaults (and drops nulls of non-nullable fields) in place. */
export function applyDefaults(v: unknown, s: Schema | undefined): void {
  if (!s) return;
  if (Array.isArray(v)) {
    if (s.items) for (const x of v) applyDefaults(x, s.items);
    return;
  }
  if (!isObj(v)) return;
  if (s.properties) {
    for (const [k, ps] of Object.entries(s.properties)) {
      if (v[k] === null && !ps.nullable) delete v[k];
      if (v[k] === undefined && ps.default !== undefined) v[k] = clone(ps.default);
      if (v[k] !== undefined) applyDefaults(v[k], ps);
    }
  }
  if (isObj(s.additionalProperties)) {
    for (const k of Object.keys(v)) if (!s.properties?.[k]) applyDefaults(v[k], s.additionalProperties);
  }
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function fmtValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

const inv = (field: string, value: unknown, detail: string): StatusCause => ({ reason: 'FieldValueInvalid', message: `Invalid value: ${fmtValue(value)}: ${detail}`, field });

function typeOk(v: unknown, s: Schema): boolean {
  if (s['x-kubernetes-int-or-string']) return typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v));
  switch (s.type) {
    case undefined: return true;
    case 'object': return isObj(v);
    case 'array': return Array.isArray(v);
    case 'string': return typeof v === 'string';
    case 'integer': return typeof v === 'number' && Number.isInteger(v);
    case 'number': return typeof v === 'number';
    case 'boolean': return typeof v === 'boolean';
    default: return true;
  }
}

/** OpenAPI v3 validation of a (pruned, defaulted) object. */
export function validateSchema(obj: unknown, schema: Schema | undefined): StatusCause[] {
  const out: StatusCause[] = [];
  if (!schema) return out;
  const root: Schema = { ...schema, properties: { ...(schema.properties ?? {}) } };
  delete root.properties!.metadata;
  delete root.properties!.apiVersion;
  delete root.properties!.kind;
  const o = clone(obj) as Record<string, unknown>;
  delete o.metadata; delete o.apiVersion; delete o.kind;
  validateValue(o, root, '', out);
  return out;
}

/**
 * The API server checks `format: date-time` (go-openapi's strfmt). This accepts RFC 3339 only,
 * which is stricter than strfmt (it also takes a few ISO 8601 variants): never laxer.
 */
function isDateTime(v: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.exec(v);
  if (!m) return false;
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number);
  const day = new Date(Date.UTC(y, mo - 1, d));
  return day.getUTCMonth() === mo - 1 && day.getUTCDate() === d && h < 24 && mi < 60 && sec < 61;
}

export function validateValue(v: unknown, s: Schema, path: string, out: StatusCause[]): void {
  const field = path || '<root>';
  if (v === null) {
    if (!s.nullable && s.type) out.push(inv(field, v, `${field} in body must be of type ${s.type}: "null"`));
    return;
  }
  if (!typeOk(v, s)) {
    out.push(inv(field, typeName(v), `${field} in body must be of type ${s['x-kubernetes-int-or-string'] ? 'integer,string' : s.type}: ${JSON.stringify(typeName(v))}`));
    return;
  }
  if (s.enum && !s.enum.some((e) => deepEqual(e, v))) {
    out.push({ reason: 'FieldValueNotSupported', message: `Unsupported value: ${fmtValue(v)}: supported values: ${s.enum.map(fmtValue).join(', ')}`, field });
  }
  if (typeof v === 'number') {
    if (s.maximum !== undefined && (s.exclusiveMaximum ? v >= s.maximum : v > s.maximum))
      out.push(inv(field, v, `${field} in body should be less than ${s.exclusiveMaximum ? '' : 'or equal to '}${s.maximum}`));
    if (s.minimum !== undefined && (s.exclusiveMinimum ? v <= s.minimum : v < s.minimum))
      out.push(inv(field, v, `${field} in body should be greater than ${s.exclusiveMinimum ? '' : 'or equal to '}${s.minimum}`));
  }
  if (typeof v === 'string') {
    if (s.maxLength !== undefined && [...v].length > s.maxLength) out.push({ reason: 'FieldValueTooLong', message: `Too long: may not be longer than ${s.maxLength}`, field });
    if (s.minLength !== undefined && [...v].length < s.minLength) out.push(inv(field, v, `${field} in body should be at least ${s.minLength} chars long`));
    if (s.pattern !== undefined && !new RegExp(s.pattern, 'u').test(v)) out.push(inv(field, v, `${field} in body should match '${s.pattern}'`));
    if (s.format === 'date-time' && !isDateTime(v)) out.push(inv(field, v, `${field} in body must be of type date-time: ${JSON.stringify(v)}`));
  }
  if (Array.isArray(v)) {
    if (s.maxItems !== undefined && v.length > s.maxItems) out.push({ reason: 'FieldValueTooMany', message: `Too many: ${v.length}: must have at most ${s.maxItems} items`, field });
    if (s.minItems !== undefined && v.length < s.minItems) out.push(inv(field, v.length, `${field} in body should have at least ${s.minItems} items`));
    if (s.items) v.forEach((x, i) => validateValue(x, s.items!, `${path}[${i}]`, out));
    if (s['x-kubernetes-list-type'] === 'set') {
      v.forEach((x, i) => { if (v.findIndex((y) => deepEqual(x, y)) < i) out.push({ reason: 'FieldValueDuplicate', message: `Duplicate value: ${fmtValue(x)}`, field: `${path}[${i}]` }); });
    }
    if (s['x-kubernetes-list-type'] === 'map' && s['x-kubernetes-list-map-keys']) {
      const keys = s['x-kubernetes-list-map-keys'];
      const seen = new Set<string>();
      v.forEach((x, i) => {
        if (!isObj(x)) return;
        const k = JSON.stringify(keys.map((kk) => x[kk]));
        if (seen.has(k)) out.push({ reason: 'FieldValueDuplicate', message: `Duplicate value: ${JSON.stringify(Object.fromEntries(keys.map((kk) => [kk, x[kk]])))}`, field: `${path}[${i}]` });
        seen.add(k);
      });
    }
  }
  if (isObj(v)) {
    for (const r of s.required ?? []) {
      if (v[r] === undefined) out.push({ reason: 'FieldValueRequired', message: 'Required value', field: path ? `${path}.${r}` : r });
    }
    if (s.maxProperties !== undefined && Object.keys(v).length > s.maxProperties) out.push({ reason: 'FieldValueTooMany', message: `Too many: ${Object.keys(v).length}: must have at most ${s.maxProperties} items`, field });
    if (s.minProperties !== undefined && Object.keys(v).length < s.minProperties) out.push(inv(field, Object.keys(v).length, `${field} in body should have at least ${s.minProperties} properties`));
    for (const [k, x] of Object.entries(v)) {
      const ps = s.properties?.[k] ?? (isObj(s.additionalProperties) ? s.additionalProperties : undefined);
      if (ps && x !== undefined) validateValue(x, ps, path ? `${path}.${k}` : k, out);
    }
  }
}

/** Converts JSON values to CEL values: integers become bigint unless the schema says number. */
function toCel(v: unknown, s: Schema | undefined): unknown {
  if (typeof v === 'number') return Number.isInteger(v) && s?.type !== 'number' ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map((x) => toCel(x, s?.items));
  if (isObj(v)) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      o[k] = toCel(x, s?.properties?.[k] ?? (isObj(s?.additionalProperties) ? s.additionalProperties : undefined));
    }
    return o;
  }
  return v;
}

function celTypeName(s: Schema, v: unknown): string {
  if (s.type) return s.type;
  return typeName(v);
}

/** Evaluates x-kubernetes-validations (incl. transition rules with oldSelf). */
export function validateCel(obj: unknown, old: unknown, schema: Schema | undefined): StatusCause[] {
  const out: StatusCause[] = [];
  if (!schema) return out;
  const o = clone(obj) as Record<string, unknown>;
  delete o.metadata;
  const oo = old === undefined ? undefined : (clone(old) as Record<string, unknown>);
  if (oo) delete oo.metadata;
  celWalk(o, oo, schema, '', out);
  return out;
}

function celWalk(v: unknown, old: unknown, s: Schema, path: string, out: StatusCause[]): void {
  if (v === undefined || v === null) return;
  for (const rule of s['x-kubernetes-validations'] ?? []) {
    const usesOld = /\boldSelf\b/.test(rule.rule);
    if (usesOld && old === undefined) continue;
    const ctx: Record<string, unknown> = { self: toCel(v, s) };
    if (usesOld) ctx.oldSelf = toCel(old, s);
    let ok: unknown;
    try {
      ok = evaluate(rule.rule, ctx);
    } catch (e) {
      out.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(celTypeName(s, v))}: compilation or evaluation error: ${(e as Error).message.split('\n')[0]}`, field: path || '<root>' });
      continue;
    }
    if (ok !== true) {
      const field = rule.fieldPath ? `${path}${rule.fieldPath}` : path || '<root>';
      const reason = rule.reason ?? 'FieldValueInvalid';
      const msg = rule.message ?? `failed rule: ${rule.rule}`;
      if (reason === 'FieldValueForbidden') out.push({ reason, message: `Forbidden: ${msg}`, field });
      else if (reason === 'FieldValueRequired') out.push({ reason, message: `Required value: ${msg}`, field });
      else out.push({ reason, message: `Invalid value: ${JSON.stringify(celTypeName(s, v))}: ${msg}`, field });
    }
  }
  if (Array.isArray(v) && s.items) {
    const keys = s['x-kubernetes-list-map-keys'];
    v.forEach((x, i) => {
      let ox: unknown;
      if (Array.isArray(old) && s['x-kubernetes-list-type'] === 'map' && keys && isObj(x)) {
        ox = old.find((y) => isObj(y) && keys.every((k) => deepEqual(y[k], x[k])));
      }
      celWalk(x, ox, s.items!, `${path}[${i}]`, out);
    });
  } else if (isObj(v)) {
    for (const [k, x] of Object.entries(v)) {
      const ps = s.properties?.[k] ?? (isObj(s.additionalProperties) ? s.additionalProperties : undefined);
      if (ps) celWalk(x, isObj(old) ? old[k] : undefined, ps, path ? `${path}.${k}` : k, out);
    }
  }
}
