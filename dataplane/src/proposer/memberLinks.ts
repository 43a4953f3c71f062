// The proposer's links to the safekeepers of one term: each member is kept connected
// (START_WAL_PUSH) for the life of the term, reconnecting with backoff, and the links are the
// proposer node's transport. What a member last failed with is kept for the status endpoint.
import type { AcceptorMessage } from '../consensus/messages.js';
import type { Logger } from '../common/log.js';
import { SafekeeperLink, type LinkTarget } from './safekeeperLink.js';
import type { MemberTransport } from './proposerNode.js';

const FIRST_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 5_000;

export interface Member {
  readonly target: LinkTarget;
  /** why the last connection failed or was dropped; cleared when it connects again */
  error: string | undefined;
}

export interface MemberLinkEvents {
  connected(member: number): void;
  disconnected(member: number): void;
  received(member: number, msg: AcceptorMessage): void;
}

interface MemberEntry extends Member {
  link: SafekeeperLink | undefined;
}

export class MemberLinks {
  private readonly entries: MemberEntry[];

  constructor(
    targets: readonly LinkTarget[],
    private readonly log: Logger,
    /** the term is over: stop reconnecting */
    private readonly isFinished: () => boolean,
  ) {
    this.entries = targets.map((target) => ({ target, link: undefined, error: undefined }));
  }

  get members(): readonly Member[] {
    return this.entries;
  }

  /** Starts one connection loop per member; each ends with the term. */
  start(events: MemberLinkEvents): void {
    this.entries.forEach((_, i) => void this.memberLoop(i, events));
  }

  /** The links as the node's transport: a full socket makes the node wait for its drain. */
  transport(): MemberTransport {
    return {
      send: (i, msg) => {
        const link = this.entries[i].link;
        if (link && !link.send(msg)) return link.drain();
      },
      close: (i) => this.entries[i].link?.close(),
    };
  }

  /** The node dropped a member (silent too long, refused); its loop reconnects. */
  dropped(i: number, reason: string): void {
    const m = this.entries[i];
    m.error = reason;
    this.log.warn({ safekeeper: m.target.address, err: reason }, 'dropping safekeeper connection; it reconnects');
  }

  closeAll(): void {
    for (const m of this.entries) m.link?.close();
  }

  private async memberLoop(i: number, events: MemberLinkEvents): Promise<void> {
    const m = this.entries[i];
    let backoff = FIRST_BACKOFF_MS;
    while (!this.isFinished()) {
      try {
        const { link, ended } = await SafekeeperLink.open(m.target, (msg) => events.received(i, msg));
        if (this.isFinished()) {
          link.close();
          return;
        }
        m.link = link;
        m.error = undefined;
        backoff = FIRST_BACKOFF_MS;
        events.connected(i);
        await ended;
      } catch (err) {
        m.error = (err as Error).message;
        if (!this.isFinished()) this.log.warn({ safekeeper: m.target.address, err: m.error }, 'safekeeper connection failed');
      }
      m.link?.close();
      m.link = undefined;
      if (this.isFinished()) return;
      events.disconnected(i);
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  }
}
