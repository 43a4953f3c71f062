// The one error type the storage layer throws: a machine-readable code plus a message that
// names the file, offset or LSN involved, so the shell can log it and pick an exit path.

export type StorageErrorCode =
  | 'control_corrupt' // control file: bad magic, version, length, checksum
  | 'control_missing' // control file absent where one is required
  | 'wal_corrupt' // an invalid record inside WAL the safekeeper had already acknowledged
  | 'wal_missing' // a segment needed between the recovery start and the end is absent
  | 'wal_removed' // a reader asked for WAL before the first LSN this store holds
  | 'invalid_argument' // an LSN or id that breaks the API contract (e.g. non-sequential append)
  | 'fsync_failed' // an fsync failed once; the store refuses all further work
  | 'disk_full' // ENOSPC while writing; nothing was acknowledged, retry later
  | 'io_error' // any other I/O error
  | 'closed' // the store was closed
  | 'id_mismatch' // safekeeper.id on the volume names another member
  | 'already_exists'
  | 'not_found';

export class StorageError extends Error {
  readonly code: StorageErrorCode;

  constructor(code: StorageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StorageError';
    this.code = code;
  }
}

export function isStorageError(err: unknown, code?: StorageErrorCode): err is StorageError {
  return err instanceof StorageError && (code === undefined || err.code === code);
}

/** The errno code of a Node system error, if any. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
