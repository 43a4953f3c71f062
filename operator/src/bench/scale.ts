// Scale benchmark: N Tenants (compute disabled) reconciled to Registered by the real operator on
// 3 real safekeeper processes, through the local API harness. Prints time to all-Registered, API
// requests per Tenant and the requests of one idle resync (writes must be 0; exit code 1 otherwise).
//   node operator/dist/src/bench/scale.js [--tenants 500] [--resync-period 10s] [--concurrency 4]
// The harness is test infrastructure under e2e/; it is loaded at run time from its build output so
// the operator's own build never depends on it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { parseDuration } from '../config.js';

interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}
interface OperatorEnv {
  harness: { url: string; resetRequests(): void };
  operatorLog: string;
  kubectlOk(args: string[], opts?: { timeoutMs?: number }): Promise<string>;
  apply(yaml: string): Promise<KubectlResult>;
  operatorRequests(): Record<string, number>;
  operatorWrites(opts?: { includeLeases?: boolean }): Record<string, number>;
  stop(): Promise<void>;
}
interface RuntimeModule {
  startOperatorEnv(opts: { stateDir: string; resyncPeriod?: string; concurrency?: number; logLevel?: string }): Promise<OperatorEnv>;
  waitFor<T>(what: string, timeoutMs: number, f: () => Promise<T | undefined | false>, everyMs?: number): Promise<T>;
}
interface TenantItem {
  metadata: { name: string };
  status?: { tenantId?: string; conditions?: { type: string; status: string }[] };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
const isRead = (k: string) => k.startsWith('get ') || k.startsWith('list ') || k.startsWith('watch ');

async function loadRuntime(): Promise<RuntimeModule> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.resolve(here, '../../../../e2e/dist/src/runtime/index.js'), path.resolve(here, '../../../e2e/dist/src/runtime/index.js')];
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new Error(`the e2e harness is not built (looked for ${candidates.join(', ')}); run npm run build`);
  return (await import(found)) as RuntimeModule;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tenants: { type: 'string', default: '500' },
      'resync-period': { type: 'string', default: '10s' },
      concurrency: { type: 'string', default: '4' },
      keep: { type: 'boolean', default: false },
    },
  });
  const n = Number(values.tenants);
  const resync = values['resync-period']!;
  const resyncMs = parseDuration(resync);
  const concurrency = Number(values.concurrency);
  const rt = await loadRuntime();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walkeeper-operator-bench-'));
  const log = (m: string) => console.error(`[scale] ${m}`);
  log(`state in ${dir}; ${n} tenants, resync ${resync}, concurrency ${concurrency}`);
  const env = await rt.startOperatorEnv({ stateDir: dir, resyncPeriod: resync, concurrency });
  let ok = false;
  try {
    const r = await env.apply(`apiVersion: walkeeper.io/v1alpha1
kind: Safekeeper
metadata:
  name: main
spec:
  replicas: 3
  image: ghcr.io/walkeeper/walkeeper:dev
  storage:
    size: 1Gi
`);
    if (r.code !== 0) throw new Error(`kubectl apply Safekeeper: ${r.stderr}`);
    await env.kubectlOk(['wait', '--for=condition=Available', 'safekeeper/main', '--timeout=120s'], { timeoutMs: 130_000 });
    log('safekeeper cluster available');

    const listTenants = async (): Promise<TenantItem[]> => {
      const res = await fetch(`${env.harness.url}/apis/walkeeper.io/v1alpha1/namespaces/default/tenants`, { headers: { 'User-Agent': 'scale-bench/1' } });
      return ((await res.json()) as { items: TenantItem[] }).items;
    };
    const registered = (t: TenantItem) => t.status?.conditions?.some((c) => c.type === 'Registered' && c.status === 'True') ?? false;

    const docs = Array.from({ length: n }, (_, i) => `apiVersion: walkeeper.io/v1alpha1
kind: Tenant
metadata:
  name: t-${String(i).padStart(4, '0')}
spec:
  safekeeperRef:
    name: main
  compute:
    enabled: false
`).join('---\n');
    await sleep(1000);
    env.harness.resetRequests();
    const t0 = Date.now();
    const applied = await env.apply(docs);
    if (applied.code !== 0) throw new Error(`kubectl apply tenants: ${applied.stderr}`);
    const applyMs = Date.now() - t0;
    log(`kubectl apply of ${n} tenants took ${applyMs} ms`);
    let lastLog = Date.now();
    await rt.waitFor(`${n} tenants Registered`, Math.max(120_000, n * 1000), async () => {
      const done = (await listTenants()).filter(registered).length;
      if (Date.now() - lastLog > 5000) {
        log(`${done}/${n} registered after ${((Date.now() - t0) / 1000).toFixed(0)} s`);
        lastLog = Date.now();
      }
      return done === n;
    }, 250);
    const registeredMs = Date.now() - t0;
    const creation = env.operatorRequests();
    log(`all ${n} registered after ${registeredMs} ms`);

    // Every member holds every tenant.
    const pods = JSON.parse(await env.kubectlOk(['get', 'pods', '-l', 'walkeeper.io/safekeeper=main', '-o', 'json'])) as { items: { status: { podIP: string } }[] };
    const ids = new Set((await listTenants()).map((t) => t.status?.tenantId));
    const perMember: number[] = [];
    for (const p of pods.items) {
      const res = await fetch(`http://${p.status.podIP}:7676/v1/tenants`);
      const on = new Set(((await res.json()) as { tenants: { tenant_id: string }[] }).tenants.map((t) => t.tenant_id));
      perMember.push([...ids].filter((id) => id && on.has(id)).length);
    }

    // Idle: wait until a whole resync period passes without a write, then measure one more.
    await rt.waitFor('a quiet resync period', Math.max(120_000, resyncMs * 10), async () => {
      env.harness.resetRequests();
      await sleep(resyncMs + 1000);
      return Object.keys(env.operatorWrites()).length === 0;
    }, 0);
    env.harness.resetRequests();
    const idleWindowMs = resyncMs + 1000;
    await sleep(idleWindowMs);
    const idle = env.operatorRequests();
    const idleWrites = env.operatorWrites();
    const leaseWrites = sum(env.operatorWrites({ includeLeases: true })) - sum(idleWrites);

    const rows: [string, string][] = [
      ['tenants', String(n)],
      ['safekeepers (real processes)', `3 (tenants on each: ${perMember.join(', ')})`],
      ['kubectl apply of all tenants', `${(applyMs / 1000).toFixed(1)} s`],
      ['time to all Registered (from apply start)', `${(registeredMs / 1000).toFixed(1)} s`],
      ['operator API requests until all Registered', String(sum(creation))],
      ['  per tenant', (sum(creation) / n).toFixed(1)],
      ['  of which writes', String(sum(Object.fromEntries(Object.entries(creation).filter(([k]) => !isRead(k)))))],
      [`idle resync window (${(idleWindowMs / 1000).toFixed(0)} s, resync ${resync})`, `${sum(idle)} requests, ${(sum(idle) / n).toFixed(1)} per tenant`],
      ['  writes (excluding Lease renewals)', String(sum(idleWrites))],
      ['  Lease renewals', String(leaseWrites)],
    ];
    const w = Math.max(...rows.map(([k]) => k.length));
    console.log('\noperator scale benchmark');
    for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v}`);
    console.log(`  creation requests by verb: ${JSON.stringify(creation)}`);
    console.log(`  idle requests by verb:     ${JSON.stringify(idle)}`);
    if (sum(idleWrites) > 0) {
      console.log(`FAIL: the operator wrote during an idle resync: ${JSON.stringify(idleWrites)}`);
      process.exitCode = 1;
    }
    if (perMember.some((c) => c !== n)) {
      console.log(`FAIL: not every safekeeper holds every tenant (${perMember.join(', ')} of ${n})`);
      process.exitCode = 1;
    }
    ok = process.exitCode === undefined || process.exitCode === 0;
  } finally {
    if (!ok) console.error(`operator log tail:\n${fs.readFileSync(env.operatorLog, 'utf8').slice(-4000)}`);
    await env.stop();
    if (ok && !values.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(`scale benchmark failed: ${e instanceof Error ? e.stack : String(e)}`);
  process.exit(1);
});
