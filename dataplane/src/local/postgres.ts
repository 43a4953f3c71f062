// A PostgreSQL server run from the machine's binaries: find them, initdb, configure, start,
// stop, crash. Used by walctl's local cluster, the integration tests, torture and bench.
// PostgreSQL refuses to run as root, so when we are root the server runs as `postgres`.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, chownSync, appendFileSync, readFileSync, openSync, closeSync, statSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';

export class PostgresNotFoundError extends Error {
  constructor() {
    super(
      'PostgreSQL server binaries not found (looked in $WALKEEPER_PG_BIN, /usr/lib/postgresql/{17,16,15}/bin and pg_config). ' +
        'Install them with: sudo apt-get install -y postgresql-15',
    );
  }
}

/**
 * Directory holding pg_basebackup, for a process that needs PostgreSQL's client tools only
 * (the proposer's backups: the data-plane image has the client package, not the server).
 */
export function findPgClientBinDir(candidates: (string | undefined)[] = [process.env.WALKEEPER_PG_BIN, ...[17, 16, 15].map((v) => `/usr/lib/postgresql/${v}/bin`)]): string {
  for (const dir of candidates) if (dir && existsSync(join(dir, 'pg_basebackup'))) return dir;
  throw new Error(`pg_basebackup not found (looked in ${candidates.filter(Boolean).join(', ')}): install PostgreSQL's client tools (Debian: postgresql-client-15) or set WALKEEPER_PG_BIN`);
}

/** Directory holding initdb/postgres/pg_ctl; prefers $WALKEEPER_PG_BIN, then the newest Debian install. */
export function findPgBinDir(
  candidates: (string | undefined)[] = [process.env.WALKEEPER_PG_BIN, ...[17, 16, 15].map((v) => `/usr/lib/postgresql/${v}/bin`)],
  askPgConfig = true,
): string {
  for (const dir of candidates) {
    if (dir && existsSync(join(dir, 'postgres')) && existsSync(join(dir, 'initdb'))) return dir;
  }
  if (!askPgConfig) throw new PostgresNotFoundError();
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
    if (existsSync(join(dir, 'postgres'))) return dir;
  } catch {
    // fall through to the error that tells the user what to install
  }
  throw new PostgresNotFoundError();
}

/** Major version of the server binaries in binDir, e.g. 15. */
export function pgMajorVersion(binDir: string): number {
  const out = execFileSync(join(binDir, 'postgres'), ['--version'], { encoding: 'utf8' });
  const m = /(\d+)(?:\.\d+)?/.exec(out.replace(/^[^0-9]*/, ''));
  if (!m) throw new Error(`cannot parse PostgreSQL version from "${out.trim()}"`);
  return Number(m[1]);
}

export interface RunAs {
  uid: number;
  gid: number;
}

/** The identity to run PostgreSQL as: ourselves, or the `postgres` user when we are root. */
export function postgresIdentity(): RunAs | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error('running as root, and there is no "postgres" user to run PostgreSQL as; install postgresql-15 or run as a regular user');
  }
}

/**
 * Makes dir (parents traversable, dir itself private) and hands it to the PostgreSQL
 * identity when we are root. Fails clearly when that user could not reach it.
 */
export function ensureDirFor(dir: string, runAs: RunAs | undefined): void {
  mkdirSync(dirname(dir), { recursive: true, mode: 0o755 });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!runAs) return;
  chownSync(dir, runAs.uid, runAs.gid);
  for (let p = dirname(resolve(dir)); p !== dirname(p); p = dirname(p)) {
    const st = statSync(p);
    const traversable = (st.mode & 0o001) !== 0 || (st.uid === runAs.uid && (st.mode & 0o100) !== 0) || (st.gid === runAs.gid && (st.mode & 0o010) !== 0);
    if (!traversable) {
      throw new Error(
        `PostgreSQL refuses to run as root, so walkeeper runs it as user "postgres", which cannot enter ${p}. ` +
          `Run from a directory it can reach (e.g. under /srv or /tmp), or allow it with: chmod o+x ${p}`,
      );
    }
  }
}

export interface PostgresOptions {
  dataDir: string;
  port: number;
  /** TCP address to listen on; unix socket goes into socketDir */
  host?: string;
  socketDir?: string;
  binDir?: string;
  logFile?: string;
}

export class PostgresServer {
  readonly binDir: string;
  readonly dataDir: string;
  readonly port: number;
  readonly host: string;
  readonly socketDir: string;
  readonly logFile: string;
  readonly runAs: RunAs | undefined;
  private child: ChildProcess | undefined;

  constructor(opts: PostgresOptions) {
    this.binDir = opts.binDir ?? findPgBinDir();
    this.dataDir = opts.dataDir;
    this.port = opts.port;
    this.host = opts.host ?? '127.0.0.1';
    this.socketDir = opts.socketDir ?? opts.dataDir;
    this.logFile = opts.logFile ?? `${opts.dataDir}.log`;
    this.runAs = postgresIdentity();
  }

