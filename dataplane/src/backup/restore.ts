// Rebuilds a PostgreSQL data directory from the bucket: the newest complete base backup
// before the target, verified (manifest, PostgreSQL version, every part's checksum, the
// system identifier in the extracted pg_control) and extracted into a staging directory
// beside the target, which is renamed into place only when all of it checked out. The
// result is configured as a standby that fetches WAL from the bucket (restore_command) and
// then streams the tail from the safekeepers (primary_conninfo); for a point in time it
// stops there and promotes. PostgreSQL does the replay; this never runs it.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, existsSync, readdirSync, renameSync, rmSync, appendFileSync, writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { assertValidId } from '../common/ids.js';
import { formatLsn, parseLsn, type Lsn } from '../common/lsn.js';
import type { RunAs } from '../local/postgres.js';
import type { RemoteStorage } from '../remote/remoteStorage.js';
import { connectPg } from '../protocol/pgClient.js';
import { listBackups } from './catalog.js';
import { backupPrefix } from './layout.js';
import { pgMajorOf, type BackupManifest } from './manifest.js';

export type RestoreTarget = { kind: 'latest' } | { kind: 'time'; time: Date } | { kind: 'lsn'; lsn: Lsn };

export interface RestoreOptions {
  store: RemoteStorage;
  tenantId: string;
  timelineId: string;
  datadir: string;
  target: RestoreTarget;
  /** major version of the PostgreSQL server that will run the restored directory */
  pgMajor: number;
  /** safekeepers' Postgres-protocol addresses host:port: the tail after the bucket streams from them */
  safekeepers: string[];
  /**
   * restore_command PostgreSQL runs for each WAL file (%f, %p), e.g. `walkeeper wal-fetch ...`.
   * Without one the standby streams all of its WAL from the safekeepers, which read what they
   * removed back from the bucket (a stock postgres image has no walkeeper to run).
   */
  restoreCommand?: string;
  /** the tenant's token, for safekeepers that require one (the password of their replication connections) */
  token?: string;
  /** replace a non-empty datadir */
  force?: boolean;
  runAs?: RunAs;
  now?: Date;
  log?: (line: string) => void;
}

export interface RestorePlan {
  backup: BackupManifest;
  datadir: string;
  target: string;
  /** standby that the proposer started with --promote turns into the primary (latest), or one that promotes itself at the target */
  promote: 'by-proposer' | 'at-target';
}

export class RestoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RestoreError';
  }
}

export function describeTarget(t: RestoreTarget): string {
  return t.kind === 'latest' ? 'latest' : t.kind === 'time' ? `time ${t.time.toISOString()}` : `LSN ${formatLsn(t.lsn)}`;
}

/** The newest complete backup that is consistent (stop point) at or before the target. */
export function chooseBackup(complete: BackupManifest[], target: RestoreTarget, where: string): BackupManifest {
  if (complete.length === 0) throw new RestoreError(`no complete base backup in ${where}: take one with "backup create"`);
  const fits = complete.filter((m) => target.kind === 'latest' || (target.kind === 'time' ? Date.parse(m.stop_time) <= target.time.getTime() : parseLsn(m.stop_lsn) <= target.lsn));
  if (fits.length === 0) {
    const oldest = complete[0];
    throw new RestoreError(`target ${describeTarget(target)} is before the oldest base backup in ${where} (${oldest.backup_id}, consistent from ${oldest.stop_time} at LSN ${oldest.stop_lsn}): nothing to restore from`);
  }
  return fits[fits.length - 1];
}

