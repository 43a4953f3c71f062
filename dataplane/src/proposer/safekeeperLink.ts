// The proposer's connection to one safekeeper: START_WAL_PUSH, then consensus messages in
// CopyData both ways. Also the read-only replication connection used to fetch WAL from a
// peer safekeeper (catch-up of a lagging member, and the check that PostgreSQL's WAL is the
// WAL the quorum holds).
import { connectPg, type CopyBothStream, type PgConnection, type PgTlsOptions } from '../protocol/pgClient.js';
import { decodeAcceptorMessage, encodeAppendRequestHeader, encodeProposerMessage } from '../protocol/consensusCodec.js';
import { decodeSenderMessage } from '../protocol/replicationMessages.js';
import { formatLsn, type Lsn } from '../common/lsn.js';
import type { AcceptorMessage, ProposerMessage } from '../consensus/messages.js';

export interface LinkTarget {
  address: string;
  host: string;
  port: number;
  tenantId: string;
  timelineId: string;
  token?: string;
  /** connect over TLS, verifying the safekeeper's certificate (--tls-ca) */
  tls?: PgTlsOptions;
}

export function parseSafekeeperList(list: string, tenantId: string, timelineId: string, token?: string): LinkTarget[] {
  const out = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((address) => {
      const m = /^(.+):(\d{1,5})$/.exec(address);
      if (!m) throw new Error(`invalid safekeeper address "${address}": expected host:port`);
      return { address, host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]), tenantId, timelineId, token };
    });
  if (out.length === 0) throw new Error('no safekeepers given: pass --safekeepers host:port,host:port,...');
  if (new Set(out.map((t) => t.address)).size !== out.length) throw new Error(`duplicate safekeeper address in "${list}"`);
  return out;
}

async function connectTo(target: LinkTarget, applicationName: string): Promise<PgConnection> {
  return connectPg({
    host: target.host,
    port: target.port,
    user: 'walkeeper',
    database: 'replication',
    replication: 'true',
    applicationName,
    options: `-c tenant_id=${target.tenantId} -c timeline_id=${target.timelineId}`,
    password: target.token,
    connectTimeoutMs: 5_000,
    tls: target.tls,
  });
}

/** A live START_WAL_PUSH stream to one safekeeper. */
export class SafekeeperLink {
  private constructor(
    readonly target: LinkTarget,
    private readonly conn: PgConnection,
    private readonly stream: CopyBothStream,
  ) {}

  static async open(target: LinkTarget, onMessage: (msg: AcceptorMessage) => void): Promise<{ link: SafekeeperLink; ended: Promise<void> }> {
    const conn = await connectTo(target, 'walkeeper_proposer');
    let stream: CopyBothStream;
    try {
      stream = await conn.startCopyBoth('START_WAL_PUSH');
    } catch (err) {
      conn.destroy();
      throw err;
    }
    const link = new SafekeeperLink(target, conn, stream);
    stream.onData((payload) => onMessage(decodeAcceptorMessage(payload)));
    const ended = stream.end.then(
      () => {
        throw new Error(`safekeeper ${target.address} ended the stream`);
      },
      (err: Error) => {
        throw err;
      },
    );
    ended.catch(() => undefined);
    return { link, ended };
  }

  /** Sends one message; false means the socket is full (await drain()). */
  send(msg: ProposerMessage): boolean {
    if (msg.tag === 'append_request') {
      // header and WAL leave as two parts of one message: no copy of the WAL per member
      return this.stream.sendCopyData([encodeAppendRequestHeader(msg, msg.walData.length), msg.walData]);
    }
    return this.stream.sendCopyData(encodeProposerMessage(msg));
  }

  drain(): Promise<void> {
    return this.stream.drain();
  }

  close(): void {
    this.conn.destroy();
  }
}

/**
 * Reads WAL [from, until) from a safekeeper that is in `term`, as a proposer catching a
 * member up does. The safekeeper serves up to its flush LSN while its term stays `term`;
 * when it has sent all it has (a keepalive at our position), reading stops early.
 * Returns the end reached.
 */
export async function readWalFromPeer(target: LinkTarget, term: bigint, from: Lsn, until: Lsn, onChunk: (start: Lsn, data: Buffer) => Promise<void> | void): Promise<Lsn> {
  const conn = await connectTo(target, 'walkeeper_proposer_recovery');
  let pos = from;
  try {
    const stream = await conn.startCopyBoth(`START_REPLICATION PHYSICAL ${formatLsn(from)} (term '${term}')`);
    while (pos < until) {
      const payload = await stream.next();
      if (payload === null) break;
      const msg = decodeSenderMessage(payload);
      if (msg.tag === 'keepalive') {
        if (msg.walEnd <= pos) break;
        continue;
      }
      if (msg.dataStart !== pos) throw new Error(`safekeeper ${target.address} sent WAL at ${formatLsn(msg.dataStart)}, expected ${formatLsn(pos)}`);
      let data = Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength);
      if (pos + BigInt(data.length) > until) data = data.subarray(0, Number(until - pos));
      await onChunk(pos, data);
      pos += BigInt(data.length);
    }
    return pos;
  } finally {
    conn.destroy();
  }
}
