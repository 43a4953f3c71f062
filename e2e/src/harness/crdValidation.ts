// Validation of a CustomResourceDefinition's schemas as kube-apiserver (apiextensions v1) does it
// before storing one: structural rules, defaults checked against their own schema as written, and
// x-kubernetes-validations compiled with their cost limits. Pure: CRD object in, field errors out.
import { Environment } from '@marcbachmann/cel-js';
import { pruneValue, validateValue, type Schema } from './schema.js';
import { clone, deepEqual, isObj, type StatusCause } from './util.js';

export type CrdErrorType = 'FieldValueRequired' | 'FieldValueForbidden' | 'FieldValueInvalid' | 'FieldValueNotSupported';

export interface CrdError {
  field: string;
  type: CrdErrorType;
  detail: string;
  /** the bad value of an Invalid/NotSupported error */
  value?: unknown;
  /** the error body when it was formatted elsewhere (value validation of a default) */
  body?: string;
}

/** Per-rule and per-CRD limits of the static CEL cost estimate (apiextensions StaticEstimatedCostLimit, StaticEstimatedCRDCostLimit). */
export const RULE_COST_LIMIT = 10_000_000;
export const CRD_COST_LIMIT = 100_000_000;
/** kube-apiserver sizes unbounded lists, maps and strings by the largest request it accepts (3 MiB). */
const MAX_REQUEST_BYTES = 3 * 1024 * 1024;

type Raw = Record<string, unknown>;
type Level = 'root' | 'item' | 'field';

const required = (field: string, detail = ''): CrdError => ({ field, type: 'FieldValueRequired', detail });
const forbidden = (field: string, detail: string): CrdError => ({ field, type: 'FieldValueForbidden', detail });
const invalid = (field: string, value: unknown, detail: string): CrdError => ({ field, type: 'FieldValueInvalid', detail, value });
const notSupported = (field: string, value: unknown, supported: string[]): CrdError =>
  ({ field, type: 'FieldValueNotSupported', value, detail: `supported values: ${supported.map((s) => JSON.stringify(s)).join(', ')}` });

const child = (p: string, name: string) => `${p}.${name}`;
const key = (p: string, k: string) => `${p}[${k}]`;
const index = (p: string, i: number) => `${p}[${i}]`;
const sortedKeys = (o: unknown): string[] => (isObj(o) ? Object.keys(o).sort() : []);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

// ---------------------------------------------------------------- error formatting (k8s.io/apimachinery field.Error)

