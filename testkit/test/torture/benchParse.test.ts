// The benchmark's parsers and report: pgbench 15 summaries, fio JSON, the markdown table.
import { combineRuns, formatBenchReport, parseBenchArgs, parseFioJson, parsePgbench } from '../../src/bench/parse.js';
import { cpuBetween, parseMachineStat, parseProcStat } from '../../src/bench/cpu.js';

const PGBENCH_15 = `pgbench (15.20 (Debian 15.20-0+deb12u1))
starting vacuum...end.
transaction type: <builtin: simple update>
scaling factor: 10
query mode: simple
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 30 s
number of transactions actually processed: 43308
number of failed transactions: 0 (0.000%)
latency average = 5.542 ms
initial connection time = 12.345 ms
tps = 1443.600000 (without initial connection time)
`;

test('pgbench 15 output gives TPS, average latency, counts and the raw summary lines', () => {
  const r = parsePgbench(PGBENCH_15);
  expect(r).toMatchObject({ tps: 1443.6, latencyMs: 5.542, transactions: 43308, failed: 0 });
  expect(r.raw[0]).toBe('transaction type: <builtin: simple update>');
  expect(r.raw[r.raw.length - 1]).toMatch(/^tps = 1443.6/);
});

test('pgbench output without a summary is an error that shows the output', () => {
  expect(() => parsePgbench('connection to server failed')).toThrow(/connection to server failed/);
});

test('fio JSON gives write bandwidth, IOPS and the mean fdatasync latency', () => {
  const json = `note: both iodepth >= 1 and synchronous I/O engine are selected\n${JSON.stringify({ jobs: [{ write: { bw_bytes: 52_428_800, iops: 400 }, sync: { lat_ns: { mean: 2_000_000 } } }] })}`;
  expect(parseFioJson(json)).toEqual({ bwBytes: 52_428_800, iops: 400, syncMeanUs: 2000 });
});

