// Rolling restart under load: pgbench (4 clients), the torture workload's ledger inserts and a
// probe of sequential single-row commits run against the tenant's Service while
// `kubectl annotate safekeeper main walkeeper.io/restartedAt=...` makes the operator restart the
// safekeepers one at a time. Every member restarts exactly once, two are never down together,
// pgbench has no failed transaction, no acknowledged ledger row is lost. The operator's
// Progressing condition says RestartingMember for as long as a restarted member is not back, and
// turns False only once every member is ready and caught up. The restart gate (a majority without
// the member at the commit LSN) means no restart stalls commits: the longest gap between
// consecutive successful commits stays below the time one member's restart takes.
import { execFile } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { LedgerRecord, checkLedger } from '@walkeeper/testkit/torture/ledger';
import { LEDGER_DDL, Workload } from '@walkeeper/testkit/torture/workload';
import { readLedger } from '@walkeeper/testkit/torture/restore';
import { PG_BIN, Scenario, condition, safekeeperYaml, tenantYaml, waitFor } from './helpers.js';

const s = new Scenario('roll');
const LOAD_SECONDS = 40;

beforeAll(() => s.start(), 90_000);
afterAll(async () => {
  delete process.env.PGPASSWORD;
  await s.stop();
}, 90_000);

interface Poll {
  at: number;
  /** pod name → uid of the live (not deleting) pod */
  uids: Map<string, string>;
  down: string[];
  /** the Safekeeper's Progressing condition and member list at the same instant */
  progressing: { status: string; reason: string; message?: string } | undefined;
  members: { name: string; ready: boolean; caughtUp: boolean }[];
}