/** Go's %#v of a decoded JSON value, as field.Invalid prints values that are not scalars. */
export function goSyntax(v: unknown): string {
  if (v === null || v === undefined) return 'interface {}(nil)';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[]interface {}{${v.map(goSyntax).join(', ')}}`;
  if (isObj(v)) return `map[string]interface {}{${sortedKeys(v).map((k) => `${JSON.stringify(k)}:${goSyntax(v[k])}`).join(', ')}}`;
  return String(v);
}

function goValue(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return goSyntax(v);
}

export function errorBody(e: CrdError): string {
  if (e.body !== undefined) return e.body;
  const head = {
    FieldValueRequired: 'Required value',
    FieldValueForbidden: 'Forbidden',
    FieldValueInvalid: `Invalid value: ${goValue(e.value)}`,
    FieldValueNotSupported: `Unsupported value: ${goValue(e.value)}`,
  }[e.type];
  return e.detail ? `${head}: ${e.detail}` : head;
}

/** `field: body`, the string the real server sorts structural errors by and prints. */
export function errorString(e: CrdError): string {
  return `${e.field}: ${errorBody(e)}`;
}

/** The Status causes of a refusal: as errors.NewInvalid builds them, duplicates dropped like ErrorList.ToAggregate. */
export function toCauses(errs: CrdError[]): StatusCause[] {
  const seen = new Set<string>();
  const out: StatusCause[] = [];
  for (const e of errs) {
    const s = errorString(e);
    if (seen.has(s)) continue;
    seen.add(s);
    out.push({ reason: e.type, message: errorBody(e), field: e.field });
  }
  return out;
}

// ---------------------------------------------------------------- entry point

interface CrdVersion { name?: string; schema?: { openAPIV3Schema?: unknown } }

/** Every reason the real server would refuse the CRD's schemas, in the order it reports them. */
export function validateCrd(crd: unknown): CrdError[] {
  const spec = isObj(crd) && isObj(crd.spec) ? crd.spec : {};
  const versions = (Array.isArray(spec.versions) ? spec.versions : []) as CrdVersion[];
  const errs: CrdError[] = [];
  if (spec.preserveUnknownFields === true) {
    errs.push(invalid('spec.preserveUnknownFields', true, 'cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead'));
  }
  const schemas = versions.map((v) => (isObj(v) && isObj(v.schema) ? v.schema.openAPIV3Schema : undefined));
  // The v1 → internal conversion hoists identical per-version schemas to spec.validation, so that is
  // where the real server reports them.
  const identical = schemas.length > 0 && schemas.every((s) => s !== undefined && deepEqual(s, schemas[0]));
  if (identical) errs.push(...validateOpenApiSchema(schemas[0], 'spec.validation.openAPIV3Schema'));
  else {
    schemas.forEach((s, i) => {
      const p = `spec.versions[${i}].schema.openAPIV3Schema`;
      if (s === undefined) errs.push(required(p, 'schemas are required'));
      else errs.push(...validateOpenApiSchema(s, p));
    });
  }
  return errs;
}

/** One version's openAPIV3Schema: structural errors (sorted) or default errors, then schema and CEL errors. */
export function validateOpenApiSchema(schema: unknown, path: string): CrdError[] {
  if (!isObj(schema)) return [invalid(path, goSyntax(schema), 'must be a schema object')];
  const out: CrdError[] = [];
  if (schema.nullable === true) out.push(forbidden(child(path, 'nullable'), 'nullable cannot be true at the root'));
  const shapeErrors = schemaShapeErrors(schema, path);
  let celAllowed = false;
  if (shapeErrors.length === 0) {
    const structural = [...structuralInvariants(schema, 'root', path), ...structuralCompleteness(schema, path)];
    structural.sort((a, b) => (errorString(a) < errorString(b) ? -1 : errorString(a) > errorString(b) ? 1 : 0));
    if (structural.length) out.push(...structural);
    else {
      const defaults = defaultErrors(schema, path);
      out.push(...defaults);
      celAllowed = defaults.length === 0;
    }
  }
  const walk: Walk = { schemaErrors: [], celErrors: [], rules: [] };
  openApiWalk(schema, path, walk, celAllowed, { cardinality: 1, uncorrelatable: undefined, root: true });
  out.push(...shapeErrors, ...walk.schemaErrors, ...walk.celErrors);
  const total = walk.rules.reduce((n, r) => n + r.cost, 0);
  if (celAllowed && total > CRD_COST_LIMIT) {
    const expensive = [...walk.rules].sort((a, b) => b.cost - a.cost).slice(0, 4);
    for (const r of expensive) out.push(forbidden(r.field, 'contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema'));
    out.push(forbidden(path, costMessage('x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema', total, CRD_COST_LIMIT)));
  }
  return out;
}

// ---------------------------------------------------------------- shape: what cannot even be decoded as a schema

const SCHEMA_MAPS = ['properties', 'patternProperties', 'definitions', 'dependencies'];
const SCHEMA_LISTS = ['anyOf', 'allOf', 'oneOf'];

/** Nodes that are not JSON objects: the real server fails to decode them; the harness names the node instead. */
function schemaShapeErrors(s: Raw, p: string): CrdError[] {
  const out: CrdError[] = [];
  const sub = (v: unknown, q: string) => {
    if (isObj(v)) out.push(...schemaShapeErrors(v, q));
    else out.push(invalid(q, goSyntax(v), 'must be a schema object'));
  };
  for (const m of SCHEMA_MAPS) if (s[m] !== undefined) {
    if (!isObj(s[m])) out.push(invalid(child(p, m), goSyntax(s[m]), 'must be a map of schemas'));
    else for (const k of sortedKeys(s[m])) sub((s[m] as Raw)[k], key(child(p, m), k));
  }
  for (const l of SCHEMA_LISTS) if (s[l] !== undefined) {
    if (!Array.isArray(s[l])) out.push(invalid(child(p, l), goSyntax(s[l]), 'must be a list of schemas'));
    else (s[l] as unknown[]).forEach((x, i) => sub(x, index(child(p, l), i)));
  }
  if (s.not !== undefined) sub(s.not, child(p, 'not'));
  if (s.items !== undefined && !Array.isArray(s.items)) sub(s.items, child(p, 'items'));
  if (isObj(s.additionalProperties)) out.push(...schemaShapeErrors(s.additionalProperties, child(p, 'additionalProperties')));
  else if (s.additionalProperties !== undefined && typeof s.additionalProperties !== 'boolean') out.push(invalid(child(p, 'additionalProperties'), goSyntax(s.additionalProperties), 'must be a schema or a boolean'));
  if (s.required !== undefined && !(Array.isArray(s.required) && s.required.every((r) => typeof r === 'string'))) out.push(invalid(child(p, 'required'), goSyntax(s.required), 'must be a list of strings'));
  if (s['x-kubernetes-validations'] !== undefined && !(Array.isArray(s['x-kubernetes-validations']) && s['x-kubernetes-validations'].every((r) => isObj(r) && typeof r.rule === 'string'))) {
    out.push(invalid(child(p, 'x-kubernetes-validations'), goSyntax(s['x-kubernetes-validations']), 'must be a list of {rule: string, ...}'));
  }
  return out;
}

// ---------------------------------------------------------------- structural schema (apiextensions-apiserver pkg/apiserver/schema/validation.go)

const props = (s: Raw): Record<string, Raw> => (isObj(s.properties) ? (s.properties as Record<string, Raw>) : {});
const list = (s: Raw, k: string): Raw[] => (Array.isArray(s[k]) ? (s[k] as Raw[]) : []);

/** anyOf exactly [{type: integer}, {type: string}] — the one int-or-string form allowed to carry types. */
function isIntOrStringAnyOf(s: Raw): boolean {
  const a = list(s, 'anyOf');
  return a.length === 2 && deepEqual(a[0], { type: 'integer' }) && deepEqual(a[1], { type: 'string' });
}
function isIntOrStringAllOf(s: Raw): boolean {
  const a = list(s, 'allOf');
  return a.length >= 1 && isIntOrStringAnyOf(a[0]!);
}

function structuralInvariants(s: Raw, lvl: Level, p: string): CrdError[] {
  const out: CrdError[] = [];
  const type = str(s.type);
  const embedded = s['x-kubernetes-embedded-resource'] === true;
  const intOrString = s['x-kubernetes-int-or-string'] === true;
  const preserve = s['x-kubernetes-preserve-unknown-fields'] === true;
  if (type === 'array' && s.items === undefined) out.push(required(child(p, 'items'), 'must be specified'));
  if (isObj(s.items)) out.push(...structuralInvariants(s.items, 'item', child(p, 'items')));
  for (const k of sortedKeys(s.properties)) out.push(...structuralInvariants(props(s)[k]!, 'field', key(child(p, 'properties'), k)));
  if (s.additionalProperties !== undefined) {
    if (lvl === 'root') out.push(forbidden(child(p, 'additionalProperties'), 'must not be used at the root'));
    if (isObj(s.additionalProperties)) out.push(...structuralInvariants(s.additionalProperties, 'field', child(p, 'additionalProperties')));
  }
  if (intOrString && preserve) out.push(invalid(child(p, 'x-kubernetes-preserve-unknown-fields'), true, 'must be false if x-kubernetes-int-or-string is true'));
  if (intOrString && embedded) out.push(invalid(child(p, 'x-kubernetes-embedded-resource'), true, 'must be false if x-kubernetes-int-or-string is true'));
  out.push(...valueValidation(s, isIntOrStringAnyOf(s), isIntOrStringAllOf(s), lvl, p));
  const checkMetadata = lvl === 'root' || embedded;
  if (embedded && type !== 'object') {
    if (!type) out.push(required(child(p, 'type'), 'must be object if x-kubernetes-embedded-resource is true'));
    else out.push(invalid(child(p, 'type'), type, 'must be object if x-kubernetes-embedded-resource is true'));
  } else if (!type && !intOrString && !preserve) {
    const why = { root: 'must not be empty at the root', item: 'must not be empty for specified array items', field: 'must not be empty for specified object fields' }[lvl];
    out.push(required(child(p, 'type'), why));
  }
  if (embedded && s.additionalProperties !== undefined) out.push(forbidden(child(p, 'additionalProperties'), 'must not be used if x-kubernetes-embedded-resource is set'));
  if (lvl === 'root' && type && type !== 'object') out.push(invalid(child(p, 'type'), type, 'must be object at the root'));
  const ps = props(s);
  const pp = child(p, 'properties');
  if (checkMetadata && ps.kind && str(ps.kind.type) !== 'string') out.push(invalid(child(key(pp, 'kind'), 'type'), str(ps.kind.type), 'must be string'));
  if (checkMetadata && ps.apiVersion && str(ps.apiVersion.type) !== 'string') out.push(invalid(child(key(pp, 'apiVersion'), 'type'), str(ps.apiVersion.type), 'must be string'));
  if (checkMetadata && ps.metadata && str(ps.metadata.type) !== 'object') out.push(invalid(child(key(pp, 'metadata'), 'type'), str(ps.metadata.type), 'must be object'));
  if (lvl === 'root' && ps.metadata && !metadataRestrictsOnlyNames(ps.metadata)) {
    out.push(forbidden(key(pp, 'metadata'), 'must not specify anything other than name and generateName, but metadata is implicitly specified'));
  }
  if (embedded && !preserve && Object.keys(ps).length === 0) {
    out.push(required(child(p, 'properties'), 'must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields'));
  }
  return out;
}

/** Root metadata may carry `type`, a `default` (checked elsewhere) and properties name/generateName — nothing else. */
function metadataRestrictsOnlyNames(m: Raw): boolean {
  const names = Object.keys(props(m));
  const onlyNames = names.every((n) => n === 'name' || n === 'generateName');
  const rest = Object.keys(m).filter((k) => k !== 'type' && k !== 'default' && !(k === 'properties' && onlyNames && names.length > 0));
  return rest.length === 0;
}

function valueValidation(v: Raw, skipAnyOf: boolean, skipFirstAllOfAnyOf: boolean, lvl: Level, p: string): CrdError[] {
  const out: CrdError[] = [];
  if (!skipAnyOf) list(v, 'anyOf').forEach((x, i) => out.push(...nestedValueValidation(x, false, lvl, index(child(p, 'anyOf'), i))));
  list(v, 'allOf').forEach((x, i) => out.push(...nestedValueValidation(x, skipFirstAllOfAnyOf && i === 0, lvl, index(child(p, 'allOf'), i))));
  list(v, 'oneOf').forEach((x, i) => out.push(...nestedValueValidation(x, false, lvl, index(child(p, 'oneOf'), i))));
  if (isObj(v.not)) out.push(...nestedValueValidation(v.not, false, lvl, child(p, 'not')));
  if (typeof v.pattern === 'string') {
    try {
      new RegExp(v.pattern, 'u');
    } catch (e) {
      // Go's RE2 words its errors differently; the harness names JavaScript's reason.
      out.push(invalid(child(p, 'pattern'), v.pattern, `must be a valid regular expression, but isn't: ${(e as Error).message}`));
    }
  }
  return out;
}

