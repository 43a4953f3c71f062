// WAL a member lacks below what the proposer buffers, fetched from a peer safekeeper that
// is in our term (the donor holds everything up to the term start). Fetched in large
// slices and handed out in AppendRequest-sized pieces.
import { readWalFromPeer, type LinkTarget } from './safekeeperLink.js';
import { formatLsn, type Lsn } from '../common/lsn.js';

const SLICE_BYTES = 8 * 1024 * 1024;

export class PeerReader {
  private cacheStart: Lsn = 0n;
  private cache: Buffer = Buffer.alloc(0);

  constructor(
    private readonly pickPeer: () => LinkTarget | undefined,
    private readonly term: bigint,
  ) {}

  /** Bytes [from, until) from a peer; until must not exceed what the peer has flushed in our term. */
  async read(from: Lsn, until: Lsn): Promise<Buffer> {
    const cacheEnd = this.cacheStart + BigInt(this.cache.length);
    if (from < this.cacheStart || until > cacheEnd) {
      const peer = this.pickPeer();
      if (!peer) throw new Error(`no safekeeper in our term can serve WAL at ${formatLsn(from)} for catch-up`);
      const sliceEnd = from + BigInt(SLICE_BYTES) > until ? from + BigInt(SLICE_BYTES) : until;
      const parts: Buffer[] = [];
      const end = await this.fetch(peer, from, sliceEnd, until, parts);
      this.cacheStart = from;
      this.cache = Buffer.concat(parts);
      if (end < until) throw new Error(`safekeeper ${peer.address} has WAL only up to ${formatLsn(end)}, catch-up needs ${formatLsn(until)}`);
    }
    const off = Number(from - this.cacheStart);
    return this.cache.subarray(off, off + Number(until - from));
  }

  /** Reads up to sliceEnd, but settles for `needed` if the peer has no more. */
  private async fetch(peer: LinkTarget, from: Lsn, sliceEnd: Lsn, needed: Lsn, parts: Buffer[]): Promise<Lsn> {
    let pos = from;
    try {
      pos = await readWalFromPeer(peer, this.term, from, sliceEnd, (start, data) => {
        parts.push(Buffer.from(data));
        pos = start + BigInt(data.length);
      });
    } catch (err) {
      if (pos < needed) throw err;
    }
    return pos;
  }
}
