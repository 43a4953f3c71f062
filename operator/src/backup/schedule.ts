// Pure backup scheduling for a Tenant: when the next base backup is due, what the Tenant's
// status.backup says, and which Events a pass emits. The data plane (the proposer sidecar beside
// PostgreSQL) runs pg_basebackup and the retention; the operator only decides when.
import { CronExpressionParser } from 'cron-parser';
import type { TenantBackupSpec, TenantStatus } from '../api/schema.js';
import type { BackupsJson } from '@walkeeper/dataplane/api';

export type TenantBackupStatus = NonNullable<TenantStatus['backup']>;

export interface Schedule {
  /** The latest scheduled time at or before `now`, or undefined when none is after `since`. */
  dueSince(since: Date, now: Date): Date | undefined;
  next(after: Date): Date;
}

/**
 * Parses a schedule as a CronJob does: five fields (minute hour day-of-month month day-of-week) or
 * a macro such as @daily, in UTC. cron-parser also takes a seconds field; a backup schedule that
 * fires every second is a mistake, so six fields are refused.
 */
export function parseSchedule(expr: string): Schedule {
  const text = expr.trim();
  if (!text.startsWith('@') && text.split(/\s+/).length !== 5) {
    throw new Error(`schedule "${expr}": expected five cron fields (minute hour day-of-month month day-of-week) or a macro such as @daily`);
  }
  const parse = (currentDate: Date) => {
    try {
      return CronExpressionParser.parse(text, { currentDate, tz: 'UTC' });
    } catch (e) {
      throw new Error(`schedule "${expr}": ${(e as Error).message}`);
    }
  };
  parse(new Date(0));
  return {
    dueSince(since, now) {
      // prev() is strictly before its start point; start a millisecond late so `now` itself counts.
      const latest = parse(new Date(now.getTime() + 1)).prev().toDate();
      return latest.getTime() > since.getTime() ? latest : undefined;
    },
    next: (after) => parse(after).next().toDate(),
  };
}

export interface BackupPlanInput {
  spec: TenantBackupSpec;
  previous: TenantBackupStatus | undefined;
  /** The Tenant's creationTimestamp: a schedule never fires for times before the Tenant existed. */
  createdAt: Date;
  now: Date;
  remoteStorage: boolean;
  /** The proposer is streaming: PostgreSQL is up and is the primary the backup is taken from. */
  computeStreaming: boolean;
  /** What the proposer answered, or why it could not be asked. */
  observed: { ok: true; value: BackupsJson } | { ok: false; error: string };
}

export interface BackupEvent {
  type: 'Normal' | 'Warning';
  reason: 'BackupStarted' | 'BackupSucceeded' | 'BackupFailed';
  message: string;
}

export interface BackupPlan {
  status: TenantBackupStatus;
  /** Start a backup now (after `status` is written, so a crash cannot start one twice for a slot). */
  start: boolean;
  /** Apply the retention now (a backup just completed). */
  retention: boolean;
  events: BackupEvent[];
}

const iso = (d: Date) => d.toISOString();

export function planBackup(input: BackupPlanInput): BackupPlan {
  const { spec, previous, now } = input;
  const status: TenantBackupStatus = { ...(previous ?? {}) };
  const events: BackupEvent[] = [];
  let retention = false;
  const fail = (reason: string, message: string) => {
    const changed = previous?.lastFailure?.reason !== reason || previous.lastFailure.message !== message;
    status.lastFailure = changed ? { time: iso(now), reason, message } : previous!.lastFailure!;
    if (changed) events.push({ type: 'Warning', reason: 'BackupFailed', message });
  };

  let schedule: Schedule;
  try {
    schedule = parseSchedule(spec.schedule);
  } catch (e) {
    delete status.nextScheduleTime;
    fail('InvalidSchedule', (e as Error).message);
    return { status, start: false, retention: false, events };
  }
  status.nextScheduleTime = iso(schedule.next(now));

  if (input.observed.ok) {
    const seen = input.observed.value;
    const newest = seen.backups.at(-1);
    const oldest = seen.backups[0];
    status.backups = seen.backups.length;
    if (oldest) status.firstRecoverablePoint = { time: oldest.stop_time, lsn: oldest.stop_lsn };
    else delete status.firstRecoverablePoint;
    if (newest && newest.id !== previous?.lastSuccessful?.id) {
      status.lastSuccessful = { id: newest.id, startLsn: newest.start_lsn, stopLsn: newest.stop_lsn, completedAt: newest.stop_time, sizeBytes: newest.size_bytes };
      events.push({ type: 'Normal', reason: 'BackupSucceeded', message: `backup ${newest.id} complete: ${newest.start_lsn}..${newest.stop_lsn}, ${newest.size_bytes} bytes` });
      retention = true;
    }
    // A backup the operator saw running that neither completed nor failed by the data plane's
    // account was cut off (the proposer restarted): its parts stay incomplete in the bucket.
    const wasRunning = previous?.running;
    if (wasRunning && seen.running?.id !== wasRunning && !seen.backups.some((b) => b.id === wasRunning)) {
      if (seen.last_failure?.id === wasRunning) fail('BackupError', `backup ${wasRunning}: ${seen.last_failure.message}`);
      else fail('Interrupted', `backup ${wasRunning} did not complete (the proposer restarted during it); it is left incomplete and never used`);
    }
    if (seen.running) status.running = seen.running.id;
    else delete status.running;
  }

  let start = false;
  const slot = spec.suspend ? undefined : schedule.dueSince(new Date(Math.max(input.createdAt.getTime(), Date.parse(previous?.lastScheduleTime ?? '') || 0)), now);
  if (slot && status.running === undefined) {
    if (!input.remoteStorage) fail('NoRemoteStorage', 'the Safekeeper has no spec.remoteStorage: backups need a bucket');
    else if (!input.observed.ok) fail('ProposerUnreachable', `cannot start the backup due at ${iso(slot)}: ${input.observed.error}`);
    else if (!input.computeStreaming) fail('ComputeNotReady', `cannot start the backup due at ${iso(slot)}: the compute is not streaming`);
    else {
      // Missed slots collapse into one run, as a CronJob without a deadline does.
      status.lastScheduleTime = iso(slot);
      start = true;
    }
  }
  return { status, start, retention, events };
}