/** Inside anyOf/allOf/oneOf/not only value validations are allowed: no types, defaults or structure-changing extensions. */
function nestedValueValidation(v: Raw, skipAnyOf: boolean, lvl: Level, p: string): CrdError[] {
  const out: CrdError[] = [];
  out.push(...valueValidation(v, skipAnyOf, false, lvl, p));
  if (isObj(v.items)) out.push(...nestedValueValidation(v.items, false, lvl, child(p, 'items')));
  for (const k of sortedKeys(v.properties)) out.push(...nestedValueValidation(props(v)[k]!, false, 'field', key(child(p, 'properties'), k)));
  if (str(v.type)) out.push(forbidden(child(p, 'type'), 'must be empty to be structural'));
  if (v.additionalProperties !== undefined) out.push(forbidden(child(p, 'additionalProperties'), 'must be undefined to be structural'));
  if (v.default !== undefined) out.push(forbidden(child(p, 'default'), 'must be undefined to be structural'));
  if (str(v.title)) out.push(forbidden(child(p, 'title'), 'must be empty to be structural'));
  if (str(v.description)) out.push(forbidden(child(p, 'description'), 'must be empty to be structural'));
  if (v.nullable === true) out.push(forbidden(child(p, 'nullable'), 'must be false to be structural'));
  if (v['x-kubernetes-preserve-unknown-fields'] === true) out.push(forbidden(child(p, 'x-kubernetes-preserve-unknown-fields'), 'must be false to be structural'));
  if (v['x-kubernetes-embedded-resource'] === true) out.push(forbidden(child(p, 'x-kubernetes-embedded-resource'), 'must be false to be structural'));
  if (v['x-kubernetes-int-or-string'] === true) out.push(forbidden(child(p, 'x-kubernetes-int-or-string'), 'must be false to be structural'));
  if (Array.isArray(v['x-kubernetes-list-map-keys']) && v['x-kubernetes-list-map-keys'].length > 0) out.push(forbidden(child(p, 'x-kubernetes-list-map-keys'), 'must be empty to be structural'));
  if (v['x-kubernetes-list-type'] !== undefined) out.push(forbidden(child(p, 'x-kubernetes-list-type'), 'must be undefined to be structural'));
  if (v['x-kubernetes-map-type'] !== undefined) out.push(forbidden(child(p, 'x-kubernetes-map-type'), 'must be undefined to be structural'));
  if (v['x-kubernetes-validations'] !== undefined) out.push(forbidden(child(p, 'x-kubernetes-validations'), 'must be empty to be structural'));
  if (isObj(v.properties) && v.properties.metadata !== undefined) out.push(forbidden(key(child(p, 'properties'), 'metadata'), 'must not be specified in a nested context'));
  return out;
}

/**
 * Every field or array named inside a value validation must also be specified in the structural part
 * beside it. The real server checks the junctors of the root only; the harness checks every node's.
 */
