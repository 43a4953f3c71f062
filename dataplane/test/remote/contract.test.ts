// The remote storage contract (src/remote/remoteStorage.ts), run against both stores: the
// `file://` directory and S3 through a real s3rver. Create-only writes, checksums verified on
// read, interrupted writes never complete, and every bad configuration a clear error.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openRemoteStorage, parseRemoteStorageUrl } from '../../src/remote/url.js';
import { isRemoteStorageError, type RemoteStorage, type RemoteStorageErrorCode } from '../../src/remote/remoteStorage.js';
import { TestS3Server } from '@walkeeper/testkit/s3Server';

interface StoreUnderTest {
  store: RemoteStorage;
  /** overwrites an object's bytes behind the store's back, as a disk or operator could */
  tamper(key: string, bytes: Buffer): void;
  /** leaves bytes at key as a writer killed between its two steps would */
  interrupt(key: string, bytes: Buffer): void;
  cleanup(): Promise<void>;
}

async function expectCode(p: Promise<unknown>, code: RemoteStorageErrorCode, mentions: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  expect(isRemoteStorageError(caught)).toBe(true);
  expect((caught as { code: string }).code).toBe(code);
  expect((caught as Error).message).toMatch(mentions);
}

const kinds: [string, () => Promise<StoreUnderTest>][] = [
  [
    'file://',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'walkeeper-bucket-'));
      const store = await openRemoteStorage(parseRemoteStorageUrl(`file://${dir}`));
      return {
        store,
        tamper: (key, bytes) => writeFileSync(join(dir, key), bytes),
        interrupt: (key, bytes) => {
          rmSync(join(dir, key + '.sha256'), { force: true });
          writeFileSync(join(dir, key), bytes);
        },
        cleanup: async () => rmSync(dir, { recursive: true, force: true }),
      };
    },
  ],
  [
    's3:// (s3rver)',
    async () => {
      const s3 = await TestS3Server.start();
      const store = await openRemoteStorage(parseRemoteStorageUrl(`s3://${s3.bucket}/pfx/a`, s3.options(), {}));
      return {
        store,
        tamper: (key, bytes) => writeFileSync(s3.objectPath(`pfx/a/${key}`), bytes),
        // On S3 a PUT is atomic: what an interrupted uploader can leave is an object without
        // the checksum metadata (written by another tool, or a multipart never completed).
        interrupt: (key, bytes) => {
          const path = s3.objectPath(`pfx/a/${key}`);
          writeFileSync(path, bytes);
          writeFileSync(path.replace(/_object$/, '_metadata.json'), JSON.stringify({ 'content-type': 'application/octet-stream' }));
        },
        cleanup: async () => {
          await store.close();
          await s3.destroy();
        },
      };
    },
  ],
];

