// Takes a base backup with PostgreSQL's own pg_basebackup (tar to stdout, no WAL: the WAL is
// in the bucket and on the safekeepers), gzips the stream and uploads it in parts with the
// store's create-only put, then writes the manifest. The manifest goes last: a backup killed
// at any point before it is a set of parts without a manifest, which lists as incomplete.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createGzip } from 'node:zlib';
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { ConnInfo } from '../common/conninfo.js';
import { formatLsn, parseLsn } from '../common/lsn.js';
import type { RemoteStorage } from '../remote/remoteStorage.js';
import { backupPrefix, manifestKey, newBackupId, partName } from './layout.js';
import { TarMemberCapture } from './tarScan.js';
import { MANIFEST_FORMAT, type BackupManifest, type BackupPart } from './manifest.js';

export const DEFAULT_PART_SIZE = 64 * 1024 * 1024;

export interface CreateBackupOptions {
  store: RemoteStorage;
  tenantId: string;
  timelineId: string;
  /** the primary (or a standby) to back up, as a replication-capable user */
  pg: ConnInfo;
  /** PostgreSQL's bin directory (pg_basebackup) */
  binDir: string;
  partSize?: number;
  /** the id to store it under (default: one made from the start time); see newBackupId */
  backupId?: string;
  log?: (line: string) => void;
}

/** libpq keyword form of a ConnInfo, for PostgreSQL's own tools (-d). */
export function conninfoString(c: ConnInfo): string {
  const q = (v: string) => `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  const kv: Record<string, string> = { host: c.host, port: String(c.port), user: c.user, dbname: c.dbname, ...c.extra };
  if (c.password !== undefined) kv.password = c.password;
  return Object.entries(kv).map(([k, v]) => `${k}=${q(v)}`).join(' ');
}

async function serverIdentity(c: ConnInfo): Promise<{ versionNum: number; systemIdentifier: string }> {
  const client = new pg.Client({ host: c.host, port: c.port, user: c.user, database: c.dbname, password: c.password });
  await client.connect();
  try {
    const r = await client.query<{ v: string; sysid: string }>(`SELECT current_setting('server_version_num') AS v, system_identifier::text AS sysid FROM pg_control_system()`);
    return { versionNum: Number(r.rows[0].v), systemIdentifier: r.rows[0].sysid };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The WAL range from the backup's own files: backup_label (start, timeline) and backup_manifest (end). */
export function walRangeOf(backupLabel: string | undefined, backupManifest: string | undefined): { startLsn: string; stopLsn: string; pgTimeline: number } {
  const start = backupLabel && /START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+)/.exec(backupLabel);
  const tli = backupLabel && /START TIMELINE: (\d+)/.exec(backupLabel);
  if (!start || !tli) throw new Error(`the base backup's backup_label has no START WAL LOCATION / START TIMELINE:\n${backupLabel ?? '(no backup_label in the tar stream)'}`);
  let ranges: { 'Start-LSN': string; 'End-LSN': string }[] | undefined;
  try {
    ranges = (JSON.parse(backupManifest ?? '') as { 'WAL-Ranges'?: { 'Start-LSN': string; 'End-LSN': string }[] })['WAL-Ranges'];
  } catch {
    ranges = undefined;
  }
  if (!ranges?.length) throw new Error('the base backup has no backup_manifest with WAL-Ranges (is this PostgreSQL 13 or newer?)');
  return { startLsn: formatLsn(parseLsn(start[1])), stopLsn: formatLsn(parseLsn(ranges[ranges.length - 1]['End-LSN'])), pgTimeline: Number(tli[1]) };
}

export async function createBackup(o: CreateBackupOptions): Promise<BackupManifest> {
  const partSize = o.partSize ?? DEFAULT_PART_SIZE;
  const log = o.log ?? (() => {});
  const identity = await serverIdentity(o.pg);
  const startTime = new Date();
  const backupId = o.backupId ?? newBackupId(startTime);
  const prefix = backupPrefix(o.tenantId, o.timelineId, backupId);
  await o.store.check();
  log(`backup ${backupId}: pg_basebackup from ${o.pg.host}:${o.pg.port} to ${o.store.url}/${prefix}`);

  const child = spawn(join(o.binDir, 'pg_basebackup'), ['-d', conninfoString(o.pg), '-D', '-', '-F', 't', '-X', 'none', '-c', 'fast', '-v', '--no-password'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...(o.pg.password ? { PGPASSWORD: o.pg.password } : {}) },
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });

  exited.catch(() => undefined); // awaited below; a spawn error must not go unhandled meanwhile
  const parts: BackupPart[] = [];
  let tarBytes = 0;
  let compressedBytes = 0;
  const upload = async (body: Buffer) => {
    const name = partName(parts.length);
    await o.store.putImmutable(prefix + name, body);
    parts.push({ name, size: body.length, sha256: createHash('sha256').update(body).digest('hex') });
    compressedBytes += body.length;
    log(`backup ${backupId}: uploaded ${name} (${body.length} bytes)`);
  };
  const scan = new TarMemberCapture(new Set(['backup_label', 'backup_manifest']));
  try {
    // Level 1: gzip on one core is what bounds a backup; level 1 keeps most of the ratio at a few times the speed of the default 6.
    const gzip = createGzip({ level: 1 });
    child.stdout.on('data', (b: Buffer) => {
      tarBytes += b.length;
      scan.push(b);
    });
    child.stdout.pipe(gzip);
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    // Consuming gzip one chunk at a time is the backpressure: pg_basebackup waits while a part uploads.
    for await (const chunk of gzip as AsyncIterable<Buffer>) {
      pending.push(chunk);
      pendingBytes += chunk.length;
      while (pendingBytes >= partSize) {
        const all = Buffer.concat(pending);
        await upload(all.subarray(0, partSize));
        pending = [all.subarray(partSize)];
        pendingBytes -= partSize;
      }
    }
    const code = await exited;
    if (code !== 0) throw new Error(`pg_basebackup failed (exit ${code}) for backup ${backupId}:\n${stderr.trim().slice(-2000)}`);
    if (pendingBytes > 0 || parts.length === 0) await upload(Buffer.concat(pending));
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }

  const progress = walRangeOf(scan.get('backup_label'), scan.get('backup_manifest'));
  const manifest: BackupManifest = {
    format: MANIFEST_FORMAT,
    backup_id: backupId,
    tenant_id: o.tenantId,
    timeline_id: o.timelineId,
    pg_version_num: identity.versionNum,
    system_identifier: identity.systemIdentifier,
    pg_timeline: progress.pgTimeline,
    start_lsn: progress.startLsn,
    stop_lsn: progress.stopLsn,
    start_time: startTime.toISOString(),
    stop_time: new Date().toISOString(),
    tar_bytes: tarBytes,
    compressed_bytes: compressedBytes,
    compression: 'gzip',
    parts,
  };
  await o.store.putImmutable(manifestKey(o.tenantId, o.timelineId, backupId), Buffer.from(JSON.stringify(manifest, null, 2) + '\n'));
  log(`backup ${backupId}: complete, ${parts.length} part(s), ${compressedBytes} bytes, WAL ${manifest.start_lsn}..${manifest.stop_lsn}`);
  return manifest;
}
