// Why the registry refused an admin operation (create or delete a tenant or timeline), as a
// machine-readable code and a message naming the tenant, timeline or file. It carries no
// transport status: the HTTP API maps codes to statuses (http/errors.ts).
import type { StorageErrorCode } from '../storage/errors.js';

export type RegistryErrorCode =
  | 'tenant_not_found'
  | 'tenant_exists'
  | 'timeline_exists'
  // a storage failure under an admin operation keeps the storage layer's code
  // ('disk_full', 'already_exists', 'io_error', ...)
  | StorageErrorCode;

export class RegistryError extends Error {
  constructor(
    readonly code: RegistryErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RegistryError';
  }
}
