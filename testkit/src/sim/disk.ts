// Simulated storage of one acceptor: a control file and a WAL byte range. Only what an
// effect persisted or flushed survives a crash; unflushed WAL is lost, except that some
// whole records may have reached the disk anyway (the OS wrote them) and a torn record
// past them is discarded by recovery, which never trusts a partial record.
import { formatLsn, type Lsn } from '@walkeeper/dataplane/common/lsn';
import { cloneState, type AcceptorPersistentState } from '@walkeeper/dataplane/consensus/state';
import type { Prng } from '@walkeeper/dataplane/common/prng';

export class SimDisk {
  control: AcceptorPersistentState;
  /** first LSN of the WAL, null while the timeline holds none */
  private base: Lsn | null = null;
  /** WAL bytes from base; the first `durableLen` are fsynced */
  private bytes: number[] = [];
  private durableLen = 0;
  /** ends (offsets) of records written since the last flush */
  private pendingEnds: number[] = [];

  constructor(control: AcceptorPersistentState) {
    this.control = cloneState(control);
  }

  get writeEnd(): Lsn {
    return this.base === null ? 0n : this.base + BigInt(this.bytes.length);
  }

  get durableEnd(): Lsn {
    return this.base === null ? 0n : this.base + BigInt(this.durableLen);
  }

  persist(state: AcceptorPersistentState): void {
    this.control = cloneState(state);
  }

  write(beginLsn: Lsn, data: Uint8Array): void {
    if (this.base === null || beginLsn !== this.writeEnd) {
      throw new Error(`disk write at ${formatLsn(beginLsn)} but WAL ends at ${formatLsn(this.writeEnd)}`);
    }
    for (const b of data) this.bytes.push(b);
    this.pendingEnds.push(this.bytes.length);
  }

  flush(): Lsn {
    this.durableLen = this.bytes.length;
    this.pendingEnds = [];
    return this.durableEnd;
  }

  /** Durable truncation; on an empty disk it initialises the WAL to start at lsn. */
  truncate(lsn: Lsn): void {
    if (this.base === null) {
      this.base = lsn;
      return;
    }
    const cut = Number(lsn - this.base);
    if (cut < 0 || cut > this.durableLen) {
      throw new Error(`truncation to ${formatLsn(lsn)} outside durable WAL ${formatLsn(this.base)}..${formatLsn(this.durableEnd)}`);
    }
    this.bytes.length = cut;
    this.durableLen = cut;
    this.pendingEnds = [];
  }

  /** Power loss: keeps the durable part plus a random number of whole unflushed records. */
  crash(rng: Prng): void {
    const keep = rng.int(0, this.pendingEnds.length);
    const len = keep === 0 ? this.durableLen : this.pendingEnds[keep - 1];
    this.bytes.length = len;
    this.durableLen = len;
    this.pendingEnds = [];
  }

  /** Byte at lsn, or undefined when not held. */
  byteAt(lsn: Lsn): number | undefined {
    if (this.base === null || lsn < this.base) return undefined;
    return this.bytes[Number(lsn - this.base)];
  }

  /** Durable bytes [from, to); throws when not all held. */
  read(from: Lsn, to: Lsn): number[] {
    if (this.base === null || from < this.base || to > this.durableEnd) {
      throw new Error(`read ${formatLsn(from)}..${formatLsn(to)} outside durable WAL`);
    }
    return this.bytes.slice(Number(from - this.base), Number(to - this.base));
  }
}
