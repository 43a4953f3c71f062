// CPU time of the processes a benchmark step runs, read from /proc, so the table can show
// what each setup costs in CPU per transaction and whether the machine was saturated: on a
// 2-core machine the replication processes compete with PostgreSQL and pgbench themselves.
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat; 100 on every Linux build node supports. */
const CLK_TCK = 100;

export interface CpuSample {
  /** user+system seconds per named process (a process that is gone reads as absent) */
  processes: Map<string, number>;
  /** machine-wide busy and total jiffies, from the first line of /proc/stat */
  busy: number;
  total: number;
}

/** utime+stime of one process in seconds; undefined when it is gone. */
export function processCpuSeconds(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return parseProcStat(text);
}

/** /proc/<pid>/stat: fields after the parenthesised command name; utime and stime are the 14th and 15th. */
export function parseProcStat(text: string): number {
  const close = text.lastIndexOf(')');
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is the 3rd field (state), so utime (14th) is fields[11] and stime fields[12]
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`cannot read utime/stime from /proc stat line: ${text.slice(0, 200)}`);
  return (utime + stime) / CLK_TCK;
}

/** The "cpu" line of /proc/stat: busy = everything but idle and iowait. */
export function parseMachineStat(text: string): { busy: number; total: number } {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) throw new Error('/proc/stat has no "cpu " line');
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = v[3] + (v[4] ?? 0);
  return { busy: total - idle, total };
}

export function sampleCpu(pids: Map<string, number | undefined>): CpuSample {
  const processes = new Map<string, number>();
  for (const [name, pid] of pids) {
    const s = pid === undefined ? undefined : processCpuSeconds(pid);
    if (s !== undefined) processes.set(name, s);
  }
  return { processes, ...parseMachineStat(readFileSync('/proc/stat', 'utf8')) };
}

export interface CpuUse {
  /** CPU seconds each process used between the two samples */
  processes: { name: string; seconds: number }[];
  /** share of all cores busy over the interval, 0..1 */
  machineBusy: number;
}

export function cpuBetween(before: CpuSample, after: CpuSample): CpuUse {
  const processes: CpuUse['processes'] = [];
  for (const [name, end] of after.processes) {
    const start = before.processes.get(name);
    if (start !== undefined) processes.push({ name, seconds: end - start });
  }
  const total = after.total - before.total;
  return { processes, machineBusy: total > 0 ? (after.busy - before.busy) / total : 0 };
}
