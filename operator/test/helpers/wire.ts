// Canned data-plane answers built from the data plane's own wire types: a test states the fields
// its scenario is about and gets an answer shaped exactly as a safekeeper or proposer sends it.
import type {
  ApiErrorJson, BackupManifestJson, BackupsJson, ProposerStatusJson, RetentionJson, SafekeeperStatusJson, TimelineStatusJson,
} from '@walkeeper/dataplane/api';

export const apiError = (code: string, error = code.replace(/_/g, ' ')): ApiErrorJson => ({ error, code });

export function safekeeperStatusJson(id: number, over: Partial<SafekeeperStatusJson> = {}): SafekeeperStatusJson {
  return { id, version: '0.1.0', uptime_seconds: 1, remote_storage: null, ...over };
}

export function timelineStatusJson(tenantId: string, timelineId: string, over: Partial<TimelineStatusJson> = {}): TimelineStatusJson {
  return {
    tenant_id: tenantId, timeline_id: timelineId, term: '3', last_log_term: '3', term_history: [{ term: '3', lsn: '0/1000000' }],
    flush_lsn: '0/1000000', write_lsn: '0/1000000', commit_lsn: '0/1000000', timeline_start_lsn: '0/1000000', local_start_lsn: '0/1000000',
    backup_lsn: '0/0', peer_horizon_lsn: '0/0', removal_held_by: null, removal_horizon_lsn: null, removal_error: null,
    recycling: { recycled: 0, unlinked: 0, pooled: 0, prepared_from_pool: 0, prepared_zero_filled: 0, zero_filled_on_append: 0 },
    system_id: '7000000000000000000', pg_version: 150004, pg_timeline: 1, pg_timeline_history: [{ tli: 1, start_lsn: '0/1000000' }],
    proposer_connected: true, proposers: 1, readers: [], slots: [], offload: { enabled: false },
    ...over,
  };
}

export function proposerStatusJson(over: Partial<ProposerStatusJson> = {}): ProposerStatusJson {
  return {
    tenant_id: 'ab'.repeat(16), timeline_id: 'cd'.repeat(16), state: 'streaming', term: '3', commit_lsn: '0/1000000', term_start_lsn: '0/1000000',
    quorum_healthy: true, postgres: { connected: true, system_id: '7000000000000000000', timeline: 1, timeline_start_lsn: '0/1000000' },
    safekeepers: [], ...over,
  };
}

export function backupsJson(over: Partial<BackupsJson> = {}): BackupsJson {
  return { remote_storage: true, running: null, last_failure: null, backups: [], incomplete: 0, ...over };
}

export function backupManifestJson(over: Pick<BackupManifestJson, 'id'> & Partial<BackupManifestJson>): BackupManifestJson {
  return { start_lsn: '0/1000028', stop_lsn: '0/1000100', start_time: '2026-01-01T00:00:00Z', stop_time: '2026-01-01T00:00:05Z', size_bytes: 100, pg_timeline: 1, pg_version_num: 150004, ...over };
}

export function retentionJson(over: Partial<RetentionJson> = {}): RetentionJson {
  return { deleted: [], deleted_incomplete: [], wal_objects_deleted: 0, wal_horizon: null, kept: [], ...over };
}
