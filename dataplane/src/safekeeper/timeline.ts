// One timeline on a safekeeper: its control file, WAL store, replication slots and readers,
// wired into the acceptor node (acceptorNode.ts), which performs the acceptor machine's
// effects. This file is the adapter: real files and the system clock behind the node's ports.
import { EventEmitter } from 'node:events';
import { AcceptorError } from '../consensus/errors.js';
import type { AcceptorMessage, ProposerMessage, Term, TermHistory } from '../consensus/messages.js';
import { newTimelineState, type AcceptorPersistentState } from '../consensus/state.js';
import { readControlFile, writeControlFile, type TimelineLifecycleState } from '../storage/controlFile.js';
import { StorageError, isStorageError } from '../storage/errors.js';
import { WalStore, type WalStoreOptions } from '../storage/walStore.js';
import type { SyncPolicy } from '../storage/syncPolicy.js';
import { DEFAULT_WAL_SEG_SIZE, formatLsn, maxLsn, type Lsn } from '../common/lsn.js';
import type { Logger } from '../common/log.js';
import type { SafekeeperMetrics } from './metrics.js';
import type { ReaderInfo } from './readerInfo.js';
import { currentPgTimeline, type PgTimelineHistory } from '../consensus/pgTimeline.js';
import { TimelineSlots } from './slots.js';
import type { RemoteWalReader } from './remoteWal.js';
import { AcceptorNode, type AcceptorStorage } from './acceptorNode.js';
import { systemClock } from '../common/clock.js';
import type { SegmentRecyclingJson, TimelineStatusJson } from '../api/index.js';

export interface TimelineSnapshot {
  systemId: bigint;
  /** TLI in segment file names (the one the timeline was created with) */
  pgTimeline: number;
  /** PostgreSQL timelines of the WAL; the last is the current one (IDENTIFY_SYSTEM's) */
  pgTimelineHistory: PgTimelineHistory;
  /** the current PostgreSQL timeline's `.history` file ('' for none) */
  pgHistoryFile: string;
  pgVersion: number;
  walSegSize: number;
  timelineStartLsn: Lsn;
  writeLsn: Lsn;
  flushLsn: Lsn;
  commitLsn: Lsn;
  term: Term;
  lastLogTerm: Term;
  termHistory: TermHistory;
}

export interface TimelineDeps {
  nodeId: number;
  log: Logger;
  metrics?: SafekeeperMetrics;
  /** shared by the process's timelines; without it every fdatasync goes to the thread pool */
  syncPolicy?: SyncPolicy;
  /** storage failed in a way that must end the process (fsync) */
  onFatal: (err: Error) => void;
  /** bytes a replication slot may hold below the commit LSN (--max-slot-wal-keep-size); -1 or absent = unlimited */
  maxSlotWalKeepSize?: bigint;
  /** segment recycling of the WAL store (storage/segmentPool.ts); off without it */
  recycle?: { maxRecycled: number; prepareAhead: boolean };
  /** test hook injected by the testkit's entrypoint (SafekeeperHooks); absent in production */
  fsyncHook?: WalStoreOptions['fsyncHook'];
}

/** What the removal loop last decided for this timeline (status). */
export interface RemovalStatus {
  /** "backup", "peer", "slot <name>", "keep_size", "commit", "no_wal" */
  heldBy: string;
  horizonLsn: Lsn;
  lastError: string | null;
}

type ReplySink = (msg: AcceptorMessage) => void;

export class Timeline extends EventEmitter {
  readonly readers = new Set<ReaderInfo>();
  /** Set by the removal loop (safekeeper/walRemoval.ts); null until it first ran. */
  removal: RemovalStatus | null = null;
  private readonly node: AcceptorNode;
  private closed = false;
  /** set when remote storage is on: WAL removed from local disk is read back from the bucket */
  private remoteReader: RemoteWalReader | undefined;

