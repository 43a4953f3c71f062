// The proposer node: the one place that turns the proposer core's effects into I/O, for the
// proposer sidecar (termRun.ts, over real safekeeper links and PostgreSQL's WAL) and for the
// simulation (sim/cluster.ts). It owns the shell's timing rules — heartbeats, dropping a
// member that went silent, coalescing commit broadcasts — and reads time only through the
// clock port, so the simulation runs these rules under seeds.
import type { AppendRequestHeader, FencedBy, Proposer, ProposerEffect } from '../consensus/proposer.js';
import { ProposerError } from '../consensus/errors.js';
import type { AcceptorMessage, AppendRequest, ProposerMessage } from '../consensus/messages.js';
import type { Lsn } from '../common/lsn.js';
import type { Clock, Timer } from '../common/clock.js';

export const HEARTBEAT_MS = 1_000;
export const COMMIT_BROADCAST_DELAY_MS = 5;
/**
 * A member that answers nothing for this long is dropped and reconnected: a partition that
 * drops packets (no reset) must show as an offline member, not as a healthy quorum.
 */
export const MEMBER_SILENCE_MS = 5_000;

/** Connections to the members. */
export interface MemberTransport {
  /** sends on the member's current connection; a promise means: wait for it before sending more */
  send(member: number, msg: ProposerMessage): void | Promise<void>;
  /** ends the member's current connection (the shell then calls disconnected) */
  close(member: number, reason: string): void;
}

/** Where the WAL bytes of AppendRequests come from (PostgreSQL's stream, a peer safekeeper). */
export interface WalReader {
  read(member: number, beginLsn: Lsn, endLsn: Lsn): Uint8Array | Promise<Uint8Array>;
}

export interface ProposerNodeEvents {
  elected(e: Extract<ProposerEffect, { kind: 'elected' }>): void;
  commitAdvanced(commitLsn: Lsn): void;
  fenced(reason: string, by: FencedBy): void;
  /** a member was dropped (protocol violation, silence, WAL it cannot be fed); it reconnects */
  memberDropped?(member: number, reason: string): void;
  walSent?(bytes: number): void;
}

/** Deliberately broken shell timing rules, for the simulation only: they prove its checks can fail. */
export interface ProposerShellFaults {
  /** never drop a member that went silent */
  keepSilentMembers?: boolean;
  /** never send heartbeats (nor coalesced commit broadcasts) */
  noHeartbeats?: boolean;
}

export interface ProposerNodeOptions {
  core: Proposer;
  transport: MemberTransport;
  wal: WalReader;
  clock: Clock;
  events: ProposerNodeEvents;
  faults?: ProposerShellFaults;
}

type QueueItem = { kind: 'msg'; msg: Exclude<ProposerMessage, AppendRequest> } | { kind: 'append'; req: AppendRequestHeader };

interface MemberState {
  connected: boolean;
  /** bumped at every connect and disconnect: work started for an older connection is dropped */
  epoch: number;
  queue: QueueItem[];
  pumping: boolean;
  /** commit LSN carried by the last AppendRequest sent to this member */
  commitSent: Lsn;
  /** when the last AppendRequest went to this member */
  lastAppendAt: number;
  /** when the member last sent us anything (or connected) */
  lastHeard: number;
}

export class ProposerNode {
  readonly core: Proposer;
  private readonly members: MemberState[];
  private heartbeatTimer: Timer | undefined;
  private commitBroadcastTimer: Timer | undefined;
  private stopped = false;
  private readonly faults: ProposerShellFaults;

  constructor(private readonly opts: ProposerNodeOptions) {
    this.core = opts.core;
    this.faults = opts.faults ?? {};
    this.members = this.core.status().members.map(() => ({ connected: false, epoch: 0, queue: [], pumping: false, commitSent: 0n, lastAppendAt: 0, lastHeard: 0 }));
  }

  start(): void {
    this.heartbeatTimer ??= this.opts.clock.every(HEARTBEAT_MS, () => this.onHeartbeatTick());
  }

  stop(): void {
    this.stopped = true;
    this.heartbeatTimer?.cancel();
    this.commitBroadcastTimer?.cancel();
    for (const m of this.members) {
      m.epoch++;
      m.queue = [];
    }
  }

  /** commit LSN last sent to the member (status, tests) */
  commitSentTo(member: number): Lsn {
    return this.members[member].commitSent;
  }

  connected(member: number): void {
    const m = this.members[member];
    m.connected = true;
    m.epoch++;
    m.queue = [];
    m.lastHeard = this.opts.clock.now();
    this.dispatch(this.core.onConnected(member));
  }

  disconnected(member: number): void {
    const m = this.members[member];
    if (!m.connected) return;
    m.connected = false;
    m.epoch++;
    m.queue = [];
    if (!this.stopped) this.dispatch(this.core.onDisconnected(member));
  }

  received(member: number, msg: AcceptorMessage): void {
    if (this.stopped) return;
    this.members[member].lastHeard = this.opts.clock.now();
    try {
      this.dispatch(this.core.handle(member, msg));
    } catch (err) {
      if (!(err instanceof ProposerError)) throw err;
      // A member that breaks the protocol is dropped; the term goes on with the others.
      this.drop(member, err.message);
    }
  }

  /** The WAL now extends to endLsn: new WAL after the term start goes to the members. */
  walAppended(endLsn: Lsn): void {
    const core = this.core;
    if (endLsn > core.walEnd && endLsn > core.termStartLsn) this.dispatch(core.onWalAppended(endLsn));
  }

