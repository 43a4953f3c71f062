import { parseSchedule, planBackup, type BackupPlanInput, type TenantBackupStatus } from '../../src/backup/schedule.js';
import type { BackupManifestJson, BackupsJson } from '@walkeeper/dataplane/api';

const t = (s: string) => new Date(s);
const none: BackupsJson = { remote_storage: true, running: null, last_failure: null, backups: [], incomplete: 0 };
const manifest = (id: string, stop: string): BackupManifestJson => ({ id, start_lsn: '0/2000028', stop_lsn: '0/2000100', start_time: stop, stop_time: stop, size_bytes: 4096, pg_timeline: 1, pg_version_num: 150004 });

function input(over: Partial<BackupPlanInput>): BackupPlanInput {
  return {
    spec: { schedule: '0 * * * *' },
    previous: undefined,
    createdAt: t('2026-12-03T09:30:00Z'),
    now: t('2026-12-03T10:00:00Z'),
    remoteStorage: true,
    computeStreaming: true,
    observed: { ok: true, value: none },
    ...over,
  };
}

describe('parseSchedule', () => {
  it.each([
    ['0 3 * * * *', 'expected five cron fields'],
    ['* * *', 'expected five cron fields'],
    ['61 * * * *', 'schedule "61 * * * *": Constraint error'],
    ['0 25 * * *', 'schedule "0 25 * * *"'],
    ['@sometimes', 'schedule "@sometimes"'],
  ])('refuses %j naming it', (expr, message) => {
    expect(() => parseSchedule(expr)).toThrow(message);
  });

  it('finds the latest slot at or before now and after since, in UTC', () => {
    const s = parseSchedule('0 * * * *');
    expect(s.dueSince(t('2026-12-03T10:00:00Z'), t('2026-12-03T10:59:59Z'))).toBeUndefined();
    expect(s.dueSince(t('2026-12-03T10:00:00Z'), t('2026-12-03T11:00:00Z'))).toEqual(t('2026-12-03T11:00:00Z'));
    expect(s.dueSince(t('2026-12-03T10:00:00Z'), t('2026-12-03T13:30:00Z'))).toEqual(t('2026-12-03T13:00:00Z'));
    expect(parseSchedule('@daily').next(t('2026-12-03T10:00:00Z'))).toEqual(t('2026-12-04T00:00:00Z'));
  });
});

