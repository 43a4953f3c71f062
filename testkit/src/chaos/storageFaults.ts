// Storage faults on safekeepers: corrupted files found at start-up or on read (truncated WAL
// segment, a flipped byte in acknowledged WAL, a truncated control file, a missing timeline
// directory), an fsync failure injected into a real process (WALKEEPER_TEST_FAIL_FSYNC_AFTER,
// read by the testkit's walkeeper-with-hooks entrypoint, testkit/src/hooks.ts) and a full disk (a small tmpfs as one member's data directory of
// a LocalCluster under the ledger workload). Each returns what it observed; tests and
// `npm run chaos` decide what must hold.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, openSync, readdirSync, readFileSync, rmSync, statfsSync, truncateSync, writeFileSync, closeSync, writeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { newId } from '@walkeeper/dataplane/common/ids';
import { formatLsn, parseLsn, segmentOffset } from '@walkeeper/dataplane/common/lsn';
import { httpGet, portFree } from '@walkeeper/dataplane/local/cluster';
import { sleep } from '@walkeeper/dataplane/local/postgres';
import { CONTROL_FILE_NAME } from '@walkeeper/dataplane/storage/controlFile';
import { LedgerRecord } from '../torture/ledger.js';
import { Workload } from '../torture/workload.js';
import { newTempCluster, killCluster, safekeeperTimeline, EXTRA_PORT, withWalRemoval } from '../torture/env.js';
import { WALKEEPER_WITH_HOOKS_JS } from '../hooks.js';
import { prepareLedger, sql, verifyLedger, waitForCommit, type LedgerVerification } from './ledgerCheck.js';
import { FakeProposer, START_LSN, buildWal, http, readWal, removeDir, startTestSafekeeper, tempDir, type TestSafekeeper } from '../safekeeperHarness.js';

export type Log = (line: string) => void;


// ---------------------------------------------------------------------------------------
// Corruption

export type CorruptionKind = 'truncated_segment' | 'flipped_byte' | 'truncated_control_file' | 'missing_timeline_dir';
export const CORRUPTION_KINDS: CorruptionKind[] = ['truncated_segment', 'flipped_byte', 'truncated_control_file', 'missing_timeline_dir'];

export interface CorruptionResult {
  kind: CorruptionKind;
  /** what was done to which file */
  fault: string;
  /** the timeline is listed with an error after the restart */
  reportedAtStart: boolean;
  /** that error (from GET /v1/tenants/T/timelines) */
  error?: string;
  namesFile: boolean;
  namesOffset: boolean;
  /** START_REPLICATION was refused (or a read ended with an error) */
  readRefused: boolean;
  readError?: string;
  /** a reader got bytes different from what was acknowledged */
  servedCorruptWal: boolean;
  /** START_WAL_PUSH + greeting + VoteRequest were refused */
  voteRefused: boolean;
  voteDetail?: string;
}

async function withSafekeeper<T>(dir: string, fn: (ts: TestSafekeeper) => Promise<T>): Promise<T> {
  const ts = await startTestSafekeeper(dir);
  try {
    return await fn(ts);
  } finally {
    await ts.sk.stop().catch(() => undefined);
  }
}