/** Checks what can be checked without downloading; nothing is touched. */
export async function planRestore(o: RestoreOptions): Promise<RestorePlan> {
  assertValidId('tenant_id', o.tenantId);
  assertValidId('timeline_id', o.timelineId);
  const where = `${o.store.url} for tenant ${o.tenantId} timeline ${o.timelineId}`;
  const now = o.now ?? new Date();
  if (o.target.kind === 'time' && o.target.time.getTime() > now.getTime()) {
    throw new RestoreError(`target time ${o.target.time.toISOString()} is after the newest WAL: it is in the future (now ${now.toISOString()})`);
  }
  if (o.safekeepers.length === 0) throw new RestoreError('no safekeepers given (--safekeepers host:port,...): the WAL after the bucket streams from them');
  const quorum = await identifyTimeline(o.safekeepers, o.tenantId, o.timelineId, o.token);
  if (o.target.kind === 'lsn' && o.target.lsn > quorum.commitLsn) {
    throw new RestoreError(`target LSN ${formatLsn(o.target.lsn)} is after the newest WAL: the safekeepers have committed up to ${formatLsn(quorum.commitLsn)}`);
  }
  const { complete, incomplete } = await listBackups(o.store, o.tenantId, o.timelineId);
  const backup = chooseBackup(complete, o.target, incomplete.length ? `${where} (incomplete, not used: ${incomplete.map((b) => `${b.backup_id}: ${b.reason}`).join('; ')})` : where);
  if (quorum.systemId !== '0' && backup.system_identifier !== quorum.systemId) {
    throw new RestoreError(`base backup ${backup.backup_id} is of PostgreSQL system ${backup.system_identifier}, but the safekeepers' timeline ${o.timelineId} holds WAL of system ${quorum.systemId}: the bucket or the tenant/timeline is not the one these safekeepers serve`);
  }
  if (pgMajorOf(backup.pg_version_num) !== o.pgMajor) {
    throw new RestoreError(`base backup ${backup.backup_id} is of PostgreSQL ${pgMajorOf(backup.pg_version_num)} (server_version_num ${backup.pg_version_num}), but the server to run it is PostgreSQL ${o.pgMajor}: restore with PostgreSQL ${pgMajorOf(backup.pg_version_num)}`);
  }
  if (existsSync(o.datadir) && readdirSync(o.datadir).length > 0 && !o.force) {
    throw new RestoreError(`data directory ${o.datadir} is not empty: restore into an empty or absent directory, or pass --force to replace it`);
  }
  for (const p of backup.parts) {
    const info = await o.store.head(backupPrefix(o.tenantId, o.timelineId, backup.backup_id) + p.name);
    if (!info) throw new RestoreError(`base backup ${backup.backup_id} is damaged: part ${p.name} is missing from ${o.store.url}`);
    if (info.sha256 !== p.sha256 || info.size !== p.size) {
      throw new RestoreError(`base backup ${backup.backup_id} is damaged: part ${p.name} has sha256 ${info.sha256} and ${info.size} bytes, the manifest says ${p.sha256} and ${p.size} bytes`);
    }
  }
  return { backup, datadir: o.datadir, target: describeTarget(o.target), promote: o.target.kind === 'latest' ? 'by-proposer' : 'at-target' };
}

export interface TimelineIdentity {
  systemId: string;
  pgTimeline: number;
  /** the highest commit LSN any reachable safekeeper reports */
  commitLsn: Lsn;
}

/** IDENTIFY_SYSTEM on every safekeeper (a replication connection, as a standby makes); one must answer. */
export async function identifyTimeline(safekeepers: string[], tenantId: string, timelineId: string, token?: string): Promise<TimelineIdentity> {
  let best: TimelineIdentity | undefined;
  const errors: string[] = [];
  for (const addr of safekeepers) {
    const [host, port] = splitHostPort(addr);
    try {
      const c = await connectPg({ host, port, user: 'postgres', replication: 'true', options: `-c tenant_id=${tenantId} -c timeline_id=${timelineId}`, password: token, connectTimeoutMs: 5000 });
      try {
        const row = (await c.query('IDENTIFY_SYSTEM')).rows[0];
        const id = { systemId: String(row[0]), pgTimeline: Number(row[1]), commitLsn: parseLsn(String(row[2])) };
        if (!best || id.commitLsn > best.commitLsn) best = id;
      } finally {
        await c.close();
      }
    } catch (err) {
      errors.push(`${addr}: ${(err as Error).message}`);
    }
  }
  if (!best) throw new RestoreError(`no safekeeper answered for tenant ${tenantId} timeline ${timelineId}: ${errors.join('; ')}`);
  return best;
}

