// meta.k8s.io/v1 Table rendering (what `kubectl get` prints) and a small JSONPath.
import { age, isObj, type KObject } from './util.js';
import type { PrinterColumn, ResourceType } from './resources.js';

/** Evaluates the JSONPath subset used by printer columns: .a.b, [n], [*], ['k'], [?(@.x=="y")]. */
export function jsonPath(obj: unknown, expr: string): unknown[] {
  let p = expr.trim();
  if (p.startsWith('{') && p.endsWith('}')) p = p.slice(1, -1);
  if (p.startsWith('$')) p = p.slice(1);
  let cur: unknown[] = [obj];
  let i = 0;
  while (i < p.length) {
    if (p[i] === '.') {
      i++;
      let j = i;
      while (j < p.length && p[j] !== '.' && p[j] !== '[') j++;
      const key = p.slice(i, j);
      i = j;
      if (!key) continue;
      cur = cur.flatMap((c) => (isObj(c) && c[key] !== undefined ? [c[key]] : []));
    } else if (p[i] === '[') {
      const j = p.indexOf(']', i);
      const inner = p.slice(i + 1, j);
      i = j + 1;
      if (inner === '*') cur = cur.flatMap((c) => (Array.isArray(c) ? c : isObj(c) ? Object.values(c) : []));
      else if (/^-?\d+$/.test(inner)) {
        const n = Number(inner);
        cur = cur.flatMap((c) => (Array.isArray(c) ? (c.at(n) !== undefined ? [c.at(n)] : []) : []));
      } else if (/^'.*'$|^".*"$/.test(inner)) {
        const key = inner.slice(1, -1);
        cur = cur.flatMap((c) => (isObj(c) && c[key] !== undefined ? [c[key]] : []));
      } else if (inner.startsWith('?(')) {
        const m = inner.slice(2, -1).match(/^@((?:\.[\w-]+)+)\s*(==|!=)\s*(?:"([^"]*)"|'([^']*)'|(\S+))$/);
        if (!m) return [];
        const want = m[3] ?? m[4] ?? m[5];
        cur = cur.flatMap((c) => (Array.isArray(c) ? c : [])).filter((el) => {
          const v = jsonPath(el, m[1]!)[0];
          const eq = v !== undefined && String(v) === want;
          return m[2] === '==' ? eq : !eq;
        });
      }
    } else i++;
  }
  return cur;
}

interface Col { name: string; type: string; format: string; description: string; priority: number }
type Cell = string | number | boolean | null;

function col(name: string, type = 'string', priority = 0, format = ''): Col {
  return { name, type, format: name === 'Name' ? 'name' : format, description: name === 'Name' ? 'Name must be unique within a namespace.' : name, priority };
}

function podReady(o: KObject): [number, number] {
  const spec = o.spec as { containers?: unknown[] } | undefined;
  const st = (o.status as { containerStatuses?: { ready?: boolean }[] } | undefined)?.containerStatuses ?? [];
  return [st.filter((c) => c.ready).length, spec?.containers?.length ?? 0];
}

/** kubectl's Init:i/n, Init:<reason> while an init container has not completed. */
function initStatus(o: KObject): string | undefined {
  type S = { state?: { terminated?: { exitCode?: number; reason?: string }; waiting?: { reason?: string } } };
  const st = (o.status as { initContainerStatuses?: S[] } | undefined)?.initContainerStatuses ?? [];
  const i = st.findIndex((c) => c.state?.terminated?.exitCode !== 0);
  if (i < 0) return undefined;
  const c = st[i].state;
  if (c?.terminated?.reason) return `Init:${c.terminated.reason}`;
  if (c?.waiting?.reason && c.waiting.reason !== 'PodInitializing') return `Init:${c.waiting.reason}`;
  return `Init:${i}/${st.length}`;
}

type Builtin = { cols: Col[]; cells: (o: KObject) => Cell[] };
const g = (o: KObject, path: string): unknown => jsonPath(o, path)[0];

