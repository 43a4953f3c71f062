// "A 60-second run is part of npm test": the durability torture against a real local
// cluster (3 safekeepers, PostgreSQL 15, proposer), rebuilt from the safekeepers' WAL alone.
import { jest } from '@jest/globals';
import { runTorture } from '../../src/torture/run.js';
import { formatReport } from '../../src/torture/cli.js';

jest.setTimeout(600_000);

const seconds = Number(process.env.WALKEEPER_TORTURE_SECONDS ?? 60);

test(`${seconds} s of faults under load: nothing acknowledged is lost, nothing is duplicated`, async () => {
  const lines: string[] = [];
  const report = await runTorture({ seconds, log: (l) => lines.push(l) });
  // the whole log on failure: seed and every fault with its timestamp
  if (!report.ok) process.stdout.write(lines.join('\n') + '\n' + formatReport(report) + '\n');
  else process.stdout.write(`torture: seed ${report.seed}: ${report.acknowledged} acknowledged, ${report.faultsTotal} faults ${JSON.stringify(report.faults)}, lost ${report.lost}, duplicates ${report.duplicates}\n`);
  expect(report.error).toBeUndefined();
  expect(report.acknowledged).toBeGreaterThan(0);
  expect(report.faultsTotal).toBeGreaterThan(0);
  // the restore crossed WAL the reader had removed (and so read it from the bucket)
  expect(report.readerLocalStartLsn).toBeDefined();
  expect({ lost: report.lost, duplicates: report.duplicates, phantoms: report.phantoms, seed: report.seed }).toEqual({ lost: 0, duplicates: 0, phantoms: 0, seed: report.seed });
});