function splitHostPort(s: string): [string, number] {
  const i = s.lastIndexOf(':');
  if (i <= 0 || !/^\d+$/.test(s.slice(i + 1))) throw new RestoreError(`invalid safekeeper address "${s}": expected host:port`);
  return [s.slice(0, i), Number(s.slice(i + 1))];
}

/** libpq multi-host conninfo: the standby tries each safekeeper in turn. */
export function safekeepersConnInfo(safekeepers: string[], tenantId: string, timelineId: string, applicationName: string, token?: string): string {
  const hosts = safekeepers.map(splitHostPort);
  // the token is a JWT (base64url and dots): no quoting needed inside the conninfo
  const password = token ? ` password=${token}` : '';
  return `host=${hosts.map((h) => h[0]).join(',')} port=${hosts.map((h) => h[1]).join(',')} user=postgres${password} application_name=${applicationName} options='-c tenant_id=${tenantId} -c timeline_id=${timelineId}'`;
}

const quote = (v: string) => `'${v.replace(/'/g, "''")}'`;

export async function restoreBackup(o: RestoreOptions): Promise<RestorePlan> {
  const log = o.log ?? (() => {});
  const plan = await planRestore(o);
  const { backup } = plan;
  const parent = dirname(o.datadir);
  mkdirSync(parent, { recursive: true });
  const staging = join(parent, `.${basename(o.datadir)}.restoring`);
  rmSync(staging, { recursive: true, force: true }); // a restore killed earlier left it
  mkdirSync(staging, { mode: 0o700 });
  if (o.runAs) chownSync(staging, o.runAs.uid, o.runAs.gid);
  try {
    log(`restore: base backup ${backup.backup_id} (${backup.parts.length} part(s), ${backup.compressed_bytes} bytes) into ${staging}`);
    await extractParts(o, backup, staging);
    const sysid = controlSystemIdentifier(staging);
    if (sysid !== backup.system_identifier) {
      throw new RestoreError(`base backup ${backup.backup_id}: the extracted pg_control has system identifier ${sysid}, the manifest says ${backup.system_identifier}`);
    }
    configureRecovery(o, staging);
    if (existsSync(o.datadir)) rmSync(o.datadir, { recursive: true, force: true });
    renameSync(staging, o.datadir);
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  log(`restore: ${o.datadir} holds base backup ${backup.backup_id}, configured to recover to ${plan.target}`);
  return plan;
}

/** What bootstrapping a compute's data directory did. */
export type BootstrapOutcome =
  /** the directory already holds a cluster: PostgreSQL starts on it as it is */
  | { kind: 'existing' }
  /** the safekeepers never saw a system on this timeline and there is no backup: initdb may run */
  | { kind: 'fresh' }
  | { kind: 'restored'; plan: RestorePlan }
  /** an empty timeline forked from another tenant's timeline at a point (Tenant spec.bootstrap.recovery) */
  | { kind: 'recovered'; plan: RestorePlan; source: RecoverySource };

/** Another timeline whose backups and WAL a new, empty timeline starts from. */
export interface RecoverySource {
  tenantId: string;
  timelineId: string;
  /**
   * A time or an LSN, never latest: a standby following a live source has no end to promote
   * at. PostgreSQL stops at the first commit after the time (first record at or after the LSN),
   * so the target must lie before the source's last commit; past it the copy waits in recovery.
   */
  target: RestoreTarget;
  /** the source tenant's token, when the safekeepers require one */
  token?: string;
  /** restore_command fetching the source's WAL from the bucket */
  restoreCommand?: string;
}

/**
 * The compute's start when its volume may be new (a deleted PVC, an empty disk): an empty data
 * directory is rebuilt from the newest backup to the quorum's latest commit instead of being
 * handed to initdb, because a new system's WAL would be refused by the safekeepers and every
 * acknowledged commit would be stranded on them. Only a timeline that never held a system gets
 * initdb.
 */
export async function bootstrapDataDir(o: RestoreOptions & { recoverFrom?: RecoverySource }): Promise<BootstrapOutcome> {
  if (existsSync(join(o.datadir, 'PG_VERSION'))) return { kind: 'existing' };
  if (existsSync(o.datadir) && readdirSync(o.datadir).length > 0) {
    throw new RestoreError(`data directory ${o.datadir} is not empty but holds no PostgreSQL cluster (no PG_VERSION): an interrupted initdb or copy left it; remove its contents to let the restore rebuild it`);
  }
  const identity = await identifyTimeline(o.safekeepers, o.tenantId, o.timelineId, o.token);
  // Once the fork has written to its own timeline, that timeline is what a lost volume is rebuilt from.
  if (identity.systemId === '0' && o.recoverFrom) return recoverFromSource(o, o.recoverFrom);
  const { complete } = await listBackups(o.store, o.tenantId, o.timelineId);
  if (complete.length === 0) {
    if (identity.systemId === '0') return { kind: 'fresh' };
    throw new RestoreError(
      `data directory ${o.datadir} is empty, and the safekeepers hold WAL of PostgreSQL system ${identity.systemId} up to ${formatLsn(identity.commitLsn)} on timeline ${o.timelineId}, ` +
        `but ${o.store.url} has no complete base backup of it: the data directory cannot be rebuilt, and initdb would start a new system the safekeepers refuse. Restore a copy of the old volume, or take base backups (spec.backup) before a volume is lost`,
    );
  }
  return { kind: 'restored', plan: await restoreBackup({ ...o, target: { kind: 'latest' } }) };
}

/**
 * The data directory of a new timeline rebuilt from another's backup and WAL up to a point.
 * PostgreSQL replays the source's WAL (bucket, then the source's safekeepers), stops at the
 * point and promotes itself onto a new PostgreSQL timeline; its proposer then starts this
 * (empty) timeline with the promoted server's WAL. The source is only read.
 */
async function recoverFromSource(o: RestoreOptions, src: RecoverySource): Promise<BootstrapOutcome> {
  const target = src.target;
  if (target.kind === 'latest') throw new RestoreError(`a recovery from tenant ${src.tenantId} timeline ${src.timelineId} needs a target time or LSN: a copy following the source's latest WAL would never promote`);
  o.log?.(`restore: timeline ${o.timelineId} is empty: recovering from tenant ${src.tenantId} timeline ${src.timelineId} to ${describeTarget(target)}`);
  const plan = await restoreBackup({ ...o, tenantId: src.tenantId, timelineId: src.timelineId, token: src.token, restoreCommand: src.restoreCommand, target });
  return { kind: 'recovered', plan, source: src };
}

/** Streams every part, verified against the manifest, through gunzip into tar -x. */
async function extractParts(o: RestoreOptions, backup: BackupManifest, dir: string): Promise<void> {
  const tar = spawn('tar', ['-x', '-f', '-', '-C', dir], { stdio: ['pipe', 'ignore', 'pipe'], uid: o.runAs?.uid, gid: o.runAs?.gid, cwd: '/' });
  let stderr = '';
  tar.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((resolve, reject) => {
    tar.once('error', reject);
    tar.once('close', resolve);
  });
  exited.catch(() => undefined);
  // tar exiting early (a directory it may not enter, a full disk) is reported with its own words below
  tar.stdin.on('error', () => undefined);
  const gunzip = createGunzip();
  gunzip.pipe(tar.stdin);
  const gunzipDone = new Promise<void>((resolve, reject) => {
    gunzip.once('end', resolve);
    gunzip.once('error', (err) => reject(new RestoreError(`base backup ${backup.backup_id} does not decompress: ${err.message}`)));
  });
  gunzipDone.catch(() => undefined);
  try {
    for (const p of backup.parts) {
      const key = backupPrefix(o.tenantId, o.timelineId, backup.backup_id) + p.name;
      const body = await o.store.get(key).catch((err: Error) => {
        throw new RestoreError(`base backup ${backup.backup_id} is damaged: part ${p.name}: ${err.message}`);
      });
      if (!body) throw new RestoreError(`base backup ${backup.backup_id} is damaged: part ${p.name} is missing from ${o.store.url}`);
      const sha = createHash('sha256').update(body).digest('hex');
      if (sha !== p.sha256) throw new RestoreError(`base backup ${backup.backup_id} is damaged: part ${p.name} has sha256 ${sha}, the manifest says ${p.sha256}`);
      if (tar.exitCode !== null) break;
      if (!gunzip.write(body)) await new Promise((r) => gunzip.once('drain', r));
    }
    gunzip.end();
    const code = await exited;
    if (code === 0) await gunzipDone;
    if (code !== 0) throw new RestoreError(`tar -x of base backup ${backup.backup_id} failed (exit ${code}): ${stderr.trim()}`);
  } catch (err) {
    tar.kill('SIGKILL');
    throw err;
  }
}

/**
 * The system identifier from global/pg_control: ControlFileData's first field, a uint64 in the
 * server's byte order (little-endian on every platform we run on). Read directly, because the
 * client-tools image that restores has no pg_controldata.
 */
export function controlSystemIdentifier(dataDir: string): string {
  const file = join(dataDir, 'global', 'pg_control');
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new RestoreError(`the restored directory has no readable ${file}: ${(err as Error).message}`);
  }
  // PG_CONTROL_FILE_SIZE: the server always writes the whole 8 kB page
  if (bytes.length !== 8192) throw new RestoreError(`${file} is ${bytes.length} bytes, not 8192: not a PostgreSQL control file`);
  return bytes.readBigUInt64LE(0).toString();
}

