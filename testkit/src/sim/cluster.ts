// Deterministic simulation of a walkeeper cluster: the production acceptor and proposer
// nodes (safekeeper/acceptorNode.ts, proposer/proposerNode.ts, with the real machines
// inside) over a simulated disk per acceptor, a network that delivers, drops, duplicates,
// reorders and goes silent, a simulated clock, acceptor crashes and wiped disks, PostgreSQL
// promotions and competing proposers, all driven by one seeded PRNG. After every step the
// safety invariants and the shell's timing rules are checked; a failing seed replays exactly.
// (Over 400 lines: the actions and the invariants they threaten read best side by side.)
import { formatLsn, type Lsn } from '@walkeeper/dataplane/common/lsn';
import type { AcceptorFaults } from '@walkeeper/dataplane/consensus/acceptor';
import { AcceptorError } from '@walkeeper/dataplane/consensus/errors';
import type { AcceptorMessage, ProposerMessage } from '@walkeeper/dataplane/consensus/messages';
import { Proposer, type ProposerFaults } from '@walkeeper/dataplane/consensus/proposer';
import { newTimelineState } from '@walkeeper/dataplane/consensus/state';
import { FIRST_PG_TIMELINE, type PgTimelineInfo } from '@walkeeper/dataplane/consensus/pgTimeline';
import { AcceptorNode, type AcceptorStorage } from '@walkeeper/dataplane/safekeeper/acceptorNode';
import { HEARTBEAT_MS, MEMBER_SILENCE_MS, ProposerNode, type ProposerShellFaults } from '@walkeeper/dataplane/proposer/proposerNode';
import { SimDisk } from './disk.js';
import { SimClock } from './clock.js';
import { Prng } from '@walkeeper/dataplane/common/prng';

export interface SimOptions {
  /** number of acceptors (3 or 5) */
  acceptors?: number;
  maxSteps?: number;
  /** proposers started over the run (at most two alive at once) */
  maxProposers?: number;
  acceptorFaults?: AcceptorFaults;
  proposerFaults?: ProposerFaults;
  /** broken timing rules of the proposer shell */
  shellFaults?: ProposerShellFaults;
  /** per-step weights of the chaos actions; deliveries and flushes have fixed weights */
  chaos?: Partial<ChaosWeights>;
  /** record a human-readable trace (slower); off for bulk runs */
  trace?: boolean;
}

export interface ChaosWeights {
  drop: number;
  duplicate: number;
  reorder: number;
  crash: number;
  crashMidEffects: number;
  breakLink: number;
  newProposer: number;
  killProposer: number;
  /** a proposer-member connection stops carrying packets without breaking */
  silence: number;
  /** a member's disk is replaced by an empty one (at most once a run: more is beyond the fault model) */
  wipe: number;
  /** the elected proposer's PostgreSQL is promoted to a new timeline */
  promote: number;
  /** simulated time passes (timers fire) */
  time: number;
}

export const DEFAULT_CHAOS: ChaosWeights = {
  drop: 2,
  duplicate: 2,
  reorder: 0.15,
  crash: 1,
  crashMidEffects: 0.02,
  breakLink: 1.5,
  newProposer: 0.7,
  killProposer: 0.5,
  silence: 0.15,
  wipe: 0.05,
  promote: 0.1,
  time: 4,
};

/**
 * High proposer churn: finds interleavings that need many short-lived leaders (figure 8).
 * Raft's figure 8 needs a chain of elections each won by a different pair of members, with a
 * sync interrupted part way, so this profile breaks links often but rarely crashes acceptors or
 * drops packets: both end campaigns before they finish. Measured over 400 seeds with the
 * figure-8 rule skipped: 9 elections per seed, and 1 seed in 7 commits an ack below its term
 * start (the rule's precondition); heavier crash and drop weights gave 3.4 elections and 1 in 300.
 */
export const CHURN_CHAOS: Partial<ChaosWeights> = {
  killProposer: 3,
  newProposer: 5,
  breakLink: 6,
  drop: 0.5,
  duplicate: 0.2,
  crash: 0.3,
  silence: 0,
  wipe: 0,
  promote: 0,
  time: 0.5,
};

export interface SimStats {
  elections: number;
  proposers: number;
  crashes: number;
  committedBytes: number;
  maxTerm: bigint;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  steps: number;
  violation?: string;
  trace: string[];
  stats: SimStats;
}

