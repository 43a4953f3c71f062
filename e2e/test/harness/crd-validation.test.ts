// CRD validation as kube-apiserver does it, case by case: structural rules, defaults, CEL rules and
// their cost, with the real server's field paths and texts.
import { costMessage, CRD_COST_LIMIT, RULE_COST_LIMIT } from '../../src/harness/crdCel.js';
import { errorString, goSyntax, toCauses, validateCrd } from '../../src/harness/crdValidation.js';
import { operatorModule } from '../chart/operator-source.js';

type Json = Record<string, unknown>;

function crd(root: Json, versions = 1): Json {
  return {
    apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: 'widgets.test.io' },
    spec: {
      group: 'test.io', scope: 'Namespaced', names: { kind: 'Widget', plural: 'widgets' },
      versions: Array.from({ length: versions }, (_, i) => ({ name: `v${i + 1}`, served: true, storage: i === 0, schema: { openAPIV3Schema: root } })),
    },
  };
}
/** A CRD whose spec has the given schema. */
const withSpec = (spec: Json): Json => crd({ type: 'object', properties: { spec } });
const errs = (c: Json): string[] => validateCrd(c).map(errorString);

const R = 'spec.validation.openAPIV3Schema';
const S = `${R}.properties[spec]`;
const intOrString = { anyOf: [{ type: 'integer' }, { type: 'string' }], 'x-kubernetes-int-or-string': true };
const CEL_HINT = '(try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)';
const rule = (r: string) => `apiextensions.ValidationRule{Rule:${JSON.stringify(r)}, Message:"", MessageExpression:"", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", OptionalOldSelf:(*bool)(nil)}`;

