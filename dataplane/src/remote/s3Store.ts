// The `s3://bucket/prefix` remote store on any S3-compatible server, through @aws-sdk/client-s3.
// Each object carries its SHA-256 in user metadata (`x-amz-meta-sha256`); an object without
// it is not one of ours (or not complete) and is neither listed nor read. Bodies are always
// Buffers: a stream body makes the SDK send `aws-chunked` framing that some servers (s3rver)
// store inside the object. Every upload is read back and hashed before it counts.
//
// Create-only: the PUT carries `If-None-Match: *`, which real S3 enforces (412). s3rver and
// some other S3-compatible servers ignore it, so the store also HEADs first and compares the
// recorded checksum, and verifies after the PUT. Between that HEAD and the PUT, two writers
// with *different* bytes could still race on such a server; same bytes (two members
// uploading one segment) are harmless either way.
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { sha256Hex } from './fileStore.js';
import { RemoteStorageError, type RemoteObjectInfo, type RemoteStorage, type S3Config } from './remoteStorage.js';

const CHECKSUM_META = 'sha256';
const REQUEST_TIMEOUT_MS = 30_000;
const CONNECT_TIMEOUT_MS = 5_000;

export class S3Store implements RemoteStorage {
  readonly url: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(config: S3Config) {
    this.url = config.url + (config.endpoint ? ` (endpoint ${config.endpoint})` : '');
    this.bucket = config.bucket;
    this.prefix = config.prefix ? `${config.prefix}/` : '';
    const checksum = config.checksumMode === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED';
    this.client = new S3Client({
      region: config.region,
      endpoint: config.endpoint,
      forcePathStyle: config.forcePathStyle,
      credentials: config.credentials,
      requestChecksumCalculation: checksum,
      responseChecksumValidation: checksum,
      // The offloader retries with its own backoff; the SDK's retries would only hide an outage.
      maxAttempts: 1,
      requestHandler: { requestTimeout: REQUEST_TIMEOUT_MS, connectionTimeout: CONNECT_TIMEOUT_MS },
    });
  }