function structuralCompleteness(s: Raw, p: string): CrdError[] {
  const out: CrdError[] = [];
  if (isObj(s.items)) out.push(...structuralCompleteness(s.items, child(p, 'items')));
  for (const k of sortedKeys(s.properties)) out.push(...structuralCompleteness(props(s)[k]!, key(child(p, 'properties'), k)));
  if (isObj(s.additionalProperties)) out.push(...structuralCompleteness(s.additionalProperties, child(p, 'additionalProperties')));
  out.push(...valueValidationCompleteness(s, s, p, p));
  return out;
}

function valueValidationCompleteness(v: Raw, s: Raw, sPath: string, vPath: string): CrdError[] {
  const out: CrdError[] = [];
  if (isObj(v.not)) out.push(...nestedCompleteness(v.not, s, sPath, child(vPath, 'not')));
  for (const j of ['allOf', 'anyOf', 'oneOf']) list(v, j).forEach((x, i) => out.push(...nestedCompleteness(x, s, sPath, index(child(vPath, j), i))));
  return out;
}

function nestedCompleteness(v: Raw, s: Raw, sPath: string, vPath: string): CrdError[] {
  const out = valueValidationCompleteness(v, s, sPath, vPath);
  if (isObj(v.items)) {
    if (!isObj(s.items)) out.push(required(child(sPath, 'items'), `because it is defined in ${child(vPath, 'items')}`));
    else out.push(...nestedCompleteness(v.items, s.items, child(sPath, 'items'), child(vPath, 'items')));
  }
  for (const k of sortedKeys(v.properties)) {
    const vk = props(v)[k]!;
    const sk = props(s)[k];
    const vp = key(child(vPath, 'properties'), k);
    // newer servers may match such a field against additionalProperties behind an option; the harness does not
    if (sk) out.push(...nestedCompleteness(vk, sk, key(child(sPath, 'properties'), k), vp));
    else out.push(required(key(child(sPath, 'properties'), k), `because it is defined in ${vp}`));
  }
  return out;
}

// ---------------------------------------------------------------- defaults (pkg/apiserver/schema/defaulting/validation.go)

/**
 * Each default is pruned and validated against the schema it sits on, as written: nested defaults
 * are not applied first, so `default: {}` on an object with required fields is refused.
 */
function defaultErrors(s: Raw, p: string): CrdError[] {
  const out: CrdError[] = [];
  // JSON null decodes to no default at all on the real server
  if (s.default !== undefined && s.default !== null) {
    const dp = child(p, 'default');
    const pruned = clone(s.default);
    pruneValue(pruned, s as Schema, '', []);
    if (!deepEqual(pruned, s.default)) out.push(invalid(dp, s.default, 'must not have unknown fields'));
    // validated whether pruned or not, as the real server does
    const causes: StatusCause[] = [];
    validateValue(s.default, s as Schema, '', causes);
    for (const c of causes) {
      const rel = c.field && c.field !== '<root>' ? `.${c.field}` : '';
      out.push({ field: `${dp}${rel}`, type: (c.reason ?? 'FieldValueInvalid') as CrdErrorType, detail: '', body: c.message });
    }
  }
  // defaults are forbidden under additionalProperties, so only items and properties are followed
  if (isObj(s.items)) out.push(...defaultErrors(s.items, child(p, 'items')));
  for (const k of sortedKeys(s.properties)) out.push(...defaultErrors(props(s)[k]!, key(child(p, 'properties'), k)));
  return out;
}

// ---------------------------------------------------------------- generic OpenAPI rules and CEL (pkg/apis/apiextensions/validation/validation.go)

interface Walk {
  schemaErrors: CrdError[];
  celErrors: CrdError[];
  rules: { field: string; cost: number }[];
}
interface WalkCtx {
  /** how many times a rule here may run for one object: product of the bounds of enclosing lists and maps */
  cardinality: number;
  /** path of the enclosing list that is not a map list: oldSelf cannot be correlated below it */
  uncorrelatable: string | undefined;
  /** the resource's root, where rules also see apiVersion, kind and metadata.name/generateName */
  root?: boolean;
  /** why a default is not allowed in this subtree */
  defaultsForbidden?: string;
}

const LIST_TYPES = ['atomic', 'set', 'map'];
const OPENAPI_TYPES = ['array', 'boolean', 'integer', 'number', 'object', 'string'];
const UNSUPPORTED = [['id', 'id is not supported'], ['$ref', '$ref is not supported'], ['$schema', '$schema is not supported'], ['additionalItems', 'additionalItems is not supported'],
  ['patternProperties', 'patternProperties is not supported'], ['definitions', 'definitions is not supported'], ['dependencies', 'dependencies is not supported']] as const;

function openApiWalk(s: Raw, p: string, w: Walk, cel: boolean, ctxHere: WalkCtx): void {
  const E = w.schemaErrors;
  const ctx: WalkCtx = { ...ctxHere, root: false };
  const schemaErrorsBefore = E.length;
  if (typeof s.type === 'string' && s.type !== 'null' && !OPENAPI_TYPES.includes(s.type)) E.push(notSupported(child(p, 'type'), s.type, OPENAPI_TYPES));
  if (s.default !== undefined && s.default !== null && ctx.defaultsForbidden) E.push(forbidden(child(p, 'default'), `must not be set ${ctx.defaultsForbidden}`));
  for (const [k, why] of UNSUPPORTED) if (s[k] !== undefined) E.push(forbidden(child(p, k), why));
  if (s.type === 'null') E.push(forbidden(child(p, 'type'), 'type cannot be set to null, use nullable as an alternative'));
  if (Array.isArray(s.items)) E.push(forbidden(child(p, 'items'), 'items must be a schema object and not an array'));
  if (s.uniqueItems === true) E.push(forbidden(child(p, 'uniqueItems'), 'uniqueItems cannot be set to true since the runtime complexity becomes quadratic'));
  if (s.additionalProperties !== undefined) {
    if (Object.keys(props(s)).length > 0 && s.additionalProperties !== true) E.push(forbidden(child(p, 'additionalProperties'), 'additionalProperties and properties are mutual exclusive'));
    if (isObj(s.additionalProperties)) openApiWalk(s.additionalProperties, child(p, 'additionalProperties'), w, cel, { ...ctx, cardinality: ctx.cardinality * maxEntries(s) });
  }
  for (const k of sortedKeys(s.properties)) {
    // the type and object meta of the resource are the server's: no defaults there
    const meta = ctxHere.root && (k === 'apiVersion' || k === 'kind' || k === 'metadata');
    openApiWalk(props(s)[k]!, key(child(p, 'properties'), k), w, cel, meta ? { ...ctx, defaultsForbidden: `in top-level ${k}` } : ctx);
  }
  for (const j of ['allOf', 'anyOf', 'oneOf']) list(s, j).forEach((x, i) => openApiWalk(x, index(child(p, j), i), w, false, ctx));
  if (isObj(s.not)) openApiWalk(s.not, child(p, 'not'), w, false, ctx);
  if (isObj(s.items)) {
    const correlatable = s['x-kubernetes-list-type'] === 'map';
    openApiWalk(s.items, child(p, 'items'), w, cel, { cardinality: ctx.cardinality * maxEntries(s), uncorrelatable: ctx.uncorrelatable ?? (correlatable ? undefined : p) });
  }
  if (s['x-kubernetes-preserve-unknown-fields'] === false) E.push(invalid(child(p, 'x-kubernetes-preserve-unknown-fields'), false, 'must be true or undefined'));
  listTypeErrors(s, p, E);
  const rules = Array.isArray(s['x-kubernetes-validations']) ? (s['x-kubernetes-validations'] as Raw[]) : [];
  ruleFieldErrors(rules, p, E);
  // as the real server: no rule is compiled while this node or one below it has a schema error
  if (cel && rules.length && E.length === schemaErrorsBefore) celRules(ctxHere.root ? withImplicitMeta(s) : s, rules, p, w, ctx);
}