describe('structural schema', () => {
  const cases: [string, Json, string[]][] = [
    ['a pattern inside the int-or-string anyOf makes its types illegal (issue #13)',
      withSpec({ type: 'object', additionalProperties: { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string', pattern: '^[0-9]+$' }] } }),
      [`${S}.additionalProperties.anyOf[0].type: Forbidden: must be empty to be structural`, `${S}.additionalProperties.anyOf[1].type: Forbidden: must be empty to be structural`]],
    ['the exact int-or-string anyOf, pattern beside it, is structural',
      withSpec({ type: 'object', additionalProperties: { ...intOrString, pattern: '^[0-9]+$' } }), []],
    ['allOf wrapping the int-or-string anyOf is structural',
      withSpec({ type: 'object', properties: { port: { 'x-kubernetes-int-or-string': true, allOf: [{ anyOf: [{ type: 'integer' }, { type: 'string' }] }, { maxLength: 5 }] } } }), []],
    ['anyOf with the types in the other order is not the int-or-string form',
      withSpec({ type: 'object', properties: { port: { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'string' }, { type: 'integer' }] } } }),
      [`${S}.properties[port].anyOf[0].type: Forbidden: must be empty to be structural`, `${S}.properties[port].anyOf[1].type: Forbidden: must be empty to be structural`]],
    ['an untyped field', withSpec({ type: 'object', properties: { size: { minimum: 1 } } }),
      [`${S}.properties[size].type: Required value: must not be empty for specified object fields`]],
    ['untyped array items', withSpec({ type: 'object', properties: { tags: { type: 'array', items: {} } } }),
      [`${S}.properties[tags].items.type: Required value: must not be empty for specified array items`]],
    ['an array without items', withSpec({ type: 'object', properties: { tags: { type: 'array' } } }),
      [`${S}.properties[tags].items: Required value: must be specified`]],
    ['an untyped root', crd({ properties: { spec: { type: 'object' } } }), [`${R}.type: Required value: must not be empty at the root`]],
    ['a nullable root, reported before the structural errors', crd({ type: 'object', nullable: true, properties: { a: {} } }),
      [`${R}.nullable: Forbidden: nullable cannot be true at the root`, `${R}.properties[a].type: Required value: must not be empty for specified object fields`]],
    ['a root that is not an object', crd({ type: 'string' }), [`${R}.type: Invalid value: "string": must be object at the root`]],
    ['x-kubernetes-preserve-unknown-fields needs no type', withSpec({ type: 'object', properties: { raw: { 'x-kubernetes-preserve-unknown-fields': true } } }), []],
    ['additionalProperties at the root', crd({ type: 'object', additionalProperties: { type: 'string' } }),
      [`${R}.additionalProperties: Forbidden: must not be used at the root`]],
    ['metadata with fields other than name and generateName',
      crd({ type: 'object', properties: { metadata: { type: 'object', properties: { name: { type: 'string' }, labels: { type: 'object' } } } } }),
      [`${R}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified`]],
    ['metadata restricting name only', crd({ type: 'object', properties: { metadata: { type: 'object', properties: { name: { type: 'string', maxLength: 20 } } } } }), []],
    ['metadata that is not an object', crd({ type: 'object', properties: { metadata: { type: 'string' } } }),
      [`${R}.properties[metadata].type: Invalid value: "string": must be object`]],
    ['kind that is not a string', crd({ type: 'object', properties: { kind: { type: 'integer' } } }), [`${R}.properties[kind].type: Invalid value: "integer": must be string`]],
    ['types, defaults and extensions inside a junctor, sorted as the real server sorts them',
      withSpec({ type: 'object', properties: { a: { type: 'string', oneOf: [{ type: 'string', nullable: true, default: 'x', description: 'd', 'x-kubernetes-preserve-unknown-fields': true }] } } }),
      [`${S}.properties[a].oneOf[0].default: Forbidden: must be undefined to be structural`,
        `${S}.properties[a].oneOf[0].description: Forbidden: must be empty to be structural`,
        `${S}.properties[a].oneOf[0].nullable: Forbidden: must be false to be structural`,
        `${S}.properties[a].oneOf[0].type: Forbidden: must be empty to be structural`,
        `${S}.properties[a].oneOf[0].x-kubernetes-preserve-unknown-fields: Forbidden: must be false to be structural`]],
    ['metadata inside a junctor', crd({ type: 'object', properties: { metadata: { type: 'object' } }, anyOf: [{ properties: { metadata: { required: ['name'] } } }] }),
      [`${R}.anyOf[0].properties[metadata]: Forbidden: must not be specified in a nested context`]],
    ['a field named only inside a junctor', withSpec({ type: 'object', properties: { a: { type: 'string' } }, anyOf: [{ required: ['a'] }, { properties: { b: { minLength: 1 } } }] }),
      [`${S}.properties[b]: Required value: because it is defined in ${S}.anyOf[1].properties[b]`]],
    ['errors of several fields come sorted', withSpec({ type: 'object', properties: { zeta: {}, alpha: { type: 'array' } } }),
      [`${S}.properties[alpha].items: Required value: must be specified`, `${S}.properties[zeta].type: Required value: must not be empty for specified object fields`]],
    ['int-or-string with preserve-unknown-fields', withSpec({ type: 'object', properties: { p: { ...intOrString, 'x-kubernetes-preserve-unknown-fields': true } } }),
      [`${S}.properties[p].x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true`]],
    ['an embedded resource must be an object', withSpec({ type: 'object', properties: { tpl: { 'x-kubernetes-embedded-resource': true, 'x-kubernetes-preserve-unknown-fields': true } } }),
      [`${S}.properties[tpl].type: Required value: must be object if x-kubernetes-embedded-resource is true`]],
  ];
  test.each(cases)('%s', (_name, c, want) => expect(errs(c)).toEqual(want));
});

describe('generic schema rules', () => {
  const cases: [string, Json, string[]][] = [
    ['additionalProperties beside properties', withSpec({ type: 'object', properties: { a: { type: 'string' } }, additionalProperties: { type: 'string' } }),
      [`${S}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive`]],
    ['additionalProperties: false beside properties', withSpec({ type: 'object', properties: { a: { type: 'string' } }, additionalProperties: false }),
      [`${S}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive`]],
    ['uniqueItems: true', withSpec({ type: 'object', properties: { t: { type: 'array', items: { type: 'string' }, uniqueItems: true } } }),
      [`${S}.properties[t].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic`]],
    ['x-kubernetes-preserve-unknown-fields: false', withSpec({ type: 'object', 'x-kubernetes-preserve-unknown-fields': false }),
      [`${S}.x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined`]],
    ['a default in top-level metadata', crd({ type: 'object', properties: { metadata: { type: 'object', properties: { name: { type: 'string', default: 'w' } } } } }),
      [`${R}.properties[metadata].properties[name].default: Forbidden: must not be set in top-level metadata`]],
    ['$ref', withSpec({ type: 'object', properties: { a: { type: 'string', $ref: '#/definitions/a' } } }), [`${S}.properties[a].$ref: Forbidden: $ref is not supported`]],
    ['type: null', withSpec({ type: 'object', properties: { a: { type: 'null' } } }), [`${S}.properties[a].type: Forbidden: type cannot be set to null, use nullable as an alternative`]],
    ['an unknown list type', withSpec({ type: 'object', properties: { l: { type: 'array', items: { type: 'string' }, 'x-kubernetes-list-type': 'bag' } } }),
      [`${S}.properties[l].x-kubernetes-list-type: Unsupported value: "bag": supported values: "atomic", "set", "map"`]],
    ['a map list without keys', withSpec({ type: 'object', properties: { l: { type: 'array', items: { type: 'object', properties: { n: { type: 'string' } } }, 'x-kubernetes-list-type': 'map' } } }),
      [`${S}.properties[l].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map`]],
    ['a schema node that is not an object', withSpec({ type: 'object', properties: { a: 'string' } }),
      [`${S}.properties[a]: Invalid value: "\\"string\\"": must be a schema object`]],
  ];
  test.each(cases)('%s', (_name, c, want) => expect(errs(c)).toEqual(want));
});

describe('defaults', () => {
  const storage = (def: unknown) => withSpec({ type: 'object', properties: { storage: { type: 'object', default: def, required: ['size'], properties: { size: { type: 'string', default: '10Gi' } } } } });
  const cases: [string, Json, string[]][] = [
    ['default {} on an object with required fields: nested defaults are not applied first (issue #13)', storage({}),
      [`${S}.properties[storage].default.size: Required value`]],
    ['a complete default', storage({ size: '1Gi' }), []],
    ['a default with unknown fields', storage({ size: '1Gi', color: 'red' }),
      [`${S}.properties[storage].default: Invalid value: map[string]interface {}{"color":"red", "size":"1Gi"}: must not have unknown fields`]],
    ['a default with unknown fields is still validated', storage({ color: 'red' }),
      [`${S}.properties[storage].default: Invalid value: map[string]interface {}{"color":"red"}: must not have unknown fields`, `${S}.properties[storage].default.size: Required value`]],
    ['a default of the wrong type', withSpec({ type: 'object', properties: { size: { type: 'integer', default: 'big' } } }),
      [`${S}.properties[size].default: Invalid value: "string": <root> in body must be of type integer: "string"`]],
    ['default: null is no default (JSON null decodes to none)', withSpec({ type: 'object', properties: { n: { type: 'integer', default: null } } }), []],
    ['a default outside its bounds', withSpec({ type: 'object', properties: { n: { type: 'integer', maximum: 7, default: 9 } } }),
      [`${S}.properties[n].default: Invalid value: 9: <root> in body should be less than or equal to 7`]],
    ['defaults of several levels, parents first',
      withSpec({ type: 'object', properties: { compute: { type: 'object', default: {}, required: ['enabled', 'image'], properties: {
        enabled: { type: 'boolean' }, image: { type: 'string' }, storage: { type: 'object', default: {}, required: ['size'], properties: { size: { type: 'string' } } } } } } }),
      [`${S}.properties[compute].default.enabled: Required value`, `${S}.properties[compute].default.image: Required value`, `${S}.properties[compute].properties[storage].default.size: Required value`]],
    ['defaults are judged only once the schema is structural', withSpec({ type: 'object', properties: { a: { default: 1 }, b: { type: 'object', required: ['x'], default: {}, properties: { x: { type: 'string' } } } } }),
      [`${S}.properties[a].type: Required value: must not be empty for specified object fields`]],
  ];
  test.each(cases)('%s', (_name, c, want) => expect(errs(c)).toEqual(want));
});

describe('x-kubernetes-validations', () => {
  const withRule = (schema: Json, r: string) => withSpec({ type: 'object', properties: { x: { ...schema, 'x-kubernetes-validations': [{ rule: r }] } } });
  const X = `${S}.properties[x].x-kubernetes-validations[0].rule`;
  const bounded = { type: 'array', maxItems: 10, items: { type: 'string', maxLength: 10 } };
  const unbounded = { type: 'array', items: { type: 'string' } };
  const cases: [string, Json, string[]][] = [
    ['a transition rule: oldSelf is declared', withRule({ type: 'integer' }, 'self == oldSelf'), []],
    ['an undeclared name', withRule({ type: 'integer' }, 'self == older'),
      [`${X}: Invalid value: ${rule('self == older')}: compilation failed: ERROR: <input>:1:9: undeclared reference to 'older' (in container '')\n | self == older\n | ........^`]],
    ['an unknown function', withRule({ type: 'string' }, 'self.frobnicate()'),
      [`${X}: Invalid value: ${rule('self.frobnicate()')}: compilation failed: ERROR: <input>:1:16: undeclared reference to 'frobnicate' (in container '')\n | self.frobnicate()\n | ...............^`]],
    ['a known function with wrong arguments', withRule({ type: 'integer' }, 'self.startsWith(1)'),
      [`${X}: Invalid value: ${rule('self.startsWith(1)')}: compilation failed: ERROR: <input>:1:16: found no matching overload for 'startsWith' applied to 'int.(int)'\n | self.startsWith(1)\n | ...............^`]],
    ['a field the schema does not declare', withRule({ type: 'object', properties: { a: { type: 'string' } } }, "self.b == 'x'"),
      [`${X}: Invalid value: ${rule("self.b == 'x'")}: compilation failed: ERROR: <input>:1:5: undefined field 'b'\n | self.b == 'x'\n | ....^`]],
    ['a declared field', withRule({ type: 'object', properties: { a: { type: 'string' } } }, "self.a == 'x' || !has(self.a)"), []],
    ['a rule at the root sees metadata.name', crd({ type: 'object', 'x-kubernetes-validations': [{ rule: "self.metadata.name.startsWith('w') && self.kind == 'Widget'" }] }), []],
    ['a rule at the root sees no other metadata field', crd({ type: 'object', 'x-kubernetes-validations': [{ rule: 'size(self.metadata.labels) > 0' }] }),
      [`${R}.x-kubernetes-validations[0].rule: Invalid value: ${rule('size(self.metadata.labels) > 0')}: compilation failed: ERROR: <input>:1:19: undefined field 'labels'\n | size(self.metadata.labels) > 0\n | ..................^`]],
    ['a messageExpression that does not compile', withSpec({ type: 'object', properties: { x: { type: 'integer', 'x-kubernetes-validations': [{ rule: 'self > 0', messageExpression: "'got ' + self" }] } } }),
      [`${S}.properties[x].x-kubernetes-validations[0].messageExpression: Invalid value: apiextensions.ValidationRule{Rule:"self > 0", Message:"", MessageExpression:"'got ' + self", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", OptionalOldSelf:(*bool)(nil)}: messageExpression compilation failed: ERROR: <input>:1:8: found no matching overload for '_+_' applied to '(string, int)'\n | 'got ' + self\n | .......^`]],
    ['a messageExpression that is not a string', withSpec({ type: 'object', properties: { x: { type: 'integer', 'x-kubernetes-validations': [{ rule: 'self > 0', messageExpression: 'self' }] } } }),
      [`${S}.properties[x].x-kubernetes-validations[0].messageExpression: Invalid value: apiextensions.ValidationRule{Rule:"self > 0", Message:"", MessageExpression:"self", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", OptionalOldSelf:(*bool)(nil)}: messageExpression must evaluate to a string`]],
    ['a messageExpression that compiles', withSpec({ type: 'object', properties: { x: { type: 'integer', 'x-kubernetes-validations': [{ rule: 'self > 0', messageExpression: "'got ' + string(self)" }] } } }), []],
    ['a rule that is not a bool', withRule({ type: 'integer' }, 'self + 1'), [`${X}: Invalid value: ${rule('self + 1')}: cel expression must evaluate to a bool`]],
    ['a syntax error', withRule({ type: 'integer' }, 'self =='),
      [`${X}: Invalid value: ${rule('self ==')}: compilation failed: ERROR: <input>:1:8: Syntax error: Unexpected token: EOF\n | self ==\n | .......^`]],
    ['oldSelf inside a list that is not a map list', withSpec({ type: 'object', properties: { x: { type: 'array', maxItems: 10, items: { type: 'string', maxLength: 10, 'x-kubernetes-validations': [{ rule: 'self == oldSelf' }] } } } }),
      [`${S}.properties[x].items.x-kubernetes-validations[0].rule: Invalid value: "self == oldSelf": oldSelf cannot be used on the uncorrelatable portion of the schema within ${S}.properties[x]`]],
    ['comparing an unbounded string with a literal stops at the literal', withRule({ type: 'array', maxItems: 1000, items: { type: 'object', properties: { name: { type: 'string' } } } }, "self.all(x, x.name != '')"), []],
    ['all() over a bounded list is cheap', withRule(bounded, "self.all(s, s.contains('a'))"), []],
    ['all() over an unbounded list of unbounded strings exceeds the per-rule and the per-CRD limit', withRule(unbounded, "self.all(s, s.contains('a'))"),
      [`${X}: Forbidden: estimated rule cost exceeds budget by factor of more than 100x ${CEL_HINT}`,
        `${X}: Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema`,
        `${R}: Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of more than 100x ${CEL_HINT}`]],
    ['a schema error below a node keeps its rules from being compiled',
      withSpec({ type: 'object', 'x-kubernetes-validations': [{ rule: 'nope(' }], properties: { t: { type: 'array', items: { type: 'string' }, uniqueItems: true } } }),
      [`${S}.properties[t].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic`]],
    ['a rule with line breaks needs a message', withRule({ type: 'integer' }, 'self >= 0 &&\nself < 10'),
      [`${S}.properties[x].x-kubernetes-validations[0].message: Required value: message must be specified if rule contains line breaks`]],
    ['an empty rule', withRule({ type: 'integer' }, '  '), [`${S}.properties[x].x-kubernetes-validations[0].rule: Required value: rule is not specified`]],
    ['an unknown reason', withSpec({ type: 'object', properties: { x: { type: 'integer', 'x-kubernetes-validations': [{ rule: 'self > 0', reason: 'Nope' }] } } }),
      [`${S}.properties[x].x-kubernetes-validations[0].reason: Unsupported value: "Nope": supported values: "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"`]],
    ['compile errors come after the schema errors of other nodes',
      withSpec({ type: 'object', properties: { a: { type: 'integer', 'x-kubernetes-validations': [{ rule: 'self == older' }] }, b: { type: 'object', properties: { c: { type: 'string' } }, additionalProperties: false } } }),
      [`${S}.properties[b].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive`,
        `${S}.properties[a].x-kubernetes-validations[0].rule: Invalid value: ${rule('self == older')}: compilation failed: ERROR: <input>:1:9: undeclared reference to 'older' (in container '')\n | self == older\n | ........^`]],
    ['rules are compiled only once the schema is structural', withSpec({ type: 'object', properties: { a: {}, x: { type: 'integer', 'x-kubernetes-validations': [{ rule: 'nope(' }] } } }),
      [`${S}.properties[a].type: Required value: must not be empty for specified object fields`]],
  ];
  test.each(cases)('%s', (_name, c, want) => expect(errs(c)).toEqual(want));

  test('rules each within their limit can together exceed the limit of the CRD; the four most expensive are named', () => {
    const properties: Json = {};
    for (let i = 0; i < 11; i++) properties[`l${i}`] = { type: 'array', maxItems: 90_000, items: { type: 'string', maxLength: 1000 }, 'x-kubernetes-validations': [{ rule: "self.all(s, s.contains('a'))" }] };
    const got = errs(withSpec({ type: 'object', properties }));
    expect(got).toHaveLength(5);
    expect(got.slice(0, 4).every((e) => e.endsWith(': Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema'))).toBe(true);
    expect(got[4]).toMatch(new RegExp(`^${R.replace(/\./g, '\\.')}: Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of 1\\.\\d{6}x `));
  });

  test('the cost of a rule under a list is multiplied by the list\'s bound', () => {
    const under = (maxItems: number) => withSpec({ type: 'object', properties: { l: { type: 'array', maxItems, items: { type: 'string', maxLength: 100_000, 'x-kubernetes-validations': [{ rule: "self.contains('a')" }] } } } });
    expect(errs(under(10))).toEqual([]);
    expect(errs(under(100_000))[0]).toMatch(/items\.x-kubernetes-validations\[0\]\.rule: Forbidden: estimated rule cost exceeds budget by factor of/);
  });
});

describe('where the errors are reported', () => {
  test('versions with different schemas are reported under spec.versions[i]', () => {
    const c = crd({ type: 'object' }, 2);
    ((c.spec as Json).versions as Json[])[1]!.schema = { openAPIV3Schema: { type: 'object', properties: { a: {} } } };
    expect(errs(c)).toEqual(['spec.versions[1].schema.openAPIV3Schema.properties[a].type: Required value: must not be empty for specified object fields']);
  });
  test('identical schemas of several versions are reported once, under spec.validation', () => {
    expect(errs(crd({ type: 'object', properties: { a: {} } }, 2))).toEqual([`${R}.properties[a].type: Required value: must not be empty for specified object fields`]);
  });
  test('a version without a schema', () => {
    const c = crd({ type: 'object' });
    delete ((c.spec as Json).versions as Json[])[0]!.schema;
    expect(errs(c)).toEqual(['spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required']);
  });
  test('spec.preserveUnknownFields: true is refused in v1', () => {
    const c = crd({ type: 'object' });
    (c.spec as Json).preserveUnknownFields = true;
    expect(errs(c)).toEqual(['spec.preserveUnknownFields: Invalid value: true: cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead']);
  });
});

describe('formatting', () => {
  test('Status causes carry type, body and field, duplicates dropped as ErrorList.ToAggregate drops them', () => {
    const e = { field: 'f', type: 'FieldValueRequired' as const, detail: 'x' };
    expect(toCauses([e, e])).toEqual([{ reason: 'FieldValueRequired', message: 'Required value: x', field: 'f' }]);
  });
  test('values print as Go prints them', () => {
    expect(goSyntax({ b: [1, 'x'], a: null })).toBe('map[string]interface {}{"a":interface {}(nil), "b":[]interface {}{1, "x"}}');
  });
  test('cost factors as getCostErrorMessage words them', () => {
    expect(costMessage('c', 2 * RULE_COST_LIMIT, RULE_COST_LIMIT)).toMatch(/^c exceeds budget by factor of 2\.0x /);
    expect(costMessage('c', 1.2 * CRD_COST_LIMIT, CRD_COST_LIMIT)).toMatch(/^c exceeds budget by factor of 1\.200000x /);
    expect(costMessage('c', 101 * RULE_COST_LIMIT, RULE_COST_LIMIT)).toMatch(/^c exceeds budget by factor of more than 100x /);
  });
});

test("the CRDs the operator's generator writes (operator/src/api/crds.ts) pass", async () => {
  const { CRD_FILES } = await operatorModule<{ CRD_FILES: Record<string, () => Json> }>('api/crds.ts');
  expect(Object.keys(CRD_FILES).length).toBeGreaterThan(0);
  for (const [file, make] of Object.entries(CRD_FILES)) expect([file, errs(make())]).toEqual([file, []]);
});

describe('robustness', () => {
const junk: unknown[] = [null, 1, 'x', [], {}, [1], { type: 'object' }, true, { rule: 1 }, [{ rule: 'self.' }], { a: { b: 1 } }];
const keys = ['type', 'properties', 'items', 'additionalProperties', 'anyOf', 'allOf', 'oneOf', 'not', 'default', 'required', 'x-kubernetes-validations', 'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'pattern', 'x-kubernetes-int-or-string', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-embedded-resource', 'maxItems', 'enum'];
let seed = 1;
const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
function gen(d: number): unknown {
  if (d > 3 || rnd(4) === 0) return junk[rnd(junk.length)];
  const o: Record<string, unknown> = {};
  for (let i = 0; i < 1 + rnd(4); i++) {
    const k = keys[rnd(keys.length)]!;
    o[k] = k === 'properties' ? { a: gen(d + 1), b: gen(d + 1) } : k === 'anyOf' ? [gen(d + 1), gen(d + 1)] : k === 'type' ? ['object', 'array', 'string', 'integer', 'null', 'x'][rnd(6)] : k === 'x-kubernetes-validations' ? [{ rule: ['self == oldSelf', 'self.a.all(x, x)', 'has(self.b)', '1 +'][rnd(4)] }] : gen(d + 1);
  }
  return o;
}
test('schemas of any shape, malformed ones included, never make the validator throw (deterministic pseudo-random schemas)', () => {
  for (let i = 0; i < 3000; i++) {
    const s = gen(0);
    try { validateCrd({ spec: { versions: [{ name: 'v1', schema: { openAPIV3Schema: s } }] } }); } catch (e) { throw new Error(`${(e as Error).stack}\n${JSON.stringify(s)}`); }
  }
});
});
