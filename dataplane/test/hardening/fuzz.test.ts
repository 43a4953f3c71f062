// Bounded fuzzing of every decoder on the safekeeper's Postgres-protocol port and of a live
// in-process safekeeper (Postgres port and HTTP API): >= 100,000 generated inputs, no crash,
// no hang, committed WAL unchanged, memory bounded. Seed: WALKEEPER_FUZZ_SEED (printed).
// Plus the explicit limits: oversized length fields and slow-drip connections.
import { jest } from '@jest/globals';
import { runFuzz } from '@walkeeper/testkit/chaos/fuzz';
import { newId } from '../../src/common/ids.js';
import { http, rawExchange, removeDir, replicationStartup, startTestSafekeeper, tempDir, type TestSafekeeper } from '@walkeeper/testkit/safekeeperHarness';

jest.setTimeout(170_000);

test('100,000+ fuzzed inputs: no crash, no hang, WAL unchanged, memory bounded', async () => {
  const seed = process.env.WALKEEPER_FUZZ_SEED ? Number(process.env.WALKEEPER_FUZZ_SEED) : undefined;
  const lines: string[] = [];
  const r = await runFuzz({ seed, decoderRuns: 18_000, sessions: 3000, httpRequests: 2500, log: (l) => lines.push(l) });
  console.log(`${lines.join('\n')}\nfuzz report: ${JSON.stringify(r, null, 1)}`);
  expect(r.inputs.total).toBeGreaterThanOrEqual(100_000);
  expect(r.crashSamples).toEqual([]);
  expect(r.crashes).toBe(0);
  expect(r.walProblems).toEqual([]);
  expect(r.responsive).toBe(true);
  expect(r.http5xxSamples).toEqual([]);
  expect(r.rssGrowthMiB).toBeLessThan(r.rssLimitMiB);
});

describe('limits on a live safekeeper', () => {
  let dir: string;
  let ts: TestSafekeeper;
  const tenant = newId();
  const timeline = newId();
  beforeAll(async () => {
    dir = tempDir('limits');
    ts = await startTestSafekeeper(dir);
    await http(ts.httpUrl, 'POST', '/v1/tenants', { body: { tenant_id: tenant } });
    await http(ts.httpUrl, 'POST', `/v1/tenants/${tenant}/timelines`, { body: { timeline_id: timeline } });
  });
  afterAll(async () => {
    await ts?.sk.stop().catch(() => undefined);
    removeDir(dir);
  });

  test('oversized length fields are refused before any body is buffered', async () => {
    const rss0 = process.memoryUsage().rss;
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => {
        const head = Buffer.alloc(5);
        head[0] = 0x64;
        head.writeInt32BE(0x7ffffff0 - i, 1);
        return rawExchange(ts.pgPort, [replicationStartup(tenant, timeline), head], { waitMs: 3000 });
      }),
    );
    for (const r of results) {
      expect(r.error?.message).toMatch(/exceeds the limit/);
      expect(r.closedByServer).toBe(true);
    }
    expect(process.memoryUsage().rss - rss0).toBeLessThan(64 * 1024 * 1024);
  });

  test('a slow-drip startup packet is cut off by the startup timeout', async () => {
    const packet = replicationStartup(tenant, timeline);
    const chunks = Array.from({ length: 40 }, (_, i) => packet.subarray(i, i + 1));
    const r = await rawExchange(ts.pgPort, chunks, { gapMs: 400, waitMs: 15_000 });
    expect(r.error?.message).toMatch(/startup not completed within/);
    expect(r.closedByServer).toBe(true);
    expect(r.elapsedMs).toBeLessThan(13_000);
  });

  // After startup, a message that stays half-received for 10 s ends the connection, so a
  // slow-drip client cannot hold its buffer forever.
  test('a slow-drip message after startup is cut off by a timeout', async () => {
    const head = Buffer.alloc(5);
    head[0] = 0x51; // 'Q' of 1000 bytes, never completed
    head.writeInt32BE(1000, 1);
    const drip = Array.from({ length: 15 }, () => Buffer.from('x'));
    const r = await rawExchange(ts.pgPort, [replicationStartup(tenant, timeline), head, ...drip], { gapMs: 1000, waitMs: 5_000 });
    expect(r.closedByServer).toBe(true);
  });
});
