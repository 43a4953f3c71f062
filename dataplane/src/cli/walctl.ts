// walctl: the local cluster on one machine (init/start/stop/status, one safekeeper at a
// time) and the admin commands that talk to safekeepers' HTTP APIs (tenant, timeline).
import { Command } from 'commander';
import { resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { LocalCluster, httpGet, httpRequest, type LocalClusterConfig } from '../local/cluster.js';
import { flag, parseIntFlag } from './flags.js';
import { table } from './table.js';
import { newId, assertValidId } from '../common/ids.js';
import { parseLsn } from '../common/lsn.js';
import { signToken, type Claims } from '../auth/jwt.js';
import { backupCluster, openClusterStore, restoreCluster, restoreDataDir } from '../local/backupLocal.js';
import { deleteBackup, listBackups } from '../backup/catalog.js';
import { parseTarget } from './backupCommands.js';
import { parseSizeFlag } from './flags.js';
import type { ApiErrorJson, TenantCreateJson, TenantListJson, TimelineCreateJson, TimelineStatusJson } from '../api/index.js';

const program = new Command('walctl')
  .description('manage a local walkeeper cluster and talk to safekeepers')
  .addOption(flag('--dir <path>', 'directory of the local cluster', '.walkeeper'))
  .addOption(flag('--safekeeper-urls <urls>', 'comma-separated safekeeper HTTP URLs (default: the local cluster\'s)'))
  .addOption(flag('--token <jwt>', 'bearer token for safekeepers that run with auth'))
  .showHelpAfterError();

interface GlobalOpts {
  dir: string;
  safekeeperUrls?: string;
  token?: string;
}

const globals = (): GlobalOpts => program.opts<GlobalOpts>();
const baseDir = () => resolve(globals().dir);
const progress = (msg: string) => process.stderr.write(`walctl: ${msg}\n`);

function authHeaders(): Record<string, string> {
  const token = globals().token;
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** The safekeepers to talk to: explicit URLs, or every member of the local cluster. */
function safekeeperUrls(): string[] {
  const explicit = globals().safekeeperUrls;
  if (explicit) return explicit.split(',').map((u) => u.trim().replace(/\/$/, '')).filter(Boolean);
  const cluster = LocalCluster.load(baseDir());
  return cluster.config.safekeepers.map((s) => cluster.httpUrl(s.id));
}

function localConfig(): LocalClusterConfig | undefined {
  try {
    return LocalCluster.load(baseDir()).config;
  } catch {
    return undefined;
  }
}

async function api(method: string, url: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const r = await httpRequest(method, url, body, 5000, authHeaders());
  if (r.status === 0) throw new Error(`cannot reach ${url}: ${r.text}`);
  let json: unknown;
  try {
    json = JSON.parse(r.text);
  } catch {
    json = { error: r.text };
  }
  return { status: r.status, json };
}

const errorOf = (json: unknown) => (json as Partial<ApiErrorJson>).error ?? JSON.stringify(json);

program
  .command('init')
  .description('create .walkeeper/config.json with a fresh default tenant and timeline')
  .addOption(flag('--port-base <n>', 'first of the loopback ports the cluster uses', '15400'))
  .addOption(flag('--safekeepers <n>', 'number of safekeepers (odd)', '3'))
  .action((opts: { portBase: string; safekeepers: string }) => {
    const n = parseIntFlag('safekeepers', opts.safekeepers, 1, 7);
    if (n % 2 === 0) throw new Error(`invalid --safekeepers ${n}: use an odd number so a majority is well defined`);
    const { cluster, created } = LocalCluster.init(baseDir(), { portBase: parseIntFlag('port-base', opts.portBase, 1024, 65000), safekeepers: n });
    console.log(`${created ? 'initialized' : 'already initialized'} ${LocalCluster.configPath(cluster.baseDir)}`);
    console.log(`default tenant:   ${cluster.config.tenant_id}`);
    console.log(`default timeline: ${cluster.config.timeline_id}`);
  });

program
  .command('start')
  .description('start the local cluster: safekeepers, PostgreSQL and its proposer')
  .action(async () => {
    const { cluster, created } = LocalCluster.init(baseDir());
    if (created) progress(`initialized ${cluster.baseDir} with tenant ${cluster.config.tenant_id}`);
    await cluster.start(progress);
    console.log(`walkeeper is running. Connect with:\n  psql "${cluster.connString}"`);
  });

program
  .command('stop')
  .description('stop every process of the local cluster (data is kept)')
  .action(async () => {
    await LocalCluster.load(baseDir()).stop(progress);
    console.log('stopped');
  });

program
  .command('status')
  .description('show every process, the term, commit LSN and each safekeeper\'s flush LSN and lag')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const status = await clusterStatus(LocalCluster.load(baseDir()));
    if (opts.json) {
      console.log(JSON.stringify(status, null, 2));
      return;
    }
    console.log(table(['COMPONENT', 'PID', 'ADDRESS', 'STATE', 'FLUSH LSN', 'LAG', 'BACKUP LSN', 'OFFLOAD'], status.components.map((c) => [c.name, c.pid ?? '-', c.address, c.state, c.flush_lsn ?? '-', c.lag_bytes ?? '-', c.backup_lsn ?? '-', c.offload ?? '-'])));
    console.log('');
    console.log(`tenant ${status.tenant_id} timeline ${status.timeline_id}`);
    console.log(`term ${status.term ?? '-'}  commit LSN ${status.commit_lsn ?? '-'}  quorum ${status.quorum_healthy ? 'healthy' : 'NOT healthy'}${status.reason ? ` (${status.reason})` : ''}`);
    console.log(`postgres: ${status.postgres.connstr}`);
    console.log(`remote storage: ${status.remote_storage ?? "off"}`);
  });

