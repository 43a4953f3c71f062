// restore_command for a restoring PostgreSQL: copies one WAL or history file of a timeline
// from the bucket (checksum verified) to where PostgreSQL asked. Absent is a plain failure,
// which PostgreSQL takes as "not archived" and then streams from the safekeepers.
import { rename, writeFile } from 'node:fs/promises';
import type { RemoteStorage } from '../remote/remoteStorage.js';
import { walObjectKey } from '../remote/remoteStorage.js';
import { WALKEEPER_JS } from '../local/process.js';

const WAL_OR_HISTORY = /^[0-9A-F]{24}(\.partial)?$|^[0-9A-F]{8}\.history$/;

export async function fetchWalFile(store: RemoteStorage, tenantId: string, timelineId: string, fileName: string, destination: string): Promise<'fetched' | 'absent'> {
  if (!WAL_OR_HISTORY.test(fileName)) throw new Error(`"${fileName}" is not a WAL segment or timeline history file name`);
  const body = await store.get(walObjectKey(tenantId, timelineId, fileName));
  if (!body) return 'absent';
  const tmp = `${destination}.wal-fetch`;
  await writeFile(tmp, body);
  await rename(tmp, destination);
  return 'fetched';
}

/** The S3 options wal-fetch takes (names without `--remote-storage-`); credentials are never among them. */
const FETCH_OPTIONS = ['endpoint', 'region', 'path-style', 'checksum'];

/**
 * The restore_command of a restored server: this same binary's wal-fetch with the bucket's URL
 * and non-secret options. S3 credentials are never written into postgresql.auto.conf:
 * PostgreSQL hands its own environment (AWS_ACCESS_KEY_ID, ...) to the command.
 */
export function walFetchCommand(remote: { url: string; flags: Record<string, string> }, tenantId: string, timelineId: string): string {
  const sh = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  const args = [process.execPath, WALKEEPER_JS, 'wal-fetch', '--remote-storage', remote.url];
  for (const name of FETCH_OPTIONS) if (remote.flags[name] !== undefined && remote.flags[name] !== '') args.push(`--remote-storage-${name}`, remote.flags[name]);
  args.push('--tenant-id', tenantId, '--timeline-id', timelineId);
  return `${args.map(sh).join(' ')} %f %p`;
}
