// The acceptor node: the one place that turns the acceptor machine's effects into I/O, for
// the safekeeper (timeline.ts, over the real WAL store and control file) and for the
// simulation (sim/cluster.ts, over its simulated disk), through the ports below. Every step
// runs under one lock, so two proposers racing for the timeline are serialized, and the
// machine learns what became durable only from this node (onPersisted, onFlushed).
import { Acceptor, type AcceptorEffect, type AcceptorFaults } from '../consensus/acceptor.js';
import type { AcceptorMessage, ProposerMessage } from '../consensus/messages.js';
import type { AcceptorPersistentState } from '../consensus/state.js';
import type { Lsn } from '../common/lsn.js';
import type { Clock, Timer } from '../common/clock.js';

/** How often lazily kept LSNs (commit, peer horizon) are written to the control file. */
export const CHECKPOINT_INTERVAL_MS = 1_000;

/** What a storage failure means for the node. */
export type StorageFailure =
  /** the process must end (an fsync failed: the page cache can no longer be trusted) */
  | 'fatal'
  /** the write did not happen (disk full, I/O error): drop the proposers, restart the machine from disk */
  | 'recoverable'
  /** not a storage failure: passed to the caller unchanged */
  | 'other';

/** WAL storage and control file of one timeline. */
export interface AcceptorStorage {
  /** end of WAL written; 0 while the timeline holds none */
  readonly writeLsn: Lsn;
  /** end of the last whole record fsynced */
  readonly flushLsn: Lsn;
  /** durably replaces the control file's acceptor state */
  writeControl(state: AcceptorPersistentState): Promise<void>;
  /** durably discards WAL at and after lsn (on an empty timeline: WAL will start at lsn) */
  truncate(lsn: Lsn): Promise<void>;
  append(beginLsn: Lsn, data: Uint8Array): Promise<void>;
  /** fsyncs what was written; resolves to the new record-aligned flush LSN */
  flush(): Promise<Lsn>;
  classify(err: unknown): StorageFailure;
}

export interface AcceptorNodeEvents {
  /** the WAL or the commit LSN moved (readers wake up) */
  walAdvanced?(): void;
  walFlushed?(bytes: number): void;
  /** a fatal storage failure: the process must end */
  fatal(err: Error): void;
  /** a recoverable storage failure: the proposers were dropped and the machine restarted from disk */
  recovered?(err: Error): void;
  /** the periodic checkpoint could not write the control file (it is retried at the next one) */
  checkpointFailed?(err: Error): void;
}

export interface AcceptorNodeOptions {
  nodeId: bigint;
  /** the control file's acceptor state as read at start-up */
  state: AcceptorPersistentState;
  storage: AcceptorStorage;
  clock: Clock;
  events: AcceptorNodeEvents;
  faults?: AcceptorFaults;
}

/** Replies for one proposer connection go to sink; kill ends the connection. */
export interface ProposerSession {
  sink(msg: AcceptorMessage): void;
  kill(err: Error): void;
}

export class AcceptorNode {
  private acceptor: Acceptor;
  private readonly sessions = new Map<number, ProposerSession>();
  private lock: Promise<unknown> = Promise.resolve();
  private needsFlush = false;
  private checkpointTimer: Timer | undefined;

  constructor(private readonly opts: AcceptorNodeOptions) {
    this.acceptor = this.machineFromDisk(opts.state);
  }

  /** The machine (read-only use: views and state for status). */
  get machine(): Acceptor {
    return this.acceptor;
  }

  /** written WAL waits for the fsync of endOfBatch (the simulation chooses when that comes) */
  get flushPending(): boolean {
    return this.needsFlush;
  }

  get proposerCount(): number {
    return this.sessions.size;
  }

  /** Starts the periodic checkpoint of lazily kept LSNs. */
  start(): void {
    this.checkpointTimer ??= this.opts.clock.every(CHECKPOINT_INTERVAL_MS, () =>
      void this.checkpoint().catch((err: Error) => this.opts.events.checkpointFailed?.(err)),
    );
  }

