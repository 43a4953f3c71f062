// The safekeeper data directory: `<datadir>/safekeeper.id` (the member id pinned to this
// volume) and `<datadir>/tenants/<tenant_id>/<timeline_id>/`. Directory changes are made
// durable by fsyncing the parent directory.

import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { assertValidId, isValidId } from '../common/ids.js';
import { fsyncDirectory } from './controlFile.js';
import { errnoCode, StorageError } from './errors.js';

export const NODE_ID_FILE = 'safekeeper.id';
export const TENANTS_DIR = 'tenants';
const DELETING_PREFIX = '.deleting-';

export interface LayoutOptions {
  syncMode?: 'fsync' | 'none';
}

export class DataDirLayout {
  readonly datadir: string;
  private readonly sync: boolean;

  constructor(datadir: string, options: LayoutOptions = {}) {
    this.datadir = datadir;
    this.sync = (options.syncMode ?? 'fsync') === 'fsync';
  }

  get tenantsDir(): string {
    return join(this.datadir, TENANTS_DIR);
  }

  tenantDir(tenantId: string): string {
    validId('tenant_id', tenantId);
    return join(this.tenantsDir, tenantId);
  }

  timelineDir(tenantId: string, timelineId: string): string {
    validId('timeline_id', timelineId);
    return join(this.tenantDir(tenantId), timelineId);
  }

  /**
   * Pins `nodeId` to this data directory: writes safekeeper.id on first start, and refuses to
   * start as another member if the volume already belongs to one.
   */
  async pinNodeId(nodeId: bigint | number): Promise<void> {
    const id = BigInt(nodeId);
    if (id < 0n) throw new StorageError('invalid_argument', `safekeeper id ${id} must not be negative`);
    await mkdir(this.datadir, { recursive: true });
    const path = join(this.datadir, NODE_ID_FILE);
    const existing = await this.readNodeId();
    if (existing !== null) {
      if (existing !== id) {
        throw new StorageError(
          'id_mismatch',
          `data directory ${this.datadir} belongs to safekeeper ${existing} (${path}), refusing to start as safekeeper ${id}: ` +
            `a volume attached to the wrong member must never vote as another member`,
        );
      }
      return;
    }
    const tmp = `${path}.partial`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(`${id}\n`);
      if (this.sync) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    if (this.sync) await fsyncDirectory(this.datadir);
  }

  /** The id recorded in safekeeper.id, or null if none was written yet. */
  async readNodeId(): Promise<bigint | null> {
    const path = join(this.datadir, NODE_ID_FILE);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return null;
      throw new StorageError('io_error', `cannot read ${path}: ${String(err)}`, { cause: err });
    }
    const trimmed = text.trim();
    if (!/^\d{1,20}$/.test(trimmed)) {
      throw new StorageError('id_mismatch', `${path} does not hold a safekeeper id (found ${JSON.stringify(trimmed.slice(0, 40))})`);
    }
    return BigInt(trimmed);
  }

  // ---------------------------------------------------------------- tenants

  async createTenant(tenantId: string): Promise<string> {
    const dir = this.tenantDir(tenantId);
    await this.ensureDir(this.datadir, this.tenantsDir);
    await this.createDir(this.tenantsDir, dir, `tenant ${tenantId}`);
    return dir;
  }

  async tenantExists(tenantId: string): Promise<boolean> {
    return isDirectory(this.tenantDir(tenantId));
  }

  async listTenants(): Promise<string[]> {
    return listIds(this.tenantsDir);
  }

  /** Deletes a tenant and everything under it; durable once it returns. */
  async deleteTenant(tenantId: string): Promise<void> {
    await this.deleteDir(this.tenantsDir, this.tenantDir(tenantId), `tenant ${tenantId}`);
  }

  // ---------------------------------------------------------------- timelines

  async createTimeline(tenantId: string, timelineId: string): Promise<string> {
    const tenantDir = this.tenantDir(tenantId);
    if (!(await isDirectory(tenantDir))) throw new StorageError('not_found', `tenant ${tenantId} does not exist`);
    const dir = this.timelineDir(tenantId, timelineId);
    await this.createDir(tenantDir, dir, `timeline ${tenantId}/${timelineId}`);
    return dir;
  }

  async timelineExists(tenantId: string, timelineId: string): Promise<boolean> {
    return isDirectory(this.timelineDir(tenantId, timelineId));
  }

  async listTimelines(tenantId: string): Promise<string[]> {
    const dir = this.tenantDir(tenantId);
    if (!(await isDirectory(dir))) throw new StorageError('not_found', `tenant ${tenantId} does not exist`);
    return listIds(dir);
  }

  async deleteTimeline(tenantId: string, timelineId: string): Promise<void> {
    await this.deleteDir(this.tenantDir(tenantId), this.timelineDir(tenantId, timelineId), `timeline ${tenantId}/${timelineId}`);
  }

  /** Removes leftovers of deletions interrupted by a crash (`.deleting-*`), at start-up. */
  async removeInterruptedDeletions(): Promise<void> {
    const parents = [this.tenantsDir];
    for (const tenantId of await this.listTenants()) parents.push(this.tenantDir(tenantId));
    for (const parent of parents) {
      let names: string[];
      try {
        names = await readdir(parent);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') continue;
        throw err;
      }
      for (const name of names) if (name.startsWith(DELETING_PREFIX)) await rm(join(parent, name), { recursive: true, force: true });
    }
  }

  // ---------------------------------------------------------------- helpers

  private async ensureDir(parent: string, dir: string): Promise<void> {
    try {
      await mkdir(dir);
      if (this.sync) await fsyncDirectory(parent);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw ioError(err, `cannot create ${dir}`);
    }
  }

  private async createDir(parent: string, dir: string, what: string): Promise<void> {
    try {
      await mkdir(dir);
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') throw new StorageError('already_exists', `${what} already exists (${dir})`);
      throw ioError(err, `cannot create ${what} (${dir})`);
    }
    if (this.sync) await fsyncDirectory(parent);
  }

  /** Renames the directory aside (atomic, durable), then removes it: no half-deleted tree stays visible. */
  private async deleteDir(parent: string, dir: string, what: string): Promise<void> {
    if (!(await isDirectory(dir))) throw new StorageError('not_found', `${what} does not exist`);
    const aside = join(parent, `${DELETING_PREFIX}${dir.slice(parent.length + 1)}-${process.pid}-${Date.now()}`);
    try {
      await rename(dir, aside);
      if (this.sync) await fsyncDirectory(parent);
      await rm(aside, { recursive: true, force: true });
    } catch (err) {
      throw ioError(err, `cannot delete ${what} (${dir})`);
    }
  }
}

function validId(kind: 'tenant_id' | 'timeline_id', id: string): void {
  try {
    assertValidId(kind, id);
  } catch (err) {
    throw new StorageError('invalid_argument', (err as Error).message);
  }
}

function ioError(err: unknown, what: string): StorageError {
  if (err instanceof StorageError) return err;
  const code = errnoCode(err) === 'ENOSPC' ? 'disk_full' : 'io_error';
  return new StorageError(code, `${what}: ${String(err)}`, { cause: err });
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    throw err;
  }
}

async function listIds(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  return names.filter((n) => isValidId(n)).sort();
}

/** Pins `nodeId` to `datadir` (see DataDirLayout.pinNodeId). */
export async function pinNodeId(datadir: string, nodeId: bigint | number, options: LayoutOptions = {}): Promise<void> {
  await new DataDirLayout(datadir, options).pinNodeId(nodeId);
}
