// Child process of removal.test.ts's kill -9 test: opens a timeline directory as a
// safekeeper does, then appends the rest of the stream in chunks, flushing and removing
// segments below (flush - 1 segment) after each chunk, printing every acknowledged flush
// LSN, until it is killed (by the parent, or by itself around the control-file write). Usage: node removalCrashChild.js <dir> <seed>
import { openFromControl, loadStream, persistWalStart, SEG, START } from './removalFixture.js';

async function main(): Promise<void> {
  const [dir, seedText] = process.argv.slice(2);
  let seed = Number(seedText) >>> 0 || 1;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) % 100_000) / 100_000;
  const stream = loadStream(dir);
  const store = await openFromControl(dir, { syncMode: 'fsync', recycle: { maxRecycled: 2, prepareAhead: true } });
  process.stdout.write(`open ${store.flushLsn}\n`);
  let pos = store.writeLsn;
  const end = START + BigInt(stream.length);
  while (pos < end) {
    const n = Math.min(Number(end - pos), 4096 + Math.floor(rand() * 200_000));
    await store.append(pos, stream.subarray(Number(pos - START), Number(pos - START) + n));
    pos += BigInt(n);
    const flushed = await store.flush();
    process.stdout.write(`flushed ${flushed}\n`);
    if (flushed > BigInt(SEG)) {
      // Besides the parent's kill at an arbitrary moment, sometimes die right before or right
      // after the first LSN is persisted: the two points where the removal order matters.
      const dieAt = rand() < 0.15 ? (rand() < 0.5 ? 'before' : 'after') : null;
      await store.removeSegmentsBelow(flushed - BigInt(SEG), async (lsn) => {
        if (dieAt === 'before') process.kill(process.pid, 'SIGKILL');
        await persistWalStart(dir, lsn, 'fsync');
        if (dieAt === 'after') process.kill(process.pid, 'SIGKILL');
      });
    }
  }
  process.stdout.write('done\n');
  await new Promise(() => undefined); // wait to be killed
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
