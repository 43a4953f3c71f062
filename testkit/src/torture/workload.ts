// The torture's workload: N concurrent node-postgres clients, each inserting rows with ids
// nobody else uses into `ledger`, one autocommit INSERT at a time. A COMMIT that returned is
// recorded as acknowledged; an error or a dropped connection leaves the outcome unknown and
// the client reconnects. A WARNING about a cancelled synchronous-replication wait also makes
// the outcome unknown (PostgreSQL reports success, but the quorum never confirmed it).
import pg from 'pg';
import { sleep } from '@walkeeper/dataplane/local/postgres';
import type { LedgerRecord } from './ledger.js';

export const LEDGER_DDL = 'CREATE TABLE IF NOT EXISTS ledger (id bigint PRIMARY KEY, client int NOT NULL, payload text NOT NULL)';

/** ids of client c are c * ID_STRIDE + seq: unique across clients and reconnects */
export const ID_STRIDE = 1_000_000_000;

export interface WorkloadOptions {
  host: string;
  port: number;
  clients: number;
  /** client numbers are clientOffset+1 .. clientOffset+clients (default 0): a second workload on the same record uses other ids */
  clientOffset?: number;
  record: LedgerRecord;
  log: (line: string) => void;
}

export interface WorkloadStats {
  errors: number;
  reconnects: number;
  syncRepWarnings: number;
  /** inserts still waiting when the workload was stopped (their outcome is unknown) */
  abandoned: number;
  /** error messages by text, first 100 characters */
  errorKinds: Map<string, number>;
}

export class Workload {
  readonly stats: WorkloadStats = { errors: 0, reconnects: 0, syncRepWarnings: 0, abandoned: 0, errorKinds: new Map() };
  private stopping = false;
  private readonly workers: Promise<void>[] = [];
  private readonly clients = new Map<number, pg.Client>();
  private readonly inFlight = new Set<number>();

  constructor(private readonly opts: WorkloadOptions) {}

  start(): void {
    const first = (this.opts.clientOffset ?? 0) + 1;
    for (let c = first; c < first + this.opts.clients; c++) this.workers.push(this.worker(c));
  }

  /** Stops issuing inserts; waits up to graceMs for those in flight, then drops their connections. */
  async stop(graceMs = 30_000): Promise<void> {
    this.stopping = true;
    const all = Promise.all(this.workers);
    let timer: NodeJS.Timeout | undefined;
    const settled = await Promise.race([all.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs)))]);
    clearTimeout(timer);
    if (!settled) {
      this.opts.log(`workload: ${this.inFlight.size} insert(s) still waiting after ${graceMs} ms; dropping their connections (outcome unknown)`);
      this.stats.abandoned = this.inFlight.size;
      for (const client of this.clients.values()) destroyClient(client);
      await all;
    }
  }

  private async connect(c: number): Promise<pg.Client | undefined> {
    const client = new pg.Client({ host: this.opts.host, port: this.opts.port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 5000, application_name: `torture-${c}` });
    // a dropped connection is reported both here and by the pending query; the query's error is the one we count
    client.on('error', () => undefined);
    try {
      await client.connect();
      return client;
    } catch {
      destroyClient(client);
      return undefined;
    }
  }

  private async worker(c: number): Promise<void> {
    let seq = 0;
    let client: pg.Client | undefined;
    let syncRepWarning = false;
    while (!this.stopping) {
      if (!client) {
        client = await this.connect(c);
        if (!client) {
          await sleep(100);
          continue;
        }
        this.stats.reconnects++;
        client.on('notice', (n: { message?: string }) => {
          if (/synchronous replication/i.test(n.message ?? '')) syncRepWarning = true;
        });
        this.clients.set(c, client);
      }
      const id = c * ID_STRIDE + ++seq;
      this.opts.record.attempt(id);
      this.inFlight.add(id);
      syncRepWarning = false;
      try {
        await client.query('INSERT INTO ledger (id, client, payload) VALUES ($1, $2, $3)', [id, c, `client ${c} row ${seq} ${'x'.repeat(64)}`]);
        if (syncRepWarning) {
          this.stats.syncRepWarnings++;
          this.opts.log(`workload: insert ${id} returned with a synchronous-replication warning; outcome counted as unknown`);
        } else {
          this.opts.record.acknowledge(id);
        }
      } catch (err) {
        this.stats.errors++;
        const kind = (err as Error).message.slice(0, 100);
        this.stats.errorKinds.set(kind, (this.stats.errorKinds.get(kind) ?? 0) + 1);
        // whatever happened, start again on a fresh connection
        this.clients.delete(c);
        destroyClient(client);
        client = undefined;
      } finally {
        this.inFlight.delete(id);
      }
    }
    if (client) {
      this.clients.delete(c);
      await client.end().catch(() => undefined);
    }
  }
}

/** Drops a node-postgres connection at once (end() would wait for a backend stuck in a sync-rep wait). */
export function destroyClient(client: pg.Client): void {
  const conn = (client as unknown as { connection?: { stream?: { destroy: () => void } } }).connection;
  try {
    conn?.stream?.destroy();
  } catch {
    // already closed
  }
}