/** standby.signal plus settings in postgresql.auto.conf (it overrides postgresql.conf, which came from the old server). */
function configureRecovery(o: RestoreOptions, dataDir: string): void {
  const settings: Record<string, string> = {
    ...(o.restoreCommand ? { restore_command: quote(o.restoreCommand) } : {}),
    primary_conninfo: quote(safekeepersConnInfo(o.safekeepers, o.tenantId, o.timelineId, 'walkeeper_restore', o.token)),
    primary_slot_name: quote(''),
    recovery_target_timeline: quote('latest'),
  };
  // PostgreSQL's timestamp input, not ISO 8601's T and Z, which recovery_target_time refuses
  if (o.target.kind === 'time') settings.recovery_target_time = quote(o.target.time.toISOString().replace('T', ' ').replace('Z', '+00'));
  if (o.target.kind === 'lsn') settings.recovery_target_lsn = quote(formatLsn(o.target.lsn));
  if (o.target.kind !== 'latest') settings.recovery_target_action = quote('promote');
  const auto = join(dataDir, 'postgresql.auto.conf');
  const before = existsSync(auto) ? readFileSync(auto, 'utf8') : '';
  appendFileSync(auto, `${before.endsWith('\n') || before === '' ? '' : '\n'}# walkeeper restore: ${describeTarget(o.target)}\n${Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`);
  const signal = join(dataDir, 'standby.signal');
  writeFileSync(signal, '');
  if (o.runAs) {
    chownSync(auto, o.runAs.uid, o.runAs.gid);
    chownSync(signal, o.runAs.uid, o.runAs.gid);
  }
}
