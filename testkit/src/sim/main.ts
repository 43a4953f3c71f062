// CLI for the deterministic simulation: runs many seeds and reports throughput and the
// first failing seed with its replay command, or replays one seed printing its trace.
//   node testkit/dist/src/sim/main.js --seeds 1000 [--acceptors 5] [--churn] [--fault NAME]
//   node testkit/dist/src/sim/main.js --seed 42 [same options]
import type { AcceptorFaults } from '@walkeeper/dataplane/consensus/acceptor';
import type { ProposerFaults } from '@walkeeper/dataplane/consensus/proposer';
import type { ProposerShellFaults } from '@walkeeper/dataplane/proposer/proposerNode';
import { CHURN_CHAOS, runSeed, type SimOptions } from './cluster.js';

const FAULTS: Record<string, { acceptorFaults?: AcceptorFaults; proposerFaults?: ProposerFaults; shellFaults?: ProposerShellFaults }> = {
  acceptEqualTermVote: { acceptorFaults: { acceptEqualTermVote: true } },
  grantVoteWithoutPersist: { acceptorFaults: { grantVoteWithoutPersist: true } },
  ackBeforeFlush: { acceptorFaults: { ackBeforeFlush: true } },
  skipFigure8Rule: { proposerFaults: { skipFigure8Rule: true } },
  donorIgnoresLastLogTerm: { proposerFaults: { donorIgnoresLastLogTerm: true } },
  keepSilentMembers: { shellFaults: { keepSilentMembers: true } },
  noHeartbeats: { shellFaults: { noHeartbeats: true } },
};

function parseArgs(argv: string[]): { seeds: number; seed: number | null; first: number; flags: string[]; options: SimOptions } {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const flags: string[] = [];
  const options: SimOptions = {};
  const acceptors = get('--acceptors');
  if (acceptors) {
    options.acceptors = Number(acceptors);
    flags.push('--acceptors', acceptors);
  }
  const steps = get('--steps');
  if (steps) {
    options.maxSteps = Number(steps);
    flags.push('--steps', steps);
  }
  if (argv.includes('--churn')) {
    options.chaos = CHURN_CHAOS;
    options.maxProposers = 40;
    options.maxSteps ??= 1000;
    flags.push('--churn');
  }
  const fault = get('--fault');
  if (fault) {
    if (!FAULTS[fault]) throw new Error(`unknown --fault ${fault}; known: ${Object.keys(FAULTS).join(', ')}`);
    Object.assign(options, FAULTS[fault]);
    flags.push('--fault', fault);
  }
  const seed = get('--seed');
  return {
    seeds: Number(get('--seeds') ?? 1000),
    seed: seed === undefined ? null : Number(seed),
    first: Number(get('--first') ?? 1),
    flags,
    options,
  };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.seed !== null) {
    const r = await runSeed(args.seed, { ...args.options, trace: true });
    for (const line of r.trace) console.log(line);
    console.log(r.ok ? `seed ${args.seed}: ok after ${r.steps} steps` : `seed ${args.seed}: VIOLATION at step ${r.steps}: ${r.violation}`);
    return r.ok ? 0 : 1;
  }
  const started = process.hrtime.bigint();
  let steps = 0;
  for (let seed = args.first; seed < args.first + args.seeds; seed++) {
    const r = await runSeed(seed, { ...args.options, trace: false });
    steps += r.steps;
    if (!r.ok) {
      console.log(`seed ${seed} FAILED at step ${r.steps}: ${r.violation}`);
      console.log(`replay: node testkit/dist/src/sim/main.js --seed ${seed} ${args.flags.join(' ')}`.trimEnd());
      return 1;
    }
  }
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(
    `${args.seeds} seeds ok (${steps} steps) in ${secs.toFixed(1)} s: ${(args.seeds / secs).toFixed(0)} seeds/s, ${(steps / secs).toFixed(0)} steps/s`,
  );
  return 0;
}

process.exitCode = await main();