  get initialized(): boolean {
    return existsSync(join(this.dataDir, 'PG_VERSION'));
  }

  /** libpq connection string for the default database. */
  connString(db = 'postgres', user = 'postgres'): string {
    return `host=${this.host} port=${this.port} user=${user} dbname=${db}`;
  }

  private exec(bin: string, args: string[]): string {
    return execFileSync(join(this.binDir, bin), args, {
      encoding: 'utf8',
      uid: this.runAs?.uid,
      gid: this.runAs?.gid,
      cwd: '/',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  /** initdb with trust auth for loopback (the local cluster and tests only listen on loopback). */
  initdb(extraConf: Record<string, string | number> = {}): void {
    ensureDirFor(this.dataDir, this.runAs);
    if (this.socketDir !== this.dataDir) ensureDirFor(this.socketDir, this.runAs);
    try {
      this.exec('initdb', ['-D', this.dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C']);
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`initdb ${this.dataDir} failed: ${e.stderr?.trim() || e.message}`);
    }
    this.configure({
      listen_addresses: `'${this.host}'`,
      port: this.port,
      unix_socket_directories: `'${this.socketDir}'`,
      wal_level: 'replica',
      max_wal_senders: 10,
      max_replication_slots: 10,
      logging_collector: 'off',
      log_line_prefix: `'%m [%p] %q%u@%d app=%a '`,
      fsync: 'on',
      ...extraConf,
    });
  }

  /** Appends settings to postgresql.auto-like include; later lines win, as in postgresql.conf. */
  configure(settings: Record<string, string | number>): void {
    const lines = Object.entries(settings).map(([k, v]) => `${k} = ${v}`);
    appendFileSync(join(this.dataDir, 'postgresql.conf'), '\n' + lines.join('\n') + '\n');
  }

  /** Starts postgres in the foreground of a child process we own, and waits until it accepts connections. */
  async start(timeoutMs = 60_000): Promise<void> {
    if (this.child && this.child.exitCode === null) return;
    const log = openSync(this.logFile, 'a');
    if (this.runAs) chownSync(this.logFile, this.runAs.uid, this.runAs.gid);
    this.child = spawn(join(this.binDir, 'postgres'), ['-D', this.dataDir], {
      uid: this.runAs?.uid,
      gid: this.runAs?.gid,
      cwd: '/',
      stdio: ['ignore', log, log],
      detached: true,
    });
    closeSync(log);
    this.child.unref();
    const child = this.child;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`postgres exited during start-up (code ${child.exitCode}, signal ${child.signalCode}); see ${this.logFile}:\n${tail(this.logFile)}`);
      }
      if (this.isReady()) return;
      await sleep(100);
    }
    throw new Error(`postgres did not accept connections within ${timeoutMs} ms; see ${this.logFile}:\n${tail(this.logFile)}`);
  }

  isReady(): boolean {
    try {
      execFileSync(join(this.binDir, 'pg_isready'), ['-h', this.host, '-p', String(this.port), '-t', '1'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  }

  /** The postmaster's pid, from our child handle or, for a server another walctl started, postmaster.pid. */
  get pid(): number | undefined {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) return this.child.pid;
    try {
      const pid = Number(readFileSync(join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      return pid > 0 && processAlive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** Stops the server: 'fast' (SIGINT) waits for a clean shutdown; 'immediate' (SIGQUIT); 'kill' is kill -9 of every process of the server. */
  async stop(mode: 'fast' | 'immediate' | 'kill' = 'fast', timeoutMs = 60_000): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) {
      this.child = undefined;
      return;
    }
    const signal = mode === 'fast' ? 'SIGINT' : mode === 'immediate' ? 'SIGQUIT' : 'SIGKILL';
    if (mode === 'kill') {
      // kill -9 of the postmaster alone leaves backends running; a crash takes down the whole group.
      signalQuietly(-pid, 'SIGKILL');
    }
    signalQuietly(pid, signal);
    const deadline = Date.now() + timeoutMs;
    while (processAlive(pid) && Date.now() < deadline) await sleep(50);
    if (processAlive(pid)) {
      signalQuietly(-pid, 'SIGKILL');
      signalQuietly(pid, 'SIGKILL');
      while (processAlive(pid)) await sleep(50);
    }
    if (mode === 'kill') await this.waitForOrphans();
    this.child = undefined;
  }

  /** After a kill -9, backends may linger briefly holding shared memory; wait until none is left. */
  private async waitForOrphans(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      try {
        execFileSync('pgrep', ['-f', `postgres -D ${this.dataDir}`], { stdio: 'ignore' });
      } catch {
        return;
      }
      await sleep(100);
    }
  }

  /** Runs psql with a command and returns its unaligned, tuples-only output. */
  psql(sql: string, db = 'postgres'): string {
    return execFileSync(join(this.binDir, 'psql'), ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', this.host, '-p', String(this.port), '-U', 'postgres', '-d', db, '-c', sql], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  }
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function signalQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
