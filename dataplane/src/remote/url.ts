// Parses a remote storage URL (`s3://bucket/prefix`, `file:///dir`) and its options into a
// store configuration, and opens the store. Every refusal is a `bad_url` RemoteStorageError
// that names the part that is wrong, so a typo in a manifest is found at start-up.
import { isAbsolute, normalize } from 'node:path';
import { RemoteStorageError, type FileConfig, type RemoteStorage, type RemoteStorageConfig, type S3Config } from './remoteStorage.js';

/** The options beside the URL (flags `--remote-storage-*`); environment fills what is unset. */
export interface RemoteStorageOptions {
  endpoint?: string;
  region?: string;
  /** true, false, or the flag's text ('true'/'false') */
  pathStyle?: boolean | string;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** 'when_supported' (the SDK default) or 'when_required' */
  checksum?: string;
}

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

function bad(message: string): RemoteStorageError {
  return new RemoteStorageError('bad_url', message);
}

/**
 * Parses the URL and options. Environment (the usual AWS names) fills unset options:
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION (or
 * AWS_DEFAULT_REGION), AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL.
 */
export function parseRemoteStorageUrl(text: string, options: RemoteStorageOptions = {}, env: NodeJS.ProcessEnv = process.env): RemoteStorageConfig {
  const given = text.trim();
  if (given === '') throw bad('remote storage URL is empty: expected s3://bucket/prefix or file:///absolute/dir');
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(given)?.[1]?.toLowerCase();
  if (scheme === 'file') return parseFileUrl(given, options);
  if (scheme === 's3') return parseS3Url(given, options, env);
  throw bad(`remote storage URL "${given}" has ${scheme ? `scheme "${scheme}:"` : 'no scheme'}: expected s3://bucket/prefix or file:///absolute/dir`);
}

function parseFileUrl(given: string, options: RemoteStorageOptions): FileConfig {
  const s3Only = (['endpoint', 'region', 'pathStyle', 'accessKeyId', 'secretAccessKey', 'checksum'] as const).filter((k) => options[k] !== undefined && options[k] !== '');
  if (s3Only.length) throw bad(`remote storage URL "${given}" is a file:// store; the S3 option(s) ${s3Only.join(', ')} do not apply to it`);
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    throw bad(`remote storage URL "${given}" does not parse as a URL: expected file:///absolute/dir`);
  }
  if (url.host !== '' && url.host !== 'localhost') {
    throw bad(`remote storage URL "${given}" names host "${url.host}": a file:// store is a local directory, written file:///absolute/dir (three slashes)`);
  }
  if (url.search || url.hash) throw bad(`remote storage URL "${given}" has a query or fragment; a file:// store takes none`);
  const dir = normalize(decodeURIComponent(url.pathname));
  if (!isAbsolute(dir) || dir === '/') throw bad(`remote storage URL "${given}" must name an absolute directory other than /, e.g. file:///var/lib/walkeeper-bucket`);
  return { kind: 'file', dir: dir.replace(/\/+$/, ''), url: `file://${dir.replace(/\/+$/, '')}` };
}

function parseS3Url(given: string, options: RemoteStorageOptions, env: NodeJS.ProcessEnv): S3Config {
  const m = /^s3:\/\/([^/?#]*)(\/[^?#]*)?([?#].*)?$/i.exec(given);
  if (!m) throw bad(`remote storage URL "${given}" does not parse: expected s3://bucket/prefix`);
  const [, authority, path = '', rest] = m;
  if (authority.includes('@')) throw bad(`remote storage URL "${given}" carries credentials; pass them with --remote-storage-access-key-id/--remote-storage-secret-access-key or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, never in the URL`);
  if (rest) throw bad(`remote storage URL "${given}" has a query or fragment; set endpoint, region and path style with the --remote-storage-* flags`);
  if (authority === '') throw bad(`remote storage URL "${given}" names no bucket: expected s3://bucket/prefix`);
  if (!BUCKET_NAME.test(authority) || authority.includes('..')) {
    throw bad(`bucket name "${authority}" in "${given}" is not a valid S3 bucket name: 3 to 63 characters, lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit`);
  }
  const segments = path.split('/').filter((s) => s !== '');
  if (segments.some((s) => s === '.' || s === '..')) throw bad(`prefix "${path}" in "${given}" has a "." or ".." segment`);
  const prefix = segments.join('/');

  const endpoint = nonEmpty(options.endpoint) ?? nonEmpty(env.AWS_ENDPOINT_URL_S3) ?? nonEmpty(env.AWS_ENDPOINT_URL);
  if (endpoint !== undefined) {
    let e: URL;
    try {
      e = new URL(endpoint);
    } catch {
      throw bad(`remote storage endpoint "${endpoint}" is not a URL: expected http(s)://host[:port]`);
    }
    if (e.protocol !== 'http:' && e.protocol !== 'https:') throw bad(`remote storage endpoint "${endpoint}" must be http:// or https://`);
  }
  const region = nonEmpty(options.region) ?? nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION) ?? (endpoint ? 'us-east-1' : undefined);
  if (region === undefined) throw bad(`remote storage "${given}" has no region: pass --remote-storage-region or set AWS_REGION (or --remote-storage-endpoint for an S3-compatible store)`);

  let forcePathStyle: boolean;
  const ps = options.pathStyle;
  if (ps === undefined || ps === '') forcePathStyle = false;
  else if (ps === true || ps === 'true' || ps === '1') forcePathStyle = true;
  else if (ps === false || ps === 'false' || ps === '0') forcePathStyle = false;
  else throw bad(`invalid --remote-storage-path-style "${String(ps)}": expected true or false`);

  const checksum = nonEmpty(options.checksum) ?? 'when_supported';
  if (checksum !== 'when_supported' && checksum !== 'when_required') {
    throw bad(`invalid --remote-storage-checksum "${checksum}": expected when_supported (the SDK default) or when_required (for S3-compatible servers that reject checksum headers)`);
  }

  const keyId = nonEmpty(options.accessKeyId) ?? nonEmpty(env.AWS_ACCESS_KEY_ID);
  const secret = nonEmpty(options.secretAccessKey) ?? nonEmpty(env.AWS_SECRET_ACCESS_KEY);
  if ((keyId === undefined) !== (secret === undefined)) {
    throw bad(`remote storage credentials are half set: ${keyId === undefined ? 'a secret access key without an access key id' : 'an access key id without a secret access key'} (flags --remote-storage-access-key-id/--remote-storage-secret-access-key or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)`);
  }
  const sessionToken = nonEmpty(options.sessionToken) ?? nonEmpty(env.AWS_SESSION_TOKEN);
  const credentials = keyId !== undefined && secret !== undefined ? { accessKeyId: keyId, secretAccessKey: secret, ...(sessionToken ? { sessionToken } : {}) } : undefined;

  return { kind: 's3', bucket: authority, prefix, endpoint, region, forcePathStyle, credentials, checksumMode: checksum, url: `s3://${authority}${prefix ? `/${prefix}` : ''}` };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

/** Opens the store a configuration describes (no I/O yet; call check() to probe it). */
export async function openRemoteStorage(config: RemoteStorageConfig): Promise<RemoteStorage> {
  if (config.kind === 'file') {
    const { FileStore } = await import('./fileStore.js');
    return new FileStore(config.dir);
  }
  const { S3Store } = await import('./s3Store.js');
  return new S3Store(config);
}
