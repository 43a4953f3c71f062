// Command line of the torture: argument parsing and the printed report (pure, unit-tested).
import { parseSeed } from '@walkeeper/dataplane/common/prng';
import type { TortureReport } from './run.js';
import type { BreakRule } from './ledger.js';
import { FAULT_KINDS } from './schedule.js';

export interface TortureArgs {
  seconds: number;
  seed?: number;
  clients: number;
  breakRule?: BreakRule;
  keep: boolean;
}

export function parseTortureArgs(argv: string[]): TortureArgs {
  const args: TortureArgs = { seconds: 60, clients: 8, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case '--seconds': {
        const v = value();
        const n = Number(v);
        if (!Number.isFinite(n) || n <= 0) throw new Error(`invalid --seconds "${v}": expected a positive number`);
        args.seconds = n;
        break;
      }
      case '--seed':
        args.seed = parseSeed(value());
        break;
      case '--clients': {
        const v = value();
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`invalid --clients "${v}": expected 1..256`);
        args.clients = n;
        break;
      }
      case '--break-rule': {
        const v = value();
        if (v !== 'falsify-ack') throw new Error(`invalid --break-rule "${v}": the only rule is falsify-ack`);
        args.breakRule = v;
        break;
      }
      case '--keep':
        args.keep = true;
        break;
      case '--help':
      case '-h':
        throw new Error('usage: torture [--seconds N] [--seed S] [--clients C] [--break-rule falsify-ack] [--keep]');
      default:
        throw new Error(`unknown argument "${a}"`);
    }
  }
  return args;
}

export function formatReport(r: TortureReport): string {
  const lines = [
    '',
    '## durability torture',
    '',
    `| | |`,
    `|---|---|`,
    `| seed | ${r.seed} |`,
    `| duration | ${r.seconds} s, ${r.clients} clients |`,
    `| inserts sent | ${r.attempted} |`,
    `| transactions acknowledged | ${r.acknowledged} |`,
    `| outcome unknown (error or dropped connection) | ${r.unknown} |`,
    `| faults injected | ${r.faultsTotal} (${FAULT_KINDS.map((k) => `${k} ${r.faults[k]}`).join(', ')}) |`,
    `| proposer restarts after it exited by itself | ${r.proposerRestartsBySupervisor} |`,
    `| slow quorum recoveries (> 30 s) | ${r.slowRecoveries} |`,
    `| rows on the primary | ${r.rowsOnPrimary ?? '-'} |`,
    `| WAL read from safekeeper | ${r.readerSafekeeper ?? '-'} up to ${r.commitLsn ?? '-'} (${r.walFiles ?? '-'} files) |`,
    `| its WAL on local disk from | ${r.readerLocalStartLsn ?? '-'} (below: read from the bucket) |`,
    `| rows on the restored server | ${r.restoredRows ?? '-'} |`,
    `| **rows lost** | **${r.lost}**${r.lostIds.length ? ` (ids ${r.lostIds.slice(0, 10).join(', ')}${r.lost > 10 ? ', ...' : ''})` : ''} |`,
    `| **duplicates** | **${r.duplicates}** |`,
    `| ids never sent but present | ${r.phantoms} |`,
  ];
  if (r.breakRule) lines.push(`| break rule | ${r.breakRule} (fake id ${r.fakeId ?? '-'}) |`);
  lines.push('', r.error ? `RESULT: ERROR (run did not complete): ${r.error.split('\n')[0]}` : r.ok ? 'RESULT: OK — nothing acknowledged was lost' : 'RESULT: FAILED');
  if (r.dir) lines.push(`kept: ${r.dir}`);
  return lines.join('\n');
}
