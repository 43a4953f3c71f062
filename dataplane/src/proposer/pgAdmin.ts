// An ordinary SQL connection to the proposer's PostgreSQL, for what the replication protocol
// cannot tell or do: whether it is a standby (pg_is_in_recovery), how far it has replayed,
// and promoting it (pg_promote) during a failover (`walkeeper proposer --promote`).
import { connectPg, type PgConnection } from '../protocol/pgClient.js';
import { parseLsn, type Lsn } from '../common/lsn.js';
import type { ConnInfo } from '../common/conninfo.js';

export const ADMIN_APP_NAME = 'walkeeper_proposer_admin';

export class PgAdmin {
  private constructor(private readonly conn: PgConnection) {}

  static async connect(info: ConnInfo): Promise<PgAdmin> {
    const conn = await connectPg({
      host: info.host,
      port: info.port,
      user: info.user,
      password: info.password,
      database: info.dbname,
      applicationName: ADMIN_APP_NAME,
      connectTimeoutMs: 10_000,
    });
    return new PgAdmin(conn);
  }

  private async value(sql: string): Promise<string | null> {
    const r = await this.conn.query(sql);
    const row = r.rows[0];
    if (!row) throw new Error(`${sql} returned no row`);
    return row[0];
  }

  /** true while PostgreSQL is a standby (recovering, not yet promoted) */
  async inRecovery(): Promise<boolean> {
    return (await this.value('SELECT pg_is_in_recovery()')) === 't';
  }

  /** End of the last WAL record replayed (a standby); null if it has replayed nothing yet. */
  async replayLsn(): Promise<Lsn | null> {
    const v = await this.value('SELECT pg_last_wal_replay_lsn()::text');
    return v === null ? null : parseLsn(v);
  }

  /** Promotes the standby and waits for the promotion to finish; false if it did not within waitSeconds. */
  async promote(waitSeconds: number): Promise<boolean> {
    return (await this.value(`SELECT pg_promote(true, ${Math.floor(waitSeconds)})`)) === 't';
  }

  close(): void {
    this.conn.destroy();
  }
}
