// Scenario 5 and the proposer's refusals: two proposers for one timeline (at most one
// commits, the loser is fenced and says so), and a restored PostgreSQL whose WAL ends
// before what the safekeepers hold (the proposer refuses to push and says why).
import { jest } from '@jest/globals';
import type pg from 'pg';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { rmSync, renameSync, chownSync } from 'node:fs';
import { LocalCluster, httpGet, waitFor } from '../../src/local/cluster.js';
import type { ProposerStatusJson } from '../../src/api/index.js';
import { ManagedProcess } from '../../src/local/process.js';
import { parseLsn } from '../../src/common/lsn.js';
import { newTestCluster, destroyTestCluster, freePortBase } from '../helpers/cluster.js';
import { pgConnect } from '../helpers/pg.js';

const run = promisify(execFile);
jest.setTimeout(240_000);

let cluster: LocalCluster;
let client: pg.Client | undefined;
const extra: ManagedProcess[] = [];

async function statusOf(url: string): Promise<ProposerStatusJson> {
  const r = await httpGet(`${url}/v1/status`);
  if (r.status !== 200) throw new Error(`proposer status ${r.status}: ${r.text}`);
  return JSON.parse(r.text) as ProposerStatusJson;
}

function proposerArgs(httpPort: number): string[] {
  const c = cluster.config;
  return [
    'proposer', '--pg', `host=127.0.0.1 port=${c.postgres.port} user=postgres dbname=postgres`,
    '--safekeepers', c.safekeepers.map((s) => `127.0.0.1:${s.pg_port}`).join(','),
    '--tenant', c.tenant_id, '--timeline', c.timeline_id, '--listen-http', `127.0.0.1:${httpPort}`,
  ];
}

beforeEach(async () => {
  cluster = await newTestCluster();
  await cluster.start();
  client = await pgConnect(cluster.config.postgres.port);
  await client.query('CREATE TABLE t (id int)');
});

afterEach(async () => {
  await client?.end().catch(() => undefined);
  client = undefined;
  for (const p of extra.splice(0)) await p.kill().catch(() => undefined);
  await destroyTestCluster(cluster);
});

test('a second proposer for the timeline fences the first; only one commits', async () => {
  const a = cluster.proposerUrl;
  const before = await statusOf(a);
  expect(before.state).toBe('streaming');

  const bPort = await freePortBase();
  const b = new ManagedProcess('proposer B', join(cluster.baseDir, 'run', 'proposer-b.pid'), join(cluster.baseDir, 'logs', 'proposer-b.log'));
  extra.push(b);
  b.start(proposerArgs(bPort));
  const bUrl = `http://127.0.0.1:${bPort}`;

  await waitFor('proposer A to be fenced', 60_000, async () => (await statusOf(a).catch(() => undefined))?.state === 'fenced');
  await waitFor('proposer B to stream', 60_000, async () => (await statusOf(bUrl).catch(() => undefined))?.state === 'streaming');
  const fencedA = await statusOf(a);
  expect(fencedA.reason).toMatch(/fenced: acceptor \d+ has term \d+ > our term \d+/);
  const statusB = await statusOf(bUrl);
  expect(BigInt(statusB.term)).toBeGreaterThan(BigInt(before.term));

  // Commits go on, through B; A's commit LSN stays where it was fenced.
  await client!.query('INSERT INTO t VALUES (1)');
  const aAfter = await statusOf(a);
  const bAfter = await statusOf(bUrl);
  expect(aAfter.state).toBe('fenced');
  expect(aAfter.commit_lsn).toBe(fencedA.commit_lsn);
  expect(parseLsn(bAfter.commit_lsn)).toBeGreaterThan(parseLsn(aAfter.commit_lsn));
  const rep = await client!.query(`SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = 'walkeeper_proposer'`);
  expect(rep.rows[0].n).toBe(1);
});

test('a PostgreSQL restored from an older backup is refused: the safekeepers hold WAL it does not', async () => {
  const pgBin = cluster.postgres.binDir;
  const backup = join(cluster.baseDir, 'postgres', 'backup');
  const runAs = cluster.postgres.runAs;
  await run(join(pgBin, 'pg_basebackup'), ['-D', backup, '-h', '127.0.0.1', '-p', String(cluster.config.postgres.port), '-U', 'postgres', '-X', 'stream', '-c', 'fast'], { uid: runAs?.uid, gid: runAs?.gid, timeout: 120_000 });
  // WAL the restored server will never have
  await client!.query(`INSERT INTO t SELECT g FROM generate_series(1, 200000) g`);
  await client!.end();
  client = undefined;

  await cluster.stopProposer();
  await cluster.postgres.stop('fast');
  const c = cluster.config;
  const flushOf = async (id: number) => JSON.parse((await httpGet(`${cluster.httpUrl(id)}/v1/tenants/${c.tenant_id}/timelines/${c.timeline_id}`)).text).flush_lsn as string;
  const flushBefore = await Promise.all(c.safekeepers.map((s) => flushOf(s.id)));
  rmSync(cluster.postgres.dataDir, { recursive: true, force: true });
  renameSync(backup, cluster.postgres.dataDir);
  if (runAs) chownSync(cluster.postgres.dataDir, runAs.uid, runAs.gid);
  await cluster.postgres.start();
  await cluster.startProposer();

  await waitFor('the proposer to refuse', 60_000, async () => (await cluster.proposerStatus())?.state === 'refused');
  const st = (await cluster.proposerStatus())!;
  expect(st.reason).toMatch(/safekeepers hold WAL up to [0-9A-F]+\/[0-9A-F]+ but PostgreSQL's WAL ends at [0-9A-F]+\/[0-9A-F]+/);
  expect(st.quorum_healthy).toBe(false);
  // nothing of the restored server's own WAL reached the safekeepers
  expect(await Promise.all(c.safekeepers.map((s) => flushOf(s.id)))).toEqual(flushBefore);
});
