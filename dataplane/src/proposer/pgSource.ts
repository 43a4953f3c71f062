// The proposer's connection to its PostgreSQL primary: a physical replication client
// through slot `walkeeper_proposer`, named `walkeeper_proposer` so PostgreSQL treats it as
// its synchronous standby. It receives WAL and reports the quorum commit LSN back as its
// write/flush position, which is what releases waiting COMMITs.
import { connectPg, PgServerError, type CopyBothStream, type PgConnection } from '../protocol/pgClient.js';
import { decodeSenderMessage, encodeStandbyStatusUpdate, pgNowMicros } from '../protocol/replicationMessages.js';
import { formatLsn, parseLsn, type Lsn } from '../common/lsn.js';
import type { ConnInfo } from '../common/conninfo.js';
import type { Logger } from '../common/log.js';
import { FIRST_PG_TIMELINE, historyFileName, parseHistoryFile, pgTimelineHistoryOf, type PgTimelineInfo } from '../consensus/pgTimeline.js';

export const PROPOSER_APP_NAME = 'walkeeper_proposer';
export const PROPOSER_SLOT = 'walkeeper_proposer';
const STATUS_INTERVAL_MS = 1_000;

export interface PgIdentity {
  systemId: bigint;
  pgTimeline: number;
  /** PostgreSQL's flush position when we connected */
  flushLsn: Lsn;
  /** server_version_num, e.g. 150020 */
  pgVersion: number;
  /** the timeline, where it starts and its history file (TIMELINE_HISTORY), for the safekeepers */
  pgTimelineInfo: PgTimelineInfo;
}

/** TIMELINE_HISTORY of PostgreSQL's current timeline (none for timeline 1), checked to parse. */
async function fetchTimelineInfo(conn: PgConnection, tli: number): Promise<PgTimelineInfo> {
  if (!Number.isInteger(tli) || tli < 1) throw new Error(`IDENTIFY_SYSTEM returned an invalid timeline ${tli}`);
  if (tli === 1) return { ...FIRST_PG_TIMELINE };
  const r = await conn.query(`TIMELINE_HISTORY ${tli}`);
  const row = r.rows[0];
  if (!row || row[0] !== historyFileName(tli) || row[1] === null) {
    throw new Error(`TIMELINE_HISTORY ${tli} returned ${JSON.stringify(row ?? null)}, expected the file ${historyFileName(tli)} and its content`);
  }
  const historyFile = row[1];
  const lines = parseHistoryFile(historyFile, `PostgreSQL's ${historyFileName(tli)}`);
  const info = { tli, startLsn: lines.at(-1)?.switchpoint ?? 0n, historyFile };
  pgTimelineHistoryOf(info);
  return info;
}

export class PgWalSource {
  private stream: CopyBothStream | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private reported: Lsn = 0n;
  /** the end of WAL received so far */
  received: Lsn = 0n;

  private constructor(
    private readonly conn: PgConnection,
    readonly identity: PgIdentity,
    private readonly log: Logger,
  ) {}

  static async connect(info: ConnInfo, log: Logger): Promise<PgWalSource> {
    const conn = await connectPg({
      host: info.host,
      port: info.port,
      user: info.user,
      password: info.password,
      database: 'replication',
      replication: 'true',
      applicationName: PROPOSER_APP_NAME,
      connectTimeoutMs: 10_000,
    });
    try {
      const id = await conn.query('IDENTIFY_SYSTEM');
      const row = id.rows[0];
      if (!row || row.length < 3 || row[0] === null || row[1] === null || row[2] === null) throw new Error('IDENTIFY_SYSTEM returned no usable row');
      const pgVersion = conn.serverVersionNum;
      if (!pgVersion) throw new Error('PostgreSQL did not report server_version');
      const pgTimeline = Number(row[1]);
      const pgTimelineInfo = await fetchTimelineInfo(conn, pgTimeline);
      const identity = { systemId: BigInt(row[0]), pgTimeline, flushLsn: parseLsn(row[2]), pgVersion, pgTimelineInfo };
      return new PgWalSource(conn, identity, log);
    } catch (err) {
      conn.destroy();
      throw err;
    }
  }

  /** PostgreSQL's flush position now (IDENTIFY_SYSTEM again; only before streaming starts). */
  async currentFlushLsn(): Promise<Lsn> {
    const r = await this.conn.query('IDENTIFY_SYSTEM');
    const pos = r.rows[0]?.[2];
    if (!pos) throw new Error('IDENTIFY_SYSTEM returned no xlogpos');
    return parseLsn(pos);
  }

  /** Creates the physical slot that keeps PostgreSQL from recycling WAL the quorum lacks. */
  async ensureSlot(): Promise<void> {
    try {
      await this.conn.query(`CREATE_REPLICATION_SLOT "${PROPOSER_SLOT}" PHYSICAL RESERVE_WAL`);
      this.log.info({ slot: PROPOSER_SLOT }, 'created replication slot');
    } catch (err) {
      if (err instanceof PgServerError && err.code === '42710') return; // already exists
      throw err;
    }
  }

  /**
   * Streams WAL from `from`; each XLogData goes to onWal in order. Resolves once streaming
   * started; `ended` settles when the stream stops (PostgreSQL went away or errored).
   */
  async startStreaming(from: Lsn, onWal: (start: Lsn, data: Buffer) => void): Promise<{ ended: Promise<void> }> {
    const stream = await this.conn.startCopyBoth(`START_REPLICATION SLOT "${PROPOSER_SLOT}" PHYSICAL ${formatLsn(from)} TIMELINE ${this.identity.pgTimeline}`);
    this.stream = stream;
    this.received = from;
    stream.onData((payload) => {
      const msg = decodeSenderMessage(payload);
      if (msg.tag === 'xlog_data') {
        const data = Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength);
        this.received = msg.dataStart + BigInt(data.length);
        onWal(msg.dataStart, data);
      } else if (msg.replyRequested) {
        this.sendStatus(this.reported, true);
      }
    });
    this.statusTimer = setInterval(() => this.sendStatus(this.reported, true), STATUS_INTERVAL_MS);
    this.statusTimer.unref();
    const ended = stream.end.then(
      () => {
        throw new Error('PostgreSQL ended the replication stream');
      },
      (err: Error) => {
        throw new Error(`replication connection to PostgreSQL failed: ${err.message}`);
      },
    );
    ended.catch(() => undefined);
    return { ended };
  }

  /** Reports `commitLsn` as written and flushed: PostgreSQL releases COMMITs up to it. */
  sendStatus(commitLsn: Lsn, force = false): void {
    if (!this.stream || this.stream.serverEnded) return;
    if (!force && commitLsn <= this.reported) return;
    if (commitLsn > this.reported) this.reported = commitLsn;
    this.stream.sendCopyData(
      encodeStandbyStatusUpdate({ writeLsn: this.reported, flushLsn: this.reported, applyLsn: 0n, sendTime: pgNowMicros(), replyRequested: false }),
    );
  }

  close(): void {
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.conn.destroy();
  }
}