  private constructor(
    readonly tenantId: string,
    readonly timelineId: string,
    readonly dir: string,
    private store: WalStore,
    state: AcceptorPersistentState,
    private lifecycleState: TimelineLifecycleState,
    private readonly deps: TimelineDeps,
    /** readers' physical replication slots (slots.control) */
    readonly slots: TimelineSlots,
  ) {
    super();
    this.setMaxListeners(0);
    this.node = new AcceptorNode({
      nodeId: BigInt(deps.nodeId),
      state,
      storage: this.storagePort(),
      clock: systemClock,
      events: {
        walAdvanced: () => this.emit('advance'),
        walFlushed: (bytes) => deps.metrics?.walFlushedBytes.inc(bytes),
        fatal: (err) => deps.onFatal(err),
        recovered: (err) => {
          const code = isStorageError(err) ? err.code : undefined;
          deps.log.error({ tenant_id: tenantId, timeline_id: timelineId, code, err: err.message }, 'storage error; dropping proposers and reloading state from disk');
        },
        checkpointFailed: (err) => deps.log.warn({ tenant_id: tenantId, timeline_id: timelineId, err: err.message }, 'checkpoint of control file failed'),
      },
    });
    slots.start(() => this.acceptor.view().commitLsn);
    this.node.start();
  }

  private get acceptor() {
    return this.node.machine;
  }

  /** The WAL store and control file behind the acceptor node. */
  private storagePort(): AcceptorStorage {
    const store = this.store;
    return {
      get writeLsn() {
        return store.writeLsn;
      },
      get flushLsn() {
        return store.flushLsn;
      },
      writeControl: (state) => writeControlFile(this.dir, { ...state, ...this.lifecycleState }),
      // On an empty timeline this only fixes where WAL starts; the first append does that.
      truncate: async (lsn) => {
        if (this.store.writeLsn !== 0n) await this.store.truncate(lsn);
      },
      append: (beginLsn, data) => this.store.append(beginLsn, data),
      flush: () => this.store.flush(),
      classify: (err) => (isStorageError(err, 'fsync_failed') || this.store.failed ? 'fatal' : isStorageError(err) ? 'recoverable' : 'other'),
    };
  }

  /** Writes the control file of a brand-new timeline (term 0, no WAL) into an existing directory. */
  static async create(dir: string, tenantId: string, timelineId: string, deps: TimelineDeps): Promise<Timeline> {
    const state = newTimelineState({ tenantId, timelineId, walSegSize: DEFAULT_WAL_SEG_SIZE });
    await writeControlFile(dir, { ...state, createdAt: BigInt(Date.now()), backupLsn: 0n, walStartLsn: 0n });
    return Timeline.load(dir, tenantId, timelineId, deps);
  }

  /**
   * Reads the control file and recovers the end of WAL. A corrupt or missing control file, or
   * WAL that ends before what was acknowledged, is a StorageError naming the file.
   */
  static async load(dir: string, tenantId: string, timelineId: string, deps: TimelineDeps): Promise<Timeline> {
    const persisted = await readControlFile(dir);
    if (!persisted) throw new StorageError('control_missing', `timeline directory ${dir} has no control file`);
    if (persisted.tenantId !== tenantId || persisted.timelineId !== timelineId) {
      throw new StorageError('control_corrupt', `control file in ${dir} belongs to ${persisted.tenantId}/${persisted.timelineId}, not to the directory it is in`);
    }
    const { createdAt, backupLsn, walStartLsn, ...state } = persisted;
    // before the store opens: a corrupt slot file fails the load with nothing left open
    const slots = await TimelineSlots.load(dir, {
      tenantId,
      timelineId,
      log: deps.log,
      maxSlotWalKeepSize: deps.maxSlotWalKeepSize ?? -1n,
      onInvalidated: (slot) => deps.metrics?.slotInvalidations.inc({ tenant_id: tenantId, timeline_id: timelineId, slot_name: slot }),
    });
    const store = await WalStore.open(dir, {
      walSegSize: state.walSegSize,
      pgTimeline: state.pgTimeline,
      timelineStartLsn: state.timelineStartLsn,
      // Every record held locally is CRC-checked, not only those after the commit LSN: a
      // truncated segment or a flipped byte in acknowledged WAL is then found here, and the
      // timeline is not served and never votes, instead of handing out damaged WAL. Recovery
      // starts at the first retained segment (the store takes max(recoverFrom, walStartLsn)),
      // so start-up time is bounded by the retention, not by the history.
      recoverFrom: state.timelineStartLsn,
      walStartLsn,
      recycle: deps.recycle,
      requiredEnd: maxLsn(state.commitLsn, state.timelineStartLsn),
      onFsync: (s) => deps.metrics?.fsyncSeconds.observe(s),
      syncPolicy: deps.syncPolicy,
      fsyncHook: deps.fsyncHook,
    });
    return new Timeline(tenantId, timelineId, dir, store, state, { createdAt, backupLsn, walStartLsn }, deps, slots);
  }

