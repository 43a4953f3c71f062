// The removal horizon (storage/removalHorizon.ts): each input holds WAL on its own, the
// lowest wins, the result is whole segments, never the commit segment, and the sizes parse
// as PostgreSQL's do.
import { computeRemovalHorizon, describeHolder, type RemovalHorizonInput } from '../../src/storage/removalHorizon.js';
import { formatPgSize, parsePercent, parsePgSize } from '../../src/common/size.js';

const SEG = 16n << 20n;
const seg = (n: number, off = 0n) => BigInt(n) * SEG + off;

function input(extra: Partial<RemovalHorizonInput> = {}): RemovalHorizonInput {
  return {
    walSegSize: Number(SEG),
    commitLsn: seg(20, 100n),
    flushLsn: seg(20, 200n),
    timelineStartLsn: seg(2, 40n),
    walStartLsn: 0n,
    remoteStorageEnabled: false,
    backupLsn: 0n,
    peerHorizonLsn: seg(20, 100n),
    slots: [],
    walKeepSize: 0n,
    ...extra,
  };
}

describe('computeRemovalHorizon', () => {
  it('with every member caught up and nothing kept, removes everything below the commit segment', () => {
    const h = computeRemovalHorizon(input());
    expect(h).toEqual({ removeBelowLsn: seg(20), limitLsn: seg(20, 100n), heldBy: { kind: 'peer' }, removable: true });
  });

  it('never removes the segment holding the commit LSN, even when every other input is past it', () => {
    const h = computeRemovalHorizon(input({ commitLsn: seg(9, 5n), flushLsn: seg(30), peerHorizonLsn: seg(30) }));
    expect(h.removeBelowLsn).toBe(seg(9));
    expect(h.heldBy).toEqual({ kind: 'commit' });
  });

  it('never passes this member\'s own flush LSN', () => {
    const h = computeRemovalHorizon(input({ flushLsn: seg(7, 1n) }));
    expect(h.removeBelowLsn).toBe(seg(7));
    expect(describeHolder(h.heldBy)).toBe('commit');
  });

  it('a commit LSN exactly at a segment boundary lets the segment before it go', () => {
    const h = computeRemovalHorizon(input({ commitLsn: seg(12), flushLsn: seg(12), peerHorizonLsn: seg(12) }));
    expect(h.removeBelowLsn).toBe(seg(12));
  });

  it('without remote storage, a lagging peer holds WAL at the segment of its flush LSN', () => {
    const h = computeRemovalHorizon(input({ peerHorizonLsn: seg(5, 77n) }));
    expect(h.removeBelowLsn).toBe(seg(5));
    expect(describeHolder(h.heldBy)).toBe('peer');
  });

  it('a peer horizon never received (0) holds everything', () => {
    const h = computeRemovalHorizon(input({ peerHorizonLsn: 0n }));
    expect(h.removable).toBe(false);
    expect(h.removeBelowLsn).toBe(seg(2, 40n));
    expect(describeHolder(h.heldBy)).toBe('peer');
  });

  it('with remote storage on, the backup LSN holds and the peer horizon does not (the bucket serves peers)', () => {
    const h = computeRemovalHorizon(input({ remoteStorageEnabled: true, backupLsn: seg(8), peerHorizonLsn: seg(3) }));
    expect(h.removeBelowLsn).toBe(seg(8));
    expect(describeHolder(h.heldBy)).toBe('backup');
  });

  it('with remote storage on and nothing uploaded yet, nothing is removed', () => {
    const h = computeRemovalHorizon(input({ remoteStorageEnabled: true, backupLsn: 0n }));
    expect(h.removable).toBe(false);
    expect(describeHolder(h.heldBy)).toBe('backup');
  });

  it('with remote storage off, the backup LSN is not an input', () => {
    const h = computeRemovalHorizon(input({ remoteStorageEnabled: false, backupLsn: 0n }));
    expect(h.removeBelowLsn).toBe(seg(20));
  });

  it('the slowest slot holds WAL and is named', () => {
    const slots = [
      { name: 'fast', restartLsn: seg(15) },
      { name: 'standby_b', restartLsn: seg(6, 9n) },
      { name: 'other', restartLsn: seg(10) },
    ];
    const h = computeRemovalHorizon(input({ slots }));
    expect(h.removeBelowLsn).toBe(seg(6));
    expect(describeHolder(h.heldBy)).toBe('slot standby_b');
  });

  it('a slot that has reserved no WAL (restart LSN 0) holds nothing', () => {
    const h = computeRemovalHorizon(input({ slots: [{ name: 'fresh', restartLsn: 0n }] }));
    expect(h.removeBelowLsn).toBe(seg(20));
  });

  it('wal keep size keeps that many bytes below the commit LSN, rounded down to a segment', () => {
    const h = computeRemovalHorizon(input({ walKeepSize: 3n * SEG }));
    expect(h.limitLsn).toBe(seg(17, 100n));
    expect(h.removeBelowLsn).toBe(seg(17));
    expect(describeHolder(h.heldBy)).toBe('keep_size');
  });

  it('a keep size larger than the whole history keeps everything', () => {
    const h = computeRemovalHorizon(input({ walKeepSize: 1n << 50n }));
    expect(h.removable).toBe(false);
    expect(h.limitLsn).toBe(0n);
    expect(describeHolder(h.heldBy)).toBe('keep_size');
  });

  it('nothing below what is already removed is reported as removable', () => {
    const h = computeRemovalHorizon(input({ walStartLsn: seg(20) }));
    expect(h.removable).toBe(false);
    expect(h.removeBelowLsn).toBe(seg(20));
    const lower = computeRemovalHorizon(input({ walStartLsn: seg(12), peerHorizonLsn: seg(4) }));
    expect(lower.removable).toBe(false);
    expect(lower.removeBelowLsn).toBe(seg(12));
  });

  it('nothing before the timeline start segment is removable', () => {
    const h = computeRemovalHorizon(input({ timelineStartLsn: seg(20, 40n), commitLsn: seg(20, 100n) }));
    expect(h.removable).toBe(false);
  });

  it('a timeline without WAL or without a commit LSN removes nothing', () => {
    expect(computeRemovalHorizon(input({ timelineStartLsn: 0n })).heldBy).toEqual({ kind: 'no_wal' });
    expect(computeRemovalHorizon(input({ commitLsn: 0n })).removable).toBe(false);
  });

  it('on a tie, the first input in rule order is reported', () => {
    const h = computeRemovalHorizon(input({ peerHorizonLsn: seg(10), slots: [{ name: 's', restartLsn: seg(10) }] }));
    expect(describeHolder(h.heldBy)).toBe('peer');
  });

  it('exhaustively: the horizon is whole segments, at or below every input, and the next segment would pass one', () => {
    const points = [0n, 1n, seg(3), seg(3, 1n), seg(4) - 1n, seg(7), seg(7, 8192n), seg(11), seg(11, 5n)];
    const keeps = [0n, 1n, SEG, 2n * SEG + 1n, 100n * SEG];
    let checked = 0;
    for (const remote of [false, true])
      for (const commit of points.filter((p) => p > 0n))
        for (const flush of points.filter((p) => p >= commit))
          for (const other of points)
            for (const slot of [null, ...points])
              for (const keep of keeps)
                for (const walStart of [0n, seg(3), seg(7)]) {
                  const i = input({
                    timelineStartLsn: 1n,
                    commitLsn: commit,
                    flushLsn: flush,
                    walStartLsn: walStart,
                    remoteStorageEnabled: remote,
                    backupLsn: other,
                    peerHorizonLsn: other,
                    slots: slot === null ? [] : [{ name: 'x', restartLsn: slot }],
                    walKeepSize: keep,
                  });
                  const h = computeRemovalHorizon(i);
                  const bounds = [commit, flush, commit > keep ? commit - keep : 0n, other];
                  if (slot !== null && slot !== 0n) bounds.push(slot);
                  const limit = bounds.reduce((a, b) => (b < a ? b : a));
                  expect(h.limitLsn).toBe(limit);
                  expect(h.removeBelowLsn % SEG === 0n || !h.removable).toBe(true);
                  if (h.removable) {
                    expect(h.removeBelowLsn).toBeLessThanOrEqual(limit);
                    expect(h.removeBelowLsn + SEG).toBeGreaterThan(limit);
                    expect(h.removeBelowLsn / SEG).toBeLessThanOrEqual(commit / SEG);
                    expect(h.removeBelowLsn).toBeGreaterThan(walStart > 1n ? walStart : 1n);
                  } else {
                    expect(h.removeBelowLsn).toBe(walStart > 1n ? walStart : 1n);
                  }
                  checked++;
                }
    expect(checked).toBeGreaterThan(10_000);
  });
});

