// walkeeper-operator: watches Safekeeper and Tenant resources and reconciles them. Configuration by
// flags or environment; Kubernetes access from KUBECONFIG, ~/.kube/config or the in-cluster account.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { parseConfig } from './config.js';
import { reconcileSafekeeper } from './controllers/safekeeper/reconcile.js';
import { reconcileTenant } from './controllers/tenant/reconcile.js';
import { type ControllerContext, cryptoRandomHex, defaultControllerOptions } from './controllers/context.js';
import { KubeEventRecorder } from './runtime/events.js';
import { HttpKubeClient, loadKubeConfig } from './runtime/http-kube.js';
import { LeaderElector } from './runtime/leader.js';
import { createLogger } from './runtime/log.js';
import { Manager } from './runtime/manager.js';
import { OperatorMetrics, serveHealth, serveMetrics } from './runtime/metrics.js';

export async function main(argv = process.argv.slice(2), env = process.env): Promise<void> {
  const config = parseConfig(argv, env);
  const log = createLogger(config.logLevel);
  const client = new HttpKubeClient(loadKubeConfig());
  const metrics = new OperatorMetrics();
  const ctx: ControllerContext = {
    client,
    events: new KubeEventRecorder(client, log),
    log,
    now: () => new Date(),
    randomHex: cryptoRandomHex,
    options: { ...defaultControllerOptions, clusterDomain: config.clusterDomain, pollIntervalMs: config.resyncPeriodMs },
  };
  const manager = new Manager({
    client,
    log,
    metrics,
    namespace: config.namespace || undefined,
    concurrency: config.concurrency,
    // The informers' resync is only a safety net behind the reconcilers' own polling requeue.
    resyncMs: Math.max(config.resyncPeriodMs * 10, 60_000),
    reconcileSafekeeper: (key) => reconcileSafekeeper(ctx, key),
    reconcileTenant: (key) => reconcileTenant(ctx, key),
  });
  const identity = `${env.POD_NAME ?? hostname()}-${randomBytes(3).toString('hex')}`;
  const elector = config.leaderElect
    ? new LeaderElector(client, { namespace: config.leaseNamespace, name: config.leaseName, identity, leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, log })
    : undefined;

  let started = false;
  const servers = [await serveMetrics(metrics, config.metricsAddr), await serveHealth(config.healthAddr, () => !started || manager.hasSynced())];
  log.info({ config: { ...config }, identity }, 'walkeeper-operator starting');

  let stopping = false;
  const shutdown = async (signal: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(code || 1), 30_000);
    force.unref();
    if (started) await manager.stop();
    await elector?.release();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    log.info('stopped');
    process.exit(code);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  if (elector) {
    log.info({ lease: `${config.leaseNamespace}/${config.leaseName}` }, 'waiting for leadership');
    await elector.run(() => void shutdown('leadership lost', 1));
    metrics.isLeader.set(1);
  }
  if (stopping) return;
  started = true;
  manager.start();
  log.info({ namespace: config.namespace || '<all>' }, 'controllers started');
}

main().catch((e: unknown) => {
  console.error(JSON.stringify({ level: 'fatal', msg: 'walkeeper-operator failed', err: e instanceof Error ? e.stack : String(e) }));
  process.exit(1);
});