  snapshot(): TimelineSnapshot {
    const v = this.acceptor.view();
    const s = this.acceptor.persistentState;
    return {
      systemId: s.systemId,
      pgTimeline: s.pgTimeline,
      pgTimelineHistory: s.pgTimelineHistory,
      pgHistoryFile: s.pgHistoryFile,
      pgVersion: s.pgVersion,
      walSegSize: s.walSegSize,
      timelineStartLsn: v.timelineStartLsn,
      writeLsn: v.writeLsn,
      flushLsn: v.flushLsn,
      commitLsn: v.commitLsn,
      term: v.term,
      lastLogTerm: v.lastLogTerm,
      termHistory: v.termHistory,
    };
  }

  /** GET …/timelines/:timeline_id without `offload`, which the route adds from the WAL backup. */
  statusJson(): Omit<TimelineStatusJson, 'offload'> {
    const s = this.snapshot();
    const head = s.flushLsn;
    return {
      tenant_id: this.tenantId,
      timeline_id: this.timelineId,
      term: s.term.toString(),
      last_log_term: s.lastLogTerm.toString(),
      term_history: s.termHistory.map((h) => ({ term: h.term.toString(), lsn: formatLsn(h.lsn) })),
      flush_lsn: formatLsn(s.flushLsn),
      write_lsn: formatLsn(s.writeLsn),
      commit_lsn: formatLsn(s.commitLsn),
      timeline_start_lsn: formatLsn(s.timelineStartLsn),
      // first LSN still on local disk (below it, only remote storage has the WAL)
      local_start_lsn: formatLsn(this.store.localStartLsn),
      backup_lsn: formatLsn(this.lifecycleState.backupLsn),
      peer_horizon_lsn: formatLsn(this.acceptor.persistentState.truncateLsn),
      removal_held_by: this.removal?.heldBy ?? null,
      removal_horizon_lsn: this.removal ? formatLsn(this.removal.horizonLsn) : null,
      removal_error: this.removal?.lastError ?? null,
      // segment files reused vs zero-filled (zero_filled_on_append is work on the commit path)
      recycling: recyclingJson(this.store.recycling),
      system_id: s.systemId.toString(),
      pg_version: s.pgVersion,
      pg_timeline: currentPgTimeline(s.pgTimelineHistory).tli,
      pg_timeline_history: s.pgTimelineHistory.map((e) => ({ tli: e.tli, start_lsn: formatLsn(e.startLsn) })),
      proposer_connected: this.node.proposerCount > 0,
      proposers: this.node.proposerCount,
      readers: [...this.readers].map((r) => ({
        application_name: r.applicationName,
        address: r.remote,
        sent_lsn: formatLsn(r.position),
        flush_lsn: formatLsn(r.flushLsn),
        lag_bytes: (head > r.flushLsn && r.flushLsn > 0n ? head - r.flushLsn : 0n).toString(),
      })),
      slots: this.slots.statusJson(s.commitLsn),
    };
  }

  /** The WAL lifecycle positions as last persisted (backup LSN, first LSN held locally). */
  get lifecycle(): Readonly<TimelineLifecycleState> {
    return this.lifecycleState;
  }

  /**
   * Persists new lifecycle positions beside the acceptor's last persisted state. They only
   * move forward: a lower value is ignored, so two writers racing cannot move one back.
   * Resolves once the control file holding them is durable.
   */
  advanceLifecycle(update: Partial<Pick<TimelineLifecycleState, 'backupLsn' | 'walStartLsn'>>): Promise<void> {
    return this.node.exclusive(async () => {
      const next = { ...this.lifecycleState };
      if (update.backupLsn !== undefined && update.backupLsn > next.backupLsn) next.backupLsn = update.backupLsn;
      if (update.walStartLsn !== undefined && update.walStartLsn > next.walStartLsn) next.walStartLsn = update.walStartLsn;
      if (next.backupLsn === this.lifecycleState.backupLsn && next.walStartLsn === this.lifecycleState.walStartLsn) return;
      // Not through io(): a failed lifecycle write (a full disk, say) leaves the acceptor and
      // its proposers alone; the caller retries and commits go on.
      await writeControlFile(this.dir, { ...this.acceptor.durableState, ...next });
      this.lifecycleState = next;
    });
  }