function listTypeErrors(s: Raw, p: string, E: CrdError[]): void {
  const lt = s['x-kubernetes-list-type'];
  const keys = Array.isArray(s['x-kubernetes-list-map-keys']) ? (s['x-kubernetes-list-map-keys'] as string[]) : [];
  if (lt !== undefined && !LIST_TYPES.includes(lt as string)) E.push(notSupported(child(p, 'x-kubernetes-list-type'), lt, LIST_TYPES));
  if (lt !== undefined && s.type !== 'array') E.push(invalid(child(p, 'type'), str(s.type), 'must be array if x-kubernetes-list-type is specified'));
  if (keys.length > 0 && lt === undefined) E.push(required(child(p, 'x-kubernetes-list-type'), 'must be map if x-kubernetes-list-map-keys is non-empty'));
  else if (keys.length > 0 && lt !== 'map') {
    const detail = 'must be empty if x-kubernetes-list-type is not map';
    E.push({ field: child(p, 'x-kubernetes-list-map-keys'), type: 'FieldValueInvalid', detail, body: `Invalid value: []string{${keys.map((k) => JSON.stringify(k)).join(', ')}}: ${detail}` });
  }
  if (lt === 'map') {
    if (keys.length === 0) E.push(required(child(p, 'x-kubernetes-list-map-keys'), 'must not be empty if x-kubernetes-list-type is map'));
    if (!isObj(s.items)) E.push(required(child(p, 'items'), 'must have a schema if x-kubernetes-list-type is map'));
    else if (s.items.type !== 'object') E.push(invalid(child(child(p, 'items'), 'type'), str(s.items.type), 'must be object if parent array\'s x-kubernetes-list-type is map'));
    else {
      const itemProps = props(s.items);
      const req = list(s.items, 'required') as unknown as string[];
      for (const k of keys) {
        if (!itemProps[k]) E.push(required(child(child(p, 'items'), 'properties'), `entries for all x-kubernetes-list-map-keys must be specified, but ${JSON.stringify(k)} is not`));
        else if (!req.includes(k) && itemProps[k]!.default === undefined) E.push(required(child(child(p, 'items'), 'required'), `all x-kubernetes-list-map-keys must be required or have a default value, but ${JSON.stringify(k)} is neither`));
      }
    }
  }
}

// ---------------------------------------------------------------- CEL: declarations, compile errors, cost

/** The CEL type of a value of schema `s` (objects with properties are map<string, dyn>: cel-js compares those with ==). */
function celType(s: Raw): string {
  if (s['x-kubernetes-int-or-string'] === true) return 'dyn';
  switch (s.type) {
    case 'integer': return 'int';
    case 'number': return 'double';
    case 'string': return 'string';
    case 'boolean': return 'bool';
    case 'array': return isObj(s.items) ? `list<${celType(s.items)}>` : 'list<dyn>';
    case 'object':
      if (isObj(s.additionalProperties) && Object.keys(props(s)).length === 0) return `map<string, ${celType(s.additionalProperties)}>`;
      return 'map<string, dyn>';
    default: return 'dyn';
  }
}

/** Go's %#v of the internal apiextensions.ValidationRule, the value field.Invalid prints for a rule. */
function ruleSyntax(r: Raw): string {
  const q = (k: string) => JSON.stringify(str(r[k]));
  const reason = r.reason === undefined ? '(*apiextensions.FieldValueErrorReason)(nil)' : `(*apiextensions.FieldValueErrorReason)(${JSON.stringify(str(r.reason))})`;
  const optional = r.optionalOldSelf === undefined ? '(*bool)(nil)' : `(*bool)(${String(r.optionalOldSelf)})`;
  return `apiextensions.ValidationRule{Rule:${q('rule')}, Message:${q('message')}, MessageExpression:${q('messageExpression')}, Reason:${reason}, FieldPath:${q('fieldPath')}, OptionalOldSelf:${optional}}`;
}

interface CelNode { op: string; args: unknown; pos?: number }
const isNode = (v: unknown): v is CelNode => isObj(v) && typeof v.op === 'string';
/** cel-js keeps the operand of a unary operator as a node, of the others as a list. */
const operands = (n: CelNode): unknown[] => (Array.isArray(n.args) ? n.args : isNode(n.args) ? [n.args] : []);

const VALIDATION_REASONS = ['FieldValueDuplicate', 'FieldValueForbidden', 'FieldValueInvalid', 'FieldValueRequired'];
const hasNewlines = (t: string) => /[\n\r]/.test(t);

