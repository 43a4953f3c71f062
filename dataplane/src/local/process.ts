// Background processes of a local cluster, tracked by pid files so that one walctl
// invocation can stop what another started. Tests use the same class with short-lived dirs.
import { spawn } from 'node:child_process';
import { openSync, closeSync, writeFileSync, readFileSync, rmSync, mkdirSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processAlive, sleep } from './postgres.js';

/**
 * Absolute path of the `walkeeper` launcher (dataplane/bin), found from this module whether it
 * runs compiled (dist/src/local) or from source under the test runner (src/local).
 */
export const WALKEEPER_JS = [new URL('../../bin/walkeeper.js', import.meta.url), new URL('../../../bin/walkeeper.js', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((p) => existsSync(p)) ?? fileURLToPath(new URL('../../../bin/walkeeper.js', import.meta.url));

export class ManagedProcess {
  constructor(
    readonly name: string,
    readonly pidFile: string,
    readonly logFile: string,
    /** the launcher started with `node` (a test tool may name one that injects test hooks) */
    readonly entrypoint: string = WALKEEPER_JS,
  ) {}

  get pid(): number | undefined {
    try {
      const pid = Number(readFileSync(this.pidFile, 'utf8').trim());
      return pid > 0 && processAlive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  get running(): boolean {
    return this.pid !== undefined;
  }

  /** Starts `node <entrypoint> <args>` in its own process group, logging to logFile. */
  start(args: string[], env: Record<string, string> = {}): number {
    if (this.running) return this.pid!;
    mkdirSync(dirname(this.logFile), { recursive: true });
    mkdirSync(dirname(this.pidFile), { recursive: true });
    const log = openSync(this.logFile, 'a');
    // WALKEEPER_NODE_ARGS: extra node flags for the processes of a local cluster (e.g. --cpu-prof).
    const nodeArgs = (process.env.WALKEEPER_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
    const child = spawn(process.execPath, [...nodeArgs, this.entrypoint, ...args], {
      stdio: ['ignore', log, log],
      detached: true,
      env: { ...process.env, ...env },
    });
    closeSync(log);
    child.unref();
    writeFileSync(this.pidFile, String(child.pid));
    return child.pid!;
  }

  /** SIGTERM and wait; escalates to SIGKILL after timeoutMs. */
  async stop(timeoutMs = 15_000): Promise<void> {
    await this.signalAndWait('SIGTERM', timeoutMs);
  }

  /** kill -9: the process gets no chance to flush or clean up. */
  async kill(): Promise<void> {
    await this.signalAndWait('SIGKILL', 5_000);
  }

  private async signalAndWait(signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
    const pid = this.pid;
    if (pid !== undefined) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
      const deadline = Date.now() + timeoutMs;
      while (processAlive(pid) && Date.now() < deadline) await sleep(25);
      if (processAlive(pid)) {
        process.kill(pid, 'SIGKILL');
        while (processAlive(pid)) await sleep(25);
      }
    }
    rmSync(this.pidFile, { force: true });
  }
}
