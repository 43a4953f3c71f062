// Every tenant and timeline on this safekeeper's data directory. Loaded (with WAL
// recovery) before the Postgres port opens; a timeline that fails to load stays listed with
// its error and is never served or used to vote.
import { readdir } from 'node:fs/promises';
import { DataDirLayout } from '../storage/layout.js';
import { CONTROL_FILE_NAME } from '../storage/controlFile.js';
import { isStorageError } from '../storage/errors.js';
import { RegistryError } from './registryError.js';
import type { Logger } from '../common/log.js';
import type { TenantEntryJson, TimelineEntryJson } from '../api/index.js';
import type { SafekeeperMetrics, TimelineGaugeSource } from './metrics.js';
import { Timeline, type TimelineDeps } from './timeline.js';
import { errnoCode } from '../storage/errors.js';
import { SyncPolicy } from '../storage/syncPolicy.js';
import type { DiskSpace } from '../storage/diskSpace.js';
import type { SlotHorizon } from '../storage/removalHorizon.js';
import { WalRemoval } from './walRemoval.js';

/** How a safekeeper lets go of WAL (issue 10): removal horizon inputs and recycling. */
export interface WalLifecycleOptions {
  /** --wal-keep-size in bytes */
  walKeepSize: bigint;
  /** remote storage is configured (then backupLsn holds WAL instead of the peer horizon) */
  remoteStorageEnabled: boolean;
  /** reader slots' claims on one timeline (none until slots exist) */
  slots?: (tl: Timeline) => readonly SlotHorizon[];
  disk?: DiskSpace;
  /** removed segment files kept for reuse per timeline; 0 = unlink */
  maxRecycledSegments?: number;
  removalIntervalMs?: number;
  removalDebounceMs?: number;
}

/**
 * Removed segment files a timeline keeps for reuse (--max-recycled-segments), with the next
 * segment prepared ahead, so steady state does no zero-fill on the commit path. Four (64 MiB
 * of 16 MiB segments) stays below PostgreSQL's default min_wal_size (80MB), which bounds its
 * own recycling. Without a lifecycle configuration (tests, tools) nothing is removed or recycled.
 */
export const DEFAULT_MAX_RECYCLED_SEGMENTS = 4;

interface TenantEntry {
  timelines: Map<string, Timeline>;
  /** timelines that exist on disk but could not be loaded, with the reason */
  broken: Map<string, string>;
}

export class Registry implements TimelineGaugeSource {
  readonly layout: DataDirLayout;
  private readonly tenants = new Map<string, TenantEntry>();
  private metrics: SafekeeperMetrics | undefined;
  private fatal: (err: Error) => void = () => {};
  /** one per process: whether a flush may fdatasync on the event loop depends on every timeline */
  private readonly syncPolicy = new SyncPolicy();
  /** serializes create/delete so two API calls cannot interleave on one tenant */
  private adminLock: Promise<unknown> = Promise.resolve();
  private readonly removals = new Map<Timeline, WalRemoval>();

  constructor(
    readonly datadir: string,
    private readonly log: Logger,
    private readonly nodeId = 0,
    private readonly options: { maxSlotWalKeepSize?: bigint; fsyncHook?: TimelineDeps['fsyncHook'] } = {},
    private readonly lifecycle?: WalLifecycleOptions,
  ) {
    this.layout = new DataDirLayout(datadir);
  }

  /** The removal loop of a timeline (undefined without a lifecycle configuration). */
  removalOf(tl: Timeline): WalRemoval | undefined {
    return this.removals.get(tl);
  }

  private startRemoval(tl: Timeline): void {
    const lc = this.lifecycle;
    if (!lc) return;
    const removal = new WalRemoval(tl, {
      walKeepSize: lc.walKeepSize,
      remoteStorageEnabled: lc.remoteStorageEnabled,
      slots: lc.slots ? () => lc.slots!(tl) : undefined,
      disk: lc.disk,
      intervalMs: lc.removalIntervalMs,
      debounceMs: lc.removalDebounceMs,
      log: this.log,
      onRemoved: (n) => this.metrics?.walSegmentsRemoved.inc(n),
    });
    this.removals.set(tl, removal);
    removal.start();
  }

  private async closeTimeline(tl: Timeline): Promise<void> {
    const removal = this.removals.get(tl);
    this.removals.delete(tl);
    await removal?.stop();
    await tl.close();
  }

  attachMetrics(m: SafekeeperMetrics): void {
    this.metrics = m;
  }

  onFatal(cb: (err: Error) => void): void {
    this.fatal = cb;
  }

  private deps(): TimelineDeps {
    const maxRecycled = this.lifecycle ? (this.lifecycle.maxRecycledSegments ?? DEFAULT_MAX_RECYCLED_SEGMENTS) : 0;
    return {
      nodeId: this.nodeId,
      log: this.log,
      metrics: this.metrics,
      syncPolicy: this.syncPolicy,
      onFatal: (err) => this.fatal(err),
      maxSlotWalKeepSize: this.options.maxSlotWalKeepSize,
      fsyncHook: this.options.fsyncHook,
      recycle: this.lifecycle && maxRecycled > 0 ? { maxRecycled, prepareAhead: true } : undefined,
    };
  }

