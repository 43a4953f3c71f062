// Test helper: a tiny PostgreSQL-protocol server built only from walkeeper's own server codec,
// command parser and consensus codec. It acts as a toy acceptor for START_WAL_PUSH and streams
// synthetic WAL for START_REPLICATION, so the client and the codecs can be tested together.
import net from 'node:net';
import { formatLsn } from '../../../src/common/lsn.js';
import { decodeProposerMessage, encodeAcceptorMessage } from '../../../src/protocol/consensusCodec.js';
import { ProtocolError } from '../../../src/protocol/errors.js';
import {
  FrontendDecoder,
  PgType,
  encodeAuthenticationCleartextPassword,
  encodeAuthenticationOk,
  encodeBackendKeyData,
  encodeCommandComplete,
  encodeCopyBothResponse,
  encodeCopyData,
  encodeCopyDone,
  encodeDataRow,
  encodeEncryptionRefused,
  encodeErrorResponse,
  encodeParameterStatus,
  encodeReadyForQuery,
  encodeRowDescription,
} from '../../../src/protocol/pgServerCodec.js';
import { parseReplicationCommand } from '../../../src/protocol/replicationCommands.js';
import { encodePrimaryKeepalive, encodeXLogData, pgNowMicros } from '../../../src/protocol/replicationMessages.js';

export interface CodecServer {
  port: number;
  /** startup parameters of every connection, in order */
  startups: Record<string, string>[];
  /** WAL bytes received through AppendRequests */
  walReceived: number;
  close(): Promise<void>;
}

export const SYSTEM_ID = '7712009180769680781';
/** START_REPLICATION streams this many 128 KiB XLogData messages, then a keepalive */
export const STREAM_MESSAGES = 100;
export const STREAM_CHUNK = 128 * 1024;

