// The torture's checker fails when a safety rule of the system is broken, not only when its
// own record is falsified: the same deterministic disaster (quorum loss, then the primary
// lost and the last live safekeeper's disk wiped) loses nothing with correct rules, and
// loses acknowledged rows when the proposer acknowledges commits before a quorum has them.
import { jest } from '@jest/globals';
import { runPrimaryLoss } from '../../src/torture/primaryLoss.js';

jest.setTimeout(240_000);
const log = (l: string) => process.stdout.write(l + '\n');

test('with correct rules, every acknowledged row survives losing the primary and a wiped member', async () => {
  const r = await runPrimaryLoss({ log });
  expect(r.acknowledged).toBeGreaterThan(0);
  expect(r.acknowledgedDuringQuorumLoss).toBe(0);
  expect(r.lost).toBe(0);
  expect(r.duplicates).toBe(0);
  expect(r.ok).toBe(true);
});

test('acknowledging before the quorum (a broken rule) is caught: acknowledged rows are lost', async () => {
  const r = await runPrimaryLoss({ unsafeAck: true, log });
  expect(r.acknowledgedDuringQuorumLoss).toBeGreaterThan(0);
  expect(r.lost).toBeGreaterThan(0);
  expect(r.ok).toBe(false);
});