describe('planBackup', () => {
  it('starts a due backup and records its slot', () => {
    const p = planBackup(input({}));
    expect(p.start).toBe(true);
    expect(p.status.lastScheduleTime).toBe('2026-12-03T10:00:00.000Z');
    expect(p.status.nextScheduleTime).toBe('2026-12-03T11:00:00.000Z');
    expect(p.events).toEqual([]);
  });

  it('does not start before the first slot after creation, nor twice for a slot', () => {
    expect(planBackup(input({ createdAt: t('2026-12-03T10:00:00Z') })).start).toBe(false);
    const first = planBackup(input({}));
    expect(planBackup(input({ previous: first.status, now: t('2026-12-03T10:40:00Z') })).start).toBe(false);
  });

  it('collapses missed slots into one run', () => {
    const p = planBackup(input({ previous: { lastScheduleTime: '2026-12-03T05:00:00.000Z' }, now: t('2026-12-03T10:20:00Z') }));
    expect(p.start).toBe(true);
    expect(p.status.lastScheduleTime).toBe('2026-12-03T10:00:00.000Z');
  });

  it('waits while a backup runs, and for suspend', () => {
    const running: BackupsJson = { ...none, running: { id: 'b1', started_at: '2026-12-03T09:59:00Z' } };
    const p = planBackup(input({ observed: { ok: true, value: running } }));
    expect(p.start).toBe(false);
    expect(p.status.running).toBe('b1');
    expect(planBackup(input({ spec: { schedule: '0 * * * *', suspend: true } })).start).toBe(false);
  });

  it.each([
    [{ remoteStorage: false }, 'NoRemoteStorage', 'no spec.remoteStorage'],
    [{ observed: { ok: false as const, error: 'connect ECONNREFUSED' } }, 'ProposerUnreachable', 'ECONNREFUSED'],
    [{ computeStreaming: false }, 'ComputeNotReady', 'not streaming'],
    [{ spec: { schedule: 'every day' } }, 'InvalidSchedule', 'schedule "every day"'],
  ])('reports why a due backup cannot start (%j), once', (over, reason, text) => {
    const p = planBackup(input(over as Partial<BackupPlanInput>));
    expect(p.start).toBe(false);
    expect(p.status.lastFailure).toMatchObject({ reason, time: '2026-12-03T10:00:00.000Z' });
    expect(p.status.lastFailure!.message).toContain(text);
    expect(p.events).toEqual([expect.objectContaining({ type: 'Warning', reason: 'BackupFailed' })]);
    const again = planBackup(input({ ...(over as Partial<BackupPlanInput>), previous: p.status, now: t('2026-12-03T10:05:00Z') }));
    expect(again.events).toEqual([]);
    expect(again.status.lastFailure).toEqual(p.status.lastFailure);
  });

  it('reports a completed backup once and asks for the retention', () => {
    const listed: BackupsJson = { ...none, backups: [manifest('b0', '2026-12-02T10:00:00Z'), manifest('b1', '2026-12-03T10:01:00Z')] };
    const prev: TenantBackupStatus = { lastScheduleTime: '2026-12-03T10:00:00.000Z', running: 'b1' };
    const p = planBackup(input({ previous: prev, now: t('2026-12-03T10:02:00Z'), observed: { ok: true, value: listed } }));
    expect(p.start).toBe(false);
    expect(p.retention).toBe(true);
    expect(p.status.running).toBeUndefined();
    expect(p.status.lastSuccessful).toMatchObject({ id: 'b1', stopLsn: '0/2000100', completedAt: '2026-12-03T10:01:00Z' });
    expect(p.status.firstRecoverablePoint).toEqual({ time: '2026-12-02T10:00:00Z', lsn: '0/2000100' });
    expect(p.status.backups).toBe(2);
    expect(p.events.map((e) => e.reason)).toEqual(['BackupSucceeded']);
    const again = planBackup(input({ previous: p.status, now: t('2026-12-03T10:03:00Z'), observed: { ok: true, value: listed } }));
    expect(again.events).toEqual([]);
    expect(again.retention).toBe(false);
  });

  it('tells a failed backup from one cut off by a restart', () => {
    const prev: TenantBackupStatus = { lastScheduleTime: '2026-12-03T10:00:00.000Z', running: 'b1' };
    const failed: BackupsJson = { ...none, last_failure: { id: 'b1', at: '2026-12-03T10:01:00Z', message: 'pg_basebackup exited 1: could not connect', code: 'pg_basebackup_failed' } };
    const p = planBackup(input({ previous: prev, now: t('2026-12-03T10:02:00Z'), observed: { ok: true, value: failed } }));
    expect(p.status.lastFailure).toMatchObject({ reason: 'BackupError', message: 'backup b1: pg_basebackup exited 1: could not connect' });
    const cut = planBackup(input({ previous: prev, now: t('2026-12-03T10:02:00Z'), observed: { ok: true, value: none } }));
    expect(cut.status.lastFailure).toMatchObject({ reason: 'Interrupted' });
    expect(cut.status.lastFailure!.message).toContain('b1');
  });

  it('starts at most one backup per slot over any sequence of passes (seeded)', () => {
    for (let seed = 1; seed <= 40; seed++) {
      let x = seed;
      const rand = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      let now = t('2026-12-03T09:30:00Z').getTime();
      let status: TenantBackupStatus | undefined;
      let running: string | null = null;
      const started: string[] = [];
      const done: BackupManifestJson[] = [];
      for (let pass = 0; pass < 60; pass++) {
        now += Math.floor(rand() * 50 * 60_000);
        if (running && rand() < 0.7) {
          done.push(manifest(running, new Date(now).toISOString()));
          running = null;
        }
        const observed = rand() < 0.1 ? { ok: false as const, error: 'timeout' } : { ok: true as const, value: { ...none, running: running ? { id: running, started_at: '' } : null, backups: [...done] } };
        const p = planBackup(input({ previous: status, now: new Date(now), observed, computeStreaming: rand() < 0.9 }));
        status = p.status;
        if (p.start) {
          expect(running).toBeNull();
          started.push(p.status.lastScheduleTime!);
          running = `b${started.length}`;
          status = { ...status, running };
        }
      }
      expect(new Set(started).size).toBe(started.length);
      expect([...started].sort()).toEqual(started);
    }
  });
});