function runPgbench(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(path.join(PG_BIN, 'pgbench'), args, { env, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}\n${stderr}` });
    });
  });
}

it('restarts every safekeeper once, one at a time, under pgbench and ledger load without losing an acknowledged commit', s.step(async () => {
  await s.applyOk(safekeeperYaml('main'));
  await s.applyOk(tenantYaml('demo'));
  await s.waitTenantReady('demo', 150);
  const creds = await s.credentials('demo');
  const host = await s.serviceIP('demo');
  const pgEnv = { ...process.env, PGHOST: host, PGPORT: creds.port, PGUSER: creds.username, PGPASSWORD: creds.password, PGDATABASE: creds.dbname };
  // node-postgres (the torture workload and readLedger) takes the password from the environment.
  process.env.PGPASSWORD = creds.password;

  const init = await runPgbench(['-i', '-s', '1', '-q'], pgEnv, 120_000);
  expect(init).toMatchObject({ code: 0 });
  const setup = new pg.Client({ host, port: Number(creds.port), user: creds.username, password: creds.password, database: creds.dbname });
  await setup.connect();
  await setup.query(LEDGER_DDL);
  await setup.query('CREATE TABLE IF NOT EXISTS probe (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())');
  await setup.end();

  const uidsBefore = new Map((await s.safekeeperPods()).map((p) => [p.metadata.name, p.metadata.uid!]));
  expect(uidsBefore.size).toBe(3);

  // Every 200 ms: which members are down (no live pod, or not Ready).
  const polls: Poll[] = [];
  const podsT = s.env.harness.api.type('', 'v1', 'pods')!;
  const skT = s.env.harness.api.type('walkeeper.io', 'v1alpha1', 'safekeepers')!;
  const poller = setInterval(() => {
    const skStatus = s.env.harness.api.tryGet(skT, 'default', 'main')?.status as { conditions?: { type: string; status: string; reason: string; message?: string }[]; members?: Poll['members'] } | undefined;
    const pods = s.env.harness.api.list(podsT, 'default', 'walkeeper.io/safekeeper=main');
    const uids = new Map<string, string>();
    const down: string[] = [];
    for (const name of uidsBefore.keys()) {
      const p = pods.find((x) => x.metadata.name === name && !x.metadata.deletionTimestamp);
      const ready = ((p?.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
      if (p) uids.set(name, p.metadata.uid!);
      if (!p || !ready) down.push(name);
    }
    polls.push({ at: Date.now(), uids, down, progressing: condition(skStatus, 'Progressing'), members: skStatus?.members ?? [] });
  }, 200);

  // Load: pgbench, the ledger workload, and a probe timing sequential single-row commits.
  const record = new LedgerRecord();
  const workload = new Workload({ host, port: Number(creds.port), clients: 2, record, log: s.log });
  let probing = true;
  let longestStall = 0;
  let probeCommits = 0;
  let probeErrors = 0;
  const commitTimes: number[] = [];
  const probe = (async () => {
    const c = new pg.Client({ host, port: Number(creds.port), user: creds.username, password: creds.password, database: creds.dbname });
    c.on('error', () => undefined);
    await c.connect();
    for (let id = 1; probing; id++) {
      const t = performance.now();
      try {
        await c.query('INSERT INTO probe (id) VALUES ($1)', [id]);
        probeCommits++;
        commitTimes.push(Date.now());
      } catch {
        probeErrors++;
      }
      longestStall = Math.max(longestStall, performance.now() - t);
    }
    await c.end();
  })();
  const loadStart = Date.now();
  const bench = runPgbench(['-c', '4', '-j', '2', '-T', String(LOAD_SECONDS), '-n', '-P', '10'], pgEnv, (LOAD_SECONDS + 60) * 1000);
  workload.start();

  await new Promise((r) => setTimeout(r, 4000));
  const restartedAt = new Date().toISOString();
  await s.env.kubectlOk(['annotate', 'safekeeper', 'main', `walkeeper.io/restartedAt=${restartedAt}`, '--overwrite']);
  const rollStart = Date.now();
  // The roll is done when every member is a new pod, ready, and the operator says so.
  await waitFor('the rolling restart to complete', 150_000, async () => {
    const pods = await s.safekeeperPods();
    const sk = await s.getJson('safekeeper', 'main');
    const progressing = condition(sk.status as { conditions?: { type: string; status: string; reason: string }[] }, 'Progressing');
    return pods.length === 3 && pods.every((p) => p.metadata.uid !== uidsBefore.get(p.metadata.name) && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) && progressing?.status === 'False';
  }, 500);
  const rollEnd = Date.now();
  const rollSeconds = (rollEnd - rollStart) / 1000;

  const benchResult = await bench;
  const loadSeconds = (Date.now() - loadStart) / 1000;
  probing = false;
  await probe;
  await workload.stop(30_000);
  clearInterval(poller);

  // Every member restarted exactly once: two uids per pod name over the whole run.
  const seen = new Map<string, Set<string>>();
  for (const name of uidsBefore.keys()) seen.set(name, new Set([uidsBefore.get(name)!]));
  for (const p of polls) for (const [name, uid] of p.uids) seen.get(name)!.add(uid);
  for (const p of await s.safekeeperPods()) seen.get(p.metadata.name)!.add(p.metadata.uid!);
  const maxDown = Math.max(...polls.map((p) => p.down.length));
  const twoDown = polls.filter((p) => p.down.length > 1).map((p) => `${new Date(p.at).toISOString()} ${p.down.join(',')}`);

  // Each member's restart: from the first poll it is down until the first poll with its new pod ready.
  const restartMs = new Map<string, number>();
  for (const name of uidsBefore.keys()) {
    const from = polls.find((p) => p.at >= rollStart && p.down.includes(name));
    const back = from && polls.find((p) => p.at > from.at && p.uids.has(name) && p.uids.get(name) !== uidsBefore.get(name) && !p.down.includes(name));
    if (from && back) restartMs.set(name, back.at - from.at);
  }
  const shortestRestart = Math.min(...restartMs.values());
  // The longest gap between consecutive successful commits while the roll ran.
  let longestGap = 0;
  let gapAt = 0;
  const inRoll = [rollStart, ...commitTimes.filter((t) => t > rollStart && t < rollEnd), rollEnd];
  for (let i = 1; i < inRoll.length; i++) {
    if (inRoll[i]! - inRoll[i - 1]! > longestGap) [longestGap, gapAt] = [inRoll[i]! - inRoll[i - 1]!, inRoll[i - 1]!];
  }
  // Progressing while a restarted member is back as a new pod but not ready: must be True, RestartingMember.
  const restartedButDown = polls.filter((p) => p.at >= rollStart && [...p.uids].some(([n, uid]) => uid !== uidsBefore.get(n) && p.down.includes(n)));
  const misreported = restartedButDown.filter((p) => p.progressing?.status !== 'True' || p.progressing.reason !== 'RestartingMember');
  // The first moment the roll is reported complete: every member up, and caught up in the operator's own status.
  const done = polls.find((p) => p.at >= rollStart && [...p.uids].every(([n, uid]) => uid !== uidsBefore.get(n)) && p.progressing?.status === 'False');

  const ledger = checkLedger(record.acknowledged, record.attempted, await readLedger(host, Number(creds.port)));
  const failed = /number of failed transactions: (\d+)/.exec(benchResult.out)?.[1];
  const tps = /tps = ([\d.]+)/.exec(benchResult.out)?.[1];
  const events = JSON.parse(await s.env.kubectlOk(['get', 'events', '--field-selector', 'involvedObject.name=main', '-o', 'json'])) as { items: { reason: string; message: string }[] };
  console.log(
    [
      `rolling restart under load: roll took ${rollSeconds.toFixed(1)} s, load ${loadSeconds.toFixed(1)} s, ${polls.length} pod polls, at most ${maxDown} member(s) down at once`,
      `pgbench -c 4 -T ${LOAD_SECONDS}: exit ${benchResult.code}, tps ${tps}, failed transactions ${failed}`,
      `ledger: ${ledger.acknowledged} acknowledged, lost ${ledger.lost.length}, duplicates ${ledger.duplicates}, phantoms ${ledger.phantoms.length}, unknown-outcome ${record.unknown} (workload errors ${workload.stats.errors}, sync-rep warnings ${workload.stats.syncRepWarnings})`,
      `probe: ${probeCommits} sequential commits, ${probeErrors} errors, LONGEST COMMIT STALL ${longestStall.toFixed(0)} ms`,
      `restarts (down → new pod ready): ${[...restartMs].map(([n, ms]) => `${n} ${ms} ms`).join(', ')}; longest gap between commits during the roll ${longestGap} ms (at +${((gapAt - rollStart) / 1000).toFixed(1)} s)`,
      `Progressing: ${restartedButDown.length} polls with a restarted member not ready, ${misreported.length} of them not RestartingMember; first reported complete at +${done ? ((done.at - rollStart) / 1000).toFixed(1) : '?'} s with down=[${done?.down.join(',') ?? '?'}] members ${JSON.stringify(done?.members)}`,
      `safekeeper events: ${events.items.map((e) => `${e.reason}: ${e.message}`).join(' | ').slice(0, 1500)}`,
    ].join('\n'),
  );

  expect([...seen.entries()].map(([n, u]) => [n, u.size])).toEqual([...uidsBefore.keys()].map((n) => [n, 2]));
  expect(twoDown).toEqual([]);
  expect(benchResult.code).toBe(0);
  expect(failed).toBe('0');
  expect(ledger.lost).toEqual([]);
  expect(ledger.ok).toBe(true);
  expect(record.acknowledged.size).toBeGreaterThan(0);
  expect(probeErrors).toBe(0);

  // Progressing stays True (RestartingMember) until the last restarted member is ready and caught up.
  expect(restartedButDown.length).toBeGreaterThan(0); // the polls really saw members restarting
  expect(misreported.map((p) => `${new Date(p.at).toISOString()} down=${p.down.join(',')} ${p.progressing?.status}/${p.progressing?.reason}`)).toEqual([]);
  expect(done).toBeDefined();
  expect(done!.down).toEqual([]);
  expect(done!.members.map((m) => [m.name, m.ready, m.caughtUp])).toEqual([...uidsBefore.keys()].map((n) => [n, true, true]));

  // No restart stalled commits: the longest gap between two successful commits is shorter than
  // the shortest time a member needed to restart (a stall of that order means commits waited for
  // a member that was down or catching up).
  expect(restartMs.size).toBe(3);
  expect(longestGap).toBeLessThan(shortestRestart);

  // Afterwards the quorum is healthy again and the tenant Ready.
  await s.waitTenantReady('demo', 60);
}), 240_000);
