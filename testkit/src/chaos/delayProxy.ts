// A delaying TCP forwarder for kernels without `tc netem`: `node delayProxy.js LISTEN TARGET
// CONTROL_FILE` forwards every connection on LISTEN (host:port) to TARGET and delivers each
// chunk toward TARGET, in order, after the delay (ms) written in CONTROL_FILE (re-read every 100 ms).
// netns.ts runs one per safekeeper inside the safekeeper's namespace.
import { createServer, connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';

const [listen, target, control] = process.argv.slice(2);
if (!listen || !target || !control) {
  process.stderr.write('usage: delayProxy LISTEN_HOST:PORT TARGET_HOST:PORT CONTROL_FILE\n');
  process.exit(2);
}
const split = (hp: string) => ({ host: hp.slice(0, hp.lastIndexOf(':')), port: Number(hp.slice(hp.lastIndexOf(':') + 1)) });
let delayMs = 0;
const readDelay = () => {
  try {
    delayMs = Math.max(0, Number(readFileSync(control, 'utf8').trim()) || 0);
  } catch {
    delayMs = 0;
  }
};
readDelay();
setInterval(readDelay, 100);

/** Forwards from → to, each chunk released delayMs after it arrived, never reordered. */
function pipeDelayed(from: Socket, to: Socket, delayed: boolean): void {
  let lastRelease = 0;
  from.on('data', (chunk: Buffer) => {
    const release = Math.max(Date.now() + (delayed ? delayMs : 0), lastRelease);
    lastRelease = release;
    const wait = release - Date.now();
    if (wait <= 0) to.write(chunk);
    else setTimeout(() => to.write(chunk), wait);
  });
  from.on('end', () => setTimeout(() => to.end(), Math.max(0, lastRelease - Date.now())));
}

const server = createServer((client) => {
  const upstream = connect(split(target));
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
  client.on('close', close);
  upstream.on('close', close);
  // like netem on the link toward the safekeeper: what reaches it is delayed, answers are not
  pipeDelayed(client, upstream, true);
  pipeDelayed(upstream, client, false);
});
server.listen(split(listen).port, split(listen).host, () => process.stdout.write(`forwarding ${listen} -> ${target}, delay from ${control}\n`));
