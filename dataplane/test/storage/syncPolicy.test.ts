import { DEFAULT_SYNC_POLICY, SyncPolicy } from '../../src/storage/syncPolicy.js';

const { busyWindowMs, slowMs, slowBackoffMs } = DEFAULT_SYNC_POLICY;

describe('SyncPolicy: where a WAL fdatasync runs', () => {
  it('a store alone in the process syncs on the event loop, every time', () => {
    const p = new SyncPolicy();
    const a = {};
    for (let t = 0; t < 10_000; t += 7) expect(p.syncInline(a, t)).toBe(true);
  });

  it('two stores syncing within the busy window both go to the thread pool', () => {
    const p = new SyncPolicy();
    const a = {};
    const b = {};
    expect(p.syncInline(a, 0)).toBe(true);
    expect(p.syncInline(b, 10)).toBe(false);
    expect(p.syncInline(a, 20)).toBe(false);
    expect(p.syncInline(b, 20 + busyWindowMs - 1)).toBe(false);
  });

  it('a store that stopped syncing for a whole window no longer counts as busy', () => {
    const p = new SyncPolicy();
    const a = {};
    const b = {};
    p.syncInline(a, 0);
    expect(p.syncInline(b, 1)).toBe(false);
    // a fell silent at 0: b has the process to itself once a window has passed
    expect(p.syncInline(b, busyWindowMs - 1)).toBe(false);
    expect(p.syncInline(b, busyWindowMs)).toBe(true);
    // and a, back after its silence, sees b busy
    expect(p.syncInline(a, busyWindowMs + 5)).toBe(false);
  });

  it('a closed store is forgotten at once', () => {
    const p = new SyncPolicy();
    const a = {};
    const b = {};
    p.syncInline(a, 0);
    expect(p.syncInline(b, 1)).toBe(false);
    p.forget(a);
    expect(p.syncInline(b, 2)).toBe(true);
  });

  it('one slow inline sync sends every sync to the thread pool for the back-off, then inline again', () => {
    const p = new SyncPolicy();
    const a = {};
    expect(p.syncInline(a, 0)).toBe(true);
    p.inlineSyncTook(slowMs, slowMs); // exactly the limit is not slow
    expect(p.syncInline(a, 100)).toBe(true);
    p.inlineSyncTook(slowMs + 1, 200);
    expect(p.syncInline(a, 201)).toBe(false);
    expect(p.syncInline(a, 200 + slowBackoffMs - 1)).toBe(false);
    expect(p.syncInline(a, 200 + slowBackoffMs)).toBe(true);
  });

  it('options override the defaults', () => {
    const p = new SyncPolicy({ busyWindowMs: 10, slowMs: 1, slowBackoffMs: 5 });
    const a = {};
    const b = {};
    p.syncInline(a, 0);
    expect(p.syncInline(b, 5)).toBe(false);
    expect(p.syncInline(b, 10)).toBe(true);
    p.inlineSyncTook(2, 10);
    expect(p.syncInline(b, 14)).toBe(false);
    expect(p.syncInline(b, 15)).toBe(true);
  });
});