const sk = program.command('safekeeper').description('stop or start one safekeeper of the local cluster');
for (const verb of ['start', 'stop', 'kill'] as const) {
  sk.command(`${verb} <id>`)
    .description(verb === 'kill' ? 'kill -9 one safekeeper' : `${verb} one safekeeper`)
    .action(async (idText: string) => {
      const cluster = LocalCluster.load(baseDir());
      const id = parseIntFlag('id', idText, 1, 99);
      cluster.safekeeperAddr(id);
      if (verb === 'start') await cluster.startSafekeeper(id);
      else if (verb === 'stop') await cluster.stopSafekeeper(id);
      else await cluster.killSafekeeper(id);
      console.log(`safekeeper ${id} ${verb === 'start' ? 'started' : verb === 'stop' ? 'stopped' : 'killed'}`);
    });
}

const tenant = program.command('tenant').description('create, list or delete tenants on the safekeepers');
tenant
  .command('create')
  .description('create a tenant (and a first timeline) on every safekeeper')
  .option('--tenant-id <id>', '32 hex characters (default: random)')
  .option('--timeline-id <id>', '32 hex characters (default: random)')
  .action(async (opts: { tenantId?: string; timelineId?: string }) => {
    const tenantId = opts.tenantId ?? newId();
    const timelineId = opts.timelineId ?? newId();
    assertValidId('tenant_id', tenantId);
    assertValidId('timeline_id', timelineId);
    for (const url of safekeeperUrls()) {
      const t = await api('POST', `${url}/v1/tenants`, { tenant_id: tenantId } satisfies TenantCreateJson);
      if (t.status !== 201 && t.status !== 409) throw new Error(`${url}: ${errorOf(t.json)}`);
      const l = await api('POST', `${url}/v1/tenants/${tenantId}/timelines`, { timeline_id: timelineId } satisfies TimelineCreateJson);
      if (l.status !== 201 && l.status !== 409) throw new Error(`${url}: ${errorOf(l.json)}`);
    }
    console.log(table(['TENANT', 'TIMELINE'], [[tenantId, timelineId]]));
  });
tenant
  .command('list')
  .description('list tenants known to the safekeepers')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const seen = new Map<string, Set<string>>();
    for (const url of safekeeperUrls()) {
      const r = await api('GET', `${url}/v1/tenants`);
      if (r.status !== 200) throw new Error(`${url}: ${errorOf(r.json)}`);
      for (const t of (r.json as TenantListJson).tenants) {
        if (!seen.has(t.tenant_id)) seen.set(t.tenant_id, new Set());
        seen.get(t.tenant_id)!.add(url);
      }
    }
    const rows = [...seen.entries()].map(([id, urls]) => ({ tenant_id: id, safekeepers: urls.size }));
    if (opts.json) console.log(JSON.stringify(rows, null, 2));
    else console.log(table(['TENANT', 'SAFEKEEPERS'], rows.map((r) => [r.tenant_id, r.safekeepers])));
  });
tenant
  .command('delete <tenant_id>')
  .description('delete a tenant and all its WAL from every safekeeper')
  .action(async (tenantId: string) => {
    assertValidId('tenant_id', tenantId);
    for (const url of safekeeperUrls()) {
      const r = await api('DELETE', `${url}/v1/tenants/${tenantId}`);
      if (r.status !== 200 && r.status !== 404) throw new Error(`${url}: ${errorOf(r.json)}`);
    }
    console.log(`deleted tenant ${tenantId}`);
  });

