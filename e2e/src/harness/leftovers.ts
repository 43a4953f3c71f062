// Finds and ends the processes a harness with running pods left behind, e.g. when its server was
// killed before it could stop its pods: every process the harness starts (pods' containers, the
// operator) carries STATE_DIR_ENV in its environment; PostgreSQL overwrites its environment with its
// process title, so a PostgreSQL server is recognised by its working directory (its data directory,
// a volume under the state directory). Reads /proc (Linux). Test infrastructure only.
import fs from 'node:fs';
import path from 'node:path';

/** Set in the environment of every process a harness starts: the harness's state directory. */
export const STATE_DIR_ENV = 'WALKEEPER_HARNESS_STATE_DIR';

const isUnder = (p: string, dir: string) => p === dir || p.startsWith(`${dir}${path.sep}`);

function read(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'latin1');
  } catch {
    return undefined;
  }
}

function link(file: string): string | undefined {
  try {
    return fs.readlinkSync(file);
  } catch {
    return undefined;
  }
}

/** Live processes started by the harness whose state directory is stateDir (never this process). */
export function leftoverProcesses(stateDir: string): number[] {
  const dir = path.resolve(stateDir);
  const marker = `${STATE_DIR_ENV}=${dir}`;
  const pids: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const stat = read(`/proc/${e}/stat`);
    // A zombie has exited already; its parent only has to reap it.
    if (!stat || / Z /.test(stat.slice(stat.lastIndexOf(')') + 1, stat.lastIndexOf(')') + 4))) continue;
    const marked = (read(`/proc/${e}/environ`) ?? '').split('\0').includes(marker);
    const cwd = link(`/proc/${e}/cwd`);
    const exe = link(`/proc/${e}/exe`) ?? '';
    const postgresInVolume = cwd !== undefined && isUnder(cwd, dir) && path.basename(exe) === 'postgres';
    if (marked || postgresInVolume) pids.push(Number(e));
  }
  return pids;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function signal(pid: number, s: NodeJS.Signals): void {
  try {
    process.kill(pid, s);
  } catch {
    /* gone */
  }
}

/** Ends every leftover process: SIGTERM, then SIGKILL after graceMs. Returns the pids it found. */
export async function killLeftovers(stateDir: string, graceMs = 5000): Promise<number[]> {
  const found = leftoverProcesses(stateDir);
  if (!found.length) return [];
  for (const pid of found) signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (leftoverProcesses(stateDir).length && Date.now() < deadline) await sleep(100);
  for (const pid of leftoverProcesses(stateDir)) signal(pid, 'SIGKILL');
  for (let i = 0; i < 50 && leftoverProcesses(stateDir).length; i++) await sleep(100);
  return found;
}
