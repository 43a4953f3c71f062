// Deterministic simulation of a walkeeper cluster: real Acceptor and Proposer machines,
// a simulated disk per acceptor, a network that delivers, drops, duplicates and reorders,
// acceptor crashes and competing proposers, all driven by one seeded PRNG. After every
// step the safety invariants are checked; a failing seed replays exactly.
import { formatLsn, type Lsn } from '../common/lsn.js';
import { Acceptor, type AcceptorEffect, type AcceptorFaults } from '../consensus/acceptor.js';
import { AcceptorError, ProposerError } from '../consensus/errors.js';
import type { AcceptorMessage, ProposerMessage } from '../consensus/messages.js';
import { Proposer, type ProposerEffect, type ProposerFaults } from '../consensus/proposer.js';
import { newTimelineState } from '../consensus/state.js';
import { SimDisk } from './disk.js';
import { Prng } from '../common/prng.js';

export interface SimOptions {
  /** number of acceptors (3 or 5) */
  acceptors?: number;
  maxSteps?: number;
  /** proposers started over the run (at most two alive at once) */
  maxProposers?: number;
  acceptorFaults?: AcceptorFaults;
  proposerFaults?: ProposerFaults;
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
};

/** High proposer churn: finds interleavings that need many short-lived leaders (figure 8). */
export const CHURN_CHAOS: Partial<ChaosWeights> = { killProposer: 5, newProposer: 8, breakLink: 5, drop: 3, crash: 3 };

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

interface Link {
  up: boolean;
  epoch: number;
  connId: number;
}

interface SimAcceptor {
  idx: number;
  disk: SimDisk;
  machine: Acceptor | null;
  needFlush: boolean;
  /** connection id → owning proposer link, for this process lifetime */
  owners: Map<number, { pid: number; epoch: number }>;
  commitThisLife: Lsn;
  /** bytes below this LSN were checked against the committed record */
  verifiedUpTo: Lsn;
}

interface SimProposer {
  pid: number;
  core: Proposer;
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
  readonly trace: string[] = [];
  readonly stats: SimStats = { elections: 0, proposers: 0, crashes: 0, committedBytes: 0, maxTerm: 0n };
  step = 0;