const TENANT = '5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e';
const TIMELINE = '7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a';
const SEG = 16 * 1024 * 1024;
/** where the simulated timeline starts (the shell-supplied start for an empty timeline) */
export const SIM_START_LSN: Lsn = 0x1000n;

/** Deterministic WAL byte written by the proposer of `term` at `lsn`: content identifies its term. */
export function walByte(term: bigint, lsn: Lsn): number {
  let x = Math.imul(Number(term & 0xffffn) ^ 0x9e3779b9, 0x85ebca6b) ^ Number(lsn & 0xffffffffn);
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  return (x ^ (x >>> 15)) & 0xff;
}

class Violation extends Error {}
/** thrown by the simulated disk to cut a list of effects short: the acceptor crashes there */
class SimCrash extends Error {}
/** thrown to work a crashed acceptor's node still had queued: that process is gone */
class SimGone extends Error {}

/** A streaming member must be sent the commit LSN within this much simulated time (heartbeats). */
const COMMIT_PROPAGATION_BOUND_MS = 3 * HEARTBEAT_MS;
/** A member silent for this long must no longer count as streaming. */
const SILENT_MEMBER_BOUND_MS = MEMBER_SILENCE_MS + 2 * HEARTBEAT_MS;

interface Link {
  up: boolean;
  epoch: number;
  connId: number;
  /** since when the connection carries nothing (null: it works) */
  silentSince: number | null;
  /** since when the member is caught up but lags the proposer's commit LSN */
  commitLagSince: number | null;
}

interface SimAcceptor {
  idx: number;
  disk: SimDisk;
  node: AcceptorNode | null;
  /** storage operations left before a crash cuts the current effects short (null: none planned) */
  opsBeforeCrash: number | null;
  /** bumped at every boot: storage calls of an earlier process life fail with SimGone */
  life: number;
  /** connection id → owning proposer link, for this process lifetime */
  owners: Map<number, { pid: number; epoch: number }>;
  commitThisLife: Lsn;
  /** bytes below this LSN were checked against the committed record */
  verifiedUpTo: Lsn;
}

interface SimProposer {
  pid: number;
  core: Proposer;
  node: ProposerNode;
  alive: boolean;
  /** the proposer's WAL from SIM_START_LSN (donor's WAL, then its own records) */
  log: number[];
  links: Link[];
  commit: Lsn;
  verifiedUpTo: Lsn;
}

interface Packet {
  pid: number;
  member: number;
  epoch: number;
  toAcceptor: boolean;
  msg: ProposerMessage | AcceptorMessage;
}

function describe(msg: ProposerMessage | AcceptorMessage): string {
  switch (msg.tag) {
    case 'proposer_greeting':
      return 'greeting';
    case 'acceptor_greeting':
      return `greeting(term ${msg.term})`;
    case 'vote_request':
      return `vote_request(term ${msg.term})`;
    case 'vote_response':
      return `vote_response(term ${msg.term}, ${msg.voteGiven ? 'granted' : 'refused'}, flush ${formatLsn(msg.flushLsn)})`;
    case 'proposer_elected':
      return `elected(term ${msg.term}, start ${formatLsn(msg.startStreamingAt)}, ${msg.termHistory.map((e) => `${e.term}@${formatLsn(e.lsn)}`).join(' ')})`;
    case 'append_request':
      return `append(term ${msg.term}, ${formatLsn(msg.beginLsn)}..${formatLsn(msg.endLsn)}, commit ${formatLsn(msg.commitLsn)})`;
    case 'pg_timeline':
      return `pg_timeline(term ${msg.term}, tli ${msg.tli} from ${formatLsn(msg.startLsn)})`;
    case 'append_response':
      return `append_response(term ${msg.term}, flush ${formatLsn(msg.flushLsn)}, commit ${formatLsn(msg.commitLsn)})`;
  }
}