program
  .command('timeline')
  .description('timeline commands')
  .command('status')
  .description('term, flush and commit LSN of a timeline on every safekeeper')
  .option('--tenant <id>', 'tenant id (default: from .walkeeper/config.json)')
  .option('--timeline <id>', 'timeline id (default: from .walkeeper/config.json)')
  .option('--json', 'print JSON')
  .action(async (opts: { tenant?: string; timeline?: string; json?: boolean }) => {
    const cfg = localConfig();
    const tenantId = opts.tenant ?? cfg?.tenant_id;
    const timelineId = opts.timeline ?? cfg?.timeline_id;
    if (!tenantId || !timelineId) throw new Error('no tenant/timeline given and no .walkeeper/config.json: pass --tenant and --timeline, or run "walctl init"');
    assertValidId('tenant_id', tenantId);
    assertValidId('timeline_id', timelineId);
    const rows: ({ safekeeper: string } & (TimelineStatusJson | { error: string }))[] = [];
    for (const url of safekeeperUrls()) {
      const r = await api('GET', `${url}/v1/tenants/${tenantId}/timelines/${timelineId}`).catch((err: Error) => ({ status: 0, json: { error: err.message } }));
      rows.push(r.status === 200 ? { safekeeper: url, ...(r.json as TimelineStatusJson) } : { safekeeper: url, error: errorOf(r.json) });
    }
    if (opts.json) return console.log(JSON.stringify(rows, null, 2));
    console.log(table(['SAFEKEEPER', 'TERM', 'FLUSH LSN', 'COMMIT LSN', 'PROPOSER', 'ERROR'], rows.map((r) =>
      'error' in r ? [r.safekeeper, '-', '-', '-', 'no', r.error] : [r.safekeeper, r.term, r.flush_lsn, r.commit_lsn, r.proposer_connected ? 'yes' : 'no', ''])));
  });

program
  .command('token')
  .description('JWT tokens for safekeepers that run with --auth-public-key')
  .command('create')
  .requiredOption('--private-key <file>', 'PEM private key (Ed25519 or RSA)')
  .requiredOption('--scope <scope>', 'admin or tenant')
  .option('--tenant-id <id>', 'tenant the token is for (scope tenant)')
  .option('--expires-in <duration>', 'e.g. 1h, 30d')
  .action(async (opts: { privateKey: string; scope: string; tenantId?: string; expiresIn?: string }) => {
    if (opts.scope !== 'admin' && opts.scope !== 'tenant') throw new Error(`invalid --scope "${opts.scope}": expected admin or tenant`);
    const claims: Claims = opts.scope === 'admin' ? { scope: 'admin' } : { scope: 'tenant', tenant_id: opts.tenantId };
    if (claims.scope === 'tenant') assertValidId('tenant_id', opts.tenantId);
    console.log(await signToken(readFileSync(opts.privateKey), claims, opts.expiresIn));
  });

const backup = program.command('backup').description('base backups of the local cluster in its bucket');
backup
  .command('create')
  .description('take a base backup of the local primary (pg_basebackup, gzip, parts, manifest last)')
  .option('--part-size <size>', 'size of each uploaded part', '64MB')
  .option('--json', 'print JSON')
  .action(async (opts: { partSize: string; json?: boolean }) => {
    const m = await backupCluster(LocalCluster.load(baseDir()), { partSize: Number(parseSizeFlag('part-size', opts.partSize)), log: progress });
    console.log(opts.json ? JSON.stringify(m, null, 2) : `backup ${m.backup_id} complete: WAL ${m.start_lsn}..${m.stop_lsn}, ${m.compressed_bytes} bytes`);
  });
backup
  .command('list')
  .description('complete backups (oldest first) and incomplete ones with why')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const cluster = LocalCluster.load(baseDir());
    const store = await openClusterStore(cluster);
    try {
      const catalog = await listBackups(store, cluster.config.tenant_id, cluster.config.timeline_id);
      if (opts.json) return console.log(JSON.stringify(catalog, null, 2));
      console.log(table(['BACKUP', 'STATE', 'START LSN', 'STOP LSN', 'STOP TIME', 'BYTES'], [
        ...catalog.complete.map((m) => [m.backup_id, 'complete', m.start_lsn, m.stop_lsn, m.stop_time, String(m.compressed_bytes)]),
        ...catalog.incomplete.map((b) => [b.backup_id, `INCOMPLETE (${b.reason})`, '-', '-', '-', String(b.bytes)]),
      ]));
    } finally {
      await store.close();
    }
  });
