// CEL rules of a CRD schema as kube-apiserver judges them before storing the CRD: compiled with
// `self` and `oldSelf` declared (errors in cel-go's words and layout) and their cost estimated.
// Pure: schema node and rule text in, error text or cost out.
import { Environment } from '@marcbachmann/cel-js';
import { isObj } from './util.js';

/** Per-rule and per-CRD limits of the static CEL cost estimate (apiextensions StaticEstimatedCostLimit, StaticEstimatedCRDCostLimit). */
export const RULE_COST_LIMIT = 10_000_000;
export const CRD_COST_LIMIT = 100_000_000;
/** kube-apiserver sizes unbounded lists, maps and strings by the largest request it accepts (3 MiB). */
const MAX_REQUEST_BYTES = 3 * 1024 * 1024;

export type Raw = Record<string, unknown>;
export const props = (s: Raw): Record<string, Raw> => (isObj(s.properties) ? (s.properties as Record<string, Raw>) : {});
export const str = (v: unknown): string => (typeof v === 'string' ? v : '');

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
export function ruleSyntax(r: Raw): string {
  const q = (k: string) => JSON.stringify(str(r[k]));
  const reason = r.reason === undefined ? '(*apiextensions.FieldValueErrorReason)(nil)' : `(*apiextensions.FieldValueErrorReason)(${JSON.stringify(str(r.reason))})`;
  const optional = r.optionalOldSelf === undefined ? '(*bool)(nil)' : `(*bool)(${String(r.optionalOldSelf)})`;
  return `apiextensions.ValidationRule{Rule:${q('rule')}, Message:${q('message')}, MessageExpression:${q('messageExpression')}, Reason:${reason}, FieldPath:${q('fieldPath')}, OptionalOldSelf:${optional}}`;
}

export interface CelNode { op: string; args: unknown; pos?: number }
const isNode = (v: unknown): v is CelNode => isObj(v) && typeof v.op === 'string';
/** cel-js keeps the operand of a unary operator as a node, of the others as a list. */
const operands = (n: CelNode): unknown[] => (Array.isArray(n.args) ? n.args : isNode(n.args) ? [n.args] : []);

/** The environment rules of schema node `s` compile in. */
export function celEnvironment(s: Raw): Environment {
  const t = celType(s);
  return new Environment().registerVariable('self', t).registerVariable('oldSelf', t);
}

/** Compiles a rule; `error` is the detail the real server gives when it does not compile to a bool. */
export function compileRule(env: Environment, s: Raw, rule: string): { ast?: CelNode; error?: string } {
  return compileExpression(env, s, rule, 'bool', 'compilation failed', 'cel expression must evaluate to a bool');
}

/** Why a messageExpression does not compile to a string, or undefined. */
export function messageExpressionError(env: Environment, s: Raw, expr: string): string | undefined {
  return compileExpression(env, s, expr, 'string', 'messageExpression compilation failed', 'messageExpression must evaluate to a string').error;
}

function compileExpression(env: Environment, s: Raw, expr: string, want: string, failed: string, wrongType: string): { ast?: CelNode; error?: string } {
  let ast: CelNode;
  try {
    ast = (env.parse(expr) as unknown as { ast: CelNode }).ast;
  } catch (e) {
    return { error: `${failed}: ${celGoError(expr, e as Error, true)}` };
  }
  const fieldErr = undefinedField(ast, s, expr);
  if (fieldErr) return { ast, error: `${failed}: ${fieldErr}` };
  let checked: { valid: boolean; type?: string; error?: Error };
  try {
    checked = env.check(expr) as typeof checked;
  } catch (e) {
    // the checker gave up rather than reporting: refuse the expression rather than store what cannot be judged
    checked = { valid: false, error: e as Error };
  }
  if (!checked.valid) return { ast, error: `${failed}: ${celGoError(expr, checked.error!, false)}` };
  if (checked.type !== want && checked.type !== 'dyn') return { ast, error: wrongType };
  return { ast };
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

export function usesOldSelf(n: unknown): boolean {
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
export function maxEntries(s: Raw): number {
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

export function estimateCost(ast: CelNode, scope: Record<string, Raw | undefined>): number {
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