class Simulation {
  private readonly rng: Prng;
  private readonly chaos: ChaosWeights;
  private readonly acceptors: SimAcceptor[];
  private readonly proposers: SimProposer[] = [];
  private queue: Packet[] = [];
  private readonly committed: number[] = [];
  private readonly electedBy = new Map<bigint, number>();
  /** highest commit LSN reached by a proposer of each term */
  private readonly commitByTerm = new Map<bigint, Lsn>();
  private readonly clock = new SimClock();
  /** the PostgreSQL timeline new proposers start on (the latest promotion) */
  private pgTimeline: PgTimelineInfo = FIRST_PG_TIMELINE;
  private wiped = false;
  /** a violation found inside a node callback, raised at the end of the step */
  private found: Violation | null = null;
  private pending: Promise<void>[] = [];
  /** connections a proposer closed that the acceptor has not noticed yet (as TCP tells it later) */
  private closing: { a: SimAcceptor; connId: number; life: number }[] = [];
  readonly trace: string[] = [];
  readonly stats: SimStats = { elections: 0, proposers: 0, crashes: 0, committedBytes: 0, maxTerm: 0n };
  step = 0;

  constructor(
    readonly seed: number,
    private readonly opts: Required<Omit<SimOptions, 'chaos' | 'acceptorFaults' | 'proposerFaults' | 'shellFaults'>> &
      Pick<SimOptions, 'acceptorFaults' | 'proposerFaults' | 'shellFaults'>,
    chaos: ChaosWeights,
  ) {
    this.rng = new Prng(seed);
    this.chaos = chaos;
    this.acceptors = Array.from({ length: opts.acceptors }, (_, idx) => {
      const a: SimAcceptor = {
        idx,
        disk: new SimDisk(newTimelineState({ tenantId: TENANT, timelineId: TIMELINE, walSegSize: SEG })),
        node: null,
        opsBeforeCrash: null,
        life: 0,
        owners: new Map(),
        commitThisLife: 0n,
        verifiedUpTo: SIM_START_LSN,
      };
      this.boot(a);
      return a;
    });
  }

  private log(line: () => string): void {
    if (this.opts.trace) this.trace.push(`#${this.step} ${line()}`);
  }

  private get committedEnd(): Lsn {
    return SIM_START_LSN + BigInt(this.committed.length);
  }

  async run(): Promise<void> {
    this.startProposer();
    await this.settle();
    for (this.step = 1; this.step <= this.opts.maxSteps; this.step++) {
      this.act();
      await this.settle();
      this.checkAcceptors();
      this.checkTiming();
    }
    this.step = this.opts.maxSteps;
  }

  /** Waits for the acceptor nodes' work started by this step, then raises what it found. */
  private async settle(): Promise<void> {
    while (this.pending.length > 0) {
      const work = this.pending;
      this.pending = [];
      await Promise.all(work);
    }
    if (this.found) throw this.found;
  }

  /** Acceptor node work: a planned crash or a protocol refusal is handled, the rest is a finding. */
  private track(a: SimAcceptor, work: Promise<void>, onRefused?: (e: AcceptorError) => void): void {
    this.pending.push(
      work.catch((e: unknown) => {
        if (e instanceof SimGone) return;
        if (e instanceof SimCrash) {
          this.log(() => `a${a.idx} crashes in the middle of its effects`);
          this.crash(a);
        } else if (e instanceof AcceptorError && onRefused) {
          onRefused(e);
        } else {
          this.found ??= e instanceof Violation ? e : new Violation(`unexpected error: ${(e as Error).stack ?? String(e)}`);
        }
      }),
    );
  }

  // ---- actions -------------------------------------------------------------------------

