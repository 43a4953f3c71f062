// The ledger checker: it must report acknowledged rows that are missing, duplicated ids and
// ids nobody sent, and it must fail when the record is deliberately falsified.
import { applyBreakRule, checkLedger, LedgerRecord } from '../../src/torture/ledger.js';
import { formatReport, parseTortureArgs } from '../../src/torture/cli.js';

function recordOf(acked: number[], unknown: number[] = []): LedgerRecord {
  const r = new LedgerRecord();
  for (const id of [...acked, ...unknown]) r.attempt(id);
  for (const id of acked) r.acknowledge(id);
  return r;
}

test('every acknowledged row present once: ok, and surviving unknown-outcome rows are fine', () => {
  const r = recordOf([1, 2, 3], [4, 5]);
  const check = checkLedger(r.acknowledged, r.attempted, { ids: [3, 1, 2, 4], countAll: 4, countDistinct: 4 });
  expect(check).toEqual({ acknowledged: 3, lost: [], duplicates: 0, phantoms: [], unknownPresent: 1, ok: true });
});

test('an acknowledged row missing from the restored server is reported lost', () => {
  const r = recordOf([1, 2, 3]);
  const check = checkLedger(r.acknowledged, r.attempted, { ids: [1, 3], countAll: 2, countDistinct: 2 });
  expect(check.lost).toEqual([2]);
  expect(check.ok).toBe(false);
});

test('a falsified record (an acknowledged id never inserted) makes the check fail with that id lost', () => {
  const r = recordOf([1, 2, 3]);
  const fake = applyBreakRule('falsify-ack', r);
  expect(r.acknowledged.has(fake)).toBe(true);
  const check = checkLedger(r.acknowledged, r.attempted, { ids: [1, 2, 3], countAll: 3, countDistinct: 3 });
  expect(check.lost).toEqual([fake]);
  expect(check.ok).toBe(false);
});

test('an id appearing twice is a duplicate, whether seen in the ids or only in the counts', () => {
  const r = recordOf([1, 2]);
  expect(checkLedger(r.acknowledged, r.attempted, { ids: [1, 2, 2], countAll: 3, countDistinct: 2 }).duplicates).toBe(1);
  const viaCounts = checkLedger(r.acknowledged, r.attempted, { ids: [1, 2], countAll: 3, countDistinct: 2 });
  expect(viaCounts.duplicates).toBe(1);
  expect(viaCounts.ok).toBe(false);
});

test('a row whose id was never sent is a phantom and fails the check', () => {
  const r = recordOf([1]);
  const check = checkLedger(r.acknowledged, r.attempted, { ids: [1, 77], countAll: 2, countDistinct: 2 });
  expect(check.phantoms).toEqual([77]);
  expect(check.ok).toBe(false);
});

test('the record refuses a reused id', () => {
  const r = recordOf([1]);
  expect(() => r.attempt(1)).toThrow(/attempted twice/);
});

test('command line: defaults, values and errors', () => {
  expect(parseTortureArgs([])).toEqual({ seconds: 60, clients: 8, keep: false });
  expect(parseTortureArgs(['--seconds', '20', '--seed', '9', '--break-rule', 'falsify-ack', '--keep'])).toEqual({ seconds: 20, seed: 9, clients: 8, breakRule: 'falsify-ack', keep: true });
  expect(() => parseTortureArgs(['--seconds'])).toThrow(/needs a value/);
  expect(() => parseTortureArgs(['--bogus'])).toThrow(/unknown argument/);
});

test('the report names seed, acknowledged, faults by kind, lost and duplicates', () => {
  const text = formatReport({
    seed: 5, seconds: 10, clients: 8, attempted: 12, acknowledged: 10, unknown: 2,
    faults: { kill_safekeeper: 2, restart_proposer: 1, crash_postgres: 1, quorum_loss: 0 }, faultsTotal: 4,
    proposerRestartsBySupervisor: 0, slowRecoveries: 0, workloadErrors: 2, syncRepWarnings: 0,
    lost: 0, lostIds: [], duplicates: 0, phantoms: 0, ok: true,
  });
  expect(text).toMatch(/seed \| 5/);
  expect(text).toMatch(/transactions acknowledged \| 10/);
  expect(text).toMatch(/kill_safekeeper 2, restart_proposer 1, crash_postgres 1, quorum_loss 0/);
  expect(text).toMatch(/rows lost\*\* \| \*\*0/);
  expect(text).toMatch(/RESULT: OK/);
});