export async function corruptionScenario(kind: CorruptionKind, log: Log = () => undefined): Promise<CorruptionResult> {
  const dir = tempDir(`corrupt-${kind}`);
  const tenant = newId();
  const timeline = newId();
  const tlDir = join(dir, 'tenants', tenant, timeline);
  const wal = buildWal(300);
  const term = 2n;
  try {
    await withSafekeeper(dir, async (ts) => {
      await http(ts.httpUrl, 'POST', '/v1/tenants', { body: { tenant_id: tenant } });
      await http(ts.httpUrl, 'POST', `/v1/tenants/${tenant}/timelines`, { body: { timeline_id: timeline } });
      const p = await FakeProposer.connect(ts.pgPort, tenant, timeline);
      try {
        await p.elect(tenant, timeline, term, START_LSN);
        await p.pushWal(term, START_LSN, wal.bytes);
      } finally {
        await p.close();
      }
      await sleep(1500); // the commit LSN reaches the control file
    });
    const segName = readdirSync(tlDir).find((f) => f.endsWith('.partial'))!;
    const segPath = join(tlDir, segName);
    let fault = '';
    switch (kind) {
      case 'truncated_segment': {
        const at = segmentOffset(START_LSN) + Math.floor(wal.bytes.length / 2);
        truncateSync(segPath, at);
        fault = `${segName} truncated to ${at} bytes (acknowledged WAL ends at offset ${segmentOffset(wal.end)})`;
        break;
      }
      case 'flipped_byte': {
        const at = segmentOffset(START_LSN) + Math.floor(wal.bytes.length / 3);
        const fd = openSync(segPath, 'r+');
        const b = Buffer.alloc(1);
        b[0] = readFileSync(segPath).subarray(at, at + 1)[0] ^ 0x5a;
        writeSync(fd, b, 0, 1, at);
        closeSync(fd);
        fault = `${segName}: byte at offset ${at} (LSN ${formatLsn(START_LSN + BigInt(at))}) flipped, inside acknowledged WAL`;
        break;
      }
      case 'truncated_control_file':
        truncateSync(join(tlDir, CONTROL_FILE_NAME), 10);
        fault = `${CONTROL_FILE_NAME} truncated to 10 bytes`;
        break;
      case 'missing_timeline_dir':
        rmSync(tlDir, { recursive: true, force: true });
        fault = `timeline directory ${tlDir} removed (tenant directory kept)`;
        break;
    }
    log(`corruption ${kind}: ${fault}`);

    return await withSafekeeper(dir, async (ts) => {
      const r: CorruptionResult = { kind, fault, reportedAtStart: false, namesFile: false, namesOffset: false, readRefused: false, servedCorruptWal: false, voteRefused: false };
      const list = await http(ts.httpUrl, 'GET', `/v1/tenants/${tenant}/timelines`);
      const entry = (list.json?.timelines as { timeline_id: string; error?: string }[] | undefined)?.find((t) => t.timeline_id === timeline);
      if (entry?.error) {
        r.reportedAtStart = true;
        r.error = entry.error;
        r.namesFile = entry.error.includes(kind === 'truncated_control_file' ? CONTROL_FILE_NAME : segName.replace('.partial', '')) || entry.error.includes(tlDir);
        r.namesOffset = /offset \d+|at \d+|\b[0-9A-F]+\/[0-9A-F]+\b/.test(entry.error);
      }
      // a reader
      try {
        const got = await readWal(ts.pgPort, tenant, timeline, START_LSN, wal.end);
        if (!got.subarray(0, wal.bytes.length).equals(wal.bytes)) {
          r.servedCorruptWal = true;
          const i = got.findIndex((v, k) => v !== wal.bytes[k]);
          r.readError = `served ${got.length} bytes; first difference at LSN ${formatLsn(START_LSN + BigInt(i))}`;
        }
      } catch (err) {
        r.readRefused = true;
        r.readError = (err as Error).message;
      }
      // a proposer asking for a vote in a higher term
      let p: FakeProposer | undefined;
      try {
        p = await FakeProposer.connect(ts.pgPort, tenant, timeline);
        p.send(p.greeting(tenant, timeline));
        const g = await p.recv();
        p.send({ tag: 'vote_request', generation: 0, term: term + 5n });
        const v = await p.recv();
        r.voteDetail = `greeting term ${g.tag === 'acceptor_greeting' ? g.term : '?'}; ${v.tag === 'vote_response' ? `vote_given=${v.voteGiven} flush_lsn=${formatLsn(v.flushLsn)}` : v.tag}`;
        r.voteRefused = v.tag === 'vote_response' && !v.voteGiven;
      } catch (err) {
        r.voteRefused = true;
        r.voteDetail = (err as Error).message;
      } finally {
        await p?.close();
      }
      log(`corruption ${kind}: reported=${r.reportedAtStart} (${r.error ?? '-'}); read ${r.readRefused ? 'refused' : r.servedCorruptWal ? 'SERVED CORRUPT WAL' : 'served intact WAL'} (${r.readError ?? '-'}); vote ${r.voteRefused ? 'refused' : 'GRANTED'} (${r.voteDetail})`);
      return r;
    });
  } finally {
    removeDir(dir);
  }
}

// ---------------------------------------------------------------------------------------
// fsync failure in a real process

export interface FsyncFailureResult {
  failAfter: number;
  exitCode: number | null;
  signal: string | null;
  /** highest flush LSN the process acknowledged before it died */
  lastAckedFlush: string;
  /** flush LSN found by the restarted safekeeper (no fault) */
  recoveredFlush: string;
  /** every acknowledged byte is still there after the restart */
  ackedSurvived: boolean;
  fatalLogLine?: string;
  /** the injected EIO was seen: false means the hook is not wired where WalStore is opened */
  injected: boolean;
  appendsSent: number;
}

