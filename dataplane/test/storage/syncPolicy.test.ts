import { DEFAULT_SYNC_POLICY, SyncPolicy } from '../../src/storage/syncPolicy.js';

const { maxInlineBytes, busyWindowMs, slowMs, slowBackoffMs } = DEFAULT_SYNC_POLICY;
/** a flush of a few commits */
const SMALL = 8192;

/** Store a synced at 0, then b at 1, which therefore went to the pool. */
function twoStoresSynced() {
  const p = new SyncPolicy();
  const a = {};
  const b = {};
  p.syncInline(a, 0, SMALL);
  expect(p.syncInline(b, 1, SMALL)).toBe(false);
  return { p, a, b };
}

describe('SyncPolicy: where a WAL fdatasync runs', () => {
  it('a store alone in the process syncs on the event loop, every time', () => {
    const p = new SyncPolicy();
    const a = {};
    for (let t = 0; t < 10_000; t += 7) expect(p.syncInline(a, t, SMALL)).toBe(true);
  });

  it('a flush of more than maxInlineBytes goes to the thread pool, so the next batch is received meanwhile', () => {
    const p = new SyncPolicy();
    const a = {};
    expect(p.syncInline(a, 0, maxInlineBytes)).toBe(true);
    expect(p.syncInline(a, 1, maxInlineBytes + 1)).toBe(false);
    expect(p.syncInline(a, 2, SMALL)).toBe(true);
  });

  it('two stores syncing within the busy window both go to the thread pool', () => {
    const p = new SyncPolicy();
    const a = {};
    const b = {};
    expect(p.syncInline(a, 0, SMALL)).toBe(true);
    expect(p.syncInline(b, 10, SMALL)).toBe(false);
    expect(p.syncInline(a, 20, SMALL)).toBe(false);
    expect(p.syncInline(b, 20 + busyWindowMs - 1, SMALL)).toBe(false);
  });

  it('a store that stopped syncing for a whole window no longer counts as busy', () => {
    const { p, a, b } = twoStoresSynced();
    // a fell silent at 0: b has the process to itself once a window has passed
    expect(p.syncInline(b, busyWindowMs - 1, SMALL)).toBe(false);
    expect(p.syncInline(b, busyWindowMs, SMALL)).toBe(true);
    // and a, back after its silence, sees b busy
    expect(p.syncInline(a, busyWindowMs + 5, SMALL)).toBe(false);
  });

  it('a closed store is forgotten at once', () => {
    const { p, a, b } = twoStoresSynced();
    p.forget(a);
    expect(p.syncInline(b, 2, SMALL)).toBe(true);
  });

  it('one slow inline sync sends every sync to the thread pool for the back-off, then inline again', () => {
    const p = new SyncPolicy();
    const a = {};
    expect(p.syncInline(a, 0, SMALL)).toBe(true);
    p.inlineSyncTook(slowMs, slowMs); // exactly the limit is not slow
    expect(p.syncInline(a, 100, SMALL)).toBe(true);
    p.inlineSyncTook(slowMs + 1, 200);
    expect(p.syncInline(a, 201, SMALL)).toBe(false);
    expect(p.syncInline(a, 200 + slowBackoffMs - 1, SMALL)).toBe(false);
    expect(p.syncInline(a, 200 + slowBackoffMs, SMALL)).toBe(true);
  });

  it('options override the defaults', () => {
    const p = new SyncPolicy({ maxInlineBytes: 100_000, busyWindowMs: 10, slowMs: 1, slowBackoffMs: 5 });
    const a = {};
    const b = {};
    p.syncInline(a, 0, SMALL);
    expect(p.syncInline(b, 5, SMALL)).toBe(false);
    expect(p.syncInline(b, 10, SMALL)).toBe(true);
    p.inlineSyncTook(2, 10);
    expect(p.syncInline(b, 14, SMALL)).toBe(false);
    expect(p.syncInline(b, 15, SMALL)).toBe(true);
    expect(p.syncInline(b, 16, 100_000)).toBe(true);
    expect(p.syncInline(b, 17, 100_001)).toBe(false);
  });
});