const BUILTINS: Record<string, Builtin> = {
  '/pods': {
    cols: [col('Name'), col('Ready'), col('Status'), col('Restarts', 'string'), col('Age'), col('IP', 'string', 1), col('Node', 'string', 1)],
    cells: (o) => {
      const [r, t] = podReady(o);
      const restarts = ((o.status as { containerStatuses?: { restartCount?: number }[] })?.containerStatuses ?? []).reduce((a, c) => a + (c.restartCount ?? 0), 0);
      const status = o.metadata.deletionTimestamp ? 'Terminating' : (initStatus(o) ?? (g(o, '.status.reason') as string) ?? (g(o, '.status.phase') as string) ?? 'Pending');
      return [o.metadata.name!, `${r}/${t}`, status, String(restarts), age(o.metadata.creationTimestamp), (g(o, '.status.podIP') as string) ?? '<none>', (g(o, '.spec.nodeName') as string) ?? '<none>'];
    },
  },
  '/namespaces': { cols: [col('Name'), col('Status'), col('Age')], cells: (o) => [o.metadata.name!, (g(o, '.status.phase') as string) ?? 'Active', age(o.metadata.creationTimestamp)] },
  '/configmaps': { cols: [col('Name'), col('Data', 'integer'), col('Age')], cells: (o) => [o.metadata.name!, Object.keys((o.data as object) ?? {}).length + Object.keys((o.binaryData as object) ?? {}).length, age(o.metadata.creationTimestamp)] },
  '/secrets': { cols: [col('Name'), col('Type'), col('Data', 'integer'), col('Age')], cells: (o) => [o.metadata.name!, (o.type as string) ?? 'Opaque', Object.keys((o.data as object) ?? {}).length, age(o.metadata.creationTimestamp)] },
  '/services': {
    cols: [col('Name'), col('Type'), col('Cluster-IP'), col('External-IP'), col('Port(s)'), col('Age'), col('Selector', 'string', 1)],
    cells: (o) => {
      const ports = ((g(o, '.spec.ports') as { port: number; protocol?: string; nodePort?: number }[]) ?? []).map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ''}/${p.protocol ?? 'TCP'}`).join(',');
      const sel = Object.entries((g(o, '.spec.selector') as Record<string, string>) ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
      return [o.metadata.name!, (g(o, '.spec.type') as string) ?? 'ClusterIP', (g(o, '.spec.clusterIP') as string) ?? '<none>', '<none>', ports || '<none>', age(o.metadata.creationTimestamp), sel || '<none>'];
    },
  },
  '/persistentvolumeclaims': {
    cols: [col('Name'), col('Status'), col('Volume'), col('Capacity'), col('Access Modes'), col('StorageClass'), col('Age')],
    cells: (o) => [o.metadata.name!, (g(o, '.status.phase') as string) ?? 'Pending', (g(o, '.spec.volumeName') as string) ?? '', (g(o, '.status.capacity.storage') as string) ?? '', ((g(o, '.status.accessModes') as string[]) ?? []).map((m) => ({ ReadWriteOnce: 'RWO', ReadOnlyMany: 'ROX', ReadWriteMany: 'RWX', ReadWriteOncePod: 'RWOP' })[m] ?? m).join(','), (g(o, '.spec.storageClassName') as string) ?? '<unset>', age(o.metadata.creationTimestamp)],
  },
  'apps/statefulsets': { cols: [col('Name'), col('Ready'), col('Age')], cells: (o) => [o.metadata.name!, `${(g(o, '.status.readyReplicas') as number) ?? 0}/${(g(o, '.spec.replicas') as number) ?? 1}`, age(o.metadata.creationTimestamp)] },
  'apps/deployments': {
    cols: [col('Name'), col('Ready'), col('Up-to-date', 'integer'), col('Available', 'integer'), col('Age')],
    cells: (o) => [o.metadata.name!, `${(g(o, '.status.readyReplicas') as number) ?? 0}/${(g(o, '.spec.replicas') as number) ?? 1}`, (g(o, '.status.updatedReplicas') as number) ?? 0, (g(o, '.status.availableReplicas') as number) ?? 0, age(o.metadata.creationTimestamp)],
  },
  'policy/poddisruptionbudgets': {
    cols: [col('Name'), col('Min Available'), col('Max Unavailable'), col('Allowed Disruptions', 'integer'), col('Age')],
    cells: (o) => [o.metadata.name!, String(g(o, '.spec.minAvailable') ?? 'N/A'), String(g(o, '.spec.maxUnavailable') ?? 'N/A'), (g(o, '.status.disruptionsAllowed') as number) ?? 0, age(o.metadata.creationTimestamp)],
  },
  'coordination.k8s.io/leases': { cols: [col('Name'), col('Holder'), col('Age')], cells: (o) => [o.metadata.name!, (g(o, '.spec.holderIdentity') as string) ?? '', age(o.metadata.creationTimestamp)] },
  '/events': {
    cols: [col('Last Seen'), col('Type'), col('Reason'), col('Object'), col('Message')],
    cells: (o) => [age((g(o, '.lastTimestamp') as string) ?? (g(o, '.eventTime') as string) ?? o.metadata.creationTimestamp), (g(o, '.type') as string) ?? '', (g(o, '.reason') as string) ?? '', `${String(g(o, '.involvedObject.kind') ?? '').toLowerCase()}/${g(o, '.involvedObject.name') ?? ''}`, (g(o, '.message') as string) ?? ''],
  },
  '/serviceaccounts': { cols: [col('Name'), col('Secrets', 'integer'), col('Age')], cells: (o) => [o.metadata.name!, ((o.secrets as unknown[]) ?? []).length, age(o.metadata.creationTimestamp)] },
  'apiextensions.k8s.io/customresourcedefinitions': { cols: [col('Name'), col('Created At', 'date')], cells: (o) => [o.metadata.name!, o.metadata.creationTimestamp ?? null] },
};

function cellFor(type: string, v: unknown): Cell {
  if (v === undefined || v === null) return null;
  switch (type) {
    case 'integer': return typeof v === 'number' ? Math.trunc(v) : null;
    case 'number': return typeof v === 'number' ? v : null;
    case 'boolean': return typeof v === 'boolean' ? v : null;
    case 'date': return typeof v === 'string' ? (Number.isNaN(Date.parse(v)) ? '<invalid>' : age(v)) : null;
    default: return typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
  }
}

export function toTable(t: ResourceType, items: KObject[], resourceVersion: string, includeObject: string, single: boolean): Record<string, unknown> {
  let cols: Col[];
  let cells: (o: KObject) => Cell[];
  const key = t.custom ? '' : t.group === 'events.k8s.io' ? '/events' : `${t.group}/${t.resource}`;
  if (BUILTINS[key]) ({ cols, cells } = BUILTINS[key]);
  else {
    const pcs: PrinterColumn[] = t.custom ? (t.printerColumns?.[t.version] ?? []) : [];
    const extra = pcs.length ? pcs : [{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }];
    cols = [col('Name'), ...extra.map((c) => ({ name: c.name, type: c.type, format: c.format ?? '', description: c.description ?? c.name, priority: c.priority ?? 0 }))];
    cells = (o) => [o.metadata.name!, ...extra.map((c) => cellFor(c.type, jsonPath(o, c.jsonPath)[0]))];
  }
  const rows = items.map((o) => {
    const row: Record<string, unknown> = { cells: cells(o) };
    if (includeObject === 'Object') row.object = o;
    else if (includeObject !== 'None') row.object = { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
    return row;
  });
  return { kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: single ? {} : { resourceVersion }, columnDefinitions: cols, rows };
}
