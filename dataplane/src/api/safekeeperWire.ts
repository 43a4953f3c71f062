/**
 * The JSON the safekeeper's HTTP API (ARCHITECTURE.md §7, http/safekeeperApi.ts) answers and
 * accepts. LSNs are `X/X` strings; 64-bit counters are decimal strings, since JSON numbers lose
 * precision above 2^53.
 */
import type { WireKeys } from './wireKeys.js';

/** GET /v1/status; the disk fields come all four or none (when the safekeeper measures its volume) */
export interface SafekeeperStatusJson extends Partial<SafekeeperDiskJson> {
  id: number;
  version: string;
  uptime_seconds: number;
  /** the bucket WAL is offloaded to; null without --remote-storage */
  remote_storage: RemoteStorageStatusJson | null;
}
export const safekeeperStatusKeys: WireKeys<SafekeeperStatusJson> = {
  id: 'required', version: 'required', uptime_seconds: 'required', remote_storage: 'required',
  disk_used_bytes: 'optional', disk_total_bytes: 'optional', disk_high_water: 'optional', disk_reserve_bytes: 'optional',
};

/** The data volume: bytes as decimal strings. */
export interface SafekeeperDiskJson {
  disk_used_bytes: string;
  disk_total_bytes: string;
  /** used / total at or above the high-water mark */
  disk_high_water: boolean;
  /** bytes held by the reserve file (0 while released) */
  disk_reserve_bytes: string;
}

/** The start-up check of the bucket, redone with backoff while it fails. */
export interface RemoteStorageStatusJson {
  url: string;
  usable: boolean;
  error: string | null;
  error_code: string | null;
}
export const remoteStorageStatusKeys: WireKeys<RemoteStorageStatusJson> = { url: 'required', usable: 'required', error: 'required', error_code: 'required' };

/** GET /v1/tenants */
export interface TenantListJson {
  tenants: TenantEntryJson[];
}
export const tenantListKeys: WireKeys<TenantListJson> = { tenants: 'required' };

export interface TenantEntryJson {
  tenant_id: string;
  /** every timeline on disk, the broken ones too */
  timelines: string[];
}
export const tenantEntryKeys: WireKeys<TenantEntryJson> = { tenant_id: 'required', timelines: 'required' };

/** POST /v1/tenants body; without tenant_id the safekeeper makes one */
export interface TenantCreateJson {
  tenant_id?: string;
}
/** POST /v1/tenants, 201 */
export interface TenantCreatedJson {
  tenant_id: string;
}
export const tenantCreatedKeys: WireKeys<TenantCreatedJson> = { tenant_id: 'required' };

/** DELETE /v1/tenants/:tenant_id */
export interface TenantDeletedJson {
  tenant_id: string;
  deleted: true;
}
export const tenantDeletedKeys: WireKeys<TenantDeletedJson> = { tenant_id: 'required', deleted: 'required' };

/** GET /v1/tenants/:tenant_id/timelines */
export interface TimelineListJson {
  tenant_id: string;
  timelines: TimelineEntryJson[];
}
export const timelineListKeys: WireKeys<TimelineListJson> = { tenant_id: 'required', timelines: 'required' };

export interface TimelineEntryJson {
  timeline_id: string;
  /** why a timeline on disk failed to load (it is listed, not served) */
  error?: string;
}
export const timelineEntryKeys: WireKeys<TimelineEntryJson> = { timeline_id: 'required', error: 'optional' };

/** POST /v1/tenants/:tenant_id/timelines body; without timeline_id the safekeeper makes one */
export interface TimelineCreateJson {
  timeline_id?: string;
}
/** POST /v1/tenants/:tenant_id/timelines, 201 */
export interface TimelineCreatedJson {
  tenant_id: string;
  timeline_id: string;
}
export const timelineCreatedKeys: WireKeys<TimelineCreatedJson> = { tenant_id: 'required', timeline_id: 'required' };