  private act(): void {
    const c = this.chaos;
    const live = this.proposers.filter((p) => p.alive);
    const elected = live.filter((p) => p.core.phase === 'elected');
    const down = this.acceptors.filter((a) => !a.node);
    const flushable = this.acceptors.filter((a) => a.node?.flushPending);
    const brokenLinks = live.flatMap((p) => p.links.map((l, m) => ({ p, l, m }))).filter(({ l, m }) => !l.up && this.acceptors[m].node);
    const workingLinks = live.flatMap((p) => p.links.map((l, m) => ({ p, l, m }))).filter(({ l }) => l.up && l.silentSince === null);
    const actions: [number, () => void][] = [
      [this.queue.length > 0 ? 40 : 0, () => this.deliverOne()],
      [flushable.length > 0 ? 15 : 0, () => this.flush(this.rng.pick(flushable))],
      [elected.length > 0 ? 12 : 0, () => this.generate(this.rng.pick(elected))],
      [this.closing.length > 0 ? 10 : 0, () => this.noticeClose()],
      [c.time, () => this.clock.advance(this.rng.int(1, 1500))],
      [workingLinks.length > 0 ? c.silence : 0, () => this.silence(this.rng.pick(workingLinks))],
      [this.wiped ? 0 : c.wipe, () => this.wipe(this.rng.pick(this.acceptors))],
      [elected.length > 0 ? c.promote : 0, () => this.promote(this.rng.pick(elected))],
      [this.queue.length > 0 ? c.drop : 0, () => this.drop()],
      [this.queue.length > 0 ? c.duplicate : 0, () => this.duplicate()],
      [c.crash, () => this.crash(this.rng.pick(this.acceptors))],
      [down.length > 0 ? 6 : 0, () => this.restart(this.rng.pick(down))],
      [c.breakLink, () => this.breakRandomLink()],
      [brokenLinks.length > 0 ? 5 : 0, () => this.reconnect(this.rng.pick(brokenLinks))],
      [this.stats.proposers < this.opts.maxProposers && live.length < 2 ? (live.length === 0 ? 20 : c.newProposer) : 0, () => this.startProposer()],
      [live.length > 0 ? c.killProposer : 0, () => this.killProposer(this.rng.pick(live), 'killed')],
    ];
    const total = actions.reduce((s, [w]) => s + w, 0);
    if (total === 0) return;
    let r = this.rng.next() * total;
    for (const [w, f] of actions) {
      if (r < w) return f();
      r -= w;
    }
  }

  private deliverOne(): void {
    let i = this.rng.int(0, this.queue.length - 1);
    if (!this.rng.chance(this.chaos.reorder)) {
      // TCP order: the oldest packet of the same link and direction goes first.
      const q = this.queue[i];
      i = this.queue.findIndex((x) => x.pid === q.pid && x.member === q.member && x.toAcceptor === q.toAcceptor);
    }
    const [pkt] = this.queue.splice(i, 1);
    const p = this.proposers[pkt.pid];
    const link = p.links[pkt.member];
    if (!p.alive || !link.up || link.epoch !== pkt.epoch) return;
    if (link.silentSince !== null) return this.log(() => `silent link p${pkt.pid}-a${pkt.member} loses ${describe(pkt.msg)}`);
    if (pkt.toAcceptor) this.deliverToAcceptor(p, pkt.member, pkt.msg as ProposerMessage);
    else this.deliverToProposer(p, pkt.member, pkt.msg as AcceptorMessage);
  }

  private deliverToAcceptor(p: SimProposer, member: number, msg: ProposerMessage): void {
    const a = this.acceptors[member];
    if (!a.node) return;
    this.log(() => `p${p.pid} -> a${member}: ${describe(msg)}`);
    if (this.rng.chance(this.chaos.crashMidEffects)) a.opsBeforeCrash = this.rng.int(0, 2);
    this.track(a, a.node.handle(p.links[member].connId, msg), (e) => {
      this.log(() => `a${member} rejects (${e.code}): ${e.message}`);
      this.closeLink(p, member);
    });
  }

  private deliverToProposer(p: SimProposer, member: number, msg: AcceptorMessage): void {
    this.log(() => `a${member} -> p${p.pid}: ${describe(msg)}`);
    p.node.received(member, msg);
  }

  private flush(a: SimAcceptor): void {
    this.log(() => `a${a.idx} fsync`);
    this.track(a, (a.node as AcceptorNode).endOfBatch());
  }

  private generate(p: SimProposer): void {
    const len = this.rng.int(1, 48);
    const begin = p.core.walEnd;
    for (let i = 0n; i < BigInt(len); i++) p.log.push(walByte(p.core.term, begin + i));
    this.log(() => `p${p.pid} generates ${formatLsn(begin)}..${formatLsn(begin + BigInt(len))}`);
    p.node.walAppended(begin + BigInt(len));
  }

  private noticeClose(): void {
    const [{ a, connId, life }] = this.closing.splice(this.rng.int(0, this.closing.length - 1), 1);
    if (a.life !== life || !a.node) return;
    this.log(() => `a${a.idx} notices connection ${connId} closed`);
    this.track(a, a.node.detachProposer(connId));
  }

  private silence({ p, l, m }: { p: SimProposer; l: Link; m: number }): void {
    this.log(() => `link p${p.pid}-a${m} goes silent`);
    l.silentSince = this.clock.now();
  }

