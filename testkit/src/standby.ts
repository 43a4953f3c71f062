// A stock PostgreSQL hot standby that follows a safekeeper (primary_conninfo points at the
// safekeeper's Postgres port with the tenant and timeline in `options`): the reader of the
// ARCHITECTURE §6 acceptance bar, and the future primary of a failover (docs/operations.md).
// Made from a base backup of the current primary (pg_basebackup -X fetch).
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { PostgresServer, type RunAs } from '@walkeeper/dataplane/local/postgres';

export interface StandbyOptions {
  /** the current primary, for the base backup */
  primaryHost: string;
  primaryPort: number;
  /** a directory for the standby's data, socket and log (created) */
  dir: string;
  host: string;
  port: number;
  binDir?: string;
  /** libpq conninfo of the safekeeper to follow, with options='-c tenant_id=… -c timeline_id=…' */
  safekeeperConnInfo: string;
  applicationName: string;
  /** extra postgresql.conf settings (e.g. synchronous_standby_names for a future primary) */
  settings?: Record<string, string | number>;
  /** lines appended to pg_hba.conf */
  hba?: string[];
}

function execAs(file: string, args: string[], runAs: RunAs | undefined, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { uid: runAs?.uid, gid: runAs?.gid, cwd: '/', timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${String(stderr).trim() || err.message}`));
      else resolve();
    });
  });
}

/** Base backup, configuration and standby.signal; the server is returned configured, not started. */
export async function createStandby(o: StandbyOptions): Promise<PostgresServer> {
  const dataDir = join(o.dir, 'data');
  const server = new PostgresServer({ dataDir, port: o.port, host: o.host, socketDir: o.dir, logFile: join(o.dir, 'postgres.log'), binDir: o.binDir });
  const runAs = server.runAs;
  mkdirSync(o.dir, { recursive: true });
  if (runAs) chownSync(o.dir, runAs.uid, runAs.gid);
  await execAs(join(server.binDir, 'pg_basebackup'), ['-D', dataDir, '-h', o.primaryHost, '-p', String(o.primaryPort), '-U', 'postgres', '-X', 'fetch', '-c', 'fast', '--no-password'], runAs, 180_000);
  server.configure({
    listen_addresses: `'${o.host}'`,
    port: o.port,
    unix_socket_directories: `'${o.dir}'`,
    hot_standby: 'on',
    primary_conninfo: `'${`${o.safekeeperConnInfo} application_name=${o.applicationName}`.replace(/'/g, "''")}'`,
    primary_slot_name: `''`,
    recovery_target_timeline: `'latest'`,
    ...o.settings,
  });
  if (o.hba?.length) writeFileSync(join(dataDir, 'pg_hba.conf'), `\n${o.hba.join('\n')}\n`, { flag: 'a' });
  const signal = join(dataDir, 'standby.signal');
  writeFileSync(signal, '');
  if (runAs) chownSync(signal, runAs.uid, runAs.gid);
  return server;
}
