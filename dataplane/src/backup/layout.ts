// Where base backups live in the bucket, beside the timeline's WAL:
// `<prefix>/tenants/<tenant>/<timeline>/basebackups/<id>/part-NNNNN.tar.gz` and, written
// last, `<id>/manifest.json`. Ids start with the UTC start time, so key order is time order.
import { randomBytes } from 'node:crypto';
import { timelineKeyPrefix } from '../remote/remoteStorage.js';

export const MANIFEST_NAME = 'manifest.json';
const BACKUP_ID = /^(\d{8}T\d{6}\d{3}Z)-[0-9a-f]{6}$/;

export function basebackupsPrefix(tenantId: string, timelineId: string): string {
  return `${timelineKeyPrefix(tenantId, timelineId)}basebackups/`;
}

export function backupPrefix(tenantId: string, timelineId: string, backupId: string): string {
  return `${basebackupsPrefix(tenantId, timelineId)}${backupId}/`;
}

export function manifestKey(tenantId: string, timelineId: string, backupId: string): string {
  return backupPrefix(tenantId, timelineId, backupId) + MANIFEST_NAME;
}

/** Part n (0-based) of a backup's gzip stream; five digits keep key order = stream order. */
export function partName(n: number): string {
  return `part-${String(n).padStart(5, '0')}.tar.gz`;
}

/** `20261203T125959123Z-a1b2c3`: the start time to the millisecond, then a random tail against clashes. */
export function newBackupId(start: Date): string {
  const stamp = start.toISOString().replace(/[-:]/g, '').replace('.', '');
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

export function isValidBackupId(id: string): boolean {
  return BACKUP_ID.test(id);
}

export function assertValidBackupId(id: string): void {
  if (!isValidBackupId(id)) throw new Error(`invalid backup id ${JSON.stringify(id)}: expected YYYYMMDDTHHMMSSmmmZ-xxxxxx as printed by "backup list"`);
}
