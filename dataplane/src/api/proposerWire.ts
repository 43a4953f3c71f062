/**
 * The JSON the proposer's HTTP API (http/proposerApi.ts, port 7677) answers and accepts: its
 * status, read by the operator and walctl, and the base-backup routes the operator drives.
 */
import type { WireKeys } from './wireKeys.js';

/**
 * connecting → electing → (promoting: a standby PostgreSQL is promoted once the quorum is held)
 * → streaming; fenced (a newer proposer owns the timeline) and refused (the safekeepers hold WAL
 * this PostgreSQL does not) end a term without a successor in sight.
 */
export type ProposerState = 'connecting' | 'electing' | 'promoting' | 'streaming' | 'fenced' | 'refused';

/** How a safekeeper's connection stands in the proposer's current term. */
export type ProposerMemberState = 'offline' | 'greeting' | 'voting' | 'streaming';

/** GET /v1/status */
export interface ProposerStatusJson {
  tenant_id: string;
  timeline_id: string;
  state: ProposerState;
  term: string;
  commit_lsn: string;
  term_start_lsn: string;
  quorum_healthy: boolean;
  /** why the quorum is not healthy; absent when it is */
  reason?: string;
  postgres: ProposerPostgresJson;
  /** one entry per --safekeepers member, in that order */
  safekeepers: ProposerMemberJson[];
}
export const proposerStatusKeys: WireKeys<ProposerStatusJson> = {
  tenant_id: 'required', timeline_id: 'required', state: 'required', term: 'required', commit_lsn: 'required', term_start_lsn: 'required',
  quorum_healthy: 'required', reason: 'optional', postgres: 'required', safekeepers: 'required',
};

/** The PostgreSQL the proposer streams from; identity and timeline once it is connected. */
export interface ProposerPostgresJson {
  connected: boolean;
  system_id?: string;
  timeline?: number;
  timeline_start_lsn?: string;
}
export const proposerPostgresKeys: WireKeys<ProposerPostgresJson> = { connected: 'required', system_id: 'optional', timeline: 'optional', timeline_start_lsn: 'optional' };

export interface ProposerMemberJson {
  address: string;
  state: ProposerMemberState;
  flush_lsn: string;
  /** why the last connection to it ended */
  error?: string;
}
export const proposerMemberKeys: WireKeys<ProposerMemberJson> = { address: 'required', state: 'required', flush_lsn: 'required', error: 'optional' };

/** GET /v1/backups */
export interface BackupsJson {
  /** false without --remote-storage (then nothing else is ever set) */
  remote_storage: boolean;
  running: BackupRunJson | null;
  last_failure: BackupFailureJson | null;
  /** complete backups, oldest first */
  backups: BackupManifestJson[];
  /** backups without a manifest: interrupted, or the one running */
  incomplete: number;
}
export const backupsKeys: WireKeys<BackupsJson> = { remote_storage: 'required', running: 'required', last_failure: 'required', backups: 'required', incomplete: 'required' };

/** POST /v1/backups, 202: the backup started */
export interface BackupRunJson {
  id: string;
  started_at: string;
}
export const backupRunKeys: WireKeys<BackupRunJson> = { id: 'required', started_at: 'required' };

export interface BackupFailureJson {
  id: string;
  at: string;
  message: string;
  code: string;
}
export const backupFailureKeys: WireKeys<BackupFailureJson> = { id: 'required', at: 'required', message: 'required', code: 'required' };

/** One complete backup. */
export interface BackupManifestJson {
  id: string;
  start_lsn: string;
  stop_lsn: string;
  start_time: string;
  stop_time: string;
  size_bytes: number;
  pg_timeline: number;
  pg_version_num: number;
}
export const backupManifestKeys: WireKeys<BackupManifestJson> = {
  id: 'required', start_lsn: 'required', stop_lsn: 'required', start_time: 'required', stop_time: 'required',
  size_bytes: 'required', pg_timeline: 'required', pg_version_num: 'required',
};

/** POST /v1/backups/retention body: at least one of keep and max_age_days */
export interface RetentionRequestJson {
  keep?: number;
  max_age_days?: number;
  /** the lowest backup LSN of the safekeepers: bucket WAL at or above it stays */
  backup_lsn?: string;
}

/** POST /v1/backups/retention */
export interface RetentionJson {
  /** ids of the complete backups deleted */
  deleted: string[];
  deleted_incomplete: string[];
  wal_objects_deleted: number;
  /** bucket WAL below this was removed; null when none was */
  wal_horizon: string | null;
  kept: string[];
}
export const retentionKeys: WireKeys<RetentionJson> = { deleted: 'required', deleted_incomplete: 'required', wal_objects_deleted: 'required', wal_horizon: 'required', kept: 'required' };
