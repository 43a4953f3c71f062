// The `file:///dir` remote store: one file per object at `<dir>/<key>` (plain bytes, so a
// restore_command can `cp` it) and a checksum file `<key>.sha256` beside it. An object is
// complete only once its checksum file exists: both are written to a temp file, fsynced,
// then linked into place (link(2) fails if the name exists, which makes the write
// create-only even when several safekeepers share the directory) and the directory fsynced.
// A crash between the two leaves bytes without a checksum: never listed nor read as complete.
import { createHash, randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fsyncDirectory } from '../storage/controlFile.js';
import { errnoCode } from '../storage/errors.js';
import { RemoteStorageError, type RemoteObjectInfo, type RemoteStorage } from './remoteStorage.js';

const CHECKSUM_SUFFIX = '.sha256';
const TEMP_MARK = '.tmp-';

export function sha256Hex(body: Uint8Array): string {
  return createHash('sha256').update(body).digest('hex');
}

export class FileStore implements RemoteStorage {
  readonly url: string;

  constructor(readonly root: string) {
    this.url = `file://${root}`;
  }

  async check(): Promise<void> {
    let isDir: boolean;
    try {
      isDir = (await stat(this.root)).isDirectory();
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new RemoteStorageError('no_such_bucket', `remote storage ${this.url}: directory ${this.root} does not exist (create it, or fix --remote-storage)`);
      throw this.ioError(err, `cannot stat ${this.root}`);
    }
    if (!isDir) throw new RemoteStorageError('no_such_bucket', `remote storage ${this.url}: ${this.root} is not a directory`);
    const probe = join(this.root, `.walkeeper-check${TEMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      const fh = await open(probe, 'wx');
      await fh.close();
      await unlink(probe);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') throw new RemoteStorageError('access_denied', `remote storage ${this.url}: cannot write in ${this.root} (${code})`, { cause: err });
      throw this.ioError(err, `cannot write a probe file in ${this.root}`);
    }
  }

  async putImmutable(key: string, body: Buffer): Promise<'created' | 'exists'> {
    const path = this.pathOf(key);
    const sha256 = sha256Hex(body);
    const recorded = await this.recordedChecksum(key);
    if (recorded !== null) return this.compareExisting(key, recorded, sha256);
    await this.mkdirs(dirname(path));
    // The bytes first: linked only once complete and durable.
    if (!(await this.createFile(path, body))) {
      // Bytes without a checksum: a writer that crashed before its checksum, or one racing us.
      // Either way they were complete when linked; equal bytes are ours to finish, others a conflict.
      const existing = await this.readFileOrNull(path);
      if (existing === null || sha256Hex(existing) !== sha256) {
        throw new RemoteStorageError('checksum_conflict', `remote object ${key} in ${this.url} already holds different bytes (sha256 ${existing ? sha256Hex(existing) : 'unknown'}, this write ${sha256}); not overwritten`);
      }
    }
    if (!(await this.createFile(path + CHECKSUM_SUFFIX, Buffer.from(sha256 + '\n')))) {
      const now = await this.recordedChecksum(key);
      if (now === null) throw new RemoteStorageError('io_error', `remote object ${key} in ${this.url}: checksum file appeared and vanished while writing`);
      return this.compareExisting(key, now, sha256);
    }
    // Verified after the write: the bytes as stored must hash to what was recorded.
    await this.get(key);
    return 'created';
  }

  /** A key already complete: same checksum and intact bytes → exists; else the matching error. */
  private async compareExisting(key: string, recorded: string, sha256: string): Promise<'exists'> {
    if (recorded !== sha256) {
      throw new RemoteStorageError('checksum_conflict', `remote object ${key} in ${this.url} already exists with sha256 ${recorded}, this write has ${sha256}; not overwritten`);
    }
    await this.get(key); // intact? a damaged copy is checksum_mismatch, never taken as done
    return 'exists';
  }

  async get(key: string): Promise<Buffer | null> {
    const recorded = await this.recordedChecksum(key);
    if (recorded === null) return null;
    const body = await this.readFileOrNull(this.pathOf(key));
    if (body === null) throw new RemoteStorageError('checksum_mismatch', `remote object ${key} in ${this.url} has a checksum file but no content`);
    const actual = sha256Hex(body);
    if (actual !== recorded) {
      throw new RemoteStorageError('checksum_mismatch', `remote object ${key} in ${this.url} is damaged: its bytes have sha256 ${actual}, ${recorded} was recorded when it was written`);
    }
    return body;
  }

  async head(key: string): Promise<RemoteObjectInfo | null> {
    const recorded = await this.recordedChecksum(key);
    if (recorded === null) return null;
    try {
      return { key, size: (await stat(this.pathOf(key))).size, sha256: recorded };
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return null;
      throw this.ioError(err, `cannot stat ${this.pathOf(key)}`);
    }
  }

  async list(prefix: string): Promise<RemoteObjectInfo[]> {
    // The directory part of the prefix is walked; the rest filters names.
    const slash = prefix.lastIndexOf('/');
    const base = slash >= 0 ? prefix.slice(0, slash + 1) : '';
    if (base !== '') this.pathOf(base.slice(0, -1)); // validates
    const out: RemoteObjectInfo[] = [];
    const walk = async (rel: string): Promise<void> => {
      let names: string[];
      try {
        names = (await readdir(join(this.root, rel))).sort();
      } catch (err) {
        if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return;
        throw this.ioError(err, `cannot list ${join(this.root, rel)}`);
      }
      for (const name of names) {
        if (name.includes(TEMP_MARK) || name.endsWith(CHECKSUM_SUFFIX)) continue;
        const key = rel + name;
        if (!key.startsWith(prefix) && !prefix.startsWith(key + '/')) continue;
        const st = await stat(join(this.root, key)).catch(() => null);
        if (st?.isDirectory()) {
          await walk(key + '/');
        } else if (st && key.startsWith(prefix)) {
          const info = await this.head(key);
          if (info) out.push(info);
        }
      }
    };
    await walk(base);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    // The checksum first: a crash in between leaves bytes that no longer read as complete.
    for (const p of [path + CHECKSUM_SUFFIX, path]) {
      try {
        await unlink(p);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw this.ioError(err, `cannot delete ${p}`);
      }
    }
    await fsyncDirectory(dirname(path)).catch((err: unknown) => {
      if (errnoCode(err) !== 'ENOENT') throw this.ioError(err, `cannot fsync ${dirname(path)}`);
    });
  }

  async close(): Promise<void> {}

  private pathOf(key: string): string {
    const parts = key.split('/');
    if (key === '' || key.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..' || p.includes(TEMP_MARK)) || key.endsWith(CHECKSUM_SUFFIX)) {
      throw new RemoteStorageError('io_error', `invalid remote object key "${key}" for ${this.url}`);
    }
    return join(this.root, ...parts);
  }

  private async recordedChecksum(key: string): Promise<string | null> {
    const text = await this.readFileOrNull(this.pathOf(key) + CHECKSUM_SUFFIX);
    if (text === null) return null;
    const sha = text.toString('utf8').trim();
    if (!/^[0-9a-f]{64}$/.test(sha)) throw new RemoteStorageError('checksum_mismatch', `remote object ${key} in ${this.url}: its checksum file does not hold a SHA-256 (${JSON.stringify(sha.slice(0, 80))})`);
    return sha;
  }

  private async readFileOrNull(path: string): Promise<Buffer | null> {
    try {
      return await readFile(path);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return null;
      throw this.ioError(err, `cannot read ${path}`);
    }
  }

  /** Writes body to a temp file, fsyncs, links it to path; false if path already exists. */
  private async createFile(path: string, body: Buffer): Promise<boolean> {
    const tmp = join(dirname(path), `.${path.slice(dirname(path).length + 1)}${TEMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      const fh = await open(tmp, 'wx');
      try {
        await fh.writeFile(body);
        await fh.sync();
      } finally {
        await fh.close();
      }
      try {
        await link(tmp, path);
      } catch (err) {
        if (errnoCode(err) === 'EEXIST') return false;
        throw err;
      }
      await fsyncDirectory(dirname(path));
      return true;
    } catch (err) {
      if (err instanceof RemoteStorageError) throw err;
      throw this.ioError(err, `cannot write ${path}`);
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }

  private async mkdirs(dir: string): Promise<void> {
    try {
      await stat(this.root);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new RemoteStorageError('no_such_bucket', `remote storage ${this.url}: directory ${this.root} does not exist`);
      throw this.ioError(err, `cannot stat ${this.root}`);
    }
    try {
      const first = await mkdir(dir, { recursive: true });
      // New directories: their names are durable once each parent is fsynced.
      if (first !== undefined) for (let d = dir; d.length >= first.length; d = dirname(d)) await fsyncDirectory(dirname(d));
    } catch (err) {
      throw this.ioError(err, `cannot create ${dir}`);
    }
  }

  private ioError(err: unknown, what: string): RemoteStorageError {
    const code = errnoCode(err);
    if (code === 'EACCES' || code === 'EPERM') return new RemoteStorageError('access_denied', `remote storage ${this.url}: ${what}: ${String(err)}`, { cause: err });
    return new RemoteStorageError('io_error', `remote storage ${this.url}: ${what}: ${String(err)}`, { cause: err });
  }
}
