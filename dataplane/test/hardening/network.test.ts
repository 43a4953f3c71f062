// Network faults with network namespaces (testkit/src/chaos/netns.ts, networkFaults.ts): each
// safekeeper in its own namespace, PostgreSQL and the proposer in another, all joined by a
// bridge on a private 10.213.N.0/24 subnet created for the test. Partitions are links set
// down; impairment is tc netem where the kernel has it (else nftables loss + a delaying
// forwarder). Ends with the torture's ledger check from the partitioned member. Skipped,
// with the reason printed, where namespaces cannot be created.
import { jest } from '@jest/globals';
import { runNetworkScenarios } from '@walkeeper/testkit/chaos/networkFaults';

jest.setTimeout(175_000);

test('partition, delay + loss, heal: commits only with a quorum, nothing acknowledged is lost', async () => {
  const lines: string[] = [];
  const r = await runNetworkScenarios((l) => lines.push(l));
  console.log(lines.join('\n'));
  if (r.skipped) {
    console.warn(`skipping the network scenarios: ${r.skipped}`);
    return;
  }
  console.log(`commit latency (ms): ${JSON.stringify(r.latency)}`);
  // Anything the scenarios noticed but do not fail on is printed.
  if (r.knownIssues.length) console.warn(`known issues:\n${r.knownIssues.join('\n')}`);
  expect(r.error).toBeUndefined();
  for (const s of r.scenarios) expect(`${s.name}: ${s.ok ? 'ok' : 'FAILED'} (${s.detail})`).toMatch(/: ok \(/);
  expect(r.scenarios).toHaveLength(3);
  expect(r.ledger?.lost).toEqual([]);
  // read across WAL the member had removed (switchUntilRemoved fails the check otherwise)
  expect(r.ledger?.readerLocalStartLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
  expect(r.ledger?.ok).toBe(true);
  expect(r.leftovers).toEqual([]);
});
