// The contract of the object store that offloaded WAL (and later base backups) live in:
// create-only, checksummed objects under keys that mirror the safekeeper's on-disk layout.
// Implementations: a `file://` directory (the embedded default) and any S3-compatible store.

/** What a listing or a head request tells about one complete object. */
export interface RemoteObjectInfo {
  /** key relative to the store's prefix, e.g. `tenants/<t>/<tl>/wal/000000010000000000000001` */
  key: string;
  size: number;
  /** SHA-256 of the content, lowercase hex, as recorded when the object was written */
  sha256: string;
}

export type RemoteStorageErrorCode =
  | 'bad_url' // the store URL or its options do not parse
  | 'unreachable' // network error, timeout, 5xx: retry later
  | 'access_denied' // credentials refused
  | 'no_such_bucket' // the bucket (or the file:// directory) does not exist
  | 'checksum_mismatch' // an object's bytes do not match its recorded checksum
  | 'checksum_conflict' // a create-only write found the key holding different bytes
  | 'io_error';

export class RemoteStorageError extends Error {
  constructor(
    readonly code: RemoteStorageErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RemoteStorageError';
  }
}

export function isRemoteStorageError(err: unknown, code?: RemoteStorageErrorCode): err is RemoteStorageError {
  return err instanceof RemoteStorageError && (code === undefined || err.code === code);
}

export interface RemoteStorage {
  /** The store's URL without credentials, for logs and status. */
  readonly url: string;
  /**
   * Checks that the store is usable (the bucket or directory exists, the credentials are
   * accepted, a write is allowed); throws a RemoteStorageError naming what is wrong.
   */
  check(): Promise<void>;
  /**
   * Create-only write of a whole object with its checksum, verified after the write. A key
   * that already holds the same bytes is a success (`exists`): two members uploading the
   * same segment is harmless. A key holding different bytes is `checksum_conflict`, never
   * overwritten. An interrupted write never leaves an object that reads as complete.
   */
  putImmutable(key: string, body: Buffer): Promise<'created' | 'exists'>;
  /** The whole object, its checksum verified (`checksum_mismatch` if not); null if absent. */
  get(key: string): Promise<Buffer | null>;
  /** null if absent (or present only as an incomplete write). */
  head(key: string): Promise<RemoteObjectInfo | null>;
  /** Complete objects whose key starts with prefix, in key order. */
  list(prefix: string): Promise<RemoteObjectInfo[]>;
  /** Removes an object; absent is fine. */
  delete(key: string): Promise<void>;
  /** Releases sockets; the store is not used afterwards. */
  close(): Promise<void>;
}

/** `tenants/<tenant>/<timeline>/`: everything of one timeline, as on the safekeeper's disk. */
export function timelineKeyPrefix(tenantId: string, timelineId: string): string {
  return `tenants/${tenantId}/${timelineId}/`;
}

/** Key of a WAL segment or a PostgreSQL `.history` file of a timeline. */
export function walObjectKey(tenantId: string, timelineId: string, fileName: string): string {
  return `${timelineKeyPrefix(tenantId, timelineId)}wal/${fileName}`;
}

// Store configurations: what url.ts parses and the stores are opened with (here, so neither imports the other).
/**
 * When the S3 client computes request checksums (the SDK's `requestChecksumCalculation`):
 * `when_supported` is the SDK's default (a CRC32 header on every upload, and `aws-chunked`
 * framing for stream bodies); `when_required` only where an API demands one. Several
 * S3-compatible servers (s3rver among them) need `when_required`. Explicit, never guessed.
 */
export type S3ChecksumMode = 'when_supported' | 'when_required';

export interface S3Config {
  kind: 's3';
  bucket: string;
  /** key prefix without leading or trailing slash ('' for the bucket's root) */
  prefix: string;
  /** e.g. http://127.0.0.1:9000; undefined = AWS's own endpoint for the region */
  endpoint?: string;
  region: string;
  /** path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need */
  forcePathStyle: boolean;
  /** undefined = the SDK's default provider chain (instance profile, web identity, ...) */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  checksumMode: S3ChecksumMode;
  /** the URL as given, for logs and status (never holds credentials) */
  url: string;
}

export interface FileConfig {
  kind: 'file';
  /** absolute directory that holds the objects */
  dir: string;
  url: string;
}

export type RemoteStorageConfig = S3Config | FileConfig;
