// Prometheus metrics of a safekeeper. Per-timeline gauges are read from the registry at
// scrape time, so nothing is kept twice.
import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';
import type { DiskSpace } from '../storage/diskSpace.js';

export interface TimelineGaugeSource {
  timelineGauges(): { tenantId: string; timelineId: string; flushLsn: bigint; commitLsn: bigint; term: bigint }[];
  /** readers' replication slots of every timeline */
  slotGauges?(): { tenantId: string; timelineId: string; name: string; retainedBytes: bigint; active: boolean; lost: boolean }[];
}

/** Per-timeline offload values (safekeeper/walBackup.ts), read at scrape time. */
export interface OffloadGaugeSource {
  offloadGauges(): { tenantId: string; timelineId: string; lagBytes: bigint; lastSuccessAt: number | undefined }[];
}

export class SafekeeperMetrics {
  private offloadSource: OffloadGaugeSource | undefined;
  readonly registry = new Registry();
  readonly walReceivedBytes = new Counter({ name: 'walkeeper_wal_received_bytes_total', help: 'WAL bytes received from proposers', registers: [this.registry] });
  readonly walFlushedBytes = new Counter({ name: 'walkeeper_wal_flushed_bytes_total', help: 'WAL bytes made durable by fdatasync', registers: [this.registry] });
  readonly walSentBytes = new Counter({ name: 'walkeeper_wal_sent_bytes_total', help: 'WAL bytes streamed to readers', registers: [this.registry] });
  readonly fsyncSeconds = new Histogram({
    name: 'walkeeper_wal_fsync_seconds',
    help: 'latency of WAL fdatasync calls',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly proposers = new Gauge({ name: 'walkeeper_connected_proposers', help: 'proposer (WAL push) connections', registers: [this.registry] });
  readonly readers = new Gauge({ name: 'walkeeper_connected_readers', help: 'replication reader connections', registers: [this.registry] });
  readonly walSegmentsRemoved = new Counter({ name: 'walkeeper_wal_segments_removed_total', help: 'WAL segments removed below the removal horizon', registers: [this.registry] });
  readonly protocolErrors = new Counter({ name: 'walkeeper_protocol_errors_total', help: 'connections closed because of malformed or refused input', labelNames: ['code'], registers: [this.registry] });
  readonly slotInvalidations = new Counter({
    name: 'walkeeper_slot_invalidations_total',
    help: 'replication slots invalidated for holding more than --max-slot-wal-keep-size',
    labelNames: ['tenant_id', 'timeline_id', 'slot_name'],
    registers: [this.registry],
  });

  readonly offloadUploadErrors = new Counter({ name: 'walkeeper_offload_upload_errors_total', help: 'failed WAL offload attempts (uploads, checks), by remote storage error code', labelNames: ['code'], registers: [this.registry] });
  readonly offloadUploadedBytes = new Counter({ name: 'walkeeper_offload_uploaded_bytes_total', help: 'WAL bytes this safekeeper uploaded to remote storage (verified)', registers: [this.registry] });

  /** WAL offload is on: its per-timeline gauges read from source. */
  attachOffload(source: OffloadGaugeSource): void {
    this.offloadSource = source;
  }

  constructor(source: TimelineGaugeSource) {
    collectDefaultMetrics({ register: this.registry });
    const perTimeline = (name: string, help: string, pick: (t: ReturnType<TimelineGaugeSource['timelineGauges']>[number]) => bigint) =>
      new Gauge({
        name,
        help,
        labelNames: ['tenant_id', 'timeline_id'],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const t of source.timelineGauges()) this.set({ tenant_id: t.tenantId, timeline_id: t.timelineId }, Number(pick(t)));
        },
      });
    perTimeline('walkeeper_timeline_flush_lsn', 'flush LSN of the timeline (bytes)', (t) => t.flushLsn);
    perTimeline('walkeeper_timeline_commit_lsn', 'commit LSN of the timeline (bytes)', (t) => t.commitLsn);
    perTimeline('walkeeper_timeline_term', 'current term of the timeline', (t) => t.term);
    const perSlot = (name: string, help: string, pick: (s: NonNullable<ReturnType<NonNullable<TimelineGaugeSource['slotGauges']>>>[number]) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['tenant_id', 'timeline_id', 'slot_name'],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const s of source.slotGauges?.() ?? []) this.set({ tenant_id: s.tenantId, timeline_id: s.timelineId, slot_name: s.name }, pick(s));
        },
      });
    perSlot('walkeeper_slot_retained_bytes', 'WAL bytes a replication slot keeps from removal (commit LSN minus its saved restart LSN; 0 once lost)', (s) => Number(s.retainedBytes));
    perSlot('walkeeper_slot_active', '1 while a reader streams from the slot', (s) => (s.active ? 1 : 0));
    perSlot('walkeeper_slot_lost', '1 once the slot was invalidated (wal_status lost)', (s) => (s.lost ? 1 : 0));
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const metrics = this;
    new Gauge({
      name: 'walkeeper_offload_lag_bytes',
      help: 'committed WAL of the timeline not yet in remote storage (commit LSN - backup LSN)',
      labelNames: ['tenant_id', 'timeline_id'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const t of metrics.offloadSource?.offloadGauges() ?? []) this.set({ tenant_id: t.tenantId, timeline_id: t.timelineId }, Number(t.lagBytes));
      },
    });
    new Gauge({
      name: 'walkeeper_offload_last_success_timestamp_seconds',
      help: 'when the timeline last offloaded (or confirmed in the bucket) a segment, seconds since the epoch',
      labelNames: ['tenant_id', 'timeline_id'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const t of metrics.offloadSource?.offloadGauges() ?? []) if (t.lastSuccessAt !== undefined) this.set({ tenant_id: t.tenantId, timeline_id: t.timelineId }, t.lastSuccessAt / 1000);
      },
    });
  }

  /** Disk gauges of the data directory, measured at scrape time. */
  attachDisk(disk: DiskSpace): void {
    const gauge = (name: string, help: string, pick: (u: Awaited<ReturnType<DiskSpace['measure']>>) => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        async collect() {
          this.set(pick(await disk.measure()));
        },
      });
    gauge('walkeeper_disk_used_bytes', 'bytes used on the file system of the data directory', (u) => Number(u.usedBytes));
    gauge('walkeeper_disk_total_bytes', 'size of the file system of the data directory', (u) => Number(u.totalBytes));
    gauge('walkeeper_disk_high_water', '1 when disk use is at or above --disk-high-water', (u) => (u.highWater ? 1 : 0));
    gauge('walkeeper_disk_reserve_bytes', 'bytes held by the reserve file (0 once released on a full disk)', (u) => Number(u.reserveBytes));
  }
}
