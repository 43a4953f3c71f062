// Prometheus metrics of a safekeeper. Per-timeline gauges are read from the registry at
// scrape time, so nothing is kept twice.
import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';
import type { DiskSpace } from '../storage/diskSpace.js';

export interface TimelineGaugeSource {
  timelineGauges(): { tenantId: string; timelineId: string; flushLsn: bigint; commitLsn: bigint; term: bigint }[];
}

export class SafekeeperMetrics {
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
