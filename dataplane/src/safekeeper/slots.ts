// Physical replication slots of one timeline, for stock readers (pg_receivewal --slot, a
// hot standby's primary_slot_name): PostgreSQL 15's rules and errors for create, drop, read
// and acquire; the restart LSN follows the reader's reported flush position and never moves
// back; a slot further than --max-slot-wal-keep-size behind the commit LSN is invalidated
// (wal_status lost) and holds nothing from then on. Pure rules first, then the shell that
// keeps them in `slots.control` (created and dropped slots and invalidations at once, restart
// LSN advances lazily: at most once a second and when a reader lets go of its slot).
// (Over 400 lines: PostgreSQL's slot rules and the shell that persists them are kept together so
// each rule sits beside the write that makes it durable.)
import { formatLsn, segmentStart, type Lsn } from '../common/lsn.js';
import type { Logger } from '../common/log.js';
import type { SlotJson } from '../api/index.js';
import { readSlotsFile, writeSlotsFile, type PersistedSlot } from '../storage/slotsFile.js';

/** SQLSTATEs PostgreSQL answers for slot commands. */
export const SlotSqlState = {
  duplicateObject: '42710',
  invalidName: '42602',
  nameTooLong: '42622',
  undefinedObject: '42704',
  objectInUse: '55006',
  notInPrerequisiteState: '55000',
  featureNotSupported: '0A000',
  configurationLimitExceeded: '53400',
  syntaxError: '42601',
} as const;

/** A refused slot command: the connection answers it as an ERROR with these fields. */
export class SlotError extends Error {
  constructor(
    message: string,
    readonly sqlState: string,
    readonly detail?: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'SlotError';
  }
}

/** PostgreSQL's NAMEDATALEN - 1: longer identifiers are truncated by its lexer. */
export const MAX_SLOT_NAME_BYTES = 63;
/** Slots per timeline (PostgreSQL's max_replication_slots plays this part). */
export const MAX_SLOTS_PER_TIMELINE = 64;
/** How often advanced restart LSNs are written and the size limit is checked. */
export const SLOT_SAVE_INTERVAL_MS = 1_000;

// ---------------------------------------------------------------------------------------
// Pure rules

/** PostgreSQL's ReplicationSlotValidateName: the same checks, codes and wording. */
export function validateSlotName(name: string): void {
  if (name.length === 0) throw new SlotError(`replication slot name "${name}" is too short`, SlotSqlState.invalidName);
  if (Buffer.byteLength(name, 'utf8') > MAX_SLOT_NAME_BYTES) throw new SlotError(`replication slot name "${name}" is too long`, SlotSqlState.nameTooLong);
  if (!/^[a-z0-9_]+$/.test(name)) {
    throw new SlotError(
      `replication slot name "${name}" contains invalid character`,
      SlotSqlState.invalidName,
      undefined,
      'Replication slot names may only contain lower case letters, numbers, and the underscore character.',
    );
  }
}

/**
 * PostgreSQL's lexer truncates an identifier of 64 bytes or more to 63 (on a character
 * boundary) and says so in a NOTICE; returns the name to use and that notice, if any.
 */
export function truncateSlotIdentifier(name: string): { name: string; notice?: string } {
  if (Buffer.byteLength(name, 'utf8') <= MAX_SLOT_NAME_BYTES) return { name };
  let cut = '';
  for (const ch of name) {
    if (Buffer.byteLength(cut + ch, 'utf8') > MAX_SLOT_NAME_BYTES) break;
    cut += ch;
  }
  return { name: cut, notice: `identifier "${name}" will be truncated to "${cut}"` };
}

/** The restart LSN after a reader reports `flushLsn`: forward only; 0/0 (nothing flushed) is ignored. */
export function advancedRestartLsn(current: Lsn, flushLsn: Lsn): Lsn {
  return flushLsn !== 0n && flushLsn > current ? flushLsn : current;
}

/** Whether a valid slot with this restart LSN holds more than `limitBytes` (-1 = unlimited) below `commitLsn`. */
export function exceedsKeepSize(restartLsn: Lsn, commitLsn: Lsn, limitBytes: bigint): boolean {
  return limitBytes >= 0n && restartLsn !== 0n && commitLsn > restartLsn && commitLsn - restartLsn > limitBytes;
}

