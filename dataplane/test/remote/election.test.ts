// The offloader election (safekeeper/walBackup.ts): with no broker, every member must reach the
// same answer alone — one designated uploader per timeline, every other member a distinct
// takeover rank — and timelines must spread over the members.
import { designatedUploader, historyFileName, uploaderRank } from '../../src/safekeeper/walBackup.js';
import { newId } from '../../src/common/ids.js';

test('each timeline has one designated member and distinct takeover ranks 1..N-1 for the others', () => {
  for (const n of [1, 3, 5, 7]) {
    for (let i = 0; i < 50; i++) {
      const [t, l] = [newId(), newId()];
      const ranks = Array.from({ length: n }, (_, k) => uploaderRank(k + 1, t, l, n));
      expect([...ranks].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, k) => k));
      expect(ranks[designatedUploader(t, l, n) - 1]).toBe(0);
    }
  }
});

test('timelines spread over the members, and a member outside 1..N is last in line', () => {
  const counts = [0, 0, 0];
  for (let i = 0; i < 300; i++) counts[designatedUploader(newId(), newId(), 3) - 1]++;
  for (const c of counts) expect(c).toBeGreaterThan(50);
  expect(uploaderRank(9, newId(), newId(), 3)).toBe(3);
});

test('history files are named as PostgreSQL names them', () => {
  expect(historyFileName(2)).toBe('00000002.history');
  expect(historyFileName(0x1a)).toBe('0000001A.history');
});
