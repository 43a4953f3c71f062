// Errors that map to an HTTP status and a stable machine-readable code: {"error", "code"}.
// The one place where the data plane's domain refusals get their HTTP status.
import { RegistryError, type RegistryErrorCode } from '../safekeeper/registryError.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const notFound = (code: string, message: string) => new ApiError(404, code, message);
export const conflict = (code: string, message: string) => new ApiError(409, code, message);
export const badRequest = (code: string, message: string) => new ApiError(400, code, message);

/**
 * The status of each registry refusal. Listed in full, so a new code cannot reach a client
 * without a decision here. A full disk is 507 (Insufficient Storage, as WebDAV has it); storage
 * failures other than an existing directory are the server's, 500.
 */
const REGISTRY_STATUS: Record<RegistryErrorCode, number> = {
  tenant_not_found: 404,
  tenant_exists: 409,
  timeline_exists: 409,
  already_exists: 409,
  disk_full: 507,
  not_found: 500,
  control_corrupt: 500,
  control_missing: 500,
  wal_corrupt: 500,
  wal_missing: 500,
  wal_removed: 500,
  invalid_argument: 500,
  fsync_failed: 500,
  io_error: 500,
  closed: 500,
  id_mismatch: 500,
};

/** A domain error as the API answers it; anything else is returned unchanged. */
export function toApiError(err: unknown): unknown {
  if (err instanceof RegistryError) return new ApiError(REGISTRY_STATUS[err.code], err.code, err.message);
  return err;
}
