// `walkeeper proposer`: the sidecar beside a PostgreSQL primary.
import { readFileSync } from 'node:fs';
import { createLogger, type LogFormat } from '../common/log.js';
import { parseConnInfo } from '../common/conninfo.js';
import { assertValidId } from '../common/ids.js';
import { listen } from '../http/server.js';
import { proposerApp, ProposerMetrics } from '../http/proposerApi.js';
import { parseSafekeeperList } from './safekeeperLink.js';
import { ProposerService } from './service.js';
import { stopOnSignals } from '../common/shutdown.js';
import { remoteStorageConfig, type RemoteStorageFlags } from '../cli/remoteStorageFlags.js';
import { openRemoteStorage } from '../remote/url.js';
import { findPgClientBinDir } from '../local/postgres.js';
import { BackupRunner } from './backupRunner.js';
import type { ProposerHooks } from './termRun.js';
export type { ProposerHooks } from './termRun.js';

/** `--remote-storage`: the bucket base backups go to (POST /v1/backups). */
export interface ProposerOptions extends RemoteStorageFlags {
  pg?: string;
  safekeepers?: string;
  tenant?: string;
  timeline?: string;
  listenHttp: string;
  authToken?: string;
  /** PEM CA: connect to the safekeepers over TLS and verify their certificates against it */
  tlsCa?: string;
  /** failover mode: the PostgreSQL may be a standby to promote (failover.ts) */
  promote?: boolean;
  logFormat: string;
}

/** Starts the proposer; `hooks` are test-only behaviours a test tool injects (never the environment). */
export async function startProposer(opts: ProposerOptions, hooks: ProposerHooks = {}) {
  if (!opts.pg) throw new Error('missing --pg: the connection string of the PostgreSQL primary');
  if (!opts.safekeepers) throw new Error('missing --safekeepers: host:port,host:port,... of the safekeepers');
  assertValidId('tenant_id', opts.tenant);
  assertValidId('timeline_id', opts.timeline);
  const log = createLogger({ name: 'proposer', format: opts.logFormat as LogFormat });
  const pg = parseConnInfo(opts.pg);
  const targets = parseSafekeeperList(opts.safekeepers, opts.tenant, opts.timeline, opts.authToken);
  if (opts.tlsCa) {
    let ca: Buffer;
    try {
      ca = readFileSync(opts.tlsCa);
    } catch (err) {
      throw new Error(`cannot read --tls-ca ${opts.tlsCa}: ${(err as Error).message}`);
    }
    for (const t of targets) t.tls = { ca };
  }
  const metrics = new ProposerMetrics();
  const service = new ProposerService({ pg, targets, tenantId: opts.tenant, timelineId: opts.timeline, log, metrics, promote: opts.promote === true, hooks });
  // A bucket URL that does not parse refuses the start; one that cannot be reached fails each
  // backup with the store's answer, and commits never wait for it.
  const remote = remoteStorageConfig(opts);
  const store = remote ? await openRemoteStorage(remote) : undefined;
  const backups = store
    ? new BackupRunner({
        store, tenantId: opts.tenant, timelineId: opts.timeline, pg, binDir: () => findPgClientBinDir(), log,
        onResult: (ok) => {
          metrics.backups.inc({ result: ok ? 'success' : 'failure' });
          if (ok) metrics.lastBackupSuccess.set(Date.now() / 1000);
        },
      })
    : undefined;
  const http = await listen(proposerApp(() => service.status(), metrics, log, { backups, token: opts.authToken }), opts.listenHttp);
  service.start();
  log.info({ safekeepers: targets.map((t) => t.address), postgres: `${pg.host}:${pg.port}`, listen_http: opts.listenHttp, tls: opts.tlsCa !== undefined, promote: opts.promote === true }, 'proposer started');
  return {
    service,
    log,
    async stop() {
      await service.stop();
      await store?.close();
      await new Promise<void>((resolve) => http.server.close(() => resolve()));
      http.server.closeAllConnections?.();
    },
  };
}

/** Runs the proposer until a signal stops it, with test hooks injected by a test tool. */
export async function runProposer(opts: ProposerOptions, hooks: ProposerHooks = {}): Promise<void> {
  const p = await startProposer(opts, hooks);
  stopOnSignals(() => p.stop(), p.log);
}

