// Measures (does not assert much) how fast the ingest path and recovery decoding run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32c } from '../../src/storage/crc32c.js';
import { WalRecordDecoder } from '../../src/storage/walRecords.js';
import { WalStore } from '../../src/storage/walStore.js';
import { WalBuilder } from '@walkeeper/testkit/walBuilder';

const SEG = 16 * 1024 * 1024;
const START = BigInt(SEG);

describe('throughput (informational)', () => {
  let dir: string;
  let bytes: Buffer;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'walkeeper-throughput-'));
    const b = new WalBuilder(START, SEG);
    let k = 0;
    while (b.position < START + 24n * 1024n * 1024n) b.addRecord([40, 120, 60, 300, 8000, 90][k++ % 6]);
    bytes = b.bytes();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const mbps = (n: number, ms: number) => ((n / (1024 * 1024)) / (ms / 1000)).toFixed(0);

  it('crc32c, ingest decoding, recovery decoding and WalStore.append', async () => {
    let t = performance.now();
    crc32c(bytes);
    const crcMs = performance.now() - t;

    t = performance.now();
    const ingest = new WalRecordDecoder({ startLsn: START, walSegSize: SEG });
    for (let off = 0; off < bytes.length; off += 131072) ingest.feed(bytes.subarray(off, off + 131072));
    const ingestMs = performance.now() - t;

    t = performance.now();
    const recovery = new WalRecordDecoder({ startLsn: START, walSegSize: SEG, validate: true });
    recovery.feed(bytes);
    const recoveryMs = performance.now() - t;
    expect(recovery.stopped).toBeNull();
    expect(ingest.records).toBe(recovery.records);

    const store = await WalStore.open(dir, { walSegSize: SEG, pgTimeline: 1, timelineStartLsn: START, recoverFrom: START, syncMode: 'fsync' });
    t = performance.now();
    for (let off = 0; off < bytes.length; off += 131072) {
      await store.append(START + BigInt(off), bytes.subarray(off, Math.min(off + 131072, bytes.length)));
      if ((off / 131072) % 8 === 7) await store.flush();
    }
    await store.flush();
    const storeMs = performance.now() - t;
    await store.close();
    t = performance.now();
    const reopened = await WalStore.open(dir, { walSegSize: SEG, pgTimeline: 1, timelineStartLsn: START, recoverFrom: START, syncMode: 'fsync' });
    const openMs = performance.now() - t;
    expect(reopened.writeLsn).toBe(recovery.lastRecordEnd);
    await reopened.close();

    const mb = bytes.length;
    console.log(
      `${(mb / 1048576).toFixed(0)} MiB, ${recovery.records} records: crc32c ${mbps(mb, crcMs)} MiB/s; ` +
        `ingest decode ${mbps(mb, ingestMs)} MiB/s; recovery decode (CRC) ${mbps(mb, recoveryMs)} MiB/s; ` +
        `WalStore.append 128 KiB + flush every 1 MiB (fdatasync) ${mbps(mb, storeMs)} MiB/s; open/recover ${openMs.toFixed(0)} ms`,
    );
  });
});