  /** The member's volume is lost: it comes back empty (term 0, no WAL), as a replaced disk would. */
  private wipe(a: SimAcceptor): void {
    // Within the fault model only when the other members hold all this one has: otherwise a
    // flush it acknowledged may be counted for a commit after its data is gone, and no
    // protocol survives losing the only copies.
    const end = a.disk.durableEnd > this.committedEnd ? a.disk.durableEnd : this.committedEnd;
    const holders = this.acceptors.filter((x) => x !== a && x.disk.durableEnd >= end).length;
    if (holders < Math.floor(this.acceptors.length / 2) + 1) return;
    // Nor while its vote is the only record of a term: every other member holds the highest
    // term, so a new proposer's term = max(seen)+1 is unused, and no campaign holds old votes.
    const maxTerm = this.acceptors.reduce((t, x) => (x.disk.control.term > t ? x.disk.control.term : t), 0n);
    if (this.acceptors.some((x) => x !== a && x.disk.control.term !== maxTerm)) return;
    if (this.proposers.some((p) => p.alive && p.core.phase !== 'elected')) return;
    this.wiped = true;
    this.crash(a);
    a.disk = new SimDisk(newTimelineState({ tenantId: TENANT, timelineId: TIMELINE, walSegSize: SEG }));
    a.verifiedUpTo = SIM_START_LSN;
    this.log(() => `a${a.idx} DISK WIPED`);
  }

  /** PostgreSQL behind p is promoted: a new PostgreSQL timeline begins at the end of p's WAL. */
  private promote(p: SimProposer): void {
    const cur = p.core.pgTimeline;
    const startLsn = p.core.walEnd;
    // an old primary is not promoted again, nor a log that does not reach the last switchpoint
    if (cur.tli !== this.pgTimeline.tli || startLsn < cur.startLsn) return;
    const next: PgTimelineInfo = {
      tli: cur.tli + 1,
      startLsn,
      historyFile: `${cur.historyFile}${cur.tli}\t${formatLsn(startLsn)}\tno recovery target specified\n`,
    };
    this.log(() => `p${p.pid} PostgreSQL promoted: timeline ${next.tli} from ${formatLsn(startLsn)}`);
    this.pgTimeline = next;
    p.node.dispatch(p.core.switchPgTimeline(next));
  }

  private drop(): void {
    const [pkt] = this.queue.splice(this.rng.int(0, this.queue.length - 1), 1);
    this.log(() => `network drops p${pkt.pid}${pkt.toAcceptor ? '->' : '<-'}a${pkt.member}: ${describe(pkt.msg)}`);
  }

  private duplicate(): void {
    const pkt = this.queue[this.rng.int(0, this.queue.length - 1)];
    this.queue.push({ ...pkt });
    this.log(() => `network duplicates p${pkt.pid}${pkt.toAcceptor ? '->' : '<-'}a${pkt.member}: ${describe(pkt.msg)}`);
  }

  private crash(a: SimAcceptor): void {
    if (!a.node) return;
    this.stats.crashes++;
    a.node = null;
    a.life++;
    a.opsBeforeCrash = null;
    a.disk.crash(this.rng);
    this.log(() => `a${a.idx} CRASH (durable WAL ends ${formatLsn(a.disk.durableEnd)}, control term ${a.disk.control.term})`);
    for (const p of this.proposers) if (p.alive && p.links[a.idx].up) this.closeLink(p, a.idx);
  }

  private restart(a: SimAcceptor): void {
    this.boot(a);
    this.log(() => `a${a.idx} restarts: term ${a.disk.control.term}, flush ${formatLsn(a.disk.durableEnd)}`);
    for (const p of this.proposers) if (p.alive) this.connect(p, a.idx);
  }

  private boot(a: SimAcceptor): void {
    let node: AcceptorNode;
    try {
      node = new AcceptorNode({
        nodeId: BigInt(a.idx),
        state: a.disk.control,
        storage: this.storage(a),
        clock: this.clock,
        events: { fatal: (err) => (this.found ??= new Violation(`acceptor ${a.idx}: fatal storage error ${err.message}`)) },
        faults: this.opts.acceptorFaults,
      });
    } catch (e) {
      throw new Violation(`acceptor ${a.idx} cannot restart: ${(e as Error).message}`);
    }
    a.node = node;
    node.start();
    a.owners = new Map();
    a.commitThisLife = node.machine.commitLsn;
  }