async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let p = 41000 + (process.pid % 500) * 7; out.length < n && p < 65000; p++) if (await portFree('127.0.0.1', p)) out.push(p);
  return out;
}

export async function fsyncFailureScenario(log: Log = () => undefined, failAfter = 6): Promise<FsyncFailureResult> {
  const dir = tempDir('fsync');
  const [pgPort, httpPort] = await freePorts(2);
  const tenant = newId();
  const timeline = newId();
  const logFile = join(dir, 'safekeeper.log');
  const datadir = join(dir, 'data');
  mkdirSync(datadir);
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [WALKEEPER_WITH_HOOKS_JS, 'safekeeper', '--id', '1', '--datadir', datadir, '--listen-pg', `127.0.0.1:${pgPort}`, '--listen-http', `127.0.0.1:${httpPort}`], {
    stdio: ['ignore', fd, fd],
    env: { ...process.env, WALKEEPER_TEST_FAIL_FSYNC_AFTER: String(failAfter), WALKEEPER_LOG_LEVEL: 'info' },
  });
  closeSync(fd);
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const base = `http://127.0.0.1:${httpPort}`;
  let acked = 0n;
  let sent = 0;
  const wal = buildWal(600, 1000);
  try {
    for (let i = 0; i < 100 && (await httpGet(`${base}/readyz`)).status !== 200; i++) await sleep(100);
    await http(base, 'POST', '/v1/tenants', { body: { tenant_id: tenant } });
    await http(base, 'POST', `/v1/tenants/${tenant}/timelines`, { body: { timeline_id: timeline } });
    const p = await FakeProposer.connect(pgPort, tenant, timeline);
    try {
      await p.elect(tenant, timeline, 2n, START_LSN);
      // one record-sized append at a time, each waiting for its AppendResponse: one fsync each
      const step = 8192;
      for (let off = 0; off < wal.bytes.length; off += step) {
        const chunk = wal.bytes.subarray(off, Math.min(wal.bytes.length, off + step));
        p.append(2n, START_LSN + BigInt(off), chunk, 0n);
        sent++;
        const r = await p.recv(3000);
        if (r.tag === 'append_response' && r.flushLsn > acked) acked = r.flushLsn;
      }
    } catch (err) {
      log(`fsync failure: proposer connection ended: ${(err as Error).message}`);
    } finally {
      await p.close();
    }
    const ex = await Promise.race([exited, sleep(10_000).then(() => ({ code: null, signal: 'still running after 10 s' }))]);
    if (child.exitCode === null) child.kill('SIGKILL');
    const logText = readFileSync(logFile, 'utf8');
    const fatal = logText.split('\n').find((l) => /fatal|exiting/i.test(l));
    const injected = logText.includes('injected by WALKEEPER_TEST_FAIL_FSYNC_AFTER');
    // restart without the fault: everything acknowledged must be there
    const ts = await startTestSafekeeper(datadir);
    let recovered = 0n;
    let survived = false;
    try {
      const st = await http(ts.httpUrl, 'GET', `/v1/tenants/${tenant}/timelines/${timeline}`);
      recovered = st.status === 200 ? parseLsn(String(st.json.flush_lsn)) : 0n;
      survived = recovered >= acked;
    } finally {
      await ts.sk.stop().catch(() => undefined);
    }
    const res: FsyncFailureResult = { failAfter, exitCode: ex.code, signal: ex.signal, lastAckedFlush: formatLsn(acked), recoveredFlush: formatLsn(recovered), ackedSurvived: survived, fatalLogLine: fatal?.slice(0, 400), injected, appendsSent: sent };
    log(`fsync failure: exit code ${res.exitCode} (signal ${res.signal}); acknowledged up to ${res.lastAckedFlush}; recovered flush ${res.recoveredFlush}; ${sent} appends sent`);
    return res;
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    removeDir(dir);
  }
}

// ---------------------------------------------------------------------------------------
// Disk full on one member of a LocalCluster

