// The manifest of a base backup: what a restore needs to know and to check before it touches
// a data directory. Written last, so its presence is what makes a backup complete.
import { parseLsn } from '../common/lsn.js';
import { isValidId } from '../common/ids.js';
import { isValidBackupId } from './layout.js';

export const MANIFEST_FORMAT = 1;

export interface BackupPart {
  name: string;
  size: number;
  sha256: string;
}

export interface BackupManifest {
  format: typeof MANIFEST_FORMAT;
  backup_id: string;
  tenant_id: string;
  timeline_id: string;
  /** server_version_num of the server backed up, e.g. 150010 */
  pg_version_num: number;
  /** pg_control's system identifier, decimal */
  system_identifier: string;
  /** the PostgreSQL timeline the backup started on */
  pg_timeline: number;
  /** WAL from start_lsn to stop_lsn must be replayed for the copy to be consistent */
  start_lsn: string;
  stop_lsn: string;
  start_time: string;
  stop_time: string;
  /** bytes of the uncompressed tar stream and of the gzip stream (all parts) */
  tar_bytes: number;
  compressed_bytes: number;
  compression: 'gzip';
  parts: BackupPart[];
}

export function pgMajorOf(versionNum: number): number {
  return Math.floor(versionNum / 10000);
}

/** Parses and checks a manifest; the error names the key and the field that is wrong. */
export function parseManifest(text: string, key: string): BackupManifest {
  let m: BackupManifest;
  try {
    m = JSON.parse(text) as BackupManifest;
  } catch (err) {
    throw new Error(`backup manifest ${key} is not JSON: ${(err as Error).message}`);
  }
  const bad = (field: string, why: string) => new Error(`backup manifest ${key}: field ${field} ${why}`);
  if (typeof m !== 'object' || m === null) throw new Error(`backup manifest ${key} is not a JSON object`);
  if (m.format !== MANIFEST_FORMAT) throw bad('format', `is ${JSON.stringify(m.format)}; this walkeeper reads format ${MANIFEST_FORMAT}`);
  if (typeof m.backup_id !== 'string' || !isValidBackupId(m.backup_id)) throw bad('backup_id', 'is not a backup id');
  if (!isValidId(m.tenant_id)) throw bad('tenant_id', 'is not 32 hex characters');
  if (!isValidId(m.timeline_id)) throw bad('timeline_id', 'is not 32 hex characters');
  if (!Number.isInteger(m.pg_version_num) || m.pg_version_num < 90000) throw bad('pg_version_num', 'is not a server_version_num');
  if (typeof m.system_identifier !== 'string' || !/^\d+$/.test(m.system_identifier)) throw bad('system_identifier', 'is not a decimal number');
  if (!Number.isInteger(m.pg_timeline) || m.pg_timeline < 1) throw bad('pg_timeline', 'is not a PostgreSQL timeline');
  for (const f of ['start_lsn', 'stop_lsn'] as const) {
    try {
      parseLsn(String(m[f]));
    } catch {
      throw bad(f, `is not an LSN (${JSON.stringify(m[f])})`);
    }
  }
  for (const f of ['start_time', 'stop_time'] as const) if (typeof m[f] !== 'string' || Number.isNaN(Date.parse(m[f]))) throw bad(f, 'is not a time');
  if (m.compression !== 'gzip') throw bad('compression', `is ${JSON.stringify(m.compression)}; only gzip is known`);
  if (!Array.isArray(m.parts) || m.parts.length === 0) throw bad('parts', 'is empty');
  m.parts.forEach((p, i) => {
    if (typeof p?.name !== 'string' || !Number.isInteger(p.size) || typeof p.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(p.sha256)) throw bad(`parts[${i}]`, 'is not {name, size, sha256}');
  });
  return m;
}