  /** The simulated disk behind an acceptor node; a planned crash cuts in before a storage operation. */
  private storage(a: SimAcceptor): AcceptorStorage {
    const disk = a.disk;
    const life = ++a.life;
    const op = () => {
      if (a.life !== life || !a.node) throw new SimGone();
      if (a.opsBeforeCrash === null) return;
      if (a.opsBeforeCrash === 0) throw new SimCrash();
      a.opsBeforeCrash--;
    };
    return {
      get writeLsn() {
        return disk.writeEnd;
      },
      get flushLsn() {
        return disk.durableEnd;
      },
      writeControl: async (state) => {
        op();
        disk.persist(state);
      },
      truncate: async (lsn) => {
        op();
        this.log(() => `a${a.idx} truncates WAL at ${formatLsn(lsn)}`);
        disk.truncate(lsn);
        if (a.verifiedUpTo > lsn) a.verifiedUpTo = lsn;
      },
      append: async (beginLsn, data) => {
        op();
        disk.write(beginLsn, data);
      },
      flush: async () => {
        if (a.life !== life || !a.node) throw new SimGone();
        return disk.flush();
      },
      classify: () => 'other',
    };
  }

  private breakRandomLink(): void {
    const live = this.proposers.filter((p) => p.alive);
    if (live.length === 0) return;
    const p = this.rng.pick(live);
    const m = this.rng.int(0, this.acceptors.length - 1);
    if (!p.links[m].up) return;
    this.log(() => `link p${p.pid}-a${m} breaks`);
    this.closeLink(p, m);
  }

  private reconnect({ p, m }: { p: SimProposer; m: number }): void {
    this.connect(p, m);
  }

  private startProposer(): void {
    const pid = this.proposers.length;
    const core = new Proposer({
        tenantId: TENANT,
        timelineId: TIMELINE,
        pgVersion: 160004,
        systemId: 7300000000000000001n,
        walSegSize: SEG,
        memberCount: this.acceptors.length,
        startLsnIfEmpty: SIM_START_LSN,
        maxAppendBytes: 64,
        maxInFlightBytes: 512,
        // as in production: the node coalesces commit broadcasts on its timers
        broadcastCommit: false,
        pgTimeline: this.pgTimeline,
        faults: this.opts.proposerFaults,
      });
    const p: SimProposer = {
      pid,
      core,
      node: undefined as unknown as ProposerNode,
      alive: true,
      log: [],
      links: this.acceptors.map(() => ({ up: false, epoch: 0, connId: -1, silentSince: null, commitLagSince: null })),
      commit: 0n,
      verifiedUpTo: SIM_START_LSN,
    };
    p.node = new ProposerNode({
      core,
      clock: this.clock,
      faults: this.opts.shellFaults,
      transport: {
        send: (member, msg) => this.send(p, member, msg),
        close: (member, reason) => {
          this.log(() => `p${p.pid} drops a${member}: ${reason}`);
          this.closeLink(p, member);
        },
      },
      wal: { read: (_member, begin, end) => this.walOf(p, begin, end) },
      events: {
        elected: (e) => this.onElected(p, e.term, e.termStartLsn, e.donor),
        commitAdvanced: (commitLsn) => this.onCommit(p, commitLsn),
        fenced: (reason) => this.killProposer(p, reason),
      },
    });
    p.node.start();
    this.proposers.push(p);
    this.stats.proposers++;
    this.log(() => `p${pid} starts`);
    for (let m = 0; m < this.acceptors.length; m++) this.connect(p, m);
  }

  private killProposer(p: SimProposer, why: string): void {
    this.log(() => `p${p.pid} stops: ${why}`);
    for (let m = 0; m < p.links.length; m++) if (p.links[m].up) this.closeLink(p, m);
    p.alive = false;
    p.node.stop();
  }

  private connect(p: SimProposer, m: number): void {
    const a = this.acceptors[m];
    const link = p.links[m];
    if (!p.alive || link.up || !a.node) return;
    link.up = true;
    link.epoch++;
    link.silentSince = null;
    link.commitLagSince = null;
    const owner = { pid: p.pid, epoch: link.epoch };
    link.connId = a.node.attachProposer({ sink: (msg) => this.reply(a, owner, msg), kill: () => this.closeLink(p, m) });
    a.owners.set(link.connId, owner);
    p.node.connected(m);
  }