/** The checks of a rule's own fields, which are schema errors (they keep every rule of the subtree from being compiled). */
function ruleFieldErrors(rules: Raw[], p: string, E: CrdError[]): void {
  rules.forEach((r, i) => {
    const rp = index(child(p, 'x-kubernetes-validations'), i);
    const rule = str(r.rule).trim();
    const message = str(r.message);
    if (!rule) E.push(required(child(rp, 'rule'), 'rule is not specified'));
    else if (message.length > 0 && !message.trim()) E.push(invalid(child(rp, 'message'), message, 'message must be non-empty if specified'));
    else if (hasNewlines(message.trim())) E.push(invalid(child(rp, 'message'), message, 'message must not contain line breaks'));
    else if (hasNewlines(rule) && !message.trim()) E.push(required(child(rp, 'message'), 'message must be specified if rule contains line breaks'));
    if (str(r.messageExpression).length > 0 && !str(r.messageExpression).trim()) E.push(required(child(rp, 'messageExpression'), 'messageExpression must be non-empty if specified'));
    if (r.reason !== undefined && !VALIDATION_REASONS.includes(str(r.reason))) E.push(notSupported(child(rp, 'reason'), r.reason, VALIDATION_REASONS));
    const fieldPath = str(r.fieldPath);
    if (fieldPath.length > 0 && !fieldPath.trim()) E.push(invalid(child(rp, 'fieldPath'), fieldPath, 'fieldPath must be non-empty if specified'));
    if (hasNewlines(fieldPath)) E.push(invalid(child(rp, 'fieldPath'), fieldPath, 'fieldPath must not contain line breaks'));
  });
}

/** The root as rules see it: apiVersion, kind and the part of metadata a rule may read. */
function withImplicitMeta(s: Raw): Raw {
  const meta = { type: 'object', properties: { name: { type: 'string', maxLength: 253 }, generateName: { type: 'string', maxLength: 253 } } };
  return { ...s, properties: { apiVersion: { type: 'string' }, kind: { type: 'string' }, ...props(s), metadata: meta } };
}

/** Compiles the rules of one node; per rule, in the real server's order: cost, compile error, oldSelf placement. */
function celRules(s: Raw, rules: Raw[], p: string, w: Walk, ctx: WalkCtx): void {
  const t = celType(s);
  const env = new Environment().registerVariable('self', t).registerVariable('oldSelf', t);
  rules.forEach((r, i) => {
    const rp = child(index(child(p, 'x-kubernetes-validations'), i), 'rule');
    const rule = str(r.rule);
    let ast: CelNode | undefined;
    let error: string | undefined;
    try {
      ast = (env.parse(rule) as unknown as { ast: CelNode }).ast;
    } catch (e) {
      error = `compilation failed: ${celGoError(rule, e as Error, true)}`;
    }
    if (ast && !error) {
      const fieldErr = undefinedField(ast, s, rule);
      let checked: { valid: boolean; type?: string; error?: Error } | undefined;
      try {
        checked = fieldErr ? undefined : (env.check(rule) as typeof checked);
      } catch (e) {
        // the checker gave up rather than reporting: refuse the rule rather than store what cannot be judged
        checked = { valid: false, error: e as Error };
      }
      if (fieldErr) error = `compilation failed: ${fieldErr}`;
      else if (!checked!.valid) error = `compilation failed: ${celGoError(rule, checked!.error!, false)}`;
      else if (checked!.type !== 'bool' && checked!.type !== 'dyn') error = 'cel expression must evaluate to a bool';
    }
    const cost = ast && !error ? estimateCost(ast, { self: s, oldSelf: s }) * ctx.cardinality : 0;
    if (cost > RULE_COST_LIMIT) w.celErrors.push(forbidden(rp, costMessage('estimated rule cost', cost, RULE_COST_LIMIT)));
    w.rules.push({ field: rp, cost });
    if (error) w.celErrors.push({ field: rp, type: 'FieldValueInvalid', detail: error, body: `Invalid value: ${ruleSyntax(r)}: ${error}` });
    const messageError = str(r.messageExpression).trim() ? messageExpressionError(env, s, str(r.messageExpression)) : undefined;
    if (messageError) {
      const mp = child(index(child(p, 'x-kubernetes-validations'), i), 'messageExpression');
      w.celErrors.push({ field: mp, type: 'FieldValueInvalid', detail: messageError, body: `Invalid value: ${ruleSyntax(r)}: ${messageError}` });
    }
    else if (ast && usesOldSelf(ast)) {
      if (ctx.uncorrelatable !== undefined) w.celErrors.push(invalid(rp, rule, `oldSelf cannot be used on the uncorrelatable portion of the schema within ${ctx.uncorrelatable}`));
    } else if (r.optionalOldSelf !== undefined) {
      w.celErrors.push(invalid(child(index(child(p, 'x-kubernetes-validations'), i), 'optionalOldSelf'), r.optionalOldSelf, 'may not be set if oldSelf is not used in rule'));
    }
  });
}

/** Why a messageExpression does not compile to a string, or undefined. */
function messageExpressionError(env: Environment, s: Raw, expr: string): string | undefined {
  let ast: CelNode;
  try {
    ast = (env.parse(expr) as unknown as { ast: CelNode }).ast;
  } catch (e) {
    return `messageExpression compilation failed: ${celGoError(expr, e as Error, true)}`;
  }
  const fieldErr = undefinedField(ast, s, expr);
  if (fieldErr) return `messageExpression compilation failed: ${fieldErr}`;
  let checked: { valid: boolean; type?: string; error?: Error };
  try {
    checked = env.check(expr) as typeof checked;
  } catch (e) {
    checked = { valid: false, error: e as Error };
  }
  if (!checked.valid) return `messageExpression compilation failed: ${celGoError(expr, checked.error!, false)}`;
  if (checked.type !== 'string' && checked.type !== 'dyn') return 'messageExpression must evaluate to a string';
  return undefined;
}

