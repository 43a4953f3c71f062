// `npm run torture -- --seconds N [--seed S] [--clients C] [--break-rule falsify-ack] [--keep]`:
// runs the durability torture and prints its report; exit code 1 if anything was lost.
import { formatReport, parseTortureArgs, type TortureArgs } from './cli.js';
import { runTorture } from './run.js';

async function main(): Promise<number> {
  let args: TortureArgs;
  try {
    args = parseTortureArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`torture: ${(err as Error).message}\n`);
    return 2;
  }
  const report = await runTorture({ seconds: args.seconds, seed: args.seed, clients: args.clients, breakRule: args.breakRule, keepDir: args.keep ? 'always' : 'on-failure' });
  process.stdout.write(formatReport(report) + '\n');
  if (report.error) process.stderr.write(report.error + '\n');
  return report.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`torture: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
