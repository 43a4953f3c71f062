// The WAL removal loop of one timeline: periodically, and soon after the commit LSN moves
// (debounced), computes the removal horizon (storage/removalHorizon.ts) from the timeline's
// positions and removes the whole segments below it. A full disk releases the reserve
// (storage/diskSpace.ts) so that the control-file write removal starts with can still go.
import type { Logger } from '../common/log.js';
import { formatLsn } from '../common/lsn.js';
import { computeRemovalHorizon, describeHolder, type RemovalHorizon, type SlotHorizon } from '../storage/removalHorizon.js';
import { isStorageError } from '../storage/errors.js';
import { errnoCode } from '../storage/errors.js';
import type { DiskSpace } from '../storage/diskSpace.js';
import type { Timeline } from './timeline.js';

export interface WalRemovalOptions {
  /** bytes of WAL always kept below the commit LSN (--wal-keep-size) */
  walKeepSize: bigint;
  /** remote storage holds WAL below backupLsn (the bucket then serves peers) */
  remoteStorageEnabled: boolean;
  /** every reader slot's claim; none until slots exist */
  slots?: () => readonly SlotHorizon[];
  /** how often the horizon is computed without a commit advance */
  intervalMs?: number;
  /** how long after a commit advance it runs (several advances are one run) */
  debounceMs?: number;
  disk?: DiskSpace;
  log: Logger;
  /** segments removed (metrics) */
  onRemoved?: (segments: number) => void;
}

export const DEFAULT_REMOVAL_INTERVAL_MS = 10_000;
export const DEFAULT_REMOVAL_DEBOUNCE_MS = 200;

export class WalRemoval {
  private timer: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private readonly onAdvance = () => this.schedule();

  constructor(
    private readonly timeline: Timeline,
    private readonly options: WalRemovalOptions,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.kick(), this.options.intervalMs ?? DEFAULT_REMOVAL_INTERVAL_MS);
    this.timer.unref();
    this.timeline.on('advance', this.onAdvance);
    this.schedule();
  }

  /** The horizon for the timeline as it is now (pure; nothing removed). */
  horizon(): RemovalHorizon {
    const s = this.timeline.snapshot();
    const life = this.timeline.lifecycle;
    return computeRemovalHorizon({
      walSegSize: s.walSegSize,
      commitLsn: s.commitLsn,
      flushLsn: s.flushLsn,
      timelineStartLsn: s.timelineStartLsn,
      walStartLsn: this.timeline.localStartLsn,
      remoteStorageEnabled: this.options.remoteStorageEnabled,
      backupLsn: life.backupLsn,
      peerHorizonLsn: this.timeline.peerHorizonLsn,
      slots: this.options.slots?.() ?? [],
      walKeepSize: this.options.walKeepSize,
    });
  }

  /** Computes the horizon and removes below it once; concurrent calls share one pass. */
  runOnce(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass();
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async pass(): Promise<void> {
    if (this.stopped || this.timeline.isClosed) return;
    const h = this.horizon();
    const status = { heldBy: describeHolder(h.heldBy), horizonLsn: h.removeBelowLsn, lastError: null as string | null };
    const disk = this.options.disk;
    try {
      if (h.removable) {
        const removeOnce = () => this.timeline.removeWalBelow(h.removeBelowLsn);
        const removed = disk
          ? await disk.withReserve(removeOnce, (err) => isStorageError(err, 'disk_full') || errnoCode(err) === 'ENOSPC')
          : await removeOnce();
        if (removed > 0) {
          this.options.onRemoved?.(removed);
          this.options.log.info(
            { tenant_id: this.timeline.tenantId, timeline_id: this.timeline.timelineId, segments: removed, local_start_lsn: formatLsn(h.removeBelowLsn), held_by: status.heldBy },
            'removed WAL segments below the horizon',
          );
        }
      }
      if (disk && !disk.reserveHeld) await disk.ensureReserve();
    } catch (err) {
      status.lastError = (err as Error).message;
      this.options.log.warn({ tenant_id: this.timeline.tenantId, timeline_id: this.timeline.timelineId, err: status.lastError }, 'WAL removal failed; retrying later');
    }
    this.timeline.removal = status;
  }

  private kick(): void {
    if (!this.stopped) void this.runOnce();
  }

  private schedule(): void {
    if (this.stopped || this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = null;
      this.kick();
    }, this.options.debounceMs ?? DEFAULT_REMOVAL_DEBOUNCE_MS);
    this.debounce.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.debounce) clearTimeout(this.debounce);
    this.timeline.off('advance', this.onAdvance);
    await this.running?.catch(() => undefined);
  }
}
