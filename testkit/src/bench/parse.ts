// Pure parsing and formatting for the benchmark: pgbench's summary, fio's JSON, the table.
import type { CpuUse } from './cpu.js';

export interface PgbenchResult {
  tps: number;
  latencyMs: number;
  transactions: number;
  failed: number;
  /** the summary lines as pgbench printed them */
  raw: string[];
  /** CPU used by the replication processes of the setup while pgbench ran */
  cpu?: CpuUse;
}

/** Parses pgbench (15) output: "tps = 1443.6 (without initial connection time)", "latency average = 5.542 ms". */
export function parsePgbench(output: string): PgbenchResult {
  const tps = /^tps = ([0-9.]+)/m.exec(output);
  const lat = /^latency average = ([0-9.]+) ms/m.exec(output);
  if (!tps || !lat) throw new Error(`cannot find "tps =" and "latency average =" in pgbench output:\n${output.slice(-2000)}`);
  const processed = /^number of transactions actually processed: (\d+)/m.exec(output);
  const failed = /^number of failed transactions: (\d+)/m.exec(output);
  const raw = output.split('\n').filter((l) => /^(transaction type|scaling factor|query mode|number of|maximum number|duration|latency|initial connection|tps)/.test(l));
  return { tps: Number(tps[1]), latencyMs: Number(lat[1]), transactions: processed ? Number(processed[1]) : 0, failed: failed ? Number(failed[1]) : 0, raw };
}

export interface FioResult {
  /** write bandwidth, bytes per second */
  bwBytes: number;
  iops: number;
  /** mean fdatasync latency in microseconds, when fio reports it */
  syncMeanUs?: number;
}

/** Parses `fio --output-format=json`: jobs[0].write.bw_bytes, iops and sync.lat_ns.mean. */
export function parseFioJson(text: string): FioResult {
  const start = text.indexOf('{');
  if (start < 0) throw new Error(`fio printed no JSON:\n${text.slice(0, 2000)}`);
  const json = JSON.parse(text.slice(start)) as { jobs?: { write?: { bw_bytes?: number; iops?: number }; sync?: { lat_ns?: { mean?: number } } }[] };
  const job = json.jobs?.[0];
  if (!job?.write || typeof job.write.bw_bytes !== 'number') throw new Error('fio JSON has no jobs[0].write.bw_bytes');
  const syncMean = job.sync?.lat_ns?.mean;
  return { bwBytes: job.write.bw_bytes, iops: job.write.iops ?? 0, syncMeanUs: typeof syncMean === 'number' && syncMean > 0 ? syncMean / 1000 : undefined };
}

export interface IngestResult {
  bytes: number;
  seconds: number;
  appendRequests: number;
  /** what limited the run: 'time' or 'wal' (no more real WAL to send) */
  stoppedBy: 'time' | 'wal';
  /** segments written, and how many of them append zero-filled itself (on the commit path) */
  segments?: number;
  zeroFilledOnAppend?: number;
}

export interface OffloadResult {
  store: string;
  bytes: number;
  seconds: number;
  objects: number;
}

export interface StartupResult {
  /** WAL the member received over its life */
  historyBytes: number;
  /** what its timeline directory held when it was restarted */
  retainedBytes: number;
  /** from process start to /readyz answering (the median of `restarts`) */
  seconds: number;
  restarts?: number;
}

export interface BenchReport {
  seconds: number;
  scale: number;
  clients: number;
  jobs: number;
  primaryAlone?: PgbenchResult;
  receivewalSync?: PgbenchResult;
  walkeeper?: PgbenchResult;
  /** PostgreSQL's own quorum commit to three pg_receivewal: what any 3-copy quorum costs here */
  receivewalQuorum?: PgbenchResult;
  /** (b), (c) and (d) run in turn, once per round; the rows above combine the rounds */
  rounds?: { receivewalSync?: PgbenchResult; walkeeper?: PgbenchResult; walkeeperNoOffload?: PgbenchResult; receivewalQuorum?: PgbenchResult }[];
  /** the ingest safekeeper with --max-recycled-segments 0 (ingest is with the default, recycling on) */
  ingestNoRecycling?: IngestResult;
  /** --wal-keep-size of the ingest safekeepers (removal runs behind the acknowledged LSN) */
  ingestKeepSize?: string;
  ingest?: IngestResult;
  fio?: FioResult;
  /** (c) with the safekeepers' remote storage off ((c) has the default file:// bucket on) */
  walkeeperNoOffload?: PgbenchResult;
  offload?: OffloadResult[];
  startup?: StartupResult[];
  fioSeconds?: number;
  errors: string[];
}

