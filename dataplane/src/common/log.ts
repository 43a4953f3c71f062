// Process logger: JSON lines on stdout (what log collectors expect), or `--log-format text`
// for a human at a terminal.
import { pino, type Logger } from 'pino';
import { Writable } from 'node:stream';

export type { Logger };
export type LogFormat = 'json' | 'text';

export function createLogger(opts: { name: string; format?: LogFormat; level?: string }): Logger {
  const level = opts.level ?? process.env.WALKEEPER_LOG_LEVEL ?? 'info';
  if ((opts.format ?? 'json') === 'json') {
    return pino({ name: opts.name, level, base: { name: opts.name }, timestamp: pino.stdTimeFunctions.isoTime });
  }
  return pino({ name: opts.name, level, base: {}, timestamp: pino.stdTimeFunctions.isoTime }, textStream());
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

function textStream(): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        try {
          const { time, level, msg, ...rest } = JSON.parse(line) as Record<string, unknown>;
          const kv = Object.entries(rest)
            .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
            .join(' ');
          process.stdout.write(`${time} ${LEVELS[level as number] ?? level} ${msg ?? ''}${kv ? ' ' + kv : ''}\n`);
        } catch {
          process.stdout.write(line + '\n');
        }
      }
      done();
    },
  });
}