test('the report has the four setups, the c/b ratio against its target, c/d and d/b, and the ingest rows', () => {
  const p = (tps: number) => ({ tps, latencyMs: 8 / tps * 1000, transactions: tps * 30, failed: 0, raw: [] });
  const text = formatBenchReport({
    seconds: 30, scale: 10, clients: 8, jobs: 2,
    primaryAlone: p(1400), receivewalSync: p(1000), walkeeper: p(900), receivewalQuorum: p(600),
    ingest: { bytes: 200e6, seconds: 2, appendRequests: 1526, stoppedBy: 'wal' },
    fio: { bwBytes: 50e6, iops: 381 }, fioSeconds: 20, errors: [],
  });
  expect(text).toMatch(/\(c\)\/\(b\) TPS \| 0\.900 \| >= 0\.8 \(met\)/);
  expect(text).toMatch(/\| \(d\) 3 pg_receivewal --synchronous, quorum \('ANY 2 \(recv1, recv2, recv3\)'\) \| 600\.0 \|/);
  expect(text).toMatch(/\(c\)\/\(d\) TPS: walkeeper vs PostgreSQL's own quorum commit \| 1\.500 \|/);
  expect(text).toMatch(/\(d\)\/\(b\) TPS: what a third copy and a quorum cost here \| 0\.600 \|/);
  expect(text).toMatch(/\| 100\.0 \| 200\.0 MB in 2\.00 s/);
  expect(text).toMatch(/fio .* \| 50\.0 \|/);
  expect(text).toMatch(/ingest \/ fio \(recycling on\) \| 2\.00 \| target >= 0\.6 \(met\)/);
});

test('the lifecycle rows: ingest with recycling off, (c) with offload off, offload per store, start-up per history', () => {
  const p = (tps: number) => ({ tps, latencyMs: 8 / tps * 1000, transactions: tps * 30, failed: 0, raw: [] });
  const text = formatBenchReport({
    seconds: 30, scale: 10, clients: 8, jobs: 2, walkeeper: p(900), walkeeperNoOffload: p(950),
    ingest: { bytes: 120e6, seconds: 2, appendRequests: 900, stoppedBy: 'time', segments: 7, zeroFilledOnAppend: 0 },
    ingestNoRecycling: { bytes: 60e6, seconds: 2, appendRequests: 450, stoppedBy: 'time', segments: 3, zeroFilledOnAppend: 3 },
    fio: { bwBytes: 100e6, iops: 763 }, fioSeconds: 20, ingestKeepSize: '64MB',
    offload: [{ store: 'file://', bytes: 256e6, seconds: 2, objects: 16 }],
    startup: [{ historyBytes: 1e9, retainedBytes: 100e6, seconds: 0.5 }, { historyBytes: 4e9, retainedBytes: 100e6, seconds: 0.52, restarts: 3 }],
    errors: [],
  });
  expect(text).toMatch(/recycling on \(default\) \| 60\.0 \| .*0 of 7 segments zero-filled on the append path/);
  expect(text).toMatch(/--max-recycled-segments 0 .* \| 30\.0 \| .*3 of 3 segments zero-filled/);
  expect(text).toMatch(/ingest \/ fio \(recycling on\) \| 0\.60 \| target >= 0\.6 \(met\)/);
  expect(text).toMatch(/ingest \/ fio \(recycling off\) \| 0\.30 \|/);
  expect(text).toMatch(/\| off \/ on TPS \| 1\.056 \|/);
  expect(text).toMatch(/\| file:\/\/ \| 128\.0 \| 16 objects, 256\.0 MB in 2\.00 s \|/);
  expect(text).toMatch(/--wal-keep-size 64MB/);
  expect(text).toMatch(/\| 4\.00 GB \| 100 MB \| 0\.52 \| 3 \|/);
});

test('bench arguments', () => {
  expect(parseBenchArgs([])).toEqual({ seconds: 30, scale: 10 });
  expect(parseBenchArgs(['--seconds', '5'])).toEqual({ seconds: 5, scale: 10 });
  expect(() => parseBenchArgs(['--seconds', 'x'])).toThrow(/positive integer/);
  expect(parseBenchArgs(['--rounds', '3', '--only', 'b,c,d'])).toEqual({ seconds: 30, scale: 10, rounds: 3, only: ['b', 'c', 'd'] });
  expect(() => parseBenchArgs(['--only', 'b,x'])).toThrow(/unknown: x/);
  expect(parseBenchArgs(['--only', 'c-off,offload,startup']).only).toEqual(['c-off', 'offload', 'startup']);
  expect(() => parseBenchArgs(['--only'])).toThrow(/comma-separated list/);
  expect(() => parseBenchArgs(['--round', '2'])).toThrow(/unknown argument "--round"/);
});

test('rounds combine into mean TPS, transaction-weighted latency and summed CPU; the table shows each round', () => {
  const run = (tps: number, latencyMs: number, transactions: number, cpu: number) => ({
    tps, latencyMs, transactions, failed: 0, raw: [], cpu: { processes: [{ name: 'proposer', seconds: cpu }], machineBusy: 0.5 },
  });
  const c = combineRuns([run(1000, 8, 10_000, 2), run(500, 16, 5_000, 1)])!;
  expect(c.tps).toBe(750);
  expect(c.latencyMs).toBeCloseTo((8 * 10_000 + 16 * 5_000) / 15_000);
  expect(c.transactions).toBe(15_000);
  expect(c.cpu!.processes).toEqual([{ name: 'proposer', seconds: 3 }]);
  expect(combineRuns([])).toBeUndefined();
  const text = formatBenchReport({
    seconds: 10, scale: 10, clients: 8, jobs: 2, walkeeper: c, receivewalSync: run(1000, 8, 15_000, 0.3),
    rounds: [{ walkeeper: run(1000, 8, 10_000, 2), receivewalSync: run(2000, 4, 10_000, 0.2), receivewalQuorum: run(1250, 6, 10_000, 0.6) }, { walkeeper: run(500, 16, 5_000, 1) }],
    errors: [],
  });
  // 3 CPU s over 15,000 transactions = 200 µs each
  expect(text).toMatch(/\| \(c\) walkeeper \| 3\.0 \| 200 \| 50% \| proposer 3\.0 \|/);
  expect(text).toMatch(/\| 1 \| 2000\.0 \| 1000\.0 \| - \| 1250\.0 \| 0\.500 \| 0\.800 \|/);
  expect(text).toMatch(/\| 2 \| - \| 500\.0 \| - \| - \| - \| - \|/);
});

test('CPU accounting reads utime+stime from /proc/<pid>/stat and busy time from /proc/stat', () => {
  // a command name with spaces and parentheses must not shift the fields
  const stat = '1234 (node (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 11 0 100 0 0';
  expect(parseProcStat(stat)).toBe(3);
  expect(() => parseProcStat('1 (x) S')).toThrow(/utime\/stime/);
  const m = parseMachineStat('cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n');
  expect(m).toEqual({ busy: 150, total: 1000 });
  const use = cpuBetween(
    { processes: new Map([['a', 1], ['gone', 5]]), busy: 100, total: 1000 },
    { processes: new Map([['a', 4], ['new', 1]]), busy: 600, total: 2000 },
  );
  expect(use).toEqual({ processes: [{ name: 'a', seconds: 3 }], machineBusy: 0.5 });
});