const MB = 1_000_000;

function f(n: number | undefined, digits = 1): string {
  return n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits);
}

export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

/** One row for several runs of the same setup: mean TPS, transaction-weighted latency, summed CPU. */
export function combineRuns(runs: PgbenchResult[]): PgbenchResult | undefined {
  if (runs.length === 0) return undefined;
  if (runs.length === 1) return runs[0];
  const transactions = runs.reduce((a, r) => a + r.transactions, 0);
  const latency = transactions > 0 ? runs.reduce((a, r) => a + r.latencyMs * r.transactions, 0) / transactions : runs[0].latencyMs;
  const out: PgbenchResult = {
    tps: runs.reduce((a, r) => a + r.tps, 0) / runs.length,
    latencyMs: latency,
    transactions,
    failed: runs.reduce((a, r) => a + r.failed, 0),
    raw: [],
  };
  const withCpu = runs.filter((r) => r.cpu);
  if (withCpu.length) {
    const byName = new Map<string, number>();
    for (const r of withCpu) for (const p of r.cpu!.processes) byName.set(p.name, (byName.get(p.name) ?? 0) + p.seconds);
    out.cpu = {
      processes: [...byName].map(([name, seconds]) => ({ name, seconds })),
      machineBusy: withCpu.reduce((a, r) => a + r.cpu!.machineBusy, 0) / withCpu.length,
    };
  }
  return out;
}

function cpuRow(name: string, p: PgbenchResult | undefined): string {
  const cpu = p?.cpu;
  if (!p || !cpu) return `| ${name} | - | - | - | - |`;
  const total = cpu.processes.reduce((a, x) => a + x.seconds, 0);
  const perTx = p.transactions > 0 ? (total * 1e6) / p.transactions : undefined;
  const detail = cpu.processes.map((x) => `${x.name} ${f(x.seconds)}`).join(', ');
  return `| ${name} | ${f(total)} | ${f(perTx, 0)} | ${f(cpu.machineBusy * 100, 0)}% | ${detail} |`;
}

function ingestDetail(i: IngestResult | undefined): string {
  if (!i) return '-';
  const zeroFill = i.zeroFilledOnAppend !== undefined ? `, ${i.zeroFilledOnAppend} of ${i.segments ?? '?'} segments zero-filled on the append path` : '';
  return `${f(i.bytes / MB)} MB in ${f(i.seconds, 2)} s, ${i.appendRequests} requests, stopped by ${i.stoppedBy}${zeroFill}`;
}

