// The operator's Prometheus metrics and its two small HTTP endpoints: :8080 /metrics and
// :8081 /healthz, /readyz.
import http from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconcileTotal = new Counter({ name: 'walkeeper_operator_reconcile_total', help: 'Reconciles by kind and result.', labelNames: ['kind', 'result'], registers: [this.registry] });
  readonly reconcileErrors = new Counter({ name: 'walkeeper_operator_reconcile_errors_total', help: 'Failed reconciles by kind.', labelNames: ['kind'], registers: [this.registry] });
  readonly reconcileDuration = new Histogram({
    name: 'walkeeper_operator_reconcile_duration_seconds',
    help: 'Reconcile duration by kind.',
    labelNames: ['kind'],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({ name: 'walkeeper_operator_queue_depth', help: 'Keys waiting in the work queue by kind.', labelNames: ['kind'], registers: [this.registry] });
  readonly isLeader = new Gauge({ name: 'walkeeper_operator_leader', help: '1 when this replica holds the leader lease.', registers: [this.registry] });

  constructor(defaultMetrics = true) {
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry });
  }

  observe(kind: string, outcome: 'success' | 'error', durationMs: number): void {
    this.reconcileTotal.inc({ kind, result: outcome });
    if (outcome === 'error') this.reconcileErrors.inc({ kind });
    this.reconcileDuration.observe({ kind }, durationMs / 1000);
  }
}

export function parseAddress(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const host = i > 0 ? addr.slice(0, i).replace(/^\[|\]$/g, '') : '0.0.0.0';
  const port = Number(i >= 0 ? addr.slice(i + 1) : addr);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid address "${addr}": expected HOST:PORT`);
  return { host, port };
}

async function listen(server: http.Server, addr: string): Promise<http.Server> {
  const { host, port } = parseAddress(addr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

export function serveMetrics(metrics: OperatorMetrics, addr: string): Promise<http.Server> {
  return listen(
    http.createServer((req, res) => {
      if (req.url === '/metrics') {
        metrics.registry
          .metrics()
          .then((text) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text))
          .catch((e: unknown) => res.writeHead(500).end(String(e)));
      } else res.writeHead(404).end('not found\n');
    }),
    addr,
  );
}

export function serveHealth(addr: string, isReady: () => boolean): Promise<http.Server> {
  return listen(
    http.createServer((req, res) => {
      if (req.url === '/healthz') res.writeHead(200).end('ok\n');
      else if (req.url === '/readyz') {
        const ok = isReady();
        res.writeHead(ok ? 200 : 503).end(ok ? 'ready\n' : 'not ready\n');
      } else res.writeHead(404).end('not found\n');
    }),
    addr,
  );
}
