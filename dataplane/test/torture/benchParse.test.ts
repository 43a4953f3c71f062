// The benchmark's parsers and report: pgbench 15 summaries, fio JSON, the markdown table.
import { formatBenchReport, parseBenchArgs, parseFioJson, parsePgbench } from '../../src/bench/parse.js';

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

test('the report has the three setups, the c/b ratio against its target and the ingest rows', () => {
  const p = (tps: number) => ({ tps, latencyMs: 8 / tps * 1000, transactions: tps * 30, failed: 0, raw: [] });
  const text = formatBenchReport({
    seconds: 30, scale: 10, clients: 8, jobs: 2,
    primaryAlone: p(1400), receivewalSync: p(1000), walkeeper: p(900),
    ingest: { bytes: 200e6, seconds: 2, appendRequests: 1526, stoppedBy: 'wal' },
    fio: { bwBytes: 50e6, iops: 381 }, fioSeconds: 20, errors: [],
  });
  expect(text).toMatch(/\(c\)\/\(b\) TPS \| 0\.900 \| >= 0\.8 \(met\)/);
  expect(text).toMatch(/\| 100\.0 \| 200\.0 MB in 2\.00 s/);
  expect(text).toMatch(/fio .* \| 50\.0 \|/);
  expect(text).toMatch(/ingest \/ fio \| 2\.00/);
});

test('bench arguments', () => {
  expect(parseBenchArgs([])).toEqual({ seconds: 30, scale: 10 });
  expect(parseBenchArgs(['--seconds', '5'])).toEqual({ seconds: 5, scale: 10 });
  expect(() => parseBenchArgs(['--seconds', 'x'])).toThrow(/positive integer/);
});