export function formatBenchReport(r: BenchReport): string {
  const cb = ratio(r.walkeeper?.tps, r.receivewalSync?.tps);
  const ingestMBs = r.ingest && r.ingest.seconds > 0 ? r.ingest.bytes / MB / r.ingest.seconds : undefined;
  const fioMBs = r.fio ? r.fio.bwBytes / MB : undefined;
  const ingestNoRecycleMBs = r.ingestNoRecycling && r.ingestNoRecycling.seconds > 0 ? r.ingestNoRecycling.bytes / MB / r.ingestNoRecycling.seconds : undefined;
  const row = (name: string, p: PgbenchResult | undefined) => `| ${name} | ${f(p?.tps)} | ${f(p?.latencyMs, 3)} | ${p ? p.transactions : '-'} | ${p ? p.failed : '-'} |`;
  const lines = [
    `## pgbench -N -c ${r.clients} -j ${r.jobs} -T ${r.seconds} (scale ${r.scale}), one PostgreSQL server`,
    '',
    '| setup | TPS | avg latency (ms) | transactions | failed |',
    '|---|---:|---:|---:|---:|',
    row("(a) primary alone (synchronous_standby_names='')", r.primaryAlone),
    row("(b) pg_receivewal --synchronous as sync standby ('recv')", r.receivewalSync),
    row("(c) walkeeper, 3 safekeepers ('walkeeper_proposer')", r.walkeeper),
    row("(d) 3 pg_receivewal --synchronous, quorum ('ANY 2 (recv1, recv2, recv3)')", r.receivewalQuorum),
    '',
    `| ratio | value | target |`,
    '|---|---:|---|',
    `| (c)/(b) TPS | ${f(cb, 3)} | >= 0.8 ${cb === undefined ? '' : cb >= 0.8 ? '(met)' : '(NOT met)'} |`,
    `| (c)/(a) TPS | ${f(ratio(r.walkeeper?.tps, r.primaryAlone?.tps), 3)} | |`,
    `| (b)/(a) TPS | ${f(ratio(r.receivewalSync?.tps, r.primaryAlone?.tps), 3)} | |`,
    `| (c)/(d) TPS: walkeeper vs PostgreSQL's own quorum commit | ${f(ratio(r.walkeeper?.tps, r.receivewalQuorum?.tps), 3)} | |`,
    `| (d)/(b) TPS: what a third copy and a quorum cost here | ${f(ratio(r.receivewalQuorum?.tps, r.receivewalSync?.tps), 3)} | |`,
    '',
    '## CPU while pgbench ran (replication processes only; PostgreSQL and pgbench not counted)',
    '',
    '| setup | CPU s | CPU µs per transaction | machine busy (all cores) | per process (s) |',
    '|---|---:|---:|---:|---|',
    cpuRow('(a) primary alone', r.primaryAlone),
    cpuRow('(b) pg_receivewal', r.receivewalSync),
    cpuRow('(c) walkeeper', r.walkeeper),
    cpuRow('(d) 3 pg_receivewal, quorum', r.receivewalQuorum),
    '',
    '## safekeeper raw ingest vs the disk (same directory)',
    '',
    '| measure | MB/s | detail |',
    '|---|---:|---|',
    `| safekeeper ingest: 128 KiB AppendRequests of real WAL, pipelined, acknowledged flush LSN; recycling on (default) | ${f(ingestMBs)} | ${ingestDetail(r.ingest)} |`,
    `| fio --rw=write --bs=128k --fdatasync=1 --ioengine=sync, ${r.fioSeconds ?? '-'} s | ${f(fioMBs)} | ${r.fio ? `${f(r.fio.iops, 0)} IOPS${r.fio.syncMeanUs !== undefined ? `, fdatasync mean ${f(r.fio.syncMeanUs, 0)} µs` : ''}` : '-'} |`,
    `| safekeeper ingest, --max-recycled-segments 0 (every segment zero-filled) | ${f(ingestNoRecycleMBs)} | ${ingestDetail(r.ingestNoRecycling)} |`,
    `| ingest / fio (recycling on) | ${f(ratio(ingestMBs, fioMBs), 2)} | target >= 0.6 ${ratio(ingestMBs, fioMBs) === undefined ? '' : ratio(ingestMBs, fioMBs)! >= 0.6 ? '(met)' : '(NOT met)'} |`,
    `| ingest / fio (recycling off) | ${f(ratio(ingestNoRecycleMBs, fioMBs), 2)} | |`,
  ];
  if (r.walkeeperNoOffload) {
    lines.push(
      '',
      '## (c) with remote storage (WAL offload to the file:// bucket) on and off',
      '',
      '| setup | TPS | avg latency (ms) | transactions | failed |',
      '|---|---:|---:|---:|---:|',
      row('(c) walkeeper, offload to file:// on (the default)', r.walkeeper),
      row('(c) walkeeper, remote storage off', r.walkeeperNoOffload),
      '',
      `| off / on TPS | ${f(ratio(r.walkeeperNoOffload.tps, r.walkeeper?.tps), 3)} |`,
      '|---|---:|',
    );
  }
  if (r.offload?.length) {
    lines.push('', '## offload: real 16 MiB segments, create-only put with checksum, one at a time', '', '| store | MB/s | detail |', '|---|---:|---|');
    for (const o of r.offload) lines.push(`| ${o.store} | ${f(o.bytes / MB / o.seconds)} | ${o.objects} objects, ${f(o.bytes / MB)} MB in ${f(o.seconds, 2)} s |`);
  }
  if (r.startup?.length) {
    lines.push('', `## start-up of a member after its history, removal running (--wal-keep-size ${r.ingestKeepSize ?? '-'})`, '', '| history | retained on disk | start to ready (s), median | restarts |', '|---:|---:|---:|---:|');
    for (const s of r.startup) lines.push(`| ${f(s.historyBytes / 1e9, 2)} GB | ${f(s.retainedBytes / MB, 0)} MB | ${f(s.seconds, 2)} | ${s.restarts ?? 1} |`);
  }
  if (r.rounds && r.rounds.length > 1) {
    lines.push('', `## (b), (c) and (d) in turn, ${r.rounds.length} rounds (the rows above combine them)`, '', '| round | (b) TPS | (c) TPS | (c) offload off TPS | (d) TPS | (c)/(b) | (c)/(d) |', '|---:|---:|---:|---:|---:|---:|---:|');
    r.rounds.forEach((x, i) =>
      lines.push(`| ${i + 1} | ${f(x.receivewalSync?.tps)} | ${f(x.walkeeper?.tps)} | ${f(x.walkeeperNoOffload?.tps)} | ${f(x.receivewalQuorum?.tps)} | ${f(ratio(x.walkeeper?.tps, x.receivewalSync?.tps), 3)} | ${f(ratio(x.walkeeper?.tps, x.receivewalQuorum?.tps), 3)} |`),
    );
  }
  if (r.errors.length) lines.push('', '### errors', '', ...r.errors.map((e) => `- ${e.split('\n')[0]}`));
  return lines.join('\n');
}

