// startHarness(): API server + controllers + pod runtime in this process.
import fs from 'node:fs';
import path from 'node:path';
import { Api } from './api.js';
import { Controllers } from './controllers.js';
import { resolveClusterName } from './dns.js';
import { NullRuntime, type PodRuntime } from './runtime.js';
import { ApiServer, type RequestCounts } from './server.js';
import { Store } from './store.js';

export interface HarnessOptions {
  /** TCP port on 127.0.0.1 (0 or omitted: any free port) */
  port?: number;
  /** directory for the kubeconfig, PVC directories, pod scratch dirs and the optional snapshot */
  stateDir: string;
  /** pod runtime; default a NullRuntime (pods Running, not Ready) */
  runtime?: PodRuntime;
  /** keep objects in stateDir/snapshot.json across restarts */
  snapshot?: boolean;
  /** run a TCP proxy on each Service's loopback clusterIP (default true) */
  serviceProxy?: boolean;
  log?: (msg: string) => void;
  /** watch events kept for resuming watches (older resourceVersions get 410 Expired) */
  watchHistory?: number;
}

export interface Harness {
  url: string;
  port: number;
  kubeconfigPath: string;
  api: Api;
  runtime: PodRuntime;
  /** requests served so far, by verb and resource */
  requests(): RequestCounts;
  resetRequests(): void;
  /** The address a cluster DNS name (`<svc>.<ns>.svc.cluster.local`, `<pod>.<svc>.<ns>.svc...`) stands for (dns.ts). */
  resolve(name: string): string | undefined;
  stop(): Promise<void>;
}

export function kubeconfigYaml(url: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: walkeeper-harness',
    '  cluster:',
    `    server: ${url}`,
    '    insecure-skip-tls-verify: true',
    'users:',
    '- name: harness-admin',
    '  user:',
    '    token: harness',
    'contexts:',
    '- name: walkeeper-harness',
    '  context:',
    '    cluster: walkeeper-harness',
    '    user: harness-admin',
    '    namespace: default',
    'current-context: walkeeper-harness',
    '',
  ].join('\n');
}

export async function startHarness(opts: HarnessOptions): Promise<Harness> {
  fs.mkdirSync(opts.stateDir, { recursive: true });
  const store = new Store(opts.watchHistory ?? 5000);
  const snapPath = path.join(opts.stateDir, 'snapshot.json');
  if (opts.snapshot && fs.existsSync(snapPath)) store.restore(JSON.parse(fs.readFileSync(snapPath, 'utf8')) as Parameters<Store['restore']>[0]);
  const api = new Api(store);
  const runtime: PodRuntime = opts.runtime ?? new NullRuntime();
  const controllers = new Controllers(api, runtime, opts.stateDir, opts.log ?? (() => {}), opts.serviceProxy ?? true);
  const server = new ApiServer(api, { podLogs: (ns, name, c) => runtime.logs?.(ns, name, c) ?? '' });
  let port: number;
  try {
    port = await server.listen(opts.port ?? 0);
  } catch (e) {
    await controllers.close();
    throw e;
  }
  const url = `http://127.0.0.1:${port}`;
  const kubeconfigPath = path.join(opts.stateDir, 'kubeconfig');
  fs.writeFileSync(kubeconfigPath, kubeconfigYaml(url));
  let snapTimer: NodeJS.Timeout | undefined;
  const saveSnapshot = () => {
    const tmp = `${snapPath}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(store.snapshot()));
    fs.renameSync(tmp, snapPath);
  };
  const unsub = opts.snapshot
    ? store.subscribe(() => {
        if (!snapTimer) snapTimer = setTimeout(() => { snapTimer = undefined; saveSnapshot(); }, 1000);
      })
    : () => {};
  let stopped = false;
  return {
    url,
    port,
    kubeconfigPath,
    api,
    runtime,
    requests: () => JSON.parse(JSON.stringify(server.counts)) as RequestCounts,
    resetRequests: () => server.resetCounts(),
    resolve: (name) => resolveClusterName(api, name),
    async stop() {
      if (stopped) return;
      stopped = true;
      unsub();
      if (snapTimer) clearTimeout(snapTimer);
      await server.close();
      await controllers.close();
      if (opts.snapshot) saveSnapshot();
    },
  };
}
