// The proposer's HTTP API: /v1/status (term, commit LSN, each safekeeper's state and flush
// LSN, quorum health), /metrics, /healthz, /readyz, and /v1/backups (base backups to the bucket).
import { timingSafeEqual } from 'node:crypto';
import type { Express, NextFunction, Request, Response } from 'express';
import { ApiError, badRequest, conflict } from './errors.js';
import { BackupInProgressError, type BackupRunner } from '../proposer/backupRunner.js';
import { Registry, Gauge, Counter, collectDefaultMetrics } from 'prom-client';
import { createApp, finishApp } from './server.js';
import type { Logger } from '../common/log.js';
import type { ApiErrorJson, BackupsJson, HealthJson, ProposerStatusJson, ReadyJson, RetentionJson, RetentionRequestJson } from '../api/index.js';

export class ProposerMetrics {
  readonly registry = new Registry();
  readonly walReceived = new Counter({ name: 'walkeeper_proposer_wal_received_bytes_total', help: 'WAL bytes received from PostgreSQL', registers: [this.registry] });
  readonly walSent = new Counter({ name: 'walkeeper_proposer_wal_sent_bytes_total', help: 'WAL bytes sent to safekeepers (all members)', registers: [this.registry] });
  readonly elections = new Counter({ name: 'walkeeper_proposer_elections_total', help: 'elections won', registers: [this.registry] });
  readonly commitLsn = new Gauge({ name: 'walkeeper_proposer_commit_lsn', help: 'quorum commit LSN (bytes)', registers: [this.registry] });
  readonly term = new Gauge({ name: 'walkeeper_proposer_term', help: 'current term', registers: [this.registry] });
  readonly quorumHealthy = new Gauge({ name: 'walkeeper_proposer_quorum_healthy', help: '1 when a majority of safekeepers is streaming', registers: [this.registry] });
  readonly connectedSafekeepers = new Gauge({ name: 'walkeeper_proposer_connected_safekeepers', help: 'safekeepers in streaming state', registers: [this.registry] });
  readonly backups = new Counter({ name: 'walkeeper_proposer_backups_total', help: 'base backups by result (success, failure)', labelNames: ['result'], registers: [this.registry] });
  readonly lastBackupSuccess = new Gauge({ name: 'walkeeper_proposer_last_backup_success_timestamp_seconds', help: 'when the last base backup completed (unix seconds)', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}

export interface ProposerApiOptions {
  /** base backups; absent without --remote-storage */
  backups?: BackupRunner;
  /**
   * The tenant token the proposer presents to the safekeepers: when set, requests that change
   * the bucket (start a backup, apply a retention) must present it too.
   */
  token?: string;
}

export function proposerApp(status: () => ProposerStatusJson, metrics: ProposerMetrics, log: Logger, opts: ProposerApiOptions = {}): Express {
  const app = createApp();
  const needToken = (req: Request, _res: Response, next: NextFunction) => {
    if (opts.token === undefined) return next();
    const given = /^Bearer (.+)$/.exec(req.get('authorization') ?? '')?.[1] ?? '';
    const a = Buffer.from(given);
    const b = Buffer.from(opts.token);
    if (a.length === b.length && timingSafeEqual(a, b)) return next();
    next(new ApiError(given ? 403 : 401, given ? 'forbidden' : 'unauthorized', given ? 'the token is not this tenant\'s' : 'this request needs the tenant token (Authorization: Bearer)'));
  };
  const runner = (): BackupRunner => {
    if (!opts.backups) throw new ApiError(503, 'no_remote_storage', 'the proposer runs without --remote-storage: there is no bucket to back up to');
    return opts.backups;
  };
  app.get('/v1/backups', async (_req, res) => {
    if (!opts.backups) {
      res.json({ remote_storage: false, running: null, last_failure: null, backups: [], incomplete: 0 } satisfies BackupsJson);
      return;
    }
    res.json(await opts.backups.status());
  });
  app.post('/v1/backups', needToken, (_req, res) => {
    try {
      res.status(202).json(runner().start());
    } catch (e) {
      if (e instanceof BackupInProgressError) throw conflict(e.code, e.message);
      throw e;
    }
  });
  app.post('/v1/backups/retention', needToken, async (req, res) => {
    const body = (req.body ?? {}) as { [K in keyof RetentionRequestJson]?: unknown };
    for (const k of ['keep', 'max_age_days'] as const) {
      if (body[k] !== undefined && typeof body[k] !== 'number') throw badRequest('bad_retention', `${k} must be a number, got ${JSON.stringify(body[k])}`);
    }
    if (body.backup_lsn !== undefined && typeof body.backup_lsn !== 'string') throw badRequest('bad_retention', `backup_lsn must be an LSN string such as "0/3000000"`);
    try {
      const r = await runner().retention({ keep: body.keep as number | undefined, maxAgeDays: body.max_age_days as number | undefined }, body.backup_lsn as string | undefined);
      log.info({ deleted_backups: r.deleted_backups, deleted_wal: r.deleted_wal.length, wal_horizon: r.wal_horizon }, 'backup retention applied');
      res.json({ deleted: r.deleted_backups, deleted_incomplete: r.deleted_incomplete, wal_objects_deleted: r.deleted_wal.length, wal_horizon: r.wal_horizon, kept: r.kept } satisfies RetentionJson);
    } catch (e) {
      if (e instanceof BackupInProgressError) throw conflict(e.code, e.message);
      if (e instanceof ApiError) throw e;
      if (/^invalid (keep|max age|LSN)|^retention needs/.test((e as Error).message)) throw badRequest('bad_retention', (e as Error).message);
      throw e;
    }
  });
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' } satisfies HealthJson);
  });
  app.get('/readyz', (_req, res) => {
    const s = status();
    if (s.quorum_healthy) res.json({ status: 'ready' } satisfies ReadyJson);
    else res.status(503).json({ error: `not ready: ${s.reason ?? s.state}`, code: 'quorum_unavailable' } satisfies ApiErrorJson);
  });
  app.get('/v1/status', (_req, res) => {
    res.json(status());
  });
  app.get('/metrics', async (_req, res) => {
    res.set('content-type', metrics.registry.contentType);
    res.send(await metrics.registry.metrics());
  });
  finishApp(app, log);
  return app;
}
