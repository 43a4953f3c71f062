// `walkeeper safekeeper`: loads every timeline (recovering the end of WAL) before it
// accepts connections, then serves proposers and readers on the Postgres-protocol port and
// the HTTP API beside it. An fsync failure ends the process, as PostgreSQL does.
import { createServer, type Server } from 'node:net';
import { hostname } from 'node:os';
import { mkdirSync, readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import { createLogger, type LogFormat } from '../common/log.js';
import { Authenticator, loadPublicKey } from '../auth/jwt.js';
import { SafekeeperMetrics } from './metrics.js';
import { listen, splitHostPort } from '../http/server.js';
import { safekeeperApp } from '../http/safekeeperApi.js';
import { DEFAULT_MAX_RECYCLED_SEGMENTS, Registry } from './registry.js';
import { PgConnection } from './connection.js';
import type { SafekeeperContext } from './context.js';
import { stopOnSignals } from '../common/shutdown.js';
import { parseSizeFlag } from '../common/size.js';
import { openRemoteStorage } from '../remote/url.js';
import { remoteStorageConfig, type RemoteStorageFlags } from '../cli/remoteStorageFlags.js';
import { WalBackup } from './walBackup.js';
import { parseIntFlag } from '../cli/flags.js';
import { parsePercent, parsePgSize } from '../common/size.js';
import { DiskSpace } from '../storage/diskSpace.js';
import type { WalStoreOptions } from '../storage/walStore.js';

/** `--remote-storage`: offload WAL to the bucket (and read removed WAL back from it). */
export interface SafekeeperOptions extends RemoteStorageFlags {
  id?: string;
  idFromHostname?: boolean;
  datadir: string;
  listenPg: string;
  listenHttp: string;
  authPublicKey?: string;
  /** PEM certificate (chain) and key: both ports then require TLS */
  tlsCert?: string;
  tlsKey?: string;
  logFormat: string;
  /** PostgreSQL size (`64MB`, `1GB`) or -1 (unlimited, the default) */
  maxSlotWalKeepSize?: string;
  /** cluster size N (member ids 1..N), for choosing each timeline's uploader */
  remoteStorageMembers?: string;
  /** ms a non-designated member waits (per rank) before uploading a segment missing from the bucket */
  remoteStorageGraceMs?: string;
  /** WAL always kept below the commit LSN, PostgreSQL units (--wal-keep-size) */
  walKeepSize?: string;
  /** disk use ratio reported as nearly full (--disk-high-water, e.g. 90%) */
  diskHighWater?: string;
  /** space held back for removal on a full disk (--disk-reserve) */
  diskReserve?: string;
  /** removed segment files kept per timeline for reuse (--max-recycled-segments; 0 = off) */
  maxRecycledSegments?: string;
}

/** Defaults of the WAL lifecycle flags (docs/operations.md explains them). */
export const DEFAULT_WAL_KEEP_SIZE = '256MB';
export const DEFAULT_DISK_HIGH_WATER = '90%';
export const DEFAULT_DISK_RESERVE = '4MB';
export { DEFAULT_MAX_RECYCLED_SEGMENTS };

/** The safekeeper id: --id, or the StatefulSet ordinal of the hostname plus one. */
export function resolveNodeId(opts: Pick<SafekeeperOptions, 'id' | 'idFromHostname'>, host = hostname()): number {
  if (opts.id !== undefined && opts.id !== '') {
    const id = Number(opts.id);
    if (!Number.isInteger(id) || id < 1 || id > 2 ** 31) throw new Error(`invalid --id "${opts.id}": expected a positive integer`);
    return id;
  }
  if (opts.idFromHostname) {
    const m = /-(\d+)$/.exec(host.split('.')[0]);
    if (!m) throw new Error(`--id-from-hostname: hostname "${host}" does not end in -<ordinal>`);
    return Number(m[1]) + 1;
  }
  throw new Error('a safekeeper needs an id: pass --id N (or --id-from-hostname in a StatefulSet)');
}

/**
 * Test hooks a tool injects when it starts a safekeeper in-process (testkit's
 * walkeeper-with-hooks entrypoint); the product itself never sets them.
 */
export interface SafekeeperHooks {
  /** called before every WAL/control-file fsync; throwing fails that fsync */
  fsyncHook?: WalStoreOptions['fsyncHook'];
}

export interface RunningSafekeeper {
  ctx: SafekeeperContext;
  pgAddress: string;
  httpAddress: string;
  stop(): Promise<void>;
}

export async function startSafekeeper(opts: SafekeeperOptions, hooks: SafekeeperHooks = {}): Promise<RunningSafekeeper> {
  const nodeId = resolveNodeId(opts);
  const log = createLogger({ name: `safekeeper-${nodeId}`, format: opts.logFormat as LogFormat });
  splitHostPort(opts.listenPg);
  mkdirSync(opts.datadir, { recursive: true });
  const auth = opts.authPublicKey ? new Authenticator(loadPublicKey(opts.authPublicKey)) : undefined;
  const tlsFiles = loadTlsFiles(opts);
  const tls = tlsFiles?.context;
  // A URL or option that does not parse is a typo in the configuration: refuse to start. A
  // store that parses but is unreachable or refuses is reported (log, status) and re-checked,
  // while the safekeeper serves commits (see walBackup.ts).
  const remoteConfig = remoteStorageConfig(opts);
  const remoteMembers = parseIntFlag('remote-storage-members', opts.remoteStorageMembers ?? '3', 1, 7);
  const remoteGraceMs = parseIntFlag('remote-storage-grace-ms', opts.remoteStorageGraceMs ?? '30000', 0, 24 * 3600 * 1000);
  const maxRecycledSegments = parseIntFlag('max-recycled-segments', opts.maxRecycledSegments ?? String(DEFAULT_MAX_RECYCLED_SEGMENTS), 0, 1024);
  const walKeepSize = parsePgSize(opts.walKeepSize ?? DEFAULT_WAL_KEEP_SIZE, '--wal-keep-size', 'MB');
  const disk = new DiskSpace({
    datadir: opts.datadir,
    highWater: parsePercent(opts.diskHighWater ?? DEFAULT_DISK_HIGH_WATER, '--disk-high-water'),
    reserveBytes: Number(parsePgSize(opts.diskReserve ?? DEFAULT_DISK_RESERVE, '--disk-reserve')),
  });

  let ready = false;
  // The registry is created first and loaded after the HTTP listener is up, so liveness
  // answers while a large data directory is being recovered.
  const maxSlotWalKeepSize = parseSizeFlag('max-slot-wal-keep-size', opts.maxSlotWalKeepSize ?? '-1', { allowUnlimited: true });
  const registry = new Registry(opts.datadir, log, nodeId, { maxSlotWalKeepSize, fsyncHook: hooks.fsyncHook }, {
    walKeepSize,
    // With remote storage, the bucket (backup LSN) holds WAL instead of the slowest peer.
    remoteStorageEnabled: remoteConfig !== undefined,
    slots: (tl) => tl.slots.holdingLsns(),
    disk,
    maxRecycledSegments,
  });
  await registry.layout.pinNodeId(nodeId);
  // Before any WAL: a full disk must find the reserve there to give back.
  if (!(await disk.ensureReserve())) log.warn({ path: disk.reservePath }, 'disk reserve file could not be created (disk full or past its high-water mark); will retry');
  const metrics = new SafekeeperMetrics(registry);
  metrics.attachDisk(disk);
  const ctx: SafekeeperContext = { nodeId, registry, auth, tls, log, metrics, disk };
  registry.attachMetrics(metrics);
  registry.onFatal((err) => {
    log.fatal({ err: err.message }, 'storage failed; exiting so that no unflushed WAL is ever acknowledged');
    process.exit(70);
  });

  const http = await listen(safekeeperApp(ctx, { ready: () => ready, startedAt: Date.now() }), opts.listenHttp, tlsFiles);
  const loaded = await registry.load();
  log.info({ timelines: loaded, datadir: opts.datadir }, 'storage loaded');
  if (remoteConfig) {
    const walBackup = new WalBackup(registry, { store: await openRemoteStorage(remoteConfig), nodeId, members: remoteMembers, graceMs: remoteGraceMs, log, metrics });
    ctx.walBackup = walBackup;
    metrics.attachOffload(walBackup);
    await walBackup.start();
  } else {
    log.info('no --remote-storage: WAL is not offloaded');
  }

  const connections = new Set<PgConnection>();
  const pgServer: Server = createServer((socket) => {
    const conn = new PgConnection(socket, ctx);
    connections.add(conn);
    socket.on('close', () => connections.delete(conn));
  });
  const { host, port } = splitHostPort(opts.listenPg);
  await new Promise<void>((resolve, reject) => {
    pgServer.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? new Error(`cannot listen on ${opts.listenPg}: address already in use`) : err));
    pgServer.listen(port, host, () => resolve());
  });
  ready = true;
  const pgAddr = pgServer.address() as { address: string; port: number };
  log.info({ id: nodeId, listen_pg: `${pgAddr.address}:${pgAddr.port}`, listen_http: `${http.address.address}:${http.address.port}`, auth: auth !== undefined, tls: tls !== undefined }, 'safekeeper ready');

  return {
    ctx,
    pgAddress: `${pgAddr.address}:${pgAddr.port}`,
    httpAddress: `${http.address.address}:${http.address.port}`,
    async stop() {
      ready = false;
      pgServer.close();
      for (const c of connections) c.close();
      await ctx.walBackup?.stop();
      await registry.close();
      await new Promise<void>((resolve) => http.server.close(() => resolve()));
      http.server.closeAllConnections?.();
    },
  };
}

/** Reads --tls-cert and --tls-key; both or neither. */
function loadTlsFiles(opts: Pick<SafekeeperOptions, 'tlsCert' | 'tlsKey'>): { cert: Buffer; key: Buffer; context: SecureContext } | undefined {
  if (!opts.tlsCert && !opts.tlsKey) return undefined;
  if (!opts.tlsCert || !opts.tlsKey) throw new Error('--tls-cert and --tls-key go together: pass both (PEM certificate and its private key) or neither');
  const read = (flagName: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`cannot read ${flagName} ${file}: ${(err as Error).message}`);
    }
  };
  const files = { cert: read('--tls-cert', opts.tlsCert), key: read('--tls-key', opts.tlsKey) };
  try {
    return { ...files, context: createSecureContext(files) };
  } catch (err) {
    throw new Error(`invalid TLS certificate or key (${opts.tlsCert}, ${opts.tlsKey}): ${(err as Error).message}`);
  }
}

export async function runSafekeeper(opts: SafekeeperOptions, hooks: SafekeeperHooks = {}): Promise<void> {
  const sk = await startSafekeeper(opts, hooks);
  stopOnSignals(() => sk.stop(), sk.ctx.log);
}