/** A cel-js error in cel-go's words and layout: `ERROR: <input>:1:COL: msg` and the source line with a caret. */
function celGoError(rule: string, e: Error, syntax: boolean): string {
  const first = e.message.split('\n')[0] ?? '';
  const node = (e as { node?: { pos?: number; args?: unknown } }).node;
  let pos = node?.pos ?? caretPos(e.message) ?? 0;
  let msg = first;
  const goType = (t: string) => t.trim().replace(/</g, '(').replace(/>/g, ')');
  const unknownVar = /^Unknown variable: (\S+)/.exec(first);
  const operator = /^no such overload: (.+) (\+|-|\*|\/|%|==|!=|<=|>=|<|>|in) (.+)$/.exec(first);
  const call = /^found no matching overload for '(?:([\w<>, ]+)\.)?(\w+)\((.*)\)'/.exec(first);
  if (unknownVar) msg = `undeclared reference to '${unknownVar[1]}' (in container '')`;
  else if (operator) {
    const [, left, op, right] = operator;
    msg = `found no matching overload for '${op === 'in' ? '@in' : `_${op}_`}' applied to '(${goType(left!)}, ${goType(right!)})'`;
    // cel-go points at the operator, cel-js at the expression's start
    const args = Array.isArray(node?.args) ? (node!.args as { end?: number; start?: number }[]) : [];
    const from = args[0]?.end ?? pos;
    const at = rule.indexOf(op!, from);
    if (at >= 0) pos = at;
  } else if (call) {
    const [, receiver, fn, args] = call;
    // cel-go locates a call at its opening parenthesis
    const at = rule.indexOf(`${receiver ? '.' : ''}${fn}(`, pos);
    if (at >= 0) pos = at + fn!.length + (receiver ? 1 : 0);
    if (!KNOWN_FUNCTIONS.has(fn!)) msg = `undeclared reference to '${fn}' (in container '')`;
    else msg = `found no matching overload for '${fn}' applied to '${receiver ? goType(receiver) : ''}.(${args!.split(',').map(goType).filter(Boolean).join(', ')})'`.replace(`'.(`, `'(`);
  } else if (syntax) msg = `Syntax error: ${first}`;
  return locate(rule, pos, msg);
}

function caretPos(message: string): number | undefined {
  const lines = message.split('\n');
  const src = lines.findIndex((l) => /^>\s+\d+ \| /.test(l));
  if (src < 0 || !lines[src + 1]) return undefined;
  const col = lines[src + 1]!.indexOf('^') - lines[src]!.indexOf('| ') - 2;
  return col >= 0 ? col : undefined;
}

function locate(rule: string, pos: number, msg: string): string {
  let line = 1;
  let start = 0;
  for (let i = 0; i < pos && i < rule.length; i++) if (rule[i] === '\n') { line++; start = i + 1; }
  const col = pos - start;
  const text = (rule.split('\n')[line - 1] ?? '').replace(/\t/g, ' ');
  return `ERROR: <input>:${line}:${col + 1}: ${msg}\n | ${text}\n | ${'.'.repeat(col)}^`;
}

/** Functions of CEL and of the Kubernetes CEL libraries: a wrong call to one of these is an overload error, not an unknown name. */
const KNOWN_FUNCTIONS = new Set(['size', 'contains', 'startsWith', 'endsWith', 'matches', 'int', 'uint', 'double', 'string', 'bool', 'bytes', 'duration', 'timestamp',
  'type', 'dyn', 'has', 'all', 'exists', 'exists_one', 'map', 'filter', 'lowerAscii', 'upperAscii', 'trim', 'split', 'join', 'replace', 'substring', 'indexOf',
  'lastIndexOf', 'charAt', 'isSorted', 'sum', 'min', 'max', 'url', 'isURL', 'quantity', 'isQuantity', 'ip', 'isIP', 'cidr', 'isCIDR', 'format']);

function usesOldSelf(n: unknown): boolean {
  if (Array.isArray(n)) return n.some(usesOldSelf);
  if (!isNode(n)) return false;
  if (n.op === 'id') return n.args === 'oldSelf';
  return usesOldSelf(n.args);
}

const MACROS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);

/**
 * The schema a CEL expression refers to, where it can tell; reports `undefined field` for a field
 * the schema does not declare (cel-go types objects by their schema; cel-js sees map<string, dyn>).
 */
function undefinedField(ast: CelNode, self: Raw, rule: string): string | undefined {
  let found: string | undefined;
  const resolve = (n: unknown, scope: Record<string, Raw | undefined>): Raw | undefined => {
    if (found || !isNode(n)) return undefined;
    const a = n.args as unknown[];
    switch (n.op) {
      case 'id': return typeof n.args === 'string' ? scope[n.args] : undefined;
      case '.': case '.?': {
        const recv = resolve(a[0], scope);
        const name = a[1] as string;
        if (!recv) return undefined;
        const ps = props(recv);
        if (ps[name]) return ps[name];
        if (isObj(recv.additionalProperties)) return recv.additionalProperties;
        if (recv.type === 'object' && recv.additionalProperties === undefined && recv['x-kubernetes-preserve-unknown-fields'] !== true && recv['x-kubernetes-embedded-resource'] !== true) {
          found = locate(rule, Math.max(0, (n.pos ?? 1) - 1), `undefined field '${name}'`);
        }
        return undefined;
      }
      case '[]': {
        const recv = resolve(a[0], scope);
        resolve(a[1], scope);
        if (!recv) return undefined;
        if (isObj(recv.items)) return recv.items;
        if (isObj(recv.additionalProperties)) return recv.additionalProperties;
        return undefined;
      }
      case 'rcall': {
        const [fn, recvNode, callArgs] = a as [string, unknown, unknown[]];
        const recv = resolve(recvNode, scope);
        if (MACROS.has(fn) && Array.isArray(callArgs) && isNode(callArgs[0]) && callArgs[0].op === 'id') {
          const elem = recv && (isObj(recv.items) ? recv.items : recv.type === 'object' ? ({ type: 'string' } as Raw) : undefined);
          for (const x of callArgs.slice(1)) resolve(x, { ...scope, [callArgs[0].args as string]: elem });
        } else if (Array.isArray(callArgs)) for (const x of callArgs) resolve(x, scope);
        return undefined;
      }
      default:
        walkAll(operands(n), scope);
        return undefined;
    }
  };
  const walkAll = (x: unknown, scope: Record<string, Raw | undefined>) => {
    if (Array.isArray(x)) x.forEach((y) => walkAll(y, scope));
    else resolve(x, scope);
  };
  resolve(ast, { self, oldSelf: self });
  return found;
}

