// Operator configuration from flags and environment (see --help).
import { parseArgs } from 'node:util';

export const HELP = `walkeeper-operator [options]
  --namespace NS            namespace to watch; empty = all           (WATCH_NAMESPACE)
  --leader-elect BOOL       use a Lease for leader election (true)    (LEADER_ELECT)
  --lease-name NAME         Lease name (walkeeper-operator)           (LEASE_NAME)
  --lease-namespace NS      Lease namespace (POD_NAMESPACE, else the watched namespace, else default) (LEASE_NAMESPACE)
  --metrics-addr ADDR       /metrics listen address (0.0.0.0:8080)    (METRICS_ADDR)
  --health-addr ADDR        /healthz, /readyz address (0.0.0.0:8081)  (HEALTH_ADDR)
  --log-level LEVEL         trace|debug|info|warn|error (info)        (LOG_LEVEL)
  --cluster-domain DOMAIN   cluster DNS domain (cluster.local)        (CLUSTER_DOMAIN)
  --concurrency N           reconciles in flight per kind (2)         (CONCURRENCY)
  --resync-period DURATION  re-check every resource this often even without changes, e.g. 30s, 5m (30s)
                            (RESYNC_PERIOD)`;

export interface OperatorConfig {
  namespace: string;
  leaderElect: boolean;
  leaseName: string;
  leaseNamespace: string;
  metricsAddr: string;
  healthAddr: string;
  logLevel: string;
  clusterDomain: string;
  concurrency: number;
  /** How often every resource is reconciled again without a change (data-plane health polling). */
  resyncPeriodMs: number;
}

/** Parses a duration such as "500ms", "5s", "2m", "1h" (a bare number is seconds). */
export function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  if (!m) throw new Error(`invalid duration "${v}": expected e.g. 500ms, 30s, 5m`);
  const n = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's']!;
  if (n <= 0) throw new Error(`invalid duration "${v}": must be positive`);
  return n;
}

function bool(v: string | undefined, dflt: boolean): boolean {
  if (v === undefined || v === '') return dflt;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new Error(`invalid boolean "${v}"`);
}

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv): OperatorConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      namespace: { type: 'string' },
      'leader-elect': { type: 'string' },
      'lease-name': { type: 'string' },
      'lease-namespace': { type: 'string' },
      'metrics-addr': { type: 'string' },
      'health-addr': { type: 'string' },
      'log-level': { type: 'string' },
      'cluster-domain': { type: 'string' },
      concurrency: { type: 'string' },
      'resync-period': { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const namespace = values.namespace ?? env.WATCH_NAMESPACE ?? '';
  return {
    namespace,
    leaderElect: bool(values['leader-elect'] ?? env.LEADER_ELECT, true),
    leaseName: values['lease-name'] ?? env.LEASE_NAME ?? 'walkeeper-operator',
    leaseNamespace: values['lease-namespace'] ?? env.LEASE_NAMESPACE ?? env.POD_NAMESPACE ?? (namespace || 'default'),
    metricsAddr: values['metrics-addr'] ?? env.METRICS_ADDR ?? '0.0.0.0:8080',
    healthAddr: values['health-addr'] ?? env.HEALTH_ADDR ?? '0.0.0.0:8081',
    logLevel: values['log-level'] ?? env.LOG_LEVEL ?? 'info',
    clusterDomain: values['cluster-domain'] ?? env.CLUSTER_DOMAIN ?? 'cluster.local',
    concurrency: Number(values.concurrency ?? env.CONCURRENCY ?? 2),
    resyncPeriodMs: parseDuration(values['resync-period'] ?? env.RESYNC_PERIOD ?? '30s'),
  };
}