  private closeLink(p: SimProposer, m: number): void {
    const link = p.links[m];
    if (!link.up) return;
    link.up = false;
    const a = this.acceptors[m];
    if (a.node && a.owners.delete(link.connId)) this.closing.push({ a, connId: link.connId, life: a.life });
    if (p.alive) p.node.disconnected(m);
  }

  // ---- the nodes' ports -----------------------------------------------------------------

  private reply(a: SimAcceptor, owner: { pid: number; epoch: number }, msg: AcceptorMessage): void {
    // Invariant: a flush position is reported only for WAL that is on disk.
    if ((msg.tag === 'append_response' || msg.tag === 'vote_response') && msg.flushLsn > a.disk.durableEnd) {
      throw new Violation(
        `acceptor ${a.idx} reports flush ${formatLsn(msg.flushLsn)} in ${msg.tag} but only ${formatLsn(a.disk.durableEnd)} is durable`,
      );
    }
    this.queue.push({ pid: owner.pid, member: a.idx, epoch: owner.epoch, toAcceptor: false, msg });
  }

  private walOf(p: SimProposer, beginLsn: Lsn, endLsn: Lsn): Uint8Array {
    if (endLsn > SIM_START_LSN + BigInt(p.log.length) || beginLsn < SIM_START_LSN) {
      this.found ??= new Violation(`p${p.pid} asked to send ${formatLsn(beginLsn)}..${formatLsn(endLsn)} which its log does not hold`);
      throw this.found;
    }
    return Uint8Array.from(p.log.slice(Number(beginLsn - SIM_START_LSN), Number(endLsn - SIM_START_LSN)));
  }

  private send(p: SimProposer, member: number, msg: ProposerMessage): void {
    const link = p.links[member];
    if (link.up) this.queue.push({ pid: p.pid, member, epoch: link.epoch, toAcceptor: true, msg });
  }

  // ---- invariants ----------------------------------------------------------------------

  private onElected(p: SimProposer, term: bigint, termStart: Lsn, donor: number): void {
    this.log(() => `p${p.pid} ELECTED term ${term}, start ${formatLsn(termStart)}, donor a${donor}`);
    this.stats.elections++;
    if (term > this.stats.maxTerm) this.stats.maxTerm = term;
    // Election safety: at most one proposer wins a term.
    const other = this.electedBy.get(term);
    if (other !== undefined && other !== p.pid) {
      throw new Violation(`two proposers elected in term ${term}: p${other} and p${p.pid}`);
    }
    this.electedBy.set(term, p.pid);
    // The shell fetches WAL below the term start from the donor, which must still be in our term.
    const d = this.acceptors[donor];
    if (termStart > SIM_START_LSN) {
      if (!d.node || d.node.machine.view().term !== term || d.disk.durableEnd < termStart) {
        this.killProposer(p, `donor a${donor} unavailable`);
        return;
      }
      p.log = d.disk.read(SIM_START_LSN, termStart);
    }
    // Leader completeness: the new log holds every byte committed in a lower term. (A stale
    // leader may win an old term after a higher term committed more; it can never commit.)
    let end = SIM_START_LSN;
    for (const [t, c] of this.commitByTerm) if (t < term && c > end) end = c;
    if (termStart < end) {
      throw new Violation(
        `p${p.pid} elected in term ${term} with log end ${formatLsn(termStart)} below ${formatLsn(end)} committed in a lower term`,
      );
    }
    this.compare(`p${p.pid}'s log`, (lsn) => p.log[Number(lsn - SIM_START_LSN)], SIM_START_LSN, end);
    p.verifiedUpTo = end;
  }

  private onCommit(p: SimProposer, commit: Lsn): void {
    if (commit < p.commit) throw new Violation(`p${p.pid} commit went back from ${formatLsn(p.commit)} to ${formatLsn(commit)}`);
    p.commit = commit;
    const term = p.core.term;
    if ((this.commitByTerm.get(term) ?? 0n) < commit) this.commitByTerm.set(term, commit);
    this.log(() => `p${p.pid} commit -> ${formatLsn(commit)}`);
    const end = this.committedEnd;
    const upTo = commit < end ? commit : end;
    this.compare(`p${p.pid}'s log`, (lsn) => p.log[Number(lsn - SIM_START_LSN)], p.verifiedUpTo, upTo);
    for (let lsn = end; lsn < commit; lsn++) this.committed.push(p.log[Number(lsn - SIM_START_LSN)]);
    if (commit > p.verifiedUpTo) p.verifiedUpTo = commit;
    this.stats.committedBytes = this.committed.length;
  }

