// The safekeeper's raw ingest rate: a fake proposer that elects itself on a fresh timeline
// and pushes real WAL (the primary's own segments, from a segment start) in pipelined
// 128 KiB AppendRequests, counting the bytes the safekeeper acknowledges as flushed. It is the
// only member, so everything acknowledged is committed and is the peer horizon (truncateLsn):
// with a small --wal-keep-size the safekeeper removes (and recycles) segments as in production.
import { openSync, readSync, closeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { connectPg, type CopyBothStream } from '@walkeeper/dataplane/protocol/pgClient';
import { decodeAcceptorMessage, encodeAppendRequestHeader, encodeProposerMessage } from '@walkeeper/dataplane/protocol/consensusCodec';
import { LEGACY_MCONF, MAX_APPEND_PAYLOAD, type AcceptorMessage } from '@walkeeper/dataplane/consensus/messages';
import { DEFAULT_WAL_SEG_SIZE, formatLsn, walFileName, type Lsn } from '@walkeeper/dataplane/common/lsn';
import type { IngestResult } from './parse.js';

export interface IngestOptions {
  host: string;
  port: number;
  tenantId: string;
  timelineId: string;
  systemId: bigint;
  /** the primary's pg_wal directory */
  walDir: string;
  pgTimeline: number;
  /** first segment to send (its start must hold real WAL) */
  startSegNo: bigint;
  /** end of the real WAL (the primary's flush LSN) */
  endLsn: Lsn;
  maxSeconds: number;
  /** bytes sent but not yet acknowledged */
  windowBytes?: number;
  log: (line: string) => void;
}

const SEG = DEFAULT_WAL_SEG_SIZE;

export async function measureIngest(o: IngestOptions): Promise<IngestResult> {
  const conn = await connectPg({
    host: o.host,
    port: o.port,
    user: 'walkeeper',
    database: 'replication',
    replication: 'true',
    applicationName: 'walkeeper_bench',
    options: `-c tenant_id=${o.tenantId} -c timeline_id=${o.timelineId}`,
  });
  try {
    const stream = await conn.startCopyBoth('START_WAL_PUSH');
    const expect = async <T extends AcceptorMessage['tag']>(tag: T): Promise<Extract<AcceptorMessage, { tag: T }>> => {
      const b = await stream.next();
      if (!b) throw new Error(`safekeeper ended the stream while the bench waited for ${tag}`);
      const m = decodeAcceptorMessage(b);
      if (m.tag !== tag) throw new Error(`expected ${tag} from the safekeeper, got ${m.tag}`);
      return m as Extract<AcceptorMessage, { tag: T }>;
    };
    stream.sendCopyData(encodeProposerMessage({ tag: 'proposer_greeting', tenantId: o.tenantId, timelineId: o.timelineId, mconf: LEGACY_MCONF, pgVersion: 150000, systemId: o.systemId, walSegSize: SEG }));
    const greeting = await expect('acceptor_greeting');
    const term = greeting.term + 1n;
    stream.sendCopyData(encodeProposerMessage({ tag: 'vote_request', generation: 0, term }));
    const vote = await expect('vote_response');
    if (!vote.voteGiven) throw new Error(`safekeeper refused the vote for term ${term} (its term ${vote.term})`);
    const start = o.startSegNo * BigInt(SEG);
    stream.sendCopyData(encodeProposerMessage({ tag: 'proposer_elected', generation: 0, term, startStreamingAt: start, termHistory: [{ term, lsn: start }] }));
    o.log(`ingest: elected in term ${term}; pushing real WAL ${formatLsn(start)}..${formatLsn(o.endLsn)} (${((Number(o.endLsn - start)) / 1e6).toFixed(0)} MB available)`);
    return await push(stream, o, term, start);
  } finally {
    conn.destroy();
  }
}

async function push(stream: CopyBothStream, o: IngestOptions, term: bigint, start: Lsn): Promise<IngestResult> {
  // More than a segment: after an XLOG_SWITCH the rest of the segment is padding that ends no
  // record, so nothing is acknowledged until WAL of the next segment arrives.
  const window = BigInt(o.windowBytes ?? SEG + 4 * 1024 * 1024);
  const t0 = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - t0) / 1e9;
  let acked = start;
  let ackedAt = 0;
  let failure: Error | null = null;
  let wake: (() => void) | null = null;
  stream.onData((payload) => {
    try {
      const m = decodeAcceptorMessage(payload);
      if (m.tag === 'append_response') {
        if (m.term > term) failure = new Error(`safekeeper moved to term ${m.term}`);
        if (m.flushLsn > acked) {
          acked = m.flushLsn;
          ackedAt = elapsed();
        }
      }
    } catch (err) {
      failure = err as Error;
    }
    wake?.();
  });
  stream.end.catch((err: Error) => {
    failure ??= err;
    wake?.();
  });
  const waitEvent = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(t);
        wake = null;
        resolve();
      };
    });

  let sent = start;
  let requests = 0;
  let segNo = -1n;
  let fd = -1;
  const buf = Buffer.allocUnsafe(MAX_APPEND_PAYLOAD);
  let stoppedBy: IngestResult['stoppedBy'] = 'time';
  try {
    while (elapsed() < o.maxSeconds) {
      if (failure) throw failure;
      if (sent >= o.endLsn) {
        stoppedBy = 'wal';
        break;
      }
      if (sent - acked >= window) {
        await waitEvent(1000);
        continue;
      }
      const seg = sent / BigInt(SEG);
      if (seg !== segNo) {
        if (fd >= 0) closeSync(fd);
        const path = join(o.walDir, walFileName(o.pgTimeline, seg));
        if (!existsSync(path)) {
          o.log(`ingest: ${path} is gone; stopping at ${formatLsn(sent)}`);
          stoppedBy = 'wal';
          break;
        }
        fd = openSync(path, 'r');
        segNo = seg;
      }
      const offset = Number(sent % BigInt(SEG));
      const len = Math.min(MAX_APPEND_PAYLOAD, SEG - offset, Number(o.endLsn - sent));
      const n = readSync(fd, buf, 0, len, offset);
      if (n !== len) throw new Error(`short read of WAL segment ${walFileName(o.pgTimeline, seg)} at offset ${offset}: ${n} of ${len}`);
      const header = encodeAppendRequestHeader({ tag: 'append_request', generation: 0, term, beginLsn: sent, endLsn: sent + BigInt(len), commitLsn: acked, truncateLsn: acked }, len);
      const ok = stream.sendCopyData(Buffer.concat([header, buf.subarray(0, len)]));
      sent += BigInt(len);
      requests++;
      if (!ok) await stream.drain();
    }
    // let the tail be acknowledged (the last partial record never is)
    const tailDeadline = elapsed() + 5;
    let last = acked;
    let lastMove = elapsed();
    while (acked < sent && elapsed() < tailDeadline && elapsed() - lastMove < 1) {
      if (failure) throw failure;
      await waitEvent(100);
      if (acked !== last) {
        last = acked;
        lastMove = elapsed();
      }
    }
  } finally {
    if (fd >= 0) closeSync(fd);
  }
  // the rate up to the last acknowledgement (waiting for a tail that never comes is not ingest time)
  const seconds = ackedAt > 0 ? ackedAt : elapsed();
  o.log(`ingest: sent ${formatLsn(start)}..${formatLsn(sent)} in ${requests} requests, acknowledged up to ${formatLsn(acked)}`);
  return { bytes: Number(acked - start), seconds, appendRequests: requests, stoppedBy };
}
