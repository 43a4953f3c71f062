// Polling for a value in tests: the probe is retried (errors included) until it yields one.
import { sleep } from '../../src/local/postgres.js';

/** Polls `probe` every 200 ms until it returns a value (not undefined or false); fails with the last error after `ms`. */
export async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}