  constructor(
    readonly seed: number,
    private readonly opts: Required<Omit<SimOptions, 'chaos' | 'acceptorFaults' | 'proposerFaults'>> &
      Pick<SimOptions, 'acceptorFaults' | 'proposerFaults'>,
    chaos: ChaosWeights,
  ) {
    this.rng = new Prng(seed);
    this.chaos = chaos;
    const state = newTimelineState({ tenantId: TENANT, timelineId: TIMELINE, walSegSize: SEG });
    this.acceptors = Array.from({ length: opts.acceptors }, (_, idx) => {
      const a: SimAcceptor = {
        idx,
        disk: new SimDisk(state),
        machine: null,
        needFlush: false,
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

  run(): void {
    this.startProposer();
    for (this.step = 1; this.step <= this.opts.maxSteps; this.step++) {
      this.act();
      this.checkAcceptors();
    }
    this.step = this.opts.maxSteps;
  }

  // ---- actions -------------------------------------------------------------------------

  private act(): void {
    const c = this.chaos;
    const live = this.proposers.filter((p) => p.alive);
    const elected = live.filter((p) => p.core.phase === 'elected');
    const down = this.acceptors.filter((a) => !a.machine);
    const flushable = this.acceptors.filter((a) => a.machine && a.needFlush);
    const brokenLinks = live.flatMap((p) => p.links.map((l, m) => ({ p, l, m }))).filter(({ l, m }) => !l.up && this.acceptors[m].machine);
    const actions: [number, () => void][] = [
      [this.queue.length > 0 ? 40 : 0, () => this.deliverOne()],
      [flushable.length > 0 ? 15 : 0, () => this.flush(this.rng.pick(flushable))],
      [elected.length > 0 ? 12 : 0, () => this.generate(this.rng.pick(elected))],
      [elected.length > 0 ? 2 : 0, () => this.heartbeat(this.rng.pick(elected))],
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
    if (pkt.toAcceptor) this.deliverToAcceptor(p, pkt.member, pkt.msg as ProposerMessage);
    else this.deliverToProposer(p, pkt.member, pkt.msg as AcceptorMessage);
  }

  private deliverToAcceptor(p: SimProposer, member: number, msg: ProposerMessage): void {
    const a = this.acceptors[member];
    if (!a.machine) return;
    this.log(() => `p${p.pid} -> a${member}: ${describe(msg)}`);
    let effects: AcceptorEffect[];
    try {
      effects = a.machine.handle(p.links[member].connId, msg);
    } catch (e) {
      if (!(e instanceof AcceptorError)) throw e;
      this.log(() => `a${member} rejects (${e.code}): ${e.message}`);
      this.closeLink(p, member);
      return;
    }
    this.performAcceptor(a, effects, this.rng.chance(this.chaos.crashMidEffects));
  }

  private deliverToProposer(p: SimProposer, member: number, msg: AcceptorMessage): void {
    this.log(() => `a${member} -> p${p.pid}: ${describe(msg)}`);
    let effects: ProposerEffect[];
    try {
      effects = p.core.handle(member, msg);
    } catch (e) {
      if (!(e instanceof ProposerError)) throw e;
      this.log(() => `p${p.pid} drops a${member} (${e.code}): ${e.message}`);
      this.closeLink(p, member);
      return;
    }
    this.performProposer(p, effects);
  }

  private flush(a: SimAcceptor): void {
    a.needFlush = false;
    const end = a.disk.flush();
    this.log(() => `a${a.idx} fsync -> ${formatLsn(end)}`);
    this.performAcceptor(a, (a.machine as Acceptor).onFlushed(end), false);
  }

  private generate(p: SimProposer): void {
    const len = this.rng.int(1, 48);
    const begin = p.core.walEnd;
    for (let i = 0n; i < BigInt(len); i++) p.log.push(walByte(p.core.term, begin + i));
    this.log(() => `p${p.pid} generates ${formatLsn(begin)}..${formatLsn(begin + BigInt(len))}`);
    this.performProposer(p, p.core.onWalAppended(begin + BigInt(len)));
  }

  private heartbeat(p: SimProposer): void {
    this.performProposer(p, p.core.heartbeat());
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
    if (!a.machine) return;
    this.stats.crashes++;
    a.machine = null;
    a.needFlush = false;
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
    const end = a.disk.durableEnd;
    try {
      a.machine = new Acceptor({
        nodeId: BigInt(a.idx),
        state: a.disk.control,
        writeLsn: end,
        flushLsn: end,
        faults: this.opts.acceptorFaults,
      });
    } catch (e) {
      throw new Violation(`acceptor ${a.idx} cannot restart: ${(e as Error).message}`);
    }
    a.owners = new Map();
    a.commitThisLife = a.machine.commitLsn;
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
    const p: SimProposer = {
      pid,
      core: new Proposer({
        tenantId: TENANT,
        timelineId: TIMELINE,
        pgVersion: 160004,
        systemId: 7300000000000000001n,
        walSegSize: SEG,
        memberCount: this.acceptors.length,
        startLsnIfEmpty: SIM_START_LSN,
        maxAppendBytes: 64,
        maxInFlightBytes: 512,
        faults: this.opts.proposerFaults,
      }),
      alive: true,
      log: [],
      links: this.acceptors.map(() => ({ up: false, epoch: 0, connId: -1 })),
      commit: 0n,
      verifiedUpTo: SIM_START_LSN,
    };
    this.proposers.push(p);
    this.stats.proposers++;
    this.log(() => `p${pid} starts`);
    for (let m = 0; m < this.acceptors.length; m++) this.connect(p, m);
  }

  private killProposer(p: SimProposer, why: string): void {
    this.log(() => `p${p.pid} stops: ${why}`);
    for (let m = 0; m < p.links.length; m++) if (p.links[m].up) this.closeLink(p, m);
    p.alive = false;
  }

  private connect(p: SimProposer, m: number): void {
    const a = this.acceptors[m];
    const link = p.links[m];
    if (!p.alive || link.up || !a.machine) return;
    link.up = true;
    link.epoch++;
    link.connId = a.machine.openConnection();
    a.owners.set(link.connId, { pid: p.pid, epoch: link.epoch });
    this.performProposer(p, p.core.onConnected(m));
  }

  private closeLink(p: SimProposer, m: number): void {
    const link = p.links[m];
    if (!link.up) return;
    link.up = false;
    const a = this.acceptors[m];
    if (a.machine) {
      a.owners.delete(link.connId);
      this.performAcceptor(a, a.machine.closeConnection(link.connId), false);
    }
    if (p.alive) this.performProposer(p, p.core.onDisconnected(m));
  }

  // ---- effects -------------------------------------------------------------------------

  private performAcceptor(a: SimAcceptor, effects: AcceptorEffect[], crashMidway: boolean): void {
    const cut = crashMidway ? this.rng.int(0, effects.length) : effects.length;
    for (let i = 0; i < cut; i++) {
      const e = effects[i];
      if (!a.machine) return;
      switch (e.kind) {
        case 'persist':
          a.disk.persist(e.state);
          break;
        case 'truncate_wal':
          this.log(() => `a${a.idx} truncates WAL at ${formatLsn(e.lsn)}`);
          a.disk.truncate(e.lsn);
          if (a.verifiedUpTo > e.lsn) a.verifiedUpTo = e.lsn;
          break;
        case 'append_wal':
          a.disk.write(e.beginLsn, e.data);
          break;
        case 'flush_wal':
          a.needFlush = true;
          break;
        case 'reply':
          this.reply(a, e.connId, e.msg);
          break;
      }
    }
    if (cut < effects.length) {
      this.log(() => `a${a.idx} crashes after ${cut} of ${effects.length} effects`);
      this.crash(a);
    }
  }

  private reply(a: SimAcceptor, connId: number, msg: AcceptorMessage): void {
    // Invariant: a flush position is reported only for WAL that is on disk.
    if ((msg.tag === 'append_response' || msg.tag === 'vote_response') && msg.flushLsn > a.disk.durableEnd) {
      throw new Violation(
        `acceptor ${a.idx} reports flush ${formatLsn(msg.flushLsn)} in ${msg.tag} but only ${formatLsn(a.disk.durableEnd)} is durable`,
      );
    }
    const owner = a.owners.get(connId);
    if (!owner) return;
    this.queue.push({ pid: owner.pid, member: a.idx, epoch: owner.epoch, toAcceptor: false, msg });
  }

  private performProposer(p: SimProposer, effects: ProposerEffect[]): void {
    for (const e of effects) {
      if (!p.alive) return;
      switch (e.kind) {
        case 'send':
          this.send(p, e.member, e.msg);
          break;
        case 'send_append': {
          const { beginLsn, endLsn } = e.request;
          if (endLsn > SIM_START_LSN + BigInt(p.log.length) || beginLsn < SIM_START_LSN) {
            throw new Violation(`p${p.pid} asked to send ${formatLsn(beginLsn)}..${formatLsn(endLsn)} which its log does not hold`);
          }
          const walData = Uint8Array.from(p.log.slice(Number(beginLsn - SIM_START_LSN), Number(endLsn - SIM_START_LSN)));
          this.send(p, e.member, { ...e.request, walData });
          break;
        }
        case 'elected':
          this.onElected(p, e.term, e.termStartLsn, e.donor);
          break;
        case 'commit_advanced':
          this.onCommit(p, e.commitLsn);
          break;
        case 'fenced':
          this.killProposer(p, e.reason);
          break;
      }
    }
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
      if (!d.machine || d.machine.view().term !== term || d.disk.durableEnd < termStart) {
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
      if (!a.machine) continue;
      const c = a.machine.commitLsn;
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
export function runSeed(seed: number, options: SimOptions = {}): SimResult {
  const sim = new Simulation(
    seed,
    {
      acceptors: options.acceptors ?? 3,
      maxSteps: options.maxSteps ?? 600,
      maxProposers: options.maxProposers ?? 8,
      trace: options.trace ?? true,
      acceptorFaults: options.acceptorFaults,
      proposerFaults: options.proposerFaults,
    },
    { ...DEFAULT_CHAOS, ...options.chaos },
  );
  try {
    sim.run();
    return { seed, ok: true, steps: sim.step, trace: sim.trace, stats: sim.stats };
  } catch (e) {
    // Any unexpected exception from the machines is a finding too, not a crash of the run.
    const violation = e instanceof Violation ? e.message : `unexpected error: ${(e as Error).stack ?? String(e)}`;
    sim.trace.push(`#${sim.step} VIOLATION: ${violation}`);
    return { seed, ok: false, steps: sim.step, violation, trace: sim.trace, stats: sim.stats };
  }
}