/** GET /v1/tenants/:tenant_id/timelines/:timeline_id */
export interface TimelineStatusJson {
  tenant_id: string;
  timeline_id: string;
  term: string;
  last_log_term: string;
  term_history: TermHistoryEntryJson[];
  flush_lsn: string;
  write_lsn: string;
  commit_lsn: string;
  timeline_start_lsn: string;
  /** first LSN still on the member's disk (below it only the bucket has the WAL) */
  local_start_lsn: string;
  /** everything below is in the bucket (0/0: nothing offloaded, or no remote storage) */
  backup_lsn: string;
  peer_horizon_lsn: string;
  /** null until the removal loop first ran */
  removal_held_by: string | null;
  removal_horizon_lsn: string | null;
  removal_error: string | null;
  recycling: SegmentRecyclingJson;
  system_id: string;
  pg_version: number;
  pg_timeline: number;
  pg_timeline_history: PgTimelineEntryJson[];
  proposer_connected: boolean;
  proposers: number;
  /** one entry per replication reader connected to this member */
  readers: ReaderJson[];
  slots: SlotJson[];
  offload: OffloadJson;
}
export const timelineStatusKeys: WireKeys<TimelineStatusJson> = {
  tenant_id: 'required', timeline_id: 'required', term: 'required', last_log_term: 'required', term_history: 'required',
  flush_lsn: 'required', write_lsn: 'required', commit_lsn: 'required', timeline_start_lsn: 'required', local_start_lsn: 'required',
  backup_lsn: 'required', peer_horizon_lsn: 'required', removal_held_by: 'required', removal_horizon_lsn: 'required', removal_error: 'required',
  recycling: 'required', system_id: 'required', pg_version: 'required', pg_timeline: 'required', pg_timeline_history: 'required',
  proposer_connected: 'required', proposers: 'required', readers: 'required', slots: 'required', offload: 'required',
};

export interface TermHistoryEntryJson {
  term: string;
  lsn: string;
}
export const termHistoryEntryKeys: WireKeys<TermHistoryEntryJson> = { term: 'required', lsn: 'required' };

export interface PgTimelineEntryJson {
  tli: number;
  start_lsn: string;
}
export const pgTimelineEntryKeys: WireKeys<PgTimelineEntryJson> = { tli: 'required', start_lsn: 'required' };

/** Segment files reused vs zero-filled; zero_filled_on_append is work on the commit path. */
export interface SegmentRecyclingJson {
  recycled: number;
  unlinked: number;
  pooled: number;
  prepared_from_pool: number;
  prepared_zero_filled: number;
  zero_filled_on_append: number;
}
export const segmentRecyclingKeys: WireKeys<SegmentRecyclingJson> = {
  recycled: 'required', unlinked: 'required', pooled: 'required', prepared_from_pool: 'required', prepared_zero_filled: 'required', zero_filled_on_append: 'required',
};

export interface ReaderJson {
  application_name: string;
  address: string;
  sent_lsn: string;
  flush_lsn: string;
  lag_bytes: string;
}
export const readerKeys: WireKeys<ReaderJson> = { application_name: 'required', address: 'required', sent_lsn: 'required', flush_lsn: 'required', lag_bytes: 'required' };

/** A replication slot, in the words of pg_replication_slots. */
export interface SlotJson {
  slot_name: string;
  slot_type: 'physical';
  restart_lsn: string | null;
  /** what is durable in slots.control: the WAL removal honours this one */
  persisted_restart_lsn: string | null;
  active: boolean;
  active_client: string | null;
  wal_status: 'reserved' | 'lost';
  retained_bytes: string;
  invalidation_reason: string | null;
  created_at: string;
}
export const slotKeys: WireKeys<SlotJson> = {
  slot_name: 'required', slot_type: 'required', restart_lsn: 'required', persisted_restart_lsn: 'required', active: 'required',
  active_client: 'required', wal_status: 'required', retained_bytes: 'required', invalidation_reason: 'required', created_at: 'required',
};

/** The timeline's WAL offload to the bucket; `{enabled: false}` without remote storage. */
export type OffloadJson = OffloadStatusJson | OffloadDisabledJson;

export interface OffloadDisabledJson {
  enabled: false;
}
export const offloadDisabledKeys: WireKeys<OffloadDisabledJson> = { enabled: 'required' };

export interface OffloadStatusJson {
  enabled: true;
  remote_storage: string;
  state: 'ok' | 'retrying' | 'waiting' | 'store_unusable';
  /** member id that uploads first */
  designated_uploader: number;
  /** 0 for the designated uploader; the others take over in rank order */
  uploader_rank: number;
  backup_lsn: string;
  lag_bytes: string;
  last_error: string | null;
  last_error_code: string | null;
  last_error_at: string | null;
  last_success_at: string | null;
  /** what the offloader waits for, when it waits */
  waiting: string | null;
}
export const offloadStatusKeys: WireKeys<OffloadStatusJson> = {
  enabled: 'required', remote_storage: 'required', state: 'required', designated_uploader: 'required', uploader_rank: 'required',
  backup_lsn: 'required', lag_bytes: 'required', last_error: 'required', last_error_code: 'required', last_error_at: 'required',
  last_success_at: 'required', waiting: 'required',
};