describe('PostgreSQL sizes', () => {
  it('parses the units PostgreSQL accepts, in powers of 1024', () => {
    expect(parsePgSize('64MB', '--wal-keep-size')).toBe(64n << 20n);
    expect(parsePgSize('1GB', '--wal-keep-size')).toBe(1n << 30n);
    expect(parsePgSize('512 kB', '--x')).toBe(512n << 10n);
    expect(parsePgSize('2TB', '--x')).toBe(2n << 40n);
    expect(parsePgSize('0', '--x', 'MB')).toBe(0n);
    expect(parsePgSize('16', '--x', 'MB')).toBe(16n << 20n);
    expect(parsePgSize('7B', '--x')).toBe(7n);
  });

  it('refuses what PostgreSQL refuses, naming the flag and the valid units', () => {
    expect(() => parsePgSize('64mb', '--wal-keep-size')).toThrow(/invalid --wal-keep-size "64mb": unknown unit "mb".*did you mean 64MB/);
    expect(() => parsePgSize('64MiB', '--wal-keep-size')).toThrow(/did you mean 64MB/);
    expect(() => parsePgSize('-1MB', '--wal-keep-size')).toThrow(/non-negative integer/);
    expect(() => parsePgSize('1.5GB', '--wal-keep-size')).toThrow(/non-negative integer/);
    expect(() => parsePgSize('', '--wal-keep-size')).toThrow(/invalid --wal-keep-size/);
    expect(() => parsePgSize('64', '--reserve')).toThrow(/a unit is required/);
  });

  it('percentages', () => {
    expect(parsePercent('90%', '--disk-high-water')).toBeCloseTo(0.9);
    expect(parsePercent('85', '--disk-high-water')).toBeCloseTo(0.85);
    expect(() => parsePercent('120%', '--disk-high-water')).toThrow(/0% to 100%/);
    expect(() => parsePercent('lots', '--disk-high-water')).toThrow(/invalid --disk-high-water "lots"/);
  });

  it('formats back', () => {
    expect(formatPgSize(64n << 20n)).toBe('64MB');
    expect(formatPgSize(1n << 30n)).toBe('1GB');
    expect(formatPgSize(1000n)).toBe('1000B');
  });
});
