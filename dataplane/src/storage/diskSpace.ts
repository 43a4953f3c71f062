// Disk-full safety for a safekeeper data directory: a reserve file (`<datadir>/reserve`)
// holding a few MiB that is released when ENOSPC hits, so that removal (a control-file
// write, then unlinks) can still run and give the disk back — Neon's out-of-space deadlock
// (#3957) was removal needing the disk space it was meant to free. The reserve is
// recreated once the disk is below its high-water mark again. Also the disk usage and its
// high-water flag for status and metrics.
import { open, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from './errors.js';

export const RESERVE_FILE = 'reserve';

export interface DiskUsage {
  usedBytes: bigint;
  totalBytes: bigint;
  /** used / total at or above the high-water mark */
  highWater: boolean;
  /** bytes held by the reserve file (0 while released) */
  reserveBytes: bigint;
}

export interface DiskSpaceOptions {
  datadir: string;
  /** size of the reserve file; 0 = none */
  reserveBytes: number;
  /** ratio of used to total space (0..1) from which the disk counts as nearly full */
  highWater: number;
  sync?: boolean;
}

export class DiskSpace {
  private held = false;
  private lastUsage: DiskUsage | null = null;

  constructor(private readonly options: DiskSpaceOptions) {}

  get reservePath(): string {
    return join(this.options.datadir, RESERVE_FILE);
  }

  get reserveHeld(): boolean {
    return this.held;
  }

  /** The last measured usage (null before the first). */
  get usage(): DiskUsage | null {
    return this.lastUsage;
  }

  /** Measures the file system holding the data directory. */
  async measure(): Promise<DiskUsage> {
    const st = await statfs(this.options.datadir, { bigint: true });
    const totalBytes = st.blocks * st.bsize;
    const usedBytes = (st.blocks - st.bfree) * st.bsize;
    const highWater = totalBytes > 0n && Number(usedBytes) / Number(totalBytes) >= this.options.highWater;
    this.lastUsage = { usedBytes, totalBytes, highWater, reserveBytes: this.held ? BigInt(this.options.reserveBytes) : 0n };
    return this.lastUsage;
  }

  /**
   * Makes sure the reserve file exists at full size, unless the disk is past its high-water
   * mark (then the space is better left to removal). Returns whether it is held. Never throws
   * for a full disk: a reserve that cannot be made now is made on a later call.
   */
  async ensureReserve(): Promise<boolean> {
    const size = this.options.reserveBytes;
    if (size <= 0) return false;
    if (this.held) return true;
    const usage = await this.measure();
    if (usage.highWater) return false;
    let fh;
    try {
      fh = await open(this.reservePath, 'w');
      // Real blocks (not a sparse file): written bytes, then fsync.
      const chunk = Buffer.alloc(Math.min(size, 1 << 20), 0x52);
      for (let off = 0; off < size; off += chunk.length) await fh.write(chunk, 0, Math.min(chunk.length, size - off), off);
      if (this.options.sync ?? true) await fh.sync();
      await fh.close();
      fh = undefined;
      this.held = true;
    } catch (err) {
      await fh?.close().catch(() => undefined);
      await unlink(this.reservePath).catch(() => undefined);
      if (errnoCode(err) !== 'ENOSPC') throw err;
      this.held = false;
    }
    await this.measure();
    return this.held;
  }

  /** Frees the reserve (on ENOSPC), so removal and control-file writes can go on. Returns whether it freed anything. */
  async releaseReserve(): Promise<boolean> {
    try {
      await unlink(this.reservePath);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      this.held = false;
      return false;
    }
    this.held = false;
    return true;
  }

  /**
   * Runs fn; if it fails for a full disk, frees the reserve and runs it once more. The
   * reserve is recreated later by ensureReserve, once removal has made room.
   */
  async withReserve<T>(fn: () => Promise<T>, isDiskFull: (err: unknown) => boolean): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (!isDiskFull(err) || !(await this.releaseReserve())) throw err;
      return fn();
    }
  }
}