  /** A proposer connection attaches; replies for it go to sink, kill ends it. */
  attachProposer(sink: ReplySink, kill: (err: Error) => void): number {
    return this.node.attachProposer({ sink, kill });
  }

  detachProposer(connId: number): Promise<void> {
    return this.node.detachProposer(connId);
  }

  /** Applies one proposer message. Protocol violations throw AcceptorError (the caller closes the connection). */
  handle(connId: number, msg: ProposerMessage): Promise<void> {
    if (msg.tag === 'append_request') this.deps.metrics?.walReceivedBytes.inc(msg.walData.length);
    return this.node.handle(connId, msg);
  }

  /** End of a batch of messages that arrived together: one fdatasync covers all of them. */
  endOfBatch(): Promise<void> {
    return this.node.endOfBatch();
  }

  /**
   * WAL bytes from start (fewer at the end of WAL or of a segment). Below the first LSN on
   * local disk, and with remote storage on, they come from the bucket: readers and a
   * proposer's catch-up of a member both read through here.
   */
  /** The lowest flush LSN over all members, as the proposer last sent it (truncateLsn). */
  get peerHorizonLsn(): Lsn {
    return this.acceptor.persistentState.truncateLsn;
  }

  /** First LSN still on local disk. */
  get localStartLsn(): Lsn {
    return this.store.localStartLsn;
  }

  /** Recycling counters of the WAL store (tests, benchmark). */
  get recycling(): WalStore['recycling'] {
    return this.store.recycling;
  }

  /**
   * Removes the local segments wholly below `lsn` (the removal horizon): the new first LSN is
   * persisted in the control file first, then the files go. Returns how many segments went.
   */
  async removeWalBelow(lsn: Lsn): Promise<number> {
    if (this.closed) return 0;
    return this.store.removeSegmentsBelow(lsn, (walStartLsn) => this.advanceLifecycle({ walStartLsn }));
  }

  async readWal(start: Lsn, maxBytes: number): Promise<Buffer> {
    const remote = this.remoteReader;
    if (remote && start < this.lifecycleState.walStartLsn && start >= this.acceptor.view().timelineStartLsn) {
      return remote.read(start, Math.min(maxBytes, Number(this.lifecycleState.walStartLsn - start)));
    }
    try {
      return await this.store.read(start, maxBytes, this.store.writeLsn);
    } catch (err) {
      // removed locally (below the store's start, or the segment file gone): try the bucket
      if (remote && isStorageError(err, 'wal_removed') && start >= this.acceptor.view().timelineStartLsn && start < this.store.flushLsn) return remote.read(start, maxBytes);
      throw err;
    }
  }

  /** WAL bytes from local disk only (what the offloader uploads). */
  readLocalWal(start: Lsn, maxBytes: number): Promise<Buffer> {
    return this.store.read(start, maxBytes, this.store.writeLsn);
  }

  setRemoteReader(reader: RemoteWalReader | undefined): void {
    this.remoteReader = reader;
  }

  /** true once close() began (tenant deleted or shutting down): nothing is served any more */
  get isClosed(): boolean {
    return this.closed;
  }

  get proposerCount(): number {
    return this.node.proposerCount;
  }

  /** Flushes dirty WAL and persists lazily kept LSNs, then closes files. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.node.close(new Error('timeline is closing'), !this.store.failed);
    await this.node.exclusive(() => this.store.close());
    await this.slots.close();
    this.emit('advance');
  }
}

export { AcceptorError };

function recyclingJson(r: WalStore['recycling']): SegmentRecyclingJson {
  return {
    recycled: r.recycled,
    unlinked: r.unlinked,
    pooled: r.pooled,
    prepared_from_pool: r.preparedFromPool,
    prepared_zero_filled: r.preparedZeroFilled,
    zero_filled_on_append: r.zeroFilledOnAppend,
  };
}
