// A partitioned old primary and a new primary racing (testkit/src/chaos/failoverRace.ts): PG1 and
// its proposer cut off from the majority, a hot standby following a safekeeper promoted by
// a --promote proposer. Only the new primary commits; the old proposer is fenced, before and
// after the partition heals; the ledger check passes on the new primary and on a server
// restored from a safekeeper's WAL across the timeline switch. Skipped, with the reason
// printed, where network namespaces cannot be created.
import { jest } from '@jest/globals';
import { runFailoverRace } from '@walkeeper/testkit/chaos/failoverRace';

jest.setTimeout(240_000);

test('only the new primary commits, the old one is fenced, nothing acknowledged is lost', async () => {
  const lines: string[] = [];
  const r = await runFailoverRace((l) => lines.push(l));
  console.log(lines.join('\n'));
  if (r.skipped) {
    console.warn(`skipping the failover race: ${r.skipped}`);
    return;
  }
  expect(r.error).toBeUndefined();
  for (const c of r.checks) expect(`${c.name}: ${c.ok ? 'ok' : 'FAILED'} (${c.detail})`).toMatch(/: ok \(/);
  expect(r.checks).toHaveLength(5);
  expect(r.ackedOnOldPrimaryDuringPartition).toBe(0);
  expect(r.ackedOnNewPrimary).toBeGreaterThan(0);
  expect(BigInt(r.newTerm!)).toBeGreaterThan(BigInt(r.oldTerm!));
  expect(r.restartedOldProposerReason).toMatch(/holds PostgreSQL timeline 2/);
  expect(r.ledger?.lost).toEqual([]);
  // read across WAL the member had removed (switchUntilRemoved fails the check otherwise)
  expect(r.ledger?.readerLocalStartLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
  expect(r.ledgerOnNewPrimary?.lost).toEqual([]);
  expect(r.leftovers).toEqual([]);
});
