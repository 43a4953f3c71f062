// Shared steps of the end-to-end scenarios: the environment (harness + process runtime + chart
// CRDs/RBAC + real operator), kubectl JSON reads, the tenant's credentials and a node-postgres
// client through the tenant's Service, and failure logs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { type E2eEnv, startE2eEnv, waitFor } from '../../src/runtime/index.js';

export const PG_BIN = '/usr/lib/postgresql/15/bin';

export interface Obj {
  metadata: { name: string; namespace?: string; uid?: string; finalizers?: string[]; deletionTimestamp?: string; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  data?: Record<string, string>;
}
export interface PodObj extends Obj {
  status: { podIP?: string; phase?: string; conditions?: { type: string; status: string }[] };
}
export interface Condition {
  type: string;
  status: string;
  reason: string;
  message?: string;
}
export interface TenantStatus {
  tenantId?: string;
  timelineId?: string;
  commitLsn?: string;
  quorum?: { members: number; caughtUp: number; healthy: boolean };
  members?: { name: string; registered: boolean; flushLsn?: string; lagBytes?: number }[];
  compute?: { ready: boolean; proposer?: string };
  recoveredFrom?: { tenant: string; tenantId: string; timelineId: string };
  conditions?: Condition[];
}
export interface Credentials {
  username: string;
  password: string;
  host: string;
  port: string;
  dbname: string;
  uri: string;
}

export const safekeeperYaml = (name: string, replicas = 3, extra = '') => `apiVersion: walkeeper.io/v1alpha1
kind: Safekeeper
metadata:
  name: ${name}
spec:
  replicas: ${replicas}
  image: ghcr.io/walkeeper/walkeeper:dev
  storage:
    size: 1Gi
${extra}`;

/** A Tenant with compute; `extra` is more of its spec, as YAML indented by two spaces. */
export const tenantYaml = (name: string, safekeeper = 'main', extra = '') => `apiVersion: walkeeper.io/v1alpha1
kind: Tenant
metadata:
  name: ${name}
spec:
  safekeeperRef:
    name: ${safekeeper}
  compute:
    enabled: true
    image: postgres:15
    storage:
      size: 1Gi
${extra}`;

export const condition = (s: { conditions?: Condition[] } | undefined, type: string) => s?.conditions?.find((c) => c.type === type);

/** One scenario's environment, with the helpers its steps share. */
export class Scenario {
  dir = '';
  env!: E2eEnv;
  failed = false;
  private readonly t0 = Date.now();

  constructor(private readonly name: string) {}

  log = (msg: string) => {
    if (process.env.E2E_VERBOSE) console.log(`[${((Date.now() - this.t0) / 1000).toFixed(1)}s] ${msg}`);
  };

  async start(): Promise<void> {
    // Short: PostgreSQL's Unix socket path lives under it (at most 107 bytes).
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `wk-${this.name}-`));
    this.env = await startE2eEnv({ stateDir: this.dir, resyncPeriod: '2s', log: this.log });
  }

  async stop(): Promise<void> {
    if (this.env && this.failed) {
      console.log(`operator log (tail):\n${fs.readFileSync(this.env.operatorLog, 'utf8').slice(-5000)}`);
      for (const pod of this.env.runtime.running()) {
        const [ns, name] = pod.split('/') as [string, string];
        for (const c of ['postgres', 'proposer', 'safekeeper']) {
          const l = this.env.runtime.logs(ns, name, c);
          if (l && (name.includes('compute') ? true : c === 'safekeeper')) console.log(`--- ${pod}/${c} (tail):\n${l.slice(-2500)}`);
        }
      }
    }
    await this.env?.stop();
    if (this.dir && !this.failed) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Wraps a test body so a failure keeps the state directory and prints the logs. */
  step<T>(f: () => Promise<T>): () => Promise<T> {
    return async () => {
      try {
        return await f();
      } catch (e) {
        this.failed = true;
        throw e;
      }
    };
  }

  async getJson<T = Obj>(...args: string[]): Promise<T> {
    return JSON.parse(await this.env.kubectlOk(['get', ...args, '-o', 'json'])) as T;
  }

  async tenantStatus(name: string): Promise<TenantStatus> {
    return ((await this.getJson('tenant', name)).status ?? {}) as TenantStatus;
  }

  async safekeeperPods(sk = 'main'): Promise<PodObj[]> {
    const list = await this.getJson<{ items: PodObj[] }>('pods', '-l', `walkeeper.io/safekeeper=${sk}`);
    return list.items.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  }

  async credentials(tenant: string): Promise<Credentials> {
    const secret = await this.getJson('secret', `${tenant}-credentials`);
    return Object.fromEntries(Object.entries(secret.data!).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')])) as unknown as Credentials;
  }

  /** The tenant's Service address (its ClusterIP), as an application in the cluster reaches it. */
  async serviceIP(tenant: string): Promise<string> {
    const svc = await this.getJson<Obj & { spec: { clusterIP: string } }>('service', `${tenant}-compute`);
    return svc.spec.clusterIP;
  }

  /** A connected node-postgres client through the tenant's Service with the Secret's credentials. */
  async connect(tenant: string, opts: { password?: string } = {}): Promise<pg.Client> {
    const c = await this.credentials(tenant);
    const client = new pg.Client({ host: await this.serviceIP(tenant), port: Number(c.port), user: c.username, password: opts.password ?? c.password, database: c.dbname, connectionTimeoutMillis: 5000 });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  }

  async applyOk(yaml: string): Promise<void> {
    const r = await this.env.apply(yaml);
    if (r.code !== 0) throw new Error(`kubectl apply failed: ${r.stderr}`);
  }

  async waitTenantReady(name: string, timeoutS = 120): Promise<void> {
    const r = await this.env.kubectl(['wait', '--for=condition=Ready', `tenant/${name}`, `--timeout=${timeoutS}s`], { timeoutMs: (timeoutS + 10) * 1000 });
    if (r.code !== 0) {
      const st = await this.tenantStatus(name).catch(() => undefined);
      throw new Error(`tenant ${name} not Ready: ${r.stderr}\nstatus: ${JSON.stringify(st)}`);
    }
  }

  /** The directory of a PVC on this machine (the harness's stand-in for a persistent volume). */
  async pvcDir(claim: string): Promise<string> {
    const pvc = await this.getJson('pvc', claim);
    return pvc.metadata.annotations!['harness.walkeeper.io/host-path']!;
  }
}

export { waitFor };