  private admin<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.adminLock.then(fn, fn);
    this.adminLock = run.catch(() => undefined);
    return run;
  }

  /** Loads every timeline; returns how many loaded. Failures are logged and kept as `broken`. */
  async load(): Promise<number> {
    await this.layout.removeInterruptedDeletions();
    let loaded = 0;
    for (const tenantId of await this.layout.listTenants()) {
      const entry: TenantEntry = { timelines: new Map(), broken: new Map() };
      this.tenants.set(tenantId, entry);
      for (const timelineId of await this.layout.listTimelines(tenantId)) {
        const dir = this.layout.timelineDir(tenantId, timelineId);
        try {
          const files = await readdir(dir);
          const tl = files.length === 0 || (files.length === 1 && files[0] === `${CONTROL_FILE_NAME}.partial`)
            ? await Timeline.create(dir, tenantId, timelineId, this.deps()) // creation was interrupted before the control file
            : await Timeline.load(dir, tenantId, timelineId, this.deps());
          entry.timelines.set(timelineId, tl);
          this.startRemoval(tl);
          loaded++;
        } catch (err) {
          const message = (err as Error).message;
          entry.broken.set(timelineId, message);
          this.log.error({ tenant_id: tenantId, timeline_id: timelineId, code: (err as { code?: string }).code, err: message }, 'timeline failed to load; it will not be served');
        }
      }
    }
    return loaded;
  }

  hasTenant(tenantId: string): boolean {
    return this.tenants.has(tenantId);
  }

  listTenants(): TenantEntryJson[] {
    return [...this.tenants.entries()].map(([tenant_id, e]) => ({ tenant_id, timelines: [...e.timelines.keys(), ...e.broken.keys()] }));
  }

  listTimelines(tenantId: string): TimelineEntryJson[] {
    const e = this.tenants.get(tenantId);
    if (!e) throw new RegistryError('tenant_not_found', `tenant ${tenantId} does not exist`);
    return [...[...e.timelines.keys()].map((timeline_id) => ({ timeline_id })), ...[...e.broken.entries()].map(([timeline_id, error]) => ({ timeline_id, error }))];
  }

  getTimeline(tenantId: string, timelineId: string): Timeline | undefined {
    return this.tenants.get(tenantId)?.timelines.get(timelineId);
  }

  /** Every loaded timeline (for background work such as offload). */
  allTimelines(): Timeline[] {
    return [...this.tenants.values()].flatMap((e) => [...e.timelines.values()]);
  }

  /** Why a timeline on disk is not served, if it is broken. */
  brokenReason(tenantId: string, timelineId: string): string | undefined {
    return this.tenants.get(tenantId)?.broken.get(timelineId);
  }

  createTenant(tenantId: string): Promise<void> {
    return this.admin(async () => {
      if (this.tenants.has(tenantId)) throw new RegistryError('tenant_exists', `tenant ${tenantId} already exists`);
      await this.storage(() => this.layout.createTenant(tenantId));
      this.tenants.set(tenantId, { timelines: new Map(), broken: new Map() });
    });
  }

  deleteTenant(tenantId: string): Promise<void> {
    return this.admin(async () => {
      const e = this.tenants.get(tenantId);
      if (!e) throw new RegistryError('tenant_not_found', `tenant ${tenantId} does not exist`);
      // Stop serving first, so no proposer writes into a directory being removed.
      this.tenants.delete(tenantId);
      for (const tl of e.timelines.values()) await this.closeTimeline(tl);
      await this.storage(() => this.layout.deleteTenant(tenantId));
    });
  }

  createTimeline(tenantId: string, timelineId: string): Promise<Timeline> {
    return this.admin(async () => {
      const e = this.tenants.get(tenantId);
      if (!e) throw new RegistryError('tenant_not_found', `tenant ${tenantId} does not exist`);
      if (e.timelines.has(timelineId) || e.broken.has(timelineId)) throw new RegistryError('timeline_exists', `timeline ${timelineId} of tenant ${tenantId} already exists`);
      const dir = await this.storage(() => this.layout.createTimeline(tenantId, timelineId));
      const tl = await this.storage(() => Timeline.create(dir, tenantId, timelineId, this.deps()));
      e.timelines.set(timelineId, tl);
      this.startRemoval(tl);
      return tl;
    });
  }

  /**
   * Storage failures of admin operations become registry refusals with the storage code; an
   * ENOSPC that escaped the storage layer unnamed is still a full disk. Anything else is a bug
   * and goes up as it is.
   */
  private async storage<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isStorageError(err, 'disk_full') || errnoCode(err) === 'ENOSPC') throw new RegistryError('disk_full', (err as Error).message, { cause: err });
      if (isStorageError(err)) throw new RegistryError(err.code, err.message, { cause: err });
      throw err;
    }
  }

  timelineGauges() {
    const out = [];
    for (const [tenantId, e] of this.tenants) {
      for (const [timelineId, tl] of e.timelines) {
        const s = tl.snapshot();
        out.push({ tenantId, timelineId, flushLsn: s.flushLsn, commitLsn: s.commitLsn, term: s.term });
      }
    }
    return out;
  }

  slotGauges() {
    const out = [];
    for (const [tenantId, e] of this.tenants) {
      for (const [timelineId, tl] of e.timelines) {
        for (const g of tl.slots.gauges(tl.snapshot().commitLsn)) out.push({ tenantId, timelineId, ...g });
      }
    }
    return out;
  }

  async close(): Promise<void> {
    for (const e of this.tenants.values()) for (const tl of e.timelines.values()) await this.closeTimeline(tl);
  }
}
