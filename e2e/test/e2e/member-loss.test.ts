// Member loss: a safekeeper loses its volume (its pod and PVC are deleted, and with the claim its
// directory). The Safekeeper goes Degraded with a reason, the StatefulSet brings the member back
// empty, the operator registers the tenant's timeline on it again, the proposer catches it up, and
// the status returns to healthy.
import fs from 'node:fs';
import path from 'node:path';
import { type Condition, Scenario, condition, safekeeperYaml, tenantYaml, waitFor } from './helpers.js';

const s = new Scenario('loss');

beforeAll(() => s.start(), 90_000);
afterAll(() => s.stop(), 90_000);

interface TimelineJson {
  flush_lsn: string;
  commit_lsn: string;
}
const lsn = (x: string) => {
  const [hi, lo] = x.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
};

it('reports Degraded while a member is lost, and brings it back registered and caught up', s.step(async () => {
  await s.applyOk(safekeeperYaml('main'));
  await s.applyOk(tenantYaml('demo'));
  await s.waitTenantReady('demo', 150);
  const { tenantId, timelineId } = await s.tenantStatus('demo');
  const client = await s.connect('demo');
  await client.query("CREATE TABLE kept AS SELECT g AS id, repeat('k', 100) AS pad FROM generate_series(1, 5000) g");

  const dir = await s.pvcDir('data-main-1');
  const timelineDir = path.join(dir, 'tenants', tenantId!, timelineId!);
  expect(fs.readdirSync(timelineDir)).toContain('safekeeper.control');
  fs.writeFileSync(path.join(dir, 'old-volume.marker'), 'this volume is about to be lost\n');
  const oldUid = (await s.safekeeperPods()).find((p) => p.metadata.name === 'main-1')!.metadata.uid;

  // Watch the Safekeeper's Degraded condition from the API (every 100 ms) while the member is replaced.
  const skT = s.env.harness.api.type('walkeeper.io', 'v1alpha1', 'safekeepers')!;
  const degraded: Condition[] = [];
  const watcher = setInterval(() => {
    const c = condition(s.env.harness.api.tryGet(skT, 'default', 'main')?.status as { conditions?: Condition[] }, 'Degraded');
    if (c && c.status === 'True' && !degraded.some((d) => d.message === c.message)) degraded.push(c);
  }, 100);
  // Writes go on meanwhile: the member must catch up with WAL written while it was away.
  let writing = true;
  const writes = (async () => {
    for (let i = 0; writing; i++) await client.query('INSERT INTO kept VALUES ($1, $2)', [100_000 + i, 'during']);
  })();

  // The volume is lost: the claim and the pod are deleted (the harness deletes the claim's directory once the pod stopped).
  await s.env.kubectlOk(['delete', 'pvc', 'data-main-1', '--wait=false']);
  await s.env.kubectlOk(['delete', 'pod', 'main-1', '--wait=false']);
  await waitFor('main-1 to come back as a new pod on a new, empty volume', 60_000, async () => {
    const p = (await s.safekeeperPods()).find((x) => x.metadata.name === 'main-1');
    return p && p.metadata.uid !== oldUid && p.status.podIP ? p : undefined;
  }, 200);
  const newDir = await s.pvcDir('data-main-1');
  expect(newDir).toBe(dir);
  expect(fs.existsSync(path.join(dir, 'old-volume.marker'))).toBe(false); // really a new, empty volume

  // The operator registers the timeline again and the proposer catches the member up.
  const ip = (await s.safekeeperPods()).find((p) => p.metadata.name === 'main-1')!.status.podIP!;
  const caughtUp = await waitFor('the new member to hold the timeline and catch up', 90_000, async () => {
    const r = await fetch(`http://${ip}:7676/v1/tenants/${tenantId}/timelines/${timelineId}`, { signal: AbortSignal.timeout(2000) });
    if (r.status !== 200) return undefined;
    const t = (await r.json()) as TimelineJson;
    return lsn(t.flush_lsn) > 0n && lsn(t.flush_lsn) >= lsn(t.commit_lsn) - 8192n ? t : undefined;
  }, 300);
  writing = false;
  await writes;
  await client.end();

  await waitFor('the Safekeeper healthy again', 60_000, async () => {
    const sk = await s.getJson('safekeeper', 'main');
    const st = sk.status as { conditions?: Condition[]; quorum?: { status: string } };
    return condition(st, 'Degraded')?.status === 'False' && st.quorum?.status === 'Healthy';
  }, 500);
  clearInterval(watcher);
  await s.waitTenantReady('demo', 60);
  const st = await s.tenantStatus('demo');
  console.log(
    `member loss: Degraded conditions seen: ${JSON.stringify(degraded.map((d) => `${d.reason}: ${d.message}`))}\n` +
      `new member main-1 caught up at flush ${caughtUp.flush_lsn} (commit ${caughtUp.commit_lsn}); tenant quorum ${JSON.stringify(st.quorum)}`,
  );

  expect(degraded.length).toBeGreaterThan(0);
  expect(degraded[0]).toMatchObject({ reason: 'MembersUnhealthy', message: expect.stringContaining('main-1') });
  expect(st.members).toEqual([0, 1, 2].map((i) => expect.objectContaining({ name: `main-${i}`, registered: true })));
  expect(st.quorum).toMatchObject({ members: 3, caughtUp: 3, healthy: true });
  // The member is the same member (id pinned to the new volume) and really holds WAL again.
  expect(fs.readFileSync(path.join(dir, 'safekeeper.id'), 'utf8').trim()).toMatch(/^2\b/);
  expect(fs.readdirSync(timelineDir).some((f) => /^[0-9A-F]{24}(\.partial)?$/.test(f))).toBe(true);
  const events = JSON.parse(await s.env.kubectlOk(['get', 'events', '--field-selector', 'involvedObject.name=demo', '-o', 'json'])) as { items: { reason: string; message: string }[] };
  console.log(`tenant events: ${[...new Set(events.items.map((e) => e.reason))].join(', ')}`);
}), 220_000);