/** The restart LSN a slot created with RESERVE_WAL starts with: the start of the commit LSN's segment (clients start at segment starts). */
export function reservedRestartLsn(commitLsn: Lsn, timelineStartLsn: Lsn, walSegSize: number): Lsn {
  if (commitLsn === 0n) return timelineStartLsn;
  const start = segmentStart(commitLsn, walSegSize);
  return start > timelineStartLsn ? start : timelineStartLsn;
}

export function describeInvalidation(slot: PersistedSlot): string | null {
  const inv = slot.invalidation;
  if (!inv) return null;
  return (
    `invalidated: its restart LSN ${formatLsn(inv.restartLsn)} was ${inv.commitLsn - inv.restartLsn} bytes behind the commit LSN ${formatLsn(inv.commitLsn)}, ` +
    `more than max_slot_wal_keep_size (${inv.limitBytes} bytes)`
  );
}

/** The error a reader gets when it starts from an invalidated slot. */
export function invalidatedSlotError(slot: PersistedSlot): SlotError {
  return new SlotError(
    `can no longer access replication slot "${slot.name}": it was ${describeInvalidation(slot)}`,
    SlotSqlState.notInPrerequisiteState,
    'This replication slot has been invalidated due to "wal_removed".',
    'Drop the slot and create it again, then restore the reader from a new base backup or from the WAL still held (the first LSN available is in the timeline status).',
  );
}

// ---------------------------------------------------------------------------------------
// The shell: one per timeline

export interface SlotHolder {
  /** client address and application_name, for status and the "is active" error */
  remote: string;
  applicationName: string;
  /** ends the holder's connection with this error (the slot was invalidated under it) */
  kill(err: SlotError): void;
}

export interface SlotsDeps {
  tenantId: string;
  timelineId: string;
  log: Logger;
  /** bytes a slot may hold below the commit LSN; -1 = unlimited */
  maxSlotWalKeepSize: bigint;
  /** counts an invalidation (metrics) */
  onInvalidated?: (name: string) => void;
}

/** What a reader holds while it streams from a slot. */
export interface SlotLease {
  readonly name: string;
  /** the reader reported `flushLsn` durable (no further than `sentLsn`, what it was sent) */
  confirmFlush(flushLsn: Lsn, sentLsn: Lsn): void;
  release(): void;
}

export class TimelineSlots {
  /** current state; restart LSNs may be ahead of the file */
  private readonly slots = new Map<string, PersistedSlot>();
  /** restart LSNs as last written to slots.control */
  private readonly persistedRestart = new Map<string, Lsn>();
  private readonly holders = new Map<string, SlotHolder>();
  private readonly released = new Set<() => void>();
  private dirty = false;
  private chain: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private commitLsn: () => Lsn = () => 0n;

  private constructor(
    private readonly dir: string,
    private readonly deps: SlotsDeps,
    initial: PersistedSlot[],
  ) {
    for (const s of initial) {
      this.slots.set(s.name, s);
      this.persistedRestart.set(s.name, s.restartLsn);
    }
  }

  /** Reads slots.control (none: no slots); a corrupt file throws, naming it. */
  static async load(dir: string, deps: SlotsDeps): Promise<TimelineSlots> {
    return new TimelineSlots(dir, deps, await readSlotsFile(dir));
  }

  /** Starts the lazy save and the size-limit check against the timeline's commit LSN. */
  start(commitLsn: () => Lsn): void {
    this.commitLsn = commitLsn;
    this.timer = setInterval(() => void this.tick(), SLOT_SAVE_INTERVAL_MS);
    this.timer.unref();
  }

  get limitBytes(): bigint {
    return this.deps.maxSlotWalKeepSize;
  }

  /** Runs fn after every earlier change: file writes never interleave. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Writes `next` (the whole set) and only then makes it current. */
  private async commit(next: Map<string, PersistedSlot>): Promise<void> {
    const list = [...next.values()];
    await writeSlotsFile(this.dir, list);
    this.slots.clear();
    this.persistedRestart.clear();
    for (const s of list) {
      this.slots.set(s.name, s);
      this.persistedRestart.set(s.name, s.restartLsn);
    }
    this.dirty = false;
  }

  private copy(): Map<string, PersistedSlot> {
    return new Map([...this.slots].map(([k, v]) => [k, { ...v }]));
  }

  get(name: string): PersistedSlot | undefined {
    const s = this.slots.get(name);
    return s ? { ...s } : undefined;
  }