  private checkAcceptors(): void {
    for (const a of this.acceptors) {
      if (!a.node) continue;
      const c = a.node.machine.commitLsn;
      if (c < a.commitThisLife) {
        throw new Violation(`acceptor ${a.idx} commit went back from ${formatLsn(a.commitThisLife)} to ${formatLsn(c)}`);
      }
      a.commitThisLife = c;
      if (c > this.committedEnd) {
        throw new Violation(`acceptor ${a.idx} commit ${formatLsn(c)} is past anything a proposer committed (${formatLsn(this.committedEnd)})`);
      }
      if (c > a.verifiedUpTo) {
        this.compare(`acceptor ${a.idx}'s WAL`, (lsn) => a.disk.byteAt(lsn), a.verifiedUpTo, c);
        a.verifiedUpTo = c;
      }
    }
  }

  /**
   * The shell's timing rules: a member that went silent stops counting as streaming, and a
   * streaming member is sent the commit LSN (heartbeats, commit broadcasts), each within a
   * bound of simulated time.
   */
  private checkTiming(): void {
    const now = this.clock.now();
    for (const p of this.proposers) {
      if (!p.alive) continue;
      const st = p.core.status();
      p.links.forEach((l, m) => {
        if (!l.up) return;
        if (l.silentSince !== null && now - l.silentSince > SILENT_MEMBER_BOUND_MS && st.members[m].state !== 'offline') {
          throw new Violation(`p${p.pid} still counts a${m} as ${st.members[m].state} after ${now - l.silentSince} ms of silence`);
        }
        // Sender side: the network may hold packets for any time, so what the rule promises is
        // that the commit LSN was sent, not when it arrives.
        const sent = p.node.commitSentTo(m);
        const lagging = l.silentSince === null && st.phase === 'elected' && st.members[m].state === 'streaming' && sent < p.commit;
        if (!lagging) l.commitLagSince = null;
        else if (l.commitLagSince === null) l.commitLagSince = now;
        else if (now - l.commitLagSince > COMMIT_PROPAGATION_BOUND_MS) {
          throw new Violation(`p${p.pid} sent a${m} commit LSN ${formatLsn(sent)} but its own is ${formatLsn(p.commit)}, for ${now - l.commitLagSince} ms`);
        }
      });
    }
  }

  /** Committed bytes never change: the holder's bytes in [from, to) equal the committed record. */
  private compare(holder: string, byteAt: (lsn: Lsn) => number | undefined, from: Lsn, to: Lsn): void {
    for (let lsn = from; lsn < to; lsn++) {
      const want = this.committed[Number(lsn - SIM_START_LSN)];
      const got = byteAt(lsn);
      if (got !== want) {
        throw new Violation(
          `committed WAL changed: ${holder} has ${got ?? 'nothing'} at ${formatLsn(lsn)}, committed byte was ${want}`,
        );
      }
    }
  }
}

/** Runs one seeded simulation; a violation is reported, never thrown. */
export async function runSeed(seed: number, options: SimOptions = {}): Promise<SimResult> {
  const sim = new Simulation(
    seed,
    {
      acceptors: options.acceptors ?? 3,
      maxSteps: options.maxSteps ?? 600,
      maxProposers: options.maxProposers ?? 8,
      trace: options.trace ?? true,
      acceptorFaults: options.acceptorFaults,
      proposerFaults: options.proposerFaults,
      shellFaults: options.shellFaults,
    },
    { ...DEFAULT_CHAOS, ...options.chaos },
  );
  try {
    await sim.run();
    return { seed, ok: true, steps: sim.step, trace: sim.trace, stats: sim.stats };
  } catch (e) {
    // Any unexpected exception from the machines is a finding too, not a crash of the run.
    const violation = e instanceof Violation ? e.message : `unexpected error: ${(e as Error).stack ?? String(e)}`;
    sim.trace.push(`#${sim.step} VIOLATION: ${violation}`);
    return { seed, ok: false, steps: sim.step, violation, trace: sim.trace, stats: sim.stats };
  }
}