export async function startCodecServer(options: { password?: string } = {}): Promise<CodecServer> {
  const sockets = new Set<net.Socket>();
  const state: CodecServer = {
    port: 0,
    startups: [],
    walReceived: 0,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    serve(socket, state, options.password);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.port = (server.address() as net.AddressInfo).port;
  return state;
}

function serve(socket: net.Socket, state: CodecServer, password: string | undefined): void {
  const decoder = new FrontendDecoder();
  let mode: 'startup' | 'auth' | 'idle' | 'wal_push' | 'replication' = 'startup';
  let term = 0n;
  let flushLsn = 0n;
  const send = (...bufs: Buffer[]) => socket.write(Buffer.concat(bufs));
  const hello = () =>
    send(
      encodeAuthenticationOk(),
      encodeParameterStatus('server_version', '15.0'),
      encodeParameterStatus('integer_datetimes', 'on'),
      encodeBackendKeyData(4242, 99),
      encodeReadyForQuery('I'),
    );
  const error = (code: string, message: string) => encodeErrorResponse({ severity: 'ERROR', code, message });

  const streamWal = async (start: bigint) => {
    const chunk = Buffer.alloc(STREAM_CHUNK);
    for (let i = 0; i < STREAM_MESSAGES && mode === 'replication'; i++) {
      const lsn = start + BigInt(i * STREAM_CHUNK);
      chunk.fill(i % 256);
      const ok = socket.write(encodeCopyData(encodeXLogData(lsn, start + BigInt(STREAM_MESSAGES * STREAM_CHUNK), pgNowMicros(), chunk)));
      if (!ok) await new Promise((r) => socket.once('drain', r));
    }
    if (mode === 'replication') socket.write(encodeCopyData(encodePrimaryKeepalive(start + BigInt(STREAM_MESSAGES * STREAM_CHUNK), pgNowMicros(), true)));
  };

  socket.on('data', (chunk: Buffer) => {
    let messages;
    try {
      messages = decoder.push(chunk);
    } catch (err) {
      const e = err as ProtocolError;
      socket.end(encodeErrorResponse({ severity: 'FATAL', code: e.code, message: e.message }));
      return;
    }
    for (const m of messages) {
      switch (m.type) {
        case 'ssl_request':
        case 'gssenc_request':
          send(encodeEncryptionRefused());
          break;
        case 'startup':
          state.startups.push({ ...m.params });
          if (password === undefined) {
            mode = 'idle';
            hello();
          } else {
            mode = 'auth';
            send(encodeAuthenticationCleartextPassword());
          }
          break;
        case 'password':
          if (mode !== 'auth' || m.password !== password) {
            socket.end(encodeErrorResponse({ severity: 'FATAL', code: '28P01', message: `password authentication failed for user "${state.startups.at(-1)?.user}"` }));
            return;
          }
          mode = 'idle';
          hello();
          break;
        case 'query': {
          let cmd;
          try {
            cmd = parseReplicationCommand(m.text);
          } catch (err) {
            const e = err as ProtocolError;
            send(error(e.code, e.message), encodeReadyForQuery());
            break;
          }
          switch (cmd.kind) {
            case 'identify_system':
              send(
                encodeRowDescription([
                  { name: 'systemid', typeOid: PgType.text, typeLen: -1 },
                  { name: 'timeline', typeOid: PgType.int4, typeLen: 4 },
                  { name: 'xlogpos', typeOid: PgType.text, typeLen: -1 },
                  { name: 'dbname', typeOid: PgType.text, typeLen: -1 },
                ]),
                encodeDataRow([SYSTEM_ID, '1', formatLsn(flushLsn), null]),
                encodeCommandComplete('IDENTIFY_SYSTEM'),
                encodeReadyForQuery(),
              );
              break;
            case 'start_wal_push':
              mode = 'wal_push';
              send(encodeCopyBothResponse());
              break;
            case 'start_replication':
              mode = 'replication';
              send(encodeCopyBothResponse());
              void streamWal(cmd.startLsn);
              break;
            case 'unknown':
              send(error('42601', `syntax error: unknown replication command "${cmd.text}"`), encodeReadyForQuery());
              break;
            default:
              send(error('0A000', `${cmd.kind} is not served by the test server`), encodeReadyForQuery());
          }
          break;
        }
        case 'copy_data':
          if (mode === 'wal_push') {
            try {
              const msg = decodeProposerMessage(m.data);
              switch (msg.tag) {
                case 'proposer_greeting':
                  send(encodeCopyData(encodeAcceptorMessage({ tag: 'acceptor_greeting', nodeId: 1n, mconf: msg.mconf, term })));
                  break;
                case 'vote_request': {
                  const given = msg.term > term;
                  if (given) term = msg.term;
                  send(encodeCopyData(encodeAcceptorMessage({ tag: 'vote_response', generation: msg.generation, term, voteGiven: given, flushLsn, truncateLsn: 0n, termHistory: [] })));
                  break;
                }
                case 'proposer_elected':
                  flushLsn = msg.startStreamingAt;
                  break;
                case 'append_request':
                  state.walReceived += msg.walData.length;
                  flushLsn = msg.endLsn;
                  send(encodeCopyData(encodeAcceptorMessage({ tag: 'append_response', generation: msg.generation, term, flushLsn, commitLsn: msg.commitLsn, hsFeedback: { ts: 0n, xmin: 0n, catalogXmin: 0n } })));
                  break;
              }
            } catch (err) {
              if (!(err instanceof ProtocolError)) throw err;
              mode = 'idle';
              send(error(err.code, err.message), encodeReadyForQuery());
            }
          }
          break;
        case 'copy_done':
          if (mode === 'wal_push' || mode === 'replication') {
            const tag = mode === 'wal_push' ? 'START_WAL_PUSH' : 'START_STREAMING';
            mode = 'idle';
            send(encodeCopyDone(), encodeCommandComplete(tag), encodeReadyForQuery());
          }
          break;
        case 'copy_fail':
          mode = 'idle';
          send(error('57014', `COPY failed: ${m.message}`), encodeReadyForQuery());
          break;
        case 'terminate':
          socket.end();
          return;
        case 'cancel_request':
          socket.end();
          return;
      }
    }
  });
}
