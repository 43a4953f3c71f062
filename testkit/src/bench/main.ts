// `npm run bench -- [--seconds 30] [--scale 10]`: pgbench through (a) the primary alone,
// (b) pg_receivewal --synchronous, (c) walkeeper; plus safekeeper ingest vs fio. Prints markdown.
import { formatBenchReport, runBench } from './run.js';
import { BENCH_USAGE, parseBenchArgs } from './parse.js';

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(BENCH_USAGE + '\n');
    return 0;
  }
  const args = parseBenchArgs(argv);
  const report = await runBench(args);
  process.stdout.write('\n' + formatBenchReport(report) + '\n');
  return report.errors.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`bench: ${err.message}\n`);
    process.exit(2);
  },
);