  async check(): Promise<void> {
    await this.call('check bucket', undefined, () => this.client.send(new HeadBucketCommand({ Bucket: this.bucket })));
    // One page (up to 1000 keys) under tenants/, what is read back. No MaxKeys: s3rver answers
    // 500 to a truncated listing (max-keys smaller than what is there).
    await this.call('list', undefined, () => this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${this.prefix}tenants/` })));
    // A write is allowed? A probe object, removed again (a store that refuses deletes keeps it).
    const probe = `${this.prefix}.walkeeper-check/${Date.now()}-${randomBytes(4).toString('hex')}`;
    await this.call('write a probe object', probe, () => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: probe, Body: Buffer.from('ok'), ContentLength: 2 })));
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: probe })).catch(() => undefined);
  }

  async putImmutable(key: string, body: Buffer): Promise<'created' | 'exists'> {
    const sha256 = sha256Hex(body);
    const existing = await this.head(key, true);
    if (existing) return this.compareExisting(key, existing, sha256);
    try {
      await this.call('upload', key, () =>
        this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: this.prefix + key,
            Body: body,
            ContentLength: body.length,
            ContentType: 'application/octet-stream',
            Metadata: { [CHECKSUM_META]: sha256 },
            IfNoneMatch: '*', // enforced by S3 itself; ignored by s3rver (see the header comment)
          }),
        ),
      );
    } catch (err) {
      const status = (err as RemoteStorageError).cause as { $metadata?: { httpStatusCode?: number } } | undefined;
      const code = status?.$metadata?.httpStatusCode;
      if (code !== 412 && code !== 409) throw err;
      // someone else created it first (or is racing): compare with what is there
      const now = await this.head(key, true);
      if (!now) throw err;
      return this.compareExisting(key, now, sha256);
    }
    // Verified after the write: read back, hash, compare with what was sent.
    const stored = await this.getRaw(key);
    if (!stored) throw new RemoteStorageError('checksum_mismatch', `remote object ${key} in ${this.url} is missing right after its upload`);
    const actual = sha256Hex(stored.body);
    if (stored.sha256 !== sha256 || actual !== sha256) {
      throw new RemoteStorageError(
        'checksum_mismatch',
        `remote object ${key} in ${this.url} does not read back as written (${body.length} bytes sha256 ${sha256} sent; ${stored.body.length} bytes sha256 ${actual} read, ` +
          `${stored.sha256 ?? 'no'} checksum recorded): the server altered the body (aws-chunked framing stored inside the object?)`,
      );
    }
    return 'created';
  }

  private async compareExisting(key: string, existing: { sha256: string | null }, sha256: string): Promise<'exists'> {
    if (existing.sha256 !== sha256) {
      throw new RemoteStorageError(
        'checksum_conflict',
        `remote object ${key} in ${this.url} already exists with ${existing.sha256 ? `sha256 ${existing.sha256}` : 'no recorded checksum (not written by walkeeper)'}, this write has ${sha256}; not overwritten`,
      );
    }
    await this.get(key); // intact? a damaged copy is checksum_mismatch, never taken as done
    return 'exists';
  }

  async get(key: string): Promise<Buffer | null> {
    const obj = await this.getRaw(key);
    if (!obj || obj.sha256 === null) return null;
    const actual = sha256Hex(obj.body);
    if (actual !== obj.sha256) {
      throw new RemoteStorageError('checksum_mismatch', `remote object ${key} in ${this.url} is damaged: its ${obj.body.length} bytes have sha256 ${actual}, ${obj.sha256} was recorded when it was written`);
    }
    return obj.body;
  }

  private async getRaw(key: string): Promise<{ body: Buffer; sha256: string | null } | null> {
    return this.call('download', key, async () => {
      try {
        const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
        const bytes = await r.Body!.transformToByteArray();
        return { body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), sha256: recordedSha(r.Metadata) };
      } catch (err) {
        if (isNotFoundKey(err)) return null;
        throw err;
      }
    });
  }

  head(key: string): Promise<RemoteObjectInfo | null>;
  head(key: string, raw: true): Promise<RawObjectInfo | null>;
  async head(key: string, raw = false): Promise<RawObjectInfo | null> {
    const r = await this.call('head', key, async () => {
      try {
        return await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      } catch (err) {
        if (isNotFoundKey(err)) return null;
        throw err;
      }
    });
    if (!r) return null;
    const sha256 = recordedSha(r.Metadata);
    if (sha256 === null && !raw) return null;
    return { key, size: r.ContentLength ?? 0, sha256 };
  }

  async list(prefix: string): Promise<RemoteObjectInfo[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.call('list', prefix, () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token })),
      );
      for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key.slice(this.prefix.length));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    // A listing carries no user metadata: each object's checksum comes from a HEAD.
    const out: RemoteObjectInfo[] = [];
    for (let i = 0; i < keys.length; i += 8) {
      const heads = await Promise.all(keys.slice(i, i + 8).map((k) => this.head(k)));
      for (const h of heads) if (h) out.push(h);
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    await this.call('delete', key, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key })));
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /** Runs one S3 call and maps its failure to a RemoteStorageError naming the bucket and key. */
  private async call<T>(what: string, key: string | undefined, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof RemoteStorageError) throw err;
      throw mapS3Error(err, `remote storage ${this.url}: ${what}${key !== undefined ? ` of ${key}` : ''}`, this.bucket);
    }
  }
}

/** A head answer that may lack the checksum (an object not written by walkeeper). */
type RawObjectInfo = Omit<RemoteObjectInfo, 'sha256'> & { sha256: string | null };

function recordedSha(meta: Record<string, string> | undefined): string | null {
  const v = meta?.[CHECKSUM_META];
  return v && /^[0-9a-f]{64}$/.test(v) ? v : null;
}

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  Code?: string;
}

function isNotFoundKey(err: unknown): boolean {
  const e = err as SdkError;
  return e?.name === 'NoSuchKey' || (e?.name === 'NotFound' && e.$metadata?.httpStatusCode === 404);
}

/** SDK and network failures as RemoteStorageError codes. */
export function mapS3Error(err: unknown, context: string, bucket: string): RemoteStorageError {
  const e = (err ?? {}) as SdkError;
  const name = e.name ?? e.Code ?? '';
  const status = e.$metadata?.httpStatusCode;
  const detail = `${name || 'error'}${status ? ` (HTTP ${status})` : ''}: ${e.message ?? String(err)}`;
  if (name === 'NoSuchBucket' || (status === 404 && (name === 'NotFound' || name === 'Unknown') && /bucket/i.test(context))) {
    return new RemoteStorageError('no_such_bucket', `${context}: bucket "${bucket}" does not exist (${detail})`, { cause: err });
  }
  if (['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'Forbidden', 'ExpiredToken', 'InvalidToken', 'AuthorizationHeaderMalformed', 'CredentialsProviderError'].includes(name) || status === 403 || status === 401) {
    return new RemoteStorageError('access_denied', `${context}: credentials refused (${detail})`, { cause: err });
  }
  const netCodes = ['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE'];
  const errCode = e.code ?? (err as { cause?: { code?: string } })?.cause?.code;
  if ((errCode && netCodes.includes(errCode)) || name === 'TimeoutError' || name === 'RequestTimeout' || (status !== undefined && status >= 500)) {
    return new RemoteStorageError('unreachable', `${context}: ${errCode && netCodes.includes(errCode) ? `${errCode}: ` : ''}${detail}`, { cause: err });
  }
  if (status === undefined) return new RemoteStorageError('unreachable', `${context}: ${detail}`, { cause: err });
  return new RemoteStorageError('io_error', `${context}: ${detail}`, { cause: err });
}