describe.each(kinds)('%s store', (_name, make) => {
  let t: StoreUnderTest;
  beforeAll(async () => {
    t = await make();
  });
  afterAll(() => t?.cleanup());

  const seg = (fill: number) => Buffer.alloc(256 * 1024, fill);

  test('a usable store passes its start-up check', async () => {
    await t.store.check();
  });

  test('round trip: what is put is what is got, with its checksum in head and list', async () => {
    const body = Buffer.concat([seg(1), Buffer.from('tail')]);
    expect(await t.store.putImmutable('tenants/a/b/wal/000000010000000000000001', body)).toBe('created');
    const got = await t.store.get('tenants/a/b/wal/000000010000000000000001');
    expect(got?.equals(body)).toBe(true);
    const sha = createHash('sha256').update(body).digest('hex');
    expect(await t.store.head('tenants/a/b/wal/000000010000000000000001')).toEqual({ key: 'tenants/a/b/wal/000000010000000000000001', size: body.length, sha256: sha });
    expect(await t.store.get('tenants/a/b/wal/000000010000000000000099')).toBeNull();
    expect(await t.store.head('tenants/a/b/wal/000000010000000000000099')).toBeNull();
  });

  test('create-only: the same bytes again is "exists"; different bytes are a conflict and the object is unchanged', async () => {
    const key = 'tenants/a/b/wal/000000010000000000000002';
    expect(await t.store.putImmutable(key, seg(2))).toBe('created');
    expect(await t.store.putImmutable(key, seg(2))).toBe('exists');
    await expectCode(t.store.putImmutable(key, seg(3)), 'checksum_conflict', /000000010000000000000002.*not overwritten/);
    expect((await t.store.get(key))?.equals(seg(2))).toBe(true);
  });

  test('an object whose bytes were changed in the bucket is refused on read, naming the key', async () => {
    const key = 'tenants/a/b/wal/000000010000000000000003';
    await t.store.putImmutable(key, seg(4));
    const damaged = seg(4);
    damaged[1000] ^= 0xff;
    t.tamper(key, damaged);
    await expectCode(t.store.get(key), 'checksum_mismatch', /000000010000000000000003 .*damaged/);
    // and a re-upload of the right bytes does not take the damaged copy as done
    await expectCode(t.store.putImmutable(key, seg(4)), 'checksum_mismatch', /damaged/);
  });

  test('an interrupted write is never listed, headed or read as complete', async () => {
    const key = 'tenants/a/b/wal/000000010000000000000004';
    t.interrupt(key, seg(5).subarray(0, 1000));
    expect(await t.store.head(key)).toBeNull();
    expect(await t.store.get(key)).toBeNull();
    expect((await t.store.list('tenants/a/b/wal/')).map((o) => o.key)).not.toContain(key);
  });

  test('list returns complete objects under a prefix in key order; delete removes one', async () => {
    const base = 'tenants/l/m/wal/';
    await t.store.putImmutable(`${base}000000010000000000000006`, seg(6));
    await t.store.putImmutable(`${base}000000010000000000000005`, seg(5));
    await t.store.putImmutable(`${base}00000001.history`, Buffer.from('1\t0/3000000\tno recovery target specified\n'));
    await t.store.putImmutable('tenants/l/other/wal/000000010000000000000005', seg(5));
    const listed = await t.store.list(base);
    expect(listed.map((o) => o.key)).toEqual([`${base}00000001.history`, `${base}000000010000000000000005`, `${base}000000010000000000000006`]);
    expect(listed[1].size).toBe(seg(5).length);
    await t.store.delete(`${base}000000010000000000000005`);
    await t.store.delete(`${base}000000010000000000000042`); // absent is fine
    expect((await t.store.list(base)).map((o) => o.key)).toEqual([`${base}00000001.history`, `${base}000000010000000000000006`]);
    expect(await t.store.head(`${base}000000010000000000000005`)).toBeNull();
  });
});

