// Storage faults: corrupted files on a safekeeper (found at start-up or on read, reported
// with file and offset, never served, never used to vote), an injected fsync failure in a
// real safekeeper process (exit 70, nothing acknowledged lost) and a full disk on one member
// of a LocalCluster (a 40 MiB tmpfs; skipped with the reason when it cannot be mounted).
import { jest } from '@jest/globals';
import { corruptionScenario, diskFullScenario, fsyncFailureScenario } from '@walkeeper/testkit/chaos/storageFaults';

jest.setTimeout(170_000);
const log = (l: string) => console.log(l);

describe('corrupt files on a safekeeper', () => {
  test('truncated control file: reported with the file at start-up, not served, no vote', async () => {
    const r = await corruptionScenario('truncated_control_file', log);
    expect(r.reportedAtStart).toBe(true);
    expect(r.namesFile).toBe(true);
    expect(r.readRefused).toBe(true);
    expect(r.voteRefused).toBe(true);
  });

  // Damage to WAL the safekeeper had acknowledged: start-up recovery CRC-checks every record
  // from the timeline's start, so the timeline is reported (file and offset), not served to
  // readers and never votes.
  test('truncated WAL segment: reported with file and offset at start-up, not served, no vote', async () => {
    const r = await corruptionScenario('truncated_segment', log);
    expect(r.reportedAtStart).toBe(true);
    expect(r.namesFile && r.namesOffset).toBe(true);
    expect(r.servedCorruptWal).toBe(false);
    expect(r.readRefused).toBe(true);
    expect(r.voteRefused).toBe(true);
  });

  test('flipped byte inside acknowledged WAL: detected, never served to a reader', async () => {
    const r = await corruptionScenario('flipped_byte', log);
    expect(r.servedCorruptWal).toBe(false);
    expect(r.readRefused).toBe(true);
  });

  // A lost timeline directory is never recreated implicitly (START_WAL_PUSH needs an existing
  // timeline), so no empty stand-in votes for it.
  test('missing timeline directory: never silently recreated to vote', async () => {
    const r = await corruptionScenario('missing_timeline_dir', log);
    expect(r.voteRefused).toBe(true);
  });
});

test('fsync failure: the safekeeper stops acknowledging and exits 70; acknowledged WAL survives', async () => {
  const r = await fsyncFailureScenario(log);
  console.log(JSON.stringify(r, null, 1));
  // needs the testkit entrypoint's fsync hook passed through runSafekeeper → Registry → Timeline.load
  expect(r.injected ? 'fault injected' : 'WALKEEPER_TEST_FAIL_FSYNC_AFTER did not reach WalStore (testkit/src/hooks.ts → runSafekeeper hooks → Timeline.load)').toBe('fault injected');
  expect(r.exitCode).toBe(70);
  expect(r.ackedSurvived).toBe(true);
  expect(r.fatalLogLine).toMatch(/fsync|EIO/);
});

test('disk full on one member: commits go on, it refuses with disk_full, recovers and catches up', async () => {
  const r = await diskFullScenario(log);
  if (r.skipped) {
    console.warn(`skipping the disk-full scenario: ${r.skipped}`);
    return;
  }
  console.log(JSON.stringify({ ...r, ledger: r.ledger && { ...r.ledger, lost: r.ledger.lost.length, phantoms: r.ledger.phantoms.length } }, null, 1));
  expect(r.error).toBeUndefined();
  expect(r.diskFullLogLine).toMatch(/disk_full|no space left/);
  expect(r.ackedWhileFull).toBeGreaterThan(0);
  expect(r.memberStalled).toBe(true);
  expect(r.caughtUpAfterSpaceReturned).toBe(true);
  expect(r.recoveredAfterRestart).toBe(true);
  expect(r.ledger?.lost).toEqual([]);
  // read across WAL the member had removed (switchUntilRemoved fails the check otherwise)
  expect(r.ledger?.readerLocalStartLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
  expect(r.ledger?.ok).toBe(true);
});
