// Reads chosen members out of a tar stream as it flows past, without buffering the rest:
// pg_basebackup's backup_label (start LSN and timeline) and backup_manifest (end LSN), which
// with `-X none -D -` it reports nowhere else.
const BLOCK = 512;

export class TarMemberCapture {
  private readonly captured = new Map<string, Buffer[]>();
  private header = Buffer.alloc(0);
  /** bytes of the current member's data (padded to a block) still to pass */
  private remaining = 0;
  private dataLeft = 0;
  private current: Buffer[] | undefined;

  constructor(private readonly names: ReadonlySet<string>) {}

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - off);
        const useful = Math.min(n, this.dataLeft);
        if (this.current && useful > 0) this.current.push(Buffer.from(chunk.subarray(off, off + useful)));
        this.dataLeft -= useful;
        this.remaining -= n;
        off += n;
        continue;
      }
      const need = BLOCK - this.header.length;
      this.header = Buffer.concat([this.header, chunk.subarray(off, off + need)]);
      off += Math.min(need, chunk.length - off);
      if (this.header.length < BLOCK) return;
      const h = this.header;
      this.header = Buffer.alloc(0);
      if (h.every((b) => b === 0)) continue; // end-of-archive blocks
      const name = cString(h.subarray(0, 100));
      const prefix = cString(h.subarray(345, 500));
      const full = prefix ? `${prefix}/${name}` : name;
      const size = parseInt(cString(h.subarray(124, 136)).trim() || '0', 8);
      this.dataLeft = size;
      this.remaining = Math.ceil(size / BLOCK) * BLOCK;
      this.current = this.names.has(full) ? [] : undefined;
      if (this.current) this.captured.set(full, this.current);
    }
  }

  get(name: string): string | undefined {
    const parts = this.captured.get(name);
    return parts ? Buffer.concat(parts).toString('utf8') : undefined;
  }
}

function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.subarray(0, nul < 0 ? b.length : nul).toString('utf8');
}