  /** CREATE_REPLICATION_SLOT name PHYSICAL [RESERVE_WAL]: durable before it resolves. */
  create(name: string, opts: { reserveWal: boolean; commitLsn: Lsn; timelineStartLsn: Lsn; walSegSize: number }): Promise<PersistedSlot> {
    return this.serial(async () => {
      validateSlotName(name);
      if (this.closed) throw new SlotError('the timeline is closing', '57P01');
      if (this.slots.has(name)) throw new SlotError(`replication slot "${name}" already exists`, SlotSqlState.duplicateObject);
      if (this.slots.size >= MAX_SLOTS_PER_TIMELINE) {
        throw new SlotError('all replication slots are in use', SlotSqlState.configurationLimitExceeded, undefined, `A timeline holds at most ${MAX_SLOTS_PER_TIMELINE} slots: drop one it no longer needs.`);
      }
      const slot: PersistedSlot = {
        name,
        restartLsn: opts.reserveWal ? reservedRestartLsn(opts.commitLsn, opts.timelineStartLsn, opts.walSegSize) : 0n,
        createdAt: BigInt(Date.now()),
        invalidation: null,
      };
      const next = this.copy();
      next.set(name, slot);
      await this.commit(next);
      this.deps.log.info({ tenant_id: this.deps.tenantId, timeline_id: this.deps.timelineId, slot: name, restart_lsn: formatLsn(slot.restartLsn) }, 'replication slot created');
      return { ...slot };
    });
  }

