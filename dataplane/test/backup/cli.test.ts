// `walkeeper backup|restore|wal-fetch` refuse bad flags with an error naming the flag, before
// they touch a bucket or a data directory (the real binary, as a user runs it).
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WALKEEPER_JS } from '../../src/local/process.js';
import { newId } from '../../src/common/ids.js';

let bucket: string;
const T = newId();
const L = newId();

function walkeeper(args: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [WALKEEPER_JS, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

beforeAll(() => {
  bucket = mkdtempSync(join(tmpdir(), 'walkeeper-backup-cli-'));
});
afterAll(() => rmSync(bucket, { recursive: true, force: true }));

const store = () => ['--remote-storage', `file://${bucket}`];

test.each([
  [['backup', 'list', '--tenant-id', T, '--timeline-id', L], /no --remote-storage given/],
  [['backup', 'list', '--remote-storage', 'ftp://x', '--tenant-id', T, '--timeline-id', L], /scheme "ftp:"/],
  [['backup', 'list', '--remote-storage', 'file:///x', '--tenant-id', 'nope', '--timeline-id', L], /invalid tenant_id "nope"/],
  [['backup', 'delete', 'not-an-id', '--remote-storage', 'file:///x', '--tenant-id', T, '--timeline-id', L], /invalid backup id "not-an-id"/],
  [['backup', 'retain', '--remote-storage', 'file:///x', '--tenant-id', T, '--timeline-id', L], /retention needs --keep N and\/or --max-age-days D/],
  [['backup', 'retain', '--keep', '0', '--remote-storage', 'file:///x', '--tenant-id', T, '--timeline-id', L], /invalid keep 0/],
  [['backup', 'create', '--remote-storage', 'file:///x', '--tenant-id', T, '--timeline-id', L], /no --pg given/],
  [['restore', '--datadir', '/tmp/never', '--target-time', 'yesterday', '--remote-storage', 'file:///x', '--tenant-id', T, '--timeline-id', L], /invalid --target-time "yesterday"/],
  [['restore', '--datadir', '/tmp/never', '--target-lsn', '0/1', '--target-time', '2026-01-01T00:00:00Z', '--remote-storage', 'file:///x', '--tenant-id', T, '--timeline-id', L], /--target-time or --target-lsn, not both/],
  [['restore', '--datadir', '/tmp/never', '--target-lsn', 'zz', '--remote-storage', 'file:///x', '--tenant-id', T, '--timeline-id', L], /invalid LSN "zz"/],
  [['wal-fetch', '../../etc/passwd', '/tmp/never', '--remote-storage', 'file:///x', '--tenant-id', T, '--timeline-id', L], /is not a WAL segment or timeline history file name/],
])('walkeeper %j is refused with a clear error', async (args, message) => {
  const r = await walkeeper(args);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(message);
  expect(existsSync('/tmp/never')).toBe(false);
});

test('backup list of an empty bucket says there is nothing, and wal-fetch of an absent file exits 1 for PostgreSQL to stream instead', async () => {
  const list = await walkeeper(['backup', 'list', ...store(), '--tenant-id', T, '--timeline-id', L, '--json']);
  expect(list.code).toBe(0);
  expect(JSON.parse(list.stdout)).toEqual({ complete: [], incomplete: [] });
  const dest = join(bucket, 'fetched');
  const fetch = await walkeeper(['wal-fetch', '000000010000000000000001', dest, ...store(), '--tenant-id', T, '--timeline-id', L]);
  expect(fetch.code).toBe(1);
  expect(fetch.stderr).toMatch(/000000010000000000000001 is not in the bucket/);
  expect(readdirSync(bucket)).toEqual([]);
});
