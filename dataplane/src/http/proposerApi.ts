// The proposer's HTTP API: /v1/status (term, commit LSN, each safekeeper's state and flush
// LSN, quorum health), /metrics, /healthz, /readyz.
import type { Express } from 'express';
import { Registry, Gauge, Counter, collectDefaultMetrics } from 'prom-client';
import { createApp, finishApp } from './server.js';
import type { Logger } from '../common/log.js';

export interface ProposerStatus {
  tenant_id: string;
  timeline_id: string;
  /** connecting | electing | promoting | streaming | fenced | refused */
  state: string;
  term: string;
  commit_lsn: string;
  term_start_lsn: string;
  quorum_healthy: boolean;
  reason?: string;
  postgres: { connected: boolean; flush_lsn?: string; system_id?: string; timeline?: number; timeline_start_lsn?: string };
  safekeepers: { address: string; state: string; flush_lsn: string; error?: string }[];
}

export class ProposerMetrics {
  readonly registry = new Registry();
  readonly walReceived = new Counter({ name: 'walkeeper_proposer_wal_received_bytes_total', help: 'WAL bytes received from PostgreSQL', registers: [this.registry] });
  readonly walSent = new Counter({ name: 'walkeeper_proposer_wal_sent_bytes_total', help: 'WAL bytes sent to safekeepers (all members)', registers: [this.registry] });
  readonly elections = new Counter({ name: 'walkeeper_proposer_elections_total', help: 'elections won', registers: [this.registry] });
  readonly commitLsn = new Gauge({ name: 'walkeeper_proposer_commit_lsn', help: 'quorum commit LSN (bytes)', registers: [this.registry] });
  readonly term = new Gauge({ name: 'walkeeper_proposer_term', help: 'current term', registers: [this.registry] });
  readonly quorumHealthy = new Gauge({ name: 'walkeeper_proposer_quorum_healthy', help: '1 when a majority of safekeepers is streaming', registers: [this.registry] });
  readonly connectedSafekeepers = new Gauge({ name: 'walkeeper_proposer_connected_safekeepers', help: 'safekeepers in streaming state', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}

export function proposerApp(status: () => ProposerStatus, metrics: ProposerMetrics, log: Logger): Express {
  const app = createApp();
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    const s = status();
    if (s.quorum_healthy) res.json({ status: 'ready' });
    else res.status(503).json({ error: `not ready: ${s.reason ?? s.state}`, code: 'quorum_unavailable' });
  });
  app.get('/v1/status', (_req, res) => {
    res.json(status());
  });
  app.get('/metrics', async (_req, res) => {
    res.set('content-type', metrics.registry.contentType);
    res.send(await metrics.registry.metrics());
  });
  finishApp(app, log);
  return app;
}