export interface DiskFullResult {
  skipped?: string;
  member: number;
  /** log line of the full member naming disk_full */
  diskFullLogLine?: string;
  /** what the proposer reported for that member while full */
  proposerSawError?: string;
  ackedBeforeFull: number;
  ackedWhileFull: number;
  /** the full member's flush LSN stayed put while the others advanced */
  memberStalled: boolean;
  caughtUpAfterSpaceReturned: boolean;
  recoveredAfterRestart: boolean;
  flushBeforeKill?: string;
  flushAfterRestart?: string;
  ledgerReader?: number;
  ledger?: LedgerVerification;
  error?: string;
}

function tryMount(dir: string, size: string): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root: cannot mount a tmpfs';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `mount -t tmpfs failed: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`;
  }
}

/** Fills the filesystem of dir, leaving about `leave` bytes free. */
function fill(dir: string, leave: number): string {
  const path = join(dir, 'filler');
  const st = statfsSync(dir);
  const free = Number(st.bavail) * Number(st.bsize);
  if (free > leave) writeFileSync(path, Buffer.alloc(free - leave));
  return path;
}

export async function diskFullScenario(log: Log = () => undefined, member = 3): Promise<DiskFullResult> {
  const { cluster, runAs } = await newTempCluster('walkeeper-diskfull-');
  withWalRemoval(cluster);
  // Offload stays on, but until the kill -9 below a keep size larger than the volume holds
  // everything: a disk fills when removal is held (a lagging peer, a bucket that is down), and
  // with removal free to run, the 16MB keep size would empty the disk as fast as it fills.
  const removalKeepSize = cluster.config.safekeeper_flags?.['wal-keep-size'];
  cluster.config.safekeeper_flags = { ...cluster.config.safekeeper_flags, 'wal-keep-size': '1GB' };
  cluster.saveConfig();
  const datadir = join(cluster.baseDir, 'safekeepers', `sk${member}`);
  mkdirSync(datadir, { recursive: true });
  const res: DiskFullResult = { member, ackedBeforeFull: 0, ackedWhileFull: 0, memberStalled: false, caughtUpAfterSpaceReturned: false, recoveredAfterRestart: false };
  // 120 MiB. When the filler goes in, the member holds the three 16 MiB segments a fresh cluster
  // reaches after its base backup's segment switch, the fourth prepared ahead (recycling) and
  // the 4 MiB disk reserve: 68 MiB. While it is full the cluster moves on a segment or two,
  // which the member must write once the filler is removed (the keep size removes nothing
  // here). A 72 MiB volume left it 4 MiB then: it could never resume, even after a restart.
  const skip = tryMount(datadir, '120m');
  if (skip) {
    rmSync(cluster.baseDir, { recursive: true, force: true });
    return { ...res, skipped: skip };
  }
  const record = new LedgerRecord();
  let workload: Workload | undefined;
  const { host } = cluster.config;
  const port = cluster.config.postgres.port;
  // the child processes log at info (the test helpers silence in-process safekeepers via this variable)
  const savedLevel = process.env.WALKEEPER_LOG_LEVEL;
  process.env.WALKEEPER_LOG_LEVEL = 'info';
  try {
    await cluster.start((m) => log(`disk full: ${m}`));
    const backup = await prepareLedger(cluster, 'restore', runAs);
    workload = new Workload({ host, port, clients: 4, record, log });
    workload.start();
    await sleep(2000);
    res.ackedBeforeFull = record.acknowledged.size;
    const filler = fill(datadir, 64 * 1024);
    const flushAtFull = (await safekeeperTimeline(cluster, member))?.flush_lsn;
    log(`disk full: sk${member}'s tmpfs filled (flush LSN ${flushAtFull}); forcing new WAL segments`);
    const before = record.acknowledged.size;
    const logFile = cluster.safekeeperProcess(member).logFile;
    for (let i = 0; i < 150 && !res.diskFullLogLine; i++) {
      // A member writes into its prepared (preallocated) next segment without new space, so one
      // switch may land there: keep switching until it needs a segment the disk cannot give.
      if (i % 10 === 0) await sql(host, port, 'SELECT pg_switch_wal()');
      await sleep(100);
      res.diskFullLogLine = readFileSync(logFile, 'utf8').split('\n').find((l) => /disk_full|no space left/i.test(l))?.slice(0, 500);
    }
    await sleep(4000);
    res.ackedWhileFull = record.acknowledged.size - before;
    const st = await cluster.proposerStatus();
    const mine = st?.safekeepers.find((s) => s.address.endsWith(`:${cluster.safekeeperAddr(member).pg_port}`));
    res.proposerSawError = mine ? `${mine.state}${mine.error ? `: ${mine.error}` : ''}` : undefined;
    const fullFlush = (await safekeeperTimeline(cluster, member))?.flush_lsn;
    const commitNow = st?.commit_lsn;
    res.memberStalled = !!fullFlush && !!commitNow && parseLsn(fullFlush) < parseLsn(commitNow);
    log(`disk full: ${res.ackedWhileFull} commits acknowledged while sk${member} was full; its flush LSN ${fullFlush}, commit LSN ${commitNow}; proposer says ${res.proposerSawError}; log: ${res.diskFullLogLine ?? '(no disk_full line)'}`);

    rmSync(filler);
    log('disk full: space returned');
    const target = parseLsn(commitNow ?? '0/0');
    for (let i = 0; i < 300 && !res.caughtUpAfterSpaceReturned; i++) {
      await sleep(100);
      const f = (await safekeeperTimeline(cluster, member))?.flush_lsn;
      res.caughtUpAfterSpaceReturned = !!f && parseLsn(f) >= target;
    }
    log(`disk full: sk${member} ${res.caughtUpAfterSpaceReturned ? 'caught up' : 'did NOT catch up within 30 s'}`);

    await workload.stop();
    workload = undefined;
    const commit = await waitForCommit(cluster);
    // wait until the formerly full member has everything, then kill -9 and restart it
    for (let i = 0; i < 300; i++) {
      const tl = await safekeeperTimeline(cluster, member);
      if (tl?.commit_lsn && parseLsn(tl.commit_lsn) >= commit) break;
      await sleep(100);
    }
    const flushBeforeKill = (await safekeeperTimeline(cluster, member))?.flush_lsn;
    await cluster.killSafekeeper(member);
    // back to removal, so the ledger read from this member below crosses WAL it removed
    cluster.config.safekeeper_flags = { ...cluster.config.safekeeper_flags, ...(removalKeepSize ? { 'wal-keep-size': removalKeepSize } : {}) };
    cluster.saveConfig();
    await cluster.startSafekeeper(member);
    const tls = await httpGet(`${cluster.httpUrl(member)}/v1/tenants/${cluster.config.tenant_id}/timelines`);
    let after = await safekeeperTimeline(cluster, member);
    res.flushBeforeKill = flushBeforeKill;
    res.flushAfterRestart = after?.flush_lsn;
    for (let i = 0; i < 150 && !(after?.commit_lsn && parseLsn(after.commit_lsn) >= commit); i++) {
      await sleep(100);
      after = await safekeeperTimeline(cluster, member);
    }
    res.recoveredAfterRestart = tls.status === 200 && !/"error"/.test(tls.text) && !!after?.commit_lsn && parseLsn(after.commit_lsn) >= commit;
    log(`disk full: sk${member} flush ${flushBeforeKill} before kill -9; after restart ${res.flushAfterRestart}, 15 s later commit ${after?.commit_lsn} (target ${formatLsn(commit)}); timelines: ${tls.text.slice(0, 200)}`);
    // the ledger, read back from the member that had been full (if it caught up; else from sk1)
    const reader = res.recoveredAfterRestart ? member : 1;
    res.ledgerReader = reader;
    res.ledger = await verifyLedger({ readerView: cluster, readerId: reader, backup, record, commitLsn: commit, restoredHost: host, restoredPort: cluster.config.postgres.port + (EXTRA_PORT.restoredPostgres - 20), runAs, name: 'restore' });
    log(`disk full: ledger from sk${reader}: acknowledged ${res.ledger.acknowledged}, lost ${res.ledger.lost.length}, duplicates ${res.ledger.duplicates}, phantoms ${res.ledger.phantoms.length}; WAL below ${res.ledger.readerLocalStartLsn} read from the bucket`);
  } catch (err) {
    res.error = (err as Error).stack ?? String(err);
    log(`disk full: ERROR ${(err as Error).message}`);
  } finally {
    if (savedLevel === undefined) delete process.env.WALKEEPER_LOG_LEVEL;
    else process.env.WALKEEPER_LOG_LEVEL = savedLevel;
    if (workload) await workload.stop(5000).catch(() => undefined);
    await killCluster(cluster);
    try {
      execFileSync('umount', [datadir], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', datadir], { stdio: 'pipe' });
    }
    if (!process.env.WALKEEPER_KEEP_TEST_DIRS && !existsSync(join(datadir, 'filler'))) rmSync(cluster.baseDir, { recursive: true, force: true });
  }
  return res;
}