backup
  .command('delete <backup_id>')
  .description('delete one backup (manifest first)')
  .action(async (id: string) => {
    const cluster = LocalCluster.load(baseDir());
    const store = await openClusterStore(cluster);
    try {
      const r = await deleteBackup(store, cluster.config.tenant_id, cluster.config.timeline_id, id);
      console.log(`deleted backup ${id} (${r.deleted} objects)`);
    } finally {
      await store.close();
    }
  });

program
  .command('restore')
  .description('rebuild the local primary from the newest base backup before the target, bucket WAL and the safekeepers\' tail')
  .option('--target-time <time>', 'point in time (ISO 8601); default: latest, every committed transaction')
  .option('--target-lsn <lsn>', 'LSN X/X to recover to')
  .option('--force', 'replace a non-empty data directory')
  .option('--datadir <dir>', 'only rebuild this data directory (configured to recover), leaving the running cluster alone')
  .action(async (opts: { targetTime?: string; targetLsn?: string; force?: boolean; datadir?: string }) => {
    const cluster = LocalCluster.load(baseDir());
    if (opts.datadir) {
      const plan = await restoreDataDir(cluster, parseTarget(opts), resolve(opts.datadir), { force: opts.force, log: progress });
      console.log(`restored base backup ${plan.backup.backup_id} into ${plan.datadir} (target ${plan.target}); start PostgreSQL on it ${plan.promote === 'by-proposer' ? 'with a proposer started with --promote' : '(it promotes at the target)'}`);
      return;
    }
    const r = await restoreCluster(cluster, parseTarget(opts), { force: opts.force, log: progress });
    console.log(`restored from base backup ${r.plan.backup.backup_id} to ${r.plan.target}: PostgreSQL timeline ${r.pgTimeline}, walkeeper timeline ${r.timelineId}`);
  });

interface ComponentStatus {
  name: string;
  pid?: number;
  address: string;
  state: string;
  flush_lsn?: string;
  lag_bytes?: string;
  /** everything below is in remote storage */
  backup_lsn?: string;
  /** offload state and, when it fails, why */
  offload?: string;
}

async function clusterStatus(cluster: LocalCluster) {
  const cfg = cluster.config;
  const components: ComponentStatus[] = [];
  const proposer = await cluster.proposerStatus().catch(() => undefined);
  const flushes: bigint[] = [];
  for (const s of cfg.safekeepers) {
    const proc = cluster.safekeeperProcess(s.id);
    const r = proc.running ? await httpGet(`${cluster.httpUrl(s.id)}/v1/tenants/${cfg.tenant_id}/timelines/${cfg.timeline_id}`, 2000) : undefined;
    const tl = r?.status === 200 ? (JSON.parse(r.text) as TimelineStatusJson) : undefined;
    if (tl) flushes.push(parseLsn(tl.flush_lsn));
    components.push({
      name: `safekeeper ${s.id}`,
      pid: proc.pid,
      address: `${cfg.host}:${s.pg_port} http:${s.http_port}`,
      state: !proc.running ? 'stopped' : tl ? 'running' : r?.status === 404 ? 'running (timeline not created)' : 'unreachable',
      flush_lsn: tl?.flush_lsn,
      backup_lsn: tl?.backup_lsn,
      offload: tl ? (tl.offload.enabled ? `${tl.offload.state}${tl.offload.state !== 'ok' && tl.offload.last_error ? `: ${tl.offload.last_error}` : ''}` : 'off') : undefined,
    });
  }
  const head = flushes.length ? flushes.reduce((a, b) => (a > b ? a : b)) : 0n;
  for (const c of components) if (c.flush_lsn) c.lag_bytes = String(head - parseLsn(c.flush_lsn));
  components.push({ name: 'postgres', pid: cluster.postgres.pid, address: `${cfg.host}:${cfg.postgres.port}`, state: cluster.postgres.pid ? 'running' : 'stopped' });
  components.push({ name: 'proposer', pid: cluster.proposerProcess.pid, address: `${cfg.host}:${cfg.proposer.http_port}`, state: cluster.proposerProcess.running ? proposer?.state ?? 'unreachable' : 'stopped' });
  return {
    tenant_id: cfg.tenant_id,
    timeline_id: cfg.timeline_id,
    term: proposer?.term,
    commit_lsn: proposer?.commit_lsn,
    quorum_healthy: proposer?.quorum_healthy ?? false,
    reason: proposer?.reason,
    components,
    postgres: { connstr: cluster.connString, port: cfg.postgres.port },
    remote_storage: cluster.remoteStorage?.url ?? null,
  };
}

program.parseAsync(process.argv).catch((err: Error) => {
  console.error(`walctl: error: ${err.message}`);
  process.exit(1);
});