describe('bad configuration is a clear error naming what is wrong', () => {
  test.each([
    ['', /empty/],
    ['http://bucket/x', /scheme "http:"/],
    ['bucket/prefix', /no scheme/],
    ['s3://', /names no bucket/],
    ['s3://B/prefix', /bucket name "B" .*not a valid S3 bucket name/],
    ['s3://ab/x', /bucket name "ab"/],
    ['s3://key:secret@bucket/x', /carries credentials/],
    ['s3://bucket/x?region=eu', /query or fragment/],
    ['s3://bucket/a/../b', /"\.\." segment/],
    ['file://relative/dir', /names host "relative"/],
    ['file:///', /absolute directory other than \//],
  ])('URL %j', (url, message) => {
    let caught: unknown;
    try {
      parseRemoteStorageUrl(url, url.startsWith('s3:') ? { region: 'us-east-1' } : {}, {});
    } catch (err) {
      caught = err;
    }
    expect(isRemoteStorageError(caught, 'bad_url')).toBe(true);
    expect((caught as Error).message).toMatch(message);
  });

  test('options: no region, a bad endpoint, half credentials, an unknown checksum mode, S3 options on a file store', () => {
    const refuse = (fn: () => unknown, message: RegExp) => {
      expect(fn).toThrow(message);
    };
    refuse(() => parseRemoteStorageUrl('s3://bucket/x', {}, {}), /no region/);
    refuse(() => parseRemoteStorageUrl('s3://bucket/x', { endpoint: 'localhost:9000' }, {}), /endpoint "localhost:9000" must be http/);
    refuse(() => parseRemoteStorageUrl('s3://bucket/x', { region: 'r' }, { AWS_ACCESS_KEY_ID: 'k' }), /half set: an access key id without a secret/);
    refuse(() => parseRemoteStorageUrl('s3://bucket/x', { region: 'r', checksum: 'never' }), /invalid --remote-storage-checksum "never"/);
    refuse(() => parseRemoteStorageUrl('s3://bucket/x', { region: 'r', pathStyle: 'yes' }), /invalid --remote-storage-path-style "yes"/);
    refuse(() => parseRemoteStorageUrl('file:///tmp/x', { endpoint: 'http://h' }), /S3 option\(s\) endpoint do not apply/);
  });

  test('the usual AWS environment variables fill unset options; flags win', () => {
    const env = { AWS_ACCESS_KEY_ID: 'envkey', AWS_SECRET_ACCESS_KEY: 'envsecret', AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL: 'http://127.0.0.1:1' };
    const fromEnv = parseRemoteStorageUrl('s3://my-bucket/some/prefix/', {}, env);
    expect(fromEnv).toMatchObject({ kind: 's3', bucket: 'my-bucket', prefix: 'some/prefix', region: 'eu-west-1', endpoint: 'http://127.0.0.1:1', credentials: { accessKeyId: 'envkey', secretAccessKey: 'envsecret' }, checksumMode: 'when_supported', forcePathStyle: false });
    const flags = parseRemoteStorageUrl('s3://my-bucket', { region: 'us-east-2', accessKeyId: 'k', secretAccessKey: 's', pathStyle: 'true', checksum: 'when_required' }, env);
    expect(flags).toMatchObject({ prefix: '', region: 'us-east-2', credentials: { accessKeyId: 'k', secretAccessKey: 's' }, forcePathStyle: true, checksumMode: 'when_required' });
  });

  describe('against a real s3rver', () => {
    let s3: TestS3Server;
    beforeAll(async () => {
      s3 = await TestS3Server.start();
    });
    afterAll(() => s3?.destroy());

    async function checkWith(url: string, overrides: Parameters<TestS3Server['options']>[0]): Promise<void> {
      const store = await openRemoteStorage(parseRemoteStorageUrl(url, s3.options(overrides), {}));
      try {
        await store.check();
      } finally {
        await store.close();
      }
    }

    // s3rver checks only the access key id of a V4 signature, never the secret: a wrong
    // secret is accepted there (real S3 answers SignatureDoesNotMatch, mapped the same way).
    test('wrong credentials: access_denied', async () => {
      await expectCode(checkWith(`s3://${s3.bucket}/p`, { accessKeyId: 'NOT-A-KEY' }), 'access_denied', /credentials refused/);
    });

    test('a missing bucket: no_such_bucket, naming it', async () => {
      await expectCode(checkWith('s3://no-such-bucket-here/p', {}), 'no_such_bucket', /bucket "no-such-bucket-here" does not exist/);
    });

    test('nothing listening: unreachable', async () => {
      const stopped = await TestS3Server.start();
      const endpoint = stopped.endpoint;
      await stopped.destroy();
      await expectCode(checkWith(`s3://${s3.bucket}/p`, { endpoint }), 'unreachable', /ECONNREFUSED/);
    });
  });

  test('file://: a missing directory is no_such_bucket; an unwritable one access_denied', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'walkeeper-bucket-'));
    try {
      await expectCode((await openRemoteStorage(parseRemoteStorageUrl(`file://${dir}/missing`))).check(), 'no_such_bucket', /missing does not exist/);
      if (process.getuid?.() !== 0) {
        chmodSync(dir, 0o500);
        await expectCode((await openRemoteStorage(parseRemoteStorageUrl(`file://${dir}`))).check(), 'access_denied', /cannot write/);
        chmodSync(dir, 0o700);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
