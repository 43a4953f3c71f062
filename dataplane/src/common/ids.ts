// Tenant and timeline identifiers: 16 random bytes as 32 lowercase hex characters.
import { randomBytes } from 'node:crypto';

const ID_RE = /^[0-9a-f]{32}$/;

export function newId(): string {
  return randomBytes(16).toString('hex');
}

export function isValidId(id: unknown): id is string {
  return typeof id === 'string' && ID_RE.test(id);
}

/** Throws an Error that names which id was wrong and why. */
export function assertValidId(kind: 'tenant_id' | 'timeline_id', id: unknown): asserts id is string {
  if (!isValidId(id)) {
    throw new Error(`invalid ${kind} ${JSON.stringify(id)}: expected 32 lowercase hex characters`);
  }
}