  /** DROP_REPLICATION_SLOT name [WAIT]: with WAIT, until its reader lets go (or `cancelled()`). */
  async drop(name: string, opts: { wait: boolean; cancelled: () => boolean }): Promise<void> {
    for (;;) {
      const holder = this.holders.get(name);
      if (!this.slots.has(name)) throw new SlotError(`replication slot "${name}" does not exist`, SlotSqlState.undefinedObject);
      if (!holder) break;
      if (!opts.wait) throw this.activeError(name, holder);
      if (opts.cancelled()) throw new SlotError('canceling statement: the client went away', '57014');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, 200);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.released.add(done);
      });
    }
    await this.serial(async () => {
      if (!this.slots.has(name)) throw new SlotError(`replication slot "${name}" does not exist`, SlotSqlState.undefinedObject);
      const holder = this.holders.get(name);
      if (holder) throw this.activeError(name, holder);
      const next = this.copy();
      next.delete(name);
      await this.commit(next);
      this.deps.log.info({ tenant_id: this.deps.tenantId, timeline_id: this.deps.timelineId, slot: name }, 'replication slot dropped');
    });
  }

  private activeError(name: string, holder: SlotHolder): SlotError {
    return new SlotError(
      `replication slot "${name}" is active for PID ${process.pid}`,
      SlotSqlState.objectInUse,
      `It is held by the connection from ${holder.remote}${holder.applicationName ? ` (application_name ${holder.applicationName})` : ''} to this safekeeper.`,
    );
  }

  /**
   * START_REPLICATION SLOT name: the slot must exist, be valid and be free. A slot found past
   * the size limit here is invalidated (durably) before the refusal.
   */
  async acquire(name: string, holder: SlotHolder): Promise<SlotLease> {
    await this.enforceLimit();
    const slot = this.slots.get(name);
    if (!slot) throw new SlotError(`replication slot "${name}" does not exist`, SlotSqlState.undefinedObject);
    const other = this.holders.get(name);
    if (other) throw this.activeError(name, other);
    if (slot.invalidation) throw invalidatedSlotError(slot);
    if (this.closed) throw new SlotError('the timeline is closing', '57P01');
    this.holders.set(name, holder);
    let held = true;
    return {
      name,
      confirmFlush: (flushLsn: Lsn, sentLsn: Lsn) => {
        const s = this.slots.get(name);
        if (!held || !s || s.invalidation) return;
        const next = advancedRestartLsn(s.restartLsn, flushLsn < sentLsn ? flushLsn : sentLsn);
        if (next !== s.restartLsn) {
          s.restartLsn = next;
          this.dirty = true;
        }
      },
      release: () => {
        if (!held) return;
        held = false;
        if (this.holders.get(name) === holder) this.holders.delete(name);
        for (const wake of [...this.released]) wake();
        this.released.clear();
        void this.save();
      },
    };
  }

  /** Writes advanced restart LSNs if any; failures are logged and retried on the next tick. */
  save(): Promise<void> {
    return this.serial(async () => {
      // after close the directory may be on its way out (tenant deleted): nothing more is written
      if (!this.dirty || this.closed) return;
      await this.commit(this.copy());
    }).catch((err: Error) => {
      this.deps.log.warn({ tenant_id: this.deps.tenantId, timeline_id: this.deps.timelineId, err: err.message }, 'saving replication slots failed; the slots keep holding WAL from their last saved positions');
    });
  }

  /** Invalidates, durably, every valid slot further behind the commit LSN than the limit. */
  enforceLimit(): Promise<void> {
    return this.serial(async () => {
      const commitLsn = this.commitLsn();
      const limit = this.deps.maxSlotWalKeepSize;
      const over = [...this.slots.values()].filter((s) => !s.invalidation && exceedsKeepSize(s.restartLsn, commitLsn, limit));
      if (over.length === 0) return;
      const next = this.copy();
      const at = BigInt(Date.now());
      for (const s of over) {
        next.set(s.name, { ...next.get(s.name)!, restartLsn: 0n, invalidation: { cause: 'wal_removed', restartLsn: s.restartLsn, commitLsn, limitBytes: limit, at } });
      }
      await this.commit(next);
      for (const s of over) {
        const slot = this.slots.get(s.name)!;
        this.deps.onInvalidated?.(s.name);
        this.deps.log.warn(
          { tenant_id: this.deps.tenantId, timeline_id: this.deps.timelineId, slot: s.name, restart_lsn: formatLsn(s.restartLsn), commit_lsn: formatLsn(commitLsn), max_slot_wal_keep_size: limit.toString() },
          'replication slot invalidated: it no longer holds WAL',
        );
        this.holders.get(s.name)?.kill(invalidatedSlotError(slot));
      }
    });
  }

  private async tick(): Promise<void> {
    if (this.closed) return;
    await this.enforceLimit().catch((err: Error) => {
      this.deps.log.warn({ tenant_id: this.deps.tenantId, timeline_id: this.deps.timelineId, err: err.message }, 'invalidating replication slots failed; retrying');
    });
    await this.save();
  }

  /**
   * The restart LSNs of the valid slots, as persisted: WAL at or above each must stay (the
   * removal horizon takes them as input). Slots without a restart position hold nothing.
   */
  holdingLsns(): { name: string; restartLsn: Lsn }[] {
    const out: { name: string; restartLsn: Lsn }[] = [];
    for (const s of this.slots.values()) {
      const persisted = this.persistedRestart.get(s.name) ?? 0n;
      if (!s.invalidation && persisted !== 0n) out.push({ name: s.name, restartLsn: persisted });
    }
    return out;
  }

  statusJson(commitLsn: Lsn): SlotJson[] {
    return [...this.slots.values()].map((s) => {
      const holder = this.holders.get(s.name);
      const persisted = this.persistedRestart.get(s.name) ?? 0n;
      return {
        slot_name: s.name,
        slot_type: 'physical',
        restart_lsn: s.restartLsn === 0n ? null : formatLsn(s.restartLsn),
        persisted_restart_lsn: persisted === 0n || s.invalidation ? null : formatLsn(persisted),
        active: holder !== undefined,
        active_client: holder ? `${holder.remote}${holder.applicationName ? ` ${holder.applicationName}` : ''}` : null,
        wal_status: s.invalidation ? 'lost' : 'reserved',
        retained_bytes: retained(s, persisted, commitLsn).toString(),
        invalidation_reason: describeInvalidation(s),
        created_at: new Date(Number(s.createdAt)).toISOString(),
      };
    });
  }

  gauges(commitLsn: Lsn): { name: string; retainedBytes: bigint; active: boolean; lost: boolean }[] {
    return [...this.slots.values()].map((s) => ({
      name: s.name,
      retainedBytes: retained(s, this.persistedRestart.get(s.name) ?? 0n, commitLsn),
      active: this.holders.has(s.name),
      lost: s.invalidation !== null,
    }));
  }

  /** Saves what moved and stops; readers of the timeline are ended by their connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.timer);
    await this.save();
    this.closed = true;
  }
}

/** Bytes of WAL a slot keeps from removal: from its persisted restart LSN to the commit LSN. */
function retained(s: PersistedSlot, persisted: Lsn, commitLsn: Lsn): bigint {
  if (s.invalidation || persisted === 0n || commitLsn <= persisted) return 0n;
  return commitLsn - persisted;
}
