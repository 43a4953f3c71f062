// The proposer service: runs terms one after another. A term that ends because PostgreSQL
// or the quorum went away is followed by a new one (with backoff); a refusal is retried
// slowly in case the operator fixes the cause; a fenced proposer stops for good, because
// a newer proposer owns the timeline.
import { formatLsn } from '../common/lsn.js';
import type { Logger } from '../common/log.js';
import type { ProposerState, ProposerStatusJson } from '../api/index.js';
import { TermRun, type TermRunDeps } from './termRun.js';

const REFUSED_RETRY_MS = 10_000;

export class ProposerService {
  private run: TermRun | undefined;
  private stopped = false;
  private state: ProposerState = 'connecting';
  private reason: string | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly deps: TermRunDeps & { log: Logger }) {}

  start(): void {
    this.loop = this.runLoop();
  }

  private async runLoop(): Promise<void> {
    let backoff = 250;
    while (!this.stopped) {
      // a new term is live: a refusal (or fence) reported until now no longer describes it
      this.state = 'connecting';
      this.run = new TermRun(this.deps);
      const started = Date.now();
      const outcome = await this.run.run();
      if (this.stopped) break;
      this.reason = outcome.reason;
      if (outcome.kind === 'fenced') {
        this.state = 'fenced';
        this.deps.log.error({ reason: outcome.reason }, 'fenced by a newer proposer; not pushing WAL any more');
        return;
      }
      if (outcome.kind === 'refused') {
        this.state = 'refused';
        this.deps.log.error({ reason: outcome.reason }, 'refusing to push WAL');
        await this.sleep(REFUSED_RETRY_MS);
        continue;
      }
      this.state = 'connecting';
      this.deps.log.warn({ reason: outcome.reason }, 'term ended; starting a new term');
      if (Date.now() - started > 30_000) backoff = 250;
      await this.sleep(backoff);
      backoff = Math.min(backoff * 2, 5_000);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms).unref());
  }

  status(): ProposerStatusJson {
    const run = this.run;
    const core = run?.core;
    const st = core?.status();
    const live = run && this.state !== 'fenced' && this.state !== 'refused';
    const state = live ? run.state : this.state;
    const healthy = state === 'streaming' && (st?.quorumHealthy ?? false);
    return {
      tenant_id: this.deps.tenantId,
      timeline_id: this.deps.timelineId,
      state,
      term: (st?.term ?? 0n).toString(),
      commit_lsn: formatLsn(st?.commitLsn ?? 0n),
      term_start_lsn: formatLsn(st?.termStartLsn ?? 0n),
      quorum_healthy: healthy,
      reason: healthy
        ? undefined
        : state === 'promoting' && run?.stateDetail
          ? `failover: ${run.stateDetail}`
          : state === 'streaming' || !this.reason
            ? 'no majority of safekeepers is streaming'
            : this.reason,
      postgres: {
        connected: run?.source !== undefined,
        system_id: run?.source?.identity.systemId.toString(),
        ...(st ? { timeline: st.pgTimeline.tli, timeline_start_lsn: formatLsn(st.pgTimeline.startLsn) } : {}),
      },
      safekeepers: (run?.members ?? []).map((m, i) => ({
        address: m.target.address,
        state: st?.members[i]?.state ?? 'offline',
        flush_lsn: formatLsn(st?.members[i]?.flushLsn ?? 0n),
        ...(m.error ? { error: m.error } : {}),
      })),
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.run?.stop('shutting down');
    await this.loop;
  }
}
