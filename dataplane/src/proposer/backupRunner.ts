// Base backups on request, for the proposer's HTTP API (POST /v1/backups): the operator decides
// when (Tenant.spec.backup.schedule); this runs one pg_basebackup at a time against the
// PostgreSQL beside it and remembers how the last one ended, so status can say why it failed.
import type { ConnInfo } from '../common/conninfo.js';
import type { Logger } from '../common/log.js';
import { parseLsn } from '../common/lsn.js';
import type { RemoteStorage } from '../remote/remoteStorage.js';
import { createBackup } from '../backup/create.js';
import { applyRetention, listBackups, validatePolicy, type RetentionPolicy, type RetentionResult } from '../backup/catalog.js';
import { newBackupId } from '../backup/layout.js';
import type { BackupManifest } from '../backup/manifest.js';
import type { BackupFailureJson, BackupRunJson, BackupsJson } from '../api/index.js';

export class BackupInProgressError extends Error {
  readonly code = 'backup_in_progress';
}

export interface BackupRunnerOptions {
  store: RemoteStorage;
  tenantId: string;
  timelineId: string;
  pg: ConnInfo;
  /** PostgreSQL's bin directory (pg_basebackup), found when a backup starts, so a missing client fails that backup, not the proposer */
  binDir: () => string;
  log: Logger;
  onResult?: (ok: boolean, manifest?: BackupManifest) => void;
}

export class BackupRunner {
  private running: BackupRunJson | null = null;
  private lastFailure: BackupFailureJson | null = null;

  constructor(private readonly o: BackupRunnerOptions) {}

  /** Starts a backup and returns at once; the outcome shows in status(). */
  start(now = new Date()): BackupRunJson {
    if (this.running) throw new BackupInProgressError(`backup ${this.running.id} is still running (started ${this.running.started_at})`);
    const run = { id: newBackupId(now), started_at: now.toISOString() };
    this.running = run;
    const { store, tenantId, timelineId, pg, log } = this.o;
    Promise.resolve()
      .then(() => createBackup({ store, tenantId, timelineId, pg, binDir: this.o.binDir(), backupId: run.id, log: (line) => log.info(line) }))
      .then((m) => {
        log.info({ backup_id: m.backup_id, start_lsn: m.start_lsn, stop_lsn: m.stop_lsn, bytes: m.compressed_bytes }, 'base backup complete');
        this.o.onResult?.(true, m);
      })
      .catch((err: Error) => {
        this.lastFailure = { id: run.id, at: new Date().toISOString(), message: err.message, code: 'backup_failed' };
        log.error({ backup_id: run.id, err: err.message }, 'base backup failed');
        this.o.onResult?.(false);
      })
      .finally(() => {
        this.running = null;
      });
    return run;
  }

  async status(): Promise<BackupsJson> {
    const { complete, incomplete } = await listBackups(this.o.store, this.o.tenantId, this.o.timelineId);
    return {
      remote_storage: true,
      running: this.running,
      last_failure: this.lastFailure,
      backups: complete.map((m) => ({
        id: m.backup_id,
        start_lsn: m.start_lsn,
        stop_lsn: m.stop_lsn,
        start_time: m.start_time,
        stop_time: m.stop_time,
        size_bytes: m.compressed_bytes,
        pg_timeline: m.pg_timeline,
        pg_version_num: m.pg_version_num,
      })),
      incomplete: incomplete.length,
    };
  }

  /**
   * Applies a retention policy. `backupLsn` is the lowest backup LSN of the safekeepers (the
   * operator knows every member's): bucket WAL at or above it is left alone.
   */
  async retention(policy: RetentionPolicy, backupLsn?: string): Promise<RetentionResult> {
    validatePolicy(policy);
    if (this.running) throw new BackupInProgressError(`backup ${this.running.id} is running; apply the retention after it ends`);
    return applyRetention(this.o.store, this.o.tenantId, this.o.timelineId, { ...policy, ...(backupLsn !== undefined ? { backupLsn: parseLsn(backupLsn) } : {}) });
  }
}