  /** Performs effects the orchestrator got from the core directly (a PostgreSQL timeline switch). */
  dispatch(effects: ProposerEffect[]): void {
    for (const e of effects) {
      if (this.stopped) return;
      switch (e.kind) {
        case 'send':
          this.enqueue(e.member, { kind: 'msg', msg: e.msg });
          break;
        case 'send_append':
          this.enqueue(e.member, { kind: 'append', req: e.request });
          break;
        case 'elected':
          this.opts.events.elected(e);
          break;
        case 'commit_advanced':
          this.opts.events.commitAdvanced(e.commitLsn);
          this.scheduleCommitBroadcast();
          break;
        case 'fenced':
          this.opts.events.fenced(e.reason, e.by);
          break;
      }
    }
  }

  private onHeartbeatTick(): void {
    if (this.stopped) return;
    if (!this.faults.keepSilentMembers) this.dropSilentMembers();
    if (!this.faults.noHeartbeats) this.dispatch(this.core.heartbeat());
  }

  private dropSilentMembers(): void {
    const now = this.opts.clock.now();
    this.members.forEach((m, i) => {
      if (m.connected && now - m.lastHeard > MEMBER_SILENCE_MS) this.drop(i, `no answer for ${MEMBER_SILENCE_MS / 1000} s`);
    });
  }

  private drop(member: number, reason: string): void {
    this.opts.events.memberDropped?.(member, reason);
    this.opts.transport.close(member, reason);
  }

  /**
   * Safekeepers learn the commit LSN from AppendRequests; readers see WAL only up to it.
   * Under load every member gets an AppendRequest (carrying the commit LSN) within a few ms
   * anyway, so an empty append goes only to a member that was sent nothing for a while and
   * lags the commit LSN: the stream went quiet. Each empty append costs every member a
   * wakeup, which on a busy machine is a good part of a commit's CPU.
   */
  private scheduleCommitBroadcast(): void {
    if (this.commitBroadcastTimer || this.faults.noHeartbeats) return;
    this.commitBroadcastTimer = this.opts.clock.after(COMMIT_BROADCAST_DELAY_MS, () => {
      this.commitBroadcastTimer = undefined;
      if (this.stopped) return;
      const commit = this.core.commitLsn;
      const quietSince = this.opts.clock.now() - COMMIT_BROADCAST_DELAY_MS;
      const lagging = this.members.filter((m) => m.commitSent < commit);
      if (lagging.some((m) => m.lastAppendAt > quietSince)) this.scheduleCommitBroadcast();
      this.dispatch(
        this.core.heartbeat().filter((e) => e.kind !== 'send_append' || (this.members[e.member].commitSent < commit && this.members[e.member].lastAppendAt <= quietSince)),
      );
    });
  }

  private enqueue(member: number, item: QueueItem): void {
    const m = this.members[member];
    if (!m.connected) return;
    m.queue.push(item);
    if (!m.pumping) this.pump(member);
  }

  /**
   * Sends a member's queue in order. Synchronous while the WAL reader and the transport
   * answer at once (the simulation, PostgreSQL's buffer); it resumes when a read or a
   * drain that had to wait is done.
   */
  private pump(member: number): void {
    const m = this.members[member];
    const epoch = m.epoch;
    const live = () => m.epoch === epoch && !this.stopped && m.connected;
    const fail = (err: unknown) => {
      m.pumping = false;
      if (!live()) return this.resumeForNewConnection(member, epoch);
      m.queue = [];
      this.drop(member, `cannot feed safekeeper: ${(err as Error).message}`);
    };
    m.pumping = true;
    try {
      while (m.queue.length && live()) {
        const item = m.queue[0];
        if (item.kind === 'msg') {
          m.queue.shift();
          const sent = this.opts.transport.send(member, item.msg);
          if (sent) return void sent.then(() => this.resume(member, epoch), fail);
          continue;
        }
        const data = this.opts.wal.read(member, item.req.beginLsn, item.req.endLsn);
        if (data instanceof Promise) {
          return void data
            .then((d) => {
              if (!live()) return this.resume(member, epoch);
              // a send that throws (the link closed meanwhile) is a failed feed, like a failed read
              const sent = this.sendAppend(member, m, d);
              if (sent) sent.then(() => this.resume(member, epoch), fail);
              else this.resume(member, epoch);
            })
            .catch(fail);
        }
        const sent = this.sendAppend(member, m, data);
        if (sent) return void sent.then(() => this.resume(member, epoch), fail);
      }
    } catch (err) {
      return fail(err);
    }
    m.pumping = false;
    this.resumeForNewConnection(member, epoch);
  }

  private sendAppend(member: number, m: MemberState, walData: Uint8Array): void | Promise<void> {
    const item = m.queue.shift() as Extract<QueueItem, { kind: 'append' }>;
    m.commitSent = item.req.commitLsn;
    m.lastAppendAt = this.opts.clock.now();
    this.opts.events.walSent?.(walData.length);
    return this.opts.transport.send(member, { ...item.req, walData });
  }

  private resume(member: number, epoch: number): void {
    const m = this.members[member];
    m.pumping = false;
    if (m.epoch === epoch) this.pump(member);
    else this.resumeForNewConnection(member, epoch);
  }

  /** items queued for a newer connection while we were busy with the old one */
  private resumeForNewConnection(member: number, epoch: number): void {
    const m = this.members[member];
    if (m.epoch !== epoch && m.queue.length && !m.pumping && !this.stopped) this.pump(member);
  }
}