// Cost estimation: an upper bound in the spirit of cel-go's checker.CostEstimator with the
// Kubernetes size estimates — unbounded strings, lists and maps are as large as a request can be.
// It is never below the real estimate for the expressions it models; anything it does not model
// costs as much as its arguments' sizes, so an unknown construct over unbounded data is refused.

interface Est { cost: number; size: number; schema?: Raw }

const minSerialized = (s: Raw | undefined): number => {
  switch (s?.type) {
    case 'string': return 2;
    case 'boolean': return 4;
    case 'integer': case 'number': return 1;
    default: return 2;
  }
};
/** How many elements a list or map of schema `s` may hold in one request. */
function maxEntries(s: Raw): number {
  if (s.type === 'array') return typeof s.maxItems === 'number' ? s.maxItems : Math.floor(MAX_REQUEST_BYTES / (minSerialized(isObj(s.items) ? s.items : undefined) + 1));
  if (typeof s.maxProperties === 'number') return s.maxProperties;
  // "k":v, — a key needs at least 4 bytes besides the value
  return Math.floor(MAX_REQUEST_BYTES / (minSerialized(isObj(s.additionalProperties) ? s.additionalProperties : undefined) + 4));
}
function maxSize(s: Raw | undefined): number {
  if (!s) return MAX_REQUEST_BYTES;
  if (s.type === 'string') return typeof s.maxLength === 'number' ? s.maxLength : MAX_REQUEST_BYTES - 2;
  // an object of fixed fields holds at most those
  if (s.type === 'object' && !isObj(s.additionalProperties) && s['x-kubernetes-preserve-unknown-fields'] !== true) return Math.max(1, Object.keys(props(s)).length);
  if (s.type === 'array' || s.type === 'object') return maxEntries(s);
  return 1;
}
const traversal = (size: number) => Math.ceil(size * 0.1);
const COMPARISONS = new Set(['==', '!=', '<', '<=', '>', '>=']);
const LOGIC = new Set(['&&', '||', '!_', '?:', '-_', 'id', 'value']);

function estimateCost(ast: CelNode, scope: Record<string, Raw | undefined>): number {
  return estimate(ast, scope).cost;
}

function estimate(n: unknown, scope: Record<string, Raw | undefined>): Est {
  if (!isNode(n)) return { cost: 0, size: 1 };
  const a = operands(n);
  const sub = (x: unknown) => estimate(x, scope);
  switch (n.op) {
    case 'value': return { cost: 0, size: typeof n.args === 'string' ? n.args.length : 1 };
    case 'id': {
      const s = typeof n.args === 'string' ? scope[n.args] : undefined;
      return { cost: 1, size: maxSize(s), schema: s };
    }
    case '.': case '.?': {
      const r = sub(a[0]);
      const name = a[1] as string;
      const s = r.schema ? (props(r.schema)[name] ?? (isObj(r.schema.additionalProperties) ? r.schema.additionalProperties : undefined)) : undefined;
      return { cost: r.cost + 1, size: maxSize(s), schema: s };
    }
    case '[]': {
      const r = sub(a[0]);
      const i = sub(a[1]);
      const s = r.schema ? (isObj(r.schema.items) ? r.schema.items : isObj(r.schema.additionalProperties) ? r.schema.additionalProperties : undefined) : undefined;
      return { cost: r.cost + i.cost + 1, size: maxSize(s), schema: s };
    }
    case 'rcall': {
      const [fn, recvNode, callArgs] = a as [string, unknown, unknown[]];
      const r = sub(recvNode);
      const args = Array.isArray(callArgs) ? callArgs : [];
      if (MACROS.has(fn) && isNode(args[0]) && args[0].op === 'id') {
        const elem = r.schema ? (isObj(r.schema.items) ? r.schema.items : ({ type: 'string' } as Raw)) : undefined;
        const inner = { ...scope, [args[0].args as string]: elem };
        const body = args.slice(1).reduce((c: number, x) => c + estimate(x, inner).cost, 0);
        // per element: the body, one iteration step and, for map/filter, the result append
        return { cost: r.cost + r.size * (body + 2), size: r.size };
      }
      const rest = args.map(sub);
      const argCost = rest.reduce((c, x) => c + x.cost, 0);
      const argSize = rest.reduce((c, x) => c + x.size, 0);
      if (fn === 'matches') return { cost: r.cost + argCost + 1 + traversal(r.size) * Math.max(1, argSize), size: 1 };
      if (fn === 'size') return { cost: r.cost + 1, size: 1 };
      return { cost: r.cost + argCost + 1 + traversal(r.size + argSize), size: Math.max(r.size, 1) };
    }
    case 'call': {
      const [fn, callArgs] = a as [string, unknown[]];
      const rest = (Array.isArray(callArgs) ? callArgs : []).map(sub);
      const argCost = rest.reduce((c, x) => c + x.cost, 0);
      if (fn === 'has' || fn === 'size') return { cost: argCost + 1, size: 1 };
      return { cost: argCost + 1 + traversal(rest.reduce((c, x) => c + x.size, 0)), size: Math.max(1, ...rest.map((x) => x.size)) };
    }
    default: {
      const rest = a.map(sub);
      const argCost = rest.reduce((c, x) => c + x.cost, 0);
      const sizes = rest.map((x) => x.size);
      // comparing stops at the shorter operand; concatenation and membership walk everything
      if (COMPARISONS.has(n.op)) return { cost: argCost + 1 + traversal(Math.min(...sizes)), size: 1 };
      if (n.op === '+' || n.op === 'in') return { cost: argCost + 1 + traversal(sizes.reduce((x, y) => x + y, 0)), size: sizes.reduce((x, y) => x + y, 0) };
      if (LOGIC.has(n.op)) return { cost: argCost + 1, size: Math.max(1, ...sizes) };
      // anything not modelled costs as much as walking all of its operands
      return { cost: argCost + 1 + traversal(sizes.reduce((x, y) => x + y, 0)), size: Math.max(1, ...sizes) };
    }
  }
}

/** apiextensions getCostErrorMessage. */
export function costMessage(what: string, cost: number, limit: number): string {
  const f = cost / limit;
  const factor = f > 100 ? 'more than 100x' : f < 1.5 ? `${f.toFixed(6)}x` : `${f.toFixed(1)}x`;
  return `${what} exceeds budget by factor of ${factor} (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)`;
}