  /** Runs fn with the lock held: machine steps and their I/O never interleave with it. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  attachProposer(session: ProposerSession): number {
    const connId = this.acceptor.openConnection();
    this.sessions.set(connId, session);
    return connId;
  }

  detachProposer(connId: number): Promise<void> {
    return this.exclusive(async () => {
      if (!this.sessions.delete(connId)) return;
      await this.perform(this.acceptor.closeConnection(connId));
      await this.flushIfNeeded();
    });
  }

  /** Applies one proposer message. Protocol violations throw AcceptorError (the caller closes the connection). */
  handle(connId: number, msg: ProposerMessage): Promise<void> {
    return this.exclusive(async () => {
      if (!this.sessions.has(connId)) return;
      await this.perform(this.acceptor.handle(connId, msg));
    });
  }

  /** End of a batch of messages that arrived together: one fsync covers all of them. */
  endOfBatch(): Promise<void> {
    return this.exclusive(() => this.flushIfNeeded());
  }

  /** Writes lazily kept LSNs to the control file if they moved. */
  checkpoint(): Promise<void> {
    return this.exclusive(() => this.perform(this.acceptor.checkpoint()));
  }

  /** Ends every proposer connection, then flushes dirty WAL and persists lazily kept LSNs. */
  close(reason: Error, storageUsable: boolean): Promise<void> {
    this.checkpointTimer?.cancel();
    this.checkpointTimer = undefined;
    return this.exclusive(async () => {
      this.killSessions(reason);
      if (!storageUsable) return;
      await this.flushIfNeeded().catch(() => undefined);
      await this.perform(this.acceptor.checkpoint()).catch(() => undefined);
    });
  }

  private async flushIfNeeded(): Promise<void> {
    if (!this.needsFlush) return;
    this.needsFlush = false;
    const storage = this.opts.storage;
    const before = storage.flushLsn;
    const flushed = await this.io(() => storage.flush());
    if (flushed > before) this.opts.events.walFlushed?.(Number(flushed - before));
    // An empty store (elected, no WAL yet) flushes nothing; the machine's position stands.
    const reported = storage.writeLsn === 0n ? this.acceptor.view().flushLsn : flushed;
    await this.perform(this.acceptor.onFlushed(reported));
    this.opts.events.walAdvanced?.();
  }

  private async perform(effects: AcceptorEffect[]): Promise<void> {
    const storage = this.opts.storage;
    // A storage failure replaces the machine; effects of the old one must not go on.
    const machine = this.acceptor;
    for (const e of effects) {
      if (this.acceptor !== machine) return;
      switch (e.kind) {
        case 'persist':
          await this.io(() => storage.writeControl(e.state));
          machine.onPersisted(e.state);
          break;
        case 'truncate_wal':
          await this.io(() => storage.truncate(e.lsn));
          this.opts.events.walAdvanced?.();
          break;
        case 'append_wal':
          await this.io(() => storage.append(e.beginLsn, e.data));
          break;
        case 'flush_wal':
          this.needsFlush = true;
          break;
        case 'reply':
          this.sessions.get(e.connId)?.sink(e.msg);
          break;
      }
    }
  }

  /**
   * Storage I/O with the failure policy: a fatal failure ends the process; a recoverable
   * one restarts the machine from what the control file and the WAL store hold and drops
   * the proposers, which reconnect and redo greeting, vote and election from the truth.
   */
  private async io<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const failure = this.opts.storage.classify(err);
      if (failure === 'fatal') {
        this.opts.events.fatal(err as Error);
      } else if (failure === 'recoverable') {
        this.killSessions(err as Error);
        this.acceptor = this.machineFromDisk(this.acceptor.durableState);
        this.needsFlush = false;
        this.opts.events.recovered?.(err as Error);
      }
      throw err;
    }
  }

  private killSessions(err: Error): void {
    for (const { kill } of this.sessions.values()) kill(err);
    this.sessions.clear();
  }

  private machineFromDisk(state: AcceptorPersistentState): Acceptor {
    const { storage } = this.opts;
    return new Acceptor({ nodeId: this.opts.nodeId, state, writeLsn: storage.writeLsn, flushLsn: storage.flushLsn, faults: this.opts.faults });
  }
}
