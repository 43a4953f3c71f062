// restore_command for a restoring PostgreSQL: copies one WAL or history file of a timeline
// from the bucket (checksum verified) to where PostgreSQL asked. Absent is a plain failure,
// which PostgreSQL takes as "not archived" and then streams from the safekeepers.
import { rename, writeFile } from 'node:fs/promises';
import type { RemoteStorage } from '../remote/remoteStorage.js';
import { walObjectKey } from '../remote/remoteStorage.js';

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
