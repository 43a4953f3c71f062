// Shared helpers of the local Kubernetes API harness (test infrastructure only).
import { createHash } from 'node:crypto';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

/** A Kubernetes object as stored: plain JSON with the usual metadata. */
export interface KObject {
  apiVersion?: string;
  kind?: string;
  metadata: KMeta;
  [k: string]: unknown;
}
export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}
export interface KMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
  managedFields?: ManagedFieldsEntry[];
  [k: string]: unknown;
}
export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  fieldsType: 'FieldsV1';
  fieldsV1: JsonObject;
  subresource?: string;
}

export function clone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

export function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => deepEqual(x, b[i]));
  }
  if (isObj(a)) {
    if (!isObj(b)) return false;
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    if (ka.length !== kb.length) return false;
    return ka.every((k) => deepEqual(a[k], b[k]));
  }
  return false;
}

export function nowIso(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function shortHash(s: string, len = 10): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  const h = createHash('sha256').update(s).digest();
  let out = '';
  for (let i = 0; i < len; i++) out += alphabet[h[i]! % alphabet.length];
  return out;
}

export function randomSuffix(len = 5): string {
  return shortHash(`${Math.random()}${Date.now()}`, len);
}

/** Stable JSON (sorted keys) for hashing. */
export function stableStringify(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  if (isObj(v)) {
    return `{${Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableStringify(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Age formatting as apimachinery's duration.HumanDuration. */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < -1) return '<invalid>';
  if (s < 0) return '0s';
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(s / 3600);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (h < 24 * 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (h < 24 * 365 * 2) return `${d}d`;
  const y = Math.floor(d / 365);
  if (h < 24 * 365 * 8) return d % 365 === 0 ? `${y}y` : `${y}y${d % 365}d`;
  return `${y}y`;
}

export function age(ts: string | undefined): string {
  if (!ts) return '<unknown>';
  return humanDuration(Date.now() - Date.parse(ts));
}

export interface StatusCause {
  reason?: string;
  message: string;
  field?: string;
}

/** An error answered as a metav1.Status object. */
export class ApiError extends Error {
  constructor(
    public readonly code: number,
    public readonly reason: string,
    message: string,
    public readonly details?: { name?: string; group?: string; kind?: string; uid?: string; causes?: StatusCause[]; retryAfterSeconds?: number },
  ) {
    super(message);
  }
  toStatus(): JsonObject {
    const s: JsonObject = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason };
    if (this.details) s.details = clone(this.details) as unknown as JsonObject;
    s.code = this.code;
    return s;
  }
}

export function qualifiedResource(resource: string, group: string): string {
  return group ? `${resource}.${group}` : resource;
}

export const errors = {
  notFound: (resource: string, group: string, name: string) =>
    new ApiError(404, 'NotFound', `${qualifiedResource(resource, group)} "${name}" not found`, { name, group, kind: resource }),
  alreadyExists: (resource: string, group: string, name: string) =>
    new ApiError(409, 'AlreadyExists', `${qualifiedResource(resource, group)} "${name}" already exists`, { name, group, kind: resource }),
  conflict: (resource: string, group: string, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again') =>
    new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedResource(resource, group)} "${name}": ${why}`, { name, group, kind: resource }),
  invalid: (kind: string, group: string, name: string, causes: StatusCause[]) => {
    const q = group ? `${kind}.${group}` : kind;
    const msgs = causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message));
    const body = msgs.length === 1 ? msgs[0] : `[${msgs.join(', ')}]`;
    return new ApiError(422, 'Invalid', `${q} "${name}" is invalid: ${body}`, { name, group, kind, causes });
  },
  badRequest: (msg: string) => new ApiError(400, 'BadRequest', msg),
  methodNotAllowed: () => new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'),
  notFoundPath: () => new ApiError(404, 'NotFound', 'the server could not find the requested resource', {}),
  unsupportedMediaType: (accepted: string[]) =>
    new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`),
  forbidden: (msg: string, resource: string, group: string, name: string) => new ApiError(403, 'Forbidden', msg, { name, group, kind: resource }),
  gone: (msg: string) => new ApiError(410, 'Expired', msg),
};
