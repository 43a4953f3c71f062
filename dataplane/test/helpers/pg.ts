// Small helpers for tests that talk to a real PostgreSQL through node-postgres.
import pg from 'pg';
import { parseLsn, type Lsn } from '../../src/common/lsn.js';

export async function pgConnect(port: number, opts: { statementTimeoutMs?: number } = {}): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', statement_timeout: opts.statementTimeoutMs });
  await client.connect();
  return client;
}

export async function currentFlushLsn(client: pg.Client): Promise<Lsn> {
  const r = await client.query<{ lsn: string }>('SELECT pg_current_wal_flush_lsn()::text AS lsn');
  return parseLsn(r.rows[0].lsn);
}

/** Resolves with 'done' if p settles within ms, else 'pending' (p keeps running). */
export async function settlesWithin(p: Promise<unknown>, ms: number): Promise<'done' | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)));
  const r = await Promise.race([p.then(() => 'done' as const, () => 'done' as const), t]);
  clearTimeout(timer);
  return r;
}
