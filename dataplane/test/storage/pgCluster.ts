// Test helper: a throw-away PostgreSQL 15 cluster on a unix socket in a temp directory, used
// to produce real WAL. Runs as the `postgres` user when the tests run as root.

import { execFile, type ExecFileOptions } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
export const PG_BIN = process.env.WALKEEPER_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export function postgresAvailable(): boolean {
  return existsSync(join(PG_BIN, 'initdb')) && existsSync(join(PG_BIN, 'pg_waldump'));
}

function runAs(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root but there is no postgres user to run initdb as');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

export class PgCluster {
  readonly root: string;
  readonly dataDir: string;
  readonly port: number;
  private running = false;
  private readonly user: { uid?: number; gid?: number };

  constructor() {
    this.root = mkdtempSync(join(tmpdir(), 'walkeeper-pg-'));
    this.dataDir = join(this.root, 'data');
    this.port = 20000 + Math.floor(Math.random() * 10000);
    this.user = runAs();
    if (this.user.uid !== undefined) chownSync(this.root, this.user.uid, this.user.gid ?? 0);
  }

  get walDir(): string {
    return join(this.dataDir, 'pg_wal');
  }

  private async run(bin: string, args: string[], options: ExecFileOptions = {}): Promise<string> {
    const { stdout } = await execFileAsync(join(PG_BIN, bin), args, {
      ...options,
      ...this.user,
      cwd: this.root,
      env: { ...process.env, LC_ALL: 'C', PGHOST: this.root, PGPORT: String(this.port), PGUSER: 'postgres' },
      maxBuffer: 256 * 1024 * 1024,
      encoding: 'utf8',
    });
    return String(stdout);
  }

  async init(): Promise<void> {
    await this.run('initdb', ['-D', this.dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  }

  async start(): Promise<void> {
    const opts = `-c listen_addresses='' -c unix_socket_directories=${this.root} -p ${this.port} -c wal_keep_size=1GB -c fsync=off`;
    await this.run('pg_ctl', ['-D', this.dataDir, '-o', opts, '-l', join(this.root, 'log'), '-w', 'start']);
    this.running = true;
  }

  async sql(statement: string): Promise<string> {
    return (await this.run('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', 'postgres', '-c', statement])).trim();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    await this.run('pg_ctl', ['-D', this.dataDir, '-m', 'fast', '-w', 'stop']);
  }

  /** pg_waldump stdout and stderr for a segment range (it exits 1 at the end of WAL, naming where). */
  async waldump(firstSegment: string, lastSegment: string): Promise<{ stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await execFileAsync(join(PG_BIN, 'pg_waldump'), ['-p', this.walDir, firstSegment, lastSegment], {
        maxBuffer: 512 * 1024 * 1024,
        encoding: 'utf8',
      });
      return { stdout, stderr };
    } catch (err) {
      const { stdout, stderr } = err as { stdout?: string; stderr?: string };
      if (typeof stdout === 'string' && stdout.length > 0) return { stdout, stderr: stderr ?? '' };
      throw err;
    }
  }

  segmentNames(): string[] {
    return readdirSync(this.walDir)
      .filter((n) => /^[0-9A-F]{24}$/.test(n))
      .sort();
  }

  async destroy(): Promise<void> {
    try {
      await this.stop();
    } finally {
      rmSync(this.root, { recursive: true, force: true });
    }
  }
}
