// Validation of a CustomResourceDefinition's schemas as kube-apiserver (apiextensions v1) does it
// before storing one: structural rules, defaults checked against their own schema as written, and
// x-kubernetes-validations compiled with their cost limits. Pure: CRD object in, field errors out.
import { celEnvironment, compileRule, costMessage, CRD_COST_LIMIT, estimateCost, maxEntries, messageExpressionError, props, ruleSyntax, RULE_COST_LIMIT, str, usesOldSelf, type Raw } from './crdCel.js';
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

// ---------------------------------------------------------------- x-kubernetes-validations (compiled in crdCel.ts)

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
  const env = celEnvironment(s);
  rules.forEach((r, i) => {
    const rp = child(index(child(p, 'x-kubernetes-validations'), i), 'rule');
    const rule = str(r.rule);
    const { ast, error } = compileRule(env, s, rule);
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