export const BENCH_STEPS = ['a', 'b', 'c', 'c-off', 'd', 'ingest', 'fio', 'offload', 'startup'] as const;
export type BenchStep = (typeof BENCH_STEPS)[number];

export interface BenchArgs {
  seconds: number;
  scale: number;
  diskSeconds?: number;
  rounds?: number;
  only?: BenchStep[];
}

export const BENCH_USAGE = `usage: bench [--seconds N] [--scale S] [--disk-seconds N] [--rounds N] [--only ${BENCH_STEPS.join(',')}]`;

/** `bench [--seconds N] [--scale S] [--disk-seconds N] [--rounds N] [--only steps]` */
export function parseBenchArgs(argv: string[]): BenchArgs {
  const out: BenchArgs = { seconds: 30, scale: 10 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[++i];
    if (a === '--only') {
      const steps = (v ?? '').split(',').filter(Boolean);
      const bad = steps.filter((s) => !(BENCH_STEPS as readonly string[]).includes(s));
      if (steps.length === 0 || bad.length) throw new Error(`--only needs a comma-separated list of ${BENCH_STEPS.join(', ')}${bad.length ? `; unknown: ${bad.join(', ')}` : ''}`);
      out.only = steps as BenchStep[];
      continue;
    }
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n <= 0) throw new Error(`${a} needs a positive integer${v === undefined ? '' : `, got "${v}"`}`);
    if (a === '--seconds') out.seconds = n;
    else if (a === '--scale') out.scale = n;
    else if (a === '--disk-seconds') out.diskSeconds = n;
    else if (a === '--rounds') out.rounds = n;
    else throw new Error(`unknown argument "${a}" (${BENCH_USAGE})`);
  }
  return out;
}
