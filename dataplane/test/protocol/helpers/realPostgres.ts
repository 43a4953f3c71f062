// Test helper: a throw-away PostgreSQL 15 cluster on 127.0.0.1 (initdb into a temp dir,
// pg_ctl start, pg_ctl stop and remove). Runs the binaries as `postgres` when we are root,
// since initdb refuses to run as root.
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, writeFileSync, appendFileSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const PG_BIN = process.env.WALKEEPER_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface RealPostgres {
  port: number;
  dataDir: string;
  /** directory holding the unix socket */
  socketDir: string;
  stop(): Promise<void>;
  log(): string;
}

const asRoot = process.getuid?.() === 0;

function postgresOwner(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

async function pgCommand(bin: string, args: string[], cwd: string): Promise<void> {
  const file = path.join(PG_BIN, bin);
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  await run(cmd, argv, { timeout: 120_000, cwd });
}

/** A free port in 20000-40000 on 127.0.0.1 (free when checked). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const ok = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port found in 20000-40000');
}

/** hba lines go first, so they win over the trust defaults */
export async function startPostgres(options: { hba?: string[]; conf?: Record<string, string> } = {}): Promise<RealPostgres> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'walkeeper-pg-'));
  const dataDir = path.join(root, 'data');
  const logFile = path.join(root, 'postgres.log');
  const owner = asRoot ? postgresOwner() : null;
  if (owner) chownSync(root, owner.uid, owner.gid);
  const cleanup = () => rmSync(root, { recursive: true, force: true });
  try {
    await pgCommand('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C'], root);
    const port = await freePort();
    const conf: Record<string, string> = {
      port: String(port),
      listen_addresses: "'127.0.0.1'",
      unix_socket_directories: `'${root}'`,
      wal_level: 'replica',
      max_wal_senders: '5',
      max_replication_slots: '5',
      fsync: 'off',
      shared_buffers: '16MB',
      log_replication_commands: 'on',
      ...options.conf,
    };
    appendFileSync(path.join(dataDir, 'postgresql.conf'), Object.entries(conf).map(([k, v]) => `${k} = ${v}\n`).join(''));
    const hba = [
      ...(options.hba ?? []),
      'local all all trust',
      'local replication all trust',
      'host all all 127.0.0.1/32 trust',
      'host replication all 127.0.0.1/32 trust',
    ];
    writeFileSync(path.join(dataDir, 'pg_hba.conf'), hba.join('\n') + '\n');
    if (owner) chownSync(path.join(dataDir, 'pg_hba.conf'), owner.uid, owner.gid);
    await pgCommand('pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start'], root);
    let stopped = false;
    return {
      port,
      dataDir,
      socketDir: root,
      log: () => {
        try {
          return readFileSync(logFile, 'utf8');
        } catch {
          return '';
        }
      },
      stop: async () => {
        if (stopped) return;
        stopped = true;
        try {
          await pgCommand('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop'], root);
        } finally {
          cleanup();
        }
      },
    };
  } catch (err) {
    // a half-started server: try to stop it before removing its directory
    await pgCommand('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop'], root).catch(() => undefined);
    cleanup();
    throw err;
  }
}
