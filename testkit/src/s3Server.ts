// An S3-compatible server for tests and the benchmark (never walctl): s3rver on 127.0.0.1
// (port 0, or a port given to come back on after a stop) storing in a temp directory, with one
// bucket, and the options a walkeeper store needs to reach it. s3rver accepts the access key
// S3RVER / S3RVER only.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';
import type { RemoteStorageOptions } from '@walkeeper/dataplane/remote/url';

export const S3RVER_KEY = 'S3RVER';

export class TestS3Server {
  private server: S3rver | undefined;
  port = 0;

  private constructor(
    readonly dir: string,
    readonly bucket: string,
  ) {}

  /** Starts a server with `bucket` created. */
  static async start(bucket = 'walkeeper-test'): Promise<TestS3Server> {
    const s = new TestS3Server(mkdtempSync(join(tmpdir(), 'walkeeper-s3-')), bucket);
    await s.run();
    return s;
  }

  /** (Re)starts on the same port and directory: objects survive a stop. */
  async run(): Promise<void> {
    if (this.server) return;
    const server = new S3rver({ address: '127.0.0.1', port: this.port, directory: this.dir, silent: true, configureBuckets: [{ name: this.bucket }] });
    const addr = await server.run();
    this.port = addr.port;
    this.server = server;
  }

  /** Stops listening (the store becomes unreachable); run() brings it back. */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    await s?.close();
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Options of a walkeeper S3 store for this server. */
  options(overrides: RemoteStorageOptions = {}): RemoteStorageOptions {
    return { endpoint: this.endpoint, region: 'us-east-1', pathStyle: true, accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY, checksum: 'when_required', ...overrides };
  }

  /** Where s3rver keeps an object's bytes (tests tamper with it there). */
  objectPath(key: string): string {
    const parts = key.split('/');
    const last = parts.pop()!;
    return join(this.dir, this.bucket, ...parts, `${last}._S3rver_object`);
  }

  async destroy(): Promise<void> {
    await this.stop().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
