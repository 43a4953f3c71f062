// The backups of a timeline as the bucket holds them: which are complete (a manifest that
// parses and names this tenant and timeline), which are not, and deleting them, one or by a
// retention rule that also removes the bucket WAL no kept backup needs.
import { formatLsn, parseLsn, parseWalFileName, segmentNo, type Lsn } from '../common/lsn.js';
import { assertValidId } from '../common/ids.js';
import type { RemoteStorage } from '../remote/remoteStorage.js';
import { timelineKeyPrefix } from '../remote/remoteStorage.js';
import { assertValidBackupId, backupPrefix, basebackupsPrefix, MANIFEST_NAME } from './layout.js';
import { parseManifest, type BackupManifest } from './manifest.js';

export interface IncompleteBackup {
  backup_id: string;
  /** why it does not count: no manifest (interrupted or still running), or a manifest that does not parse */
  reason: string;
  objects: number;
  bytes: number;
}

export interface BackupCatalog {
  /** oldest first */
  complete: BackupManifest[];
  incomplete: IncompleteBackup[];
}

export async function listBackups(store: RemoteStorage, tenantId: string, timelineId: string): Promise<BackupCatalog> {
  assertValidId('tenant_id', tenantId);
  assertValidId('timeline_id', timelineId);
  const base = basebackupsPrefix(tenantId, timelineId);
  const byId = new Map<string, { objects: number; bytes: number; manifest: boolean }>();
  for (const o of await store.list(base)) {
    const [id, name] = o.key.slice(base.length).split('/');
    const e = byId.get(id) ?? { objects: 0, bytes: 0, manifest: false };
    e.objects++;
    e.bytes += o.size;
    if (name === MANIFEST_NAME) e.manifest = true;
    byId.set(id, e);
  }
  const catalog: BackupCatalog = { complete: [], incomplete: [] };
  for (const [id, e] of [...byId.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!e.manifest) {
      catalog.incomplete.push({ backup_id: id, reason: 'no manifest: interrupted or still running', objects: e.objects, bytes: e.bytes });
      continue;
    }
    const key = backupPrefix(tenantId, timelineId, id) + MANIFEST_NAME;
    try {
      const m = parseManifest((await store.get(key))!.toString('utf8'), key);
      if (m.backup_id !== id || m.tenant_id !== tenantId || m.timeline_id !== timelineId) {
        throw new Error(`backup manifest ${key} names backup ${m.backup_id} of tenant ${m.tenant_id} timeline ${m.timeline_id}, not the one its key says`);
      }
      catalog.complete.push(m);
    } catch (err) {
      catalog.incomplete.push({ backup_id: id, reason: (err as Error).message, objects: e.objects, bytes: e.bytes });
    }
  }
  return catalog;
}

/** Deletes one backup: the manifest first, so a crash half-way leaves an incomplete backup, never a broken complete one. */
export async function deleteBackup(store: RemoteStorage, tenantId: string, timelineId: string, backupId: string): Promise<{ deleted: number }> {
  assertValidId('tenant_id', tenantId);
  assertValidId('timeline_id', timelineId);
  assertValidBackupId(backupId);
  const prefix = backupPrefix(tenantId, timelineId, backupId);
  const objects = await store.list(prefix);
  if (objects.length === 0) throw new Error(`no backup ${backupId} of tenant ${tenantId} timeline ${timelineId} in ${store.url}`);
  const manifest = objects.find((o) => o.key === prefix + MANIFEST_NAME);
  if (manifest) await store.delete(manifest.key);
  for (const o of objects) if (o !== manifest) await store.delete(o.key);
  return { deleted: objects.length };
}

export interface RetentionPolicy {
  /** keep the newest N complete backups */
  keep?: number;
  /** keep complete backups that started less than D days ago */
  maxAgeDays?: number;
}

export interface RetentionOptions extends RetentionPolicy {
  now?: Date;
  /**
   * The lowest backup_lsn of the timeline's safekeepers, when known: WAL at or above it may
   * not be in the bucket yet, and an uploader would put back a segment deleted under it.
   * Bucket WAL is removed only below min(oldest kept backup's start, this).
   */
  backupLsn?: Lsn;
  dryRun?: boolean;
}

export interface RetentionResult {
  kept: string[];
  deleted_backups: string[];
  deleted_incomplete: string[];
  /** bucket WAL below this was removed (segments wholly before it) */
  wal_horizon: string | null;
  deleted_wal: string[];
}

export function validatePolicy(p: RetentionPolicy): void {
  if (p.keep === undefined && p.maxAgeDays === undefined) throw new Error('retention needs --keep N and/or --max-age-days D');
  if (p.keep !== undefined && (!Number.isInteger(p.keep) || p.keep < 1)) throw new Error(`invalid keep ${p.keep}: expected an integer ≥ 1 (the last good backup is never deleted)`);
  if (p.maxAgeDays !== undefined && (!Number.isFinite(p.maxAgeDays) || p.maxAgeDays <= 0)) throw new Error(`invalid max age ${p.maxAgeDays} days: expected a number > 0`);
}

/**
 * A backup is kept if either rule keeps it (newest N, or younger than D days), and the newest
 * complete backup is always kept. Incomplete backups older than the oldest kept one are
 * leftovers of crashes and go too; newer ones may still be running and stay.
 */
export async function applyRetention(store: RemoteStorage, tenantId: string, timelineId: string, o: RetentionOptions): Promise<RetentionResult> {
  validatePolicy(o);
  const now = (o.now ?? new Date()).getTime();
  const { complete, incomplete } = await listBackups(store, tenantId, timelineId);
  const result: RetentionResult = { kept: [], deleted_backups: [], deleted_incomplete: [], wal_horizon: null, deleted_wal: [] };
  if (complete.length === 0) return result;
  const newestFirst = [...complete].reverse();
  const kept = newestFirst.filter((m, i) => i === 0 || (o.keep !== undefined && i < o.keep) || (o.maxAgeDays !== undefined && now - Date.parse(m.start_time) < o.maxAgeDays * 86_400_000));
  const oldestKept = kept[kept.length - 1];
  result.kept = kept.map((m) => m.backup_id).reverse();
  for (const m of complete) {
    if (kept.includes(m)) continue;
    result.deleted_backups.push(m.backup_id);
    if (!o.dryRun) await deleteBackup(store, tenantId, timelineId, m.backup_id);
  }
  for (const b of incomplete) {
    if (b.backup_id >= oldestKept.backup_id) continue;
    result.deleted_incomplete.push(b.backup_id);
    if (!o.dryRun) await deleteBackup(store, tenantId, timelineId, b.backup_id);
  }

  let horizon = parseLsn(oldestKept.start_lsn);
  if (o.backupLsn !== undefined && o.backupLsn < horizon) horizon = o.backupLsn;
  result.wal_horizon = formatLsn(horizon);
  // Segments wholly below the horizon, of any PostgreSQL timeline; history files always stay (they are tiny and every later timeline needs them).
  const firstNeeded = segmentNo(horizon);
  const walPrefix = `${timelineKeyPrefix(tenantId, timelineId)}wal/`;
  for (const obj of await store.list(walPrefix)) {
    const seg = parseWalFileName(obj.key.slice(walPrefix.length));
    if (!seg || seg.segNo >= firstNeeded) continue;
    result.deleted_wal.push(obj.key.slice(walPrefix.length));
    if (!o.dryRun) await store.delete(obj.key);
  }
  return result;
}
