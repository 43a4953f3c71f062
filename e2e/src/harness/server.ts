// HTTP front of the harness: Kubernetes REST paths, discovery, OpenAPI v3 stubs, watches, tables.
import http from 'node:http';
import { load as loadYaml } from 'js-yaml';
import type { Api, DeleteOptions, PatchType, WriteOptions } from './api.js';
import { gvString, storageKey, type ResourceType } from './resources.js';
import type { StoreEvent } from './store.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import { toTable } from './table.js';
import { mergePatch } from './patch.js';
import { decodeK8sProtobuf, PROTOBUF_MEDIA_TYPE } from './protobuf.js';
import { ApiError, errors, isObj, shortHash, type KObject } from './util.js';

export interface RequestCounts {
  /** "verb resource" → count, e.g. "patch widgets.fidelity.test/status" */
  byVerbResource: Record<string, number>;
  /** user agent (before the first '/') → "verb resource" → count */
  byUserAgent: Record<string, Record<string, number>>;
  total: number;
  writes: number;
}

const WRITE_VERBS = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);

export interface ServerHooks {
  podLogs?: (ns: string, name: string, container: string | undefined) => string;
}

export class ApiServer {
  private server: http.Server;
  private watches = new Set<() => void>();
  counts: RequestCounts = { byVerbResource: {}, byUserAgent: {}, total: 0, writes: 0 };
  port = 0;

  constructor(private readonly api: Api, private readonly hooks: ServerHooks = {}) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => this.fail(res, e));
    });
    this.server.keepAliveTimeout = 5000;
  }

  listen(port: number, host = '127.0.0.1'): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        const a = this.server.address();
        this.port = typeof a === 'object' && a ? a.port : port;
        resolve(this.port);
      });
    });
  }

  close(): Promise<void> {
    for (const w of this.watches) w();
    this.watches.clear();
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  resetCounts(): void {
    this.counts = { byVerbResource: {}, byUserAgent: {}, total: 0, writes: 0 };
  }

  private count(req: http.IncomingMessage, verb: string, resource: string): void {
    const key = `${verb} ${resource}`;
    const ua = String(req.headers['user-agent'] ?? 'unknown').split('/')[0]!;
    this.counts.total++;
    if (WRITE_VERBS.has(verb)) this.counts.writes++;
    this.counts.byVerbResource[key] = (this.counts.byVerbResource[key] ?? 0) + 1;
    const u = (this.counts.byUserAgent[ua] ??= {});
    u[key] = (u[key] ?? 0) + 1;
  }

  private send(res: http.ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
    const s = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(s), ...headers });
    res.end(s);
  }

  private fail(res: http.ServerResponse, e: unknown): void {
    if (res.headersSent) { res.end(); return; }
    const err = e instanceof ApiError ? e : new ApiError(500, 'InternalError', `Internal error occurred: ${(e as Error)?.message ?? String(e)}`);
    this.send(res, err.code, err.toStatus());
  }

  private readBody(req: http.IncomingMessage): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    });
  }

  // ---------------------------------------------------------------- discovery
  private groups(): Map<string, Set<string>> {
    const g = new Map<string, Set<string>>();
    for (const { t, version } of this.api.allTypes()) {
      if (!g.has(t.group)) g.set(t.group, new Set());
      g.get(t.group)!.add(version);
    }
    return g;
  }

  private apiGroup(name: string, versions: Set<string>): Record<string, unknown> {
    const vs = [...versions].sort().reverse().map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
    return { name, versions: vs, preferredVersion: vs[0] };
  }

  private resourceList(group: string, version: string): Record<string, unknown> | undefined {
    const types = this.api.allTypes().filter((x) => x.t.group === group && x.version === version).map((x) => x.t);
    if (!types.length) return undefined;
    const resources: Record<string, unknown>[] = [];
    for (const t of types) {
      const r: Record<string, unknown> = { name: t.resource, singularName: t.singular, namespaced: t.namespaced, kind: t.kind, verbs: t.verbs };
      if (t.shortNames.length) r.shortNames = t.shortNames;
      if (t.categories.length) r.categories = t.categories;
      r.storageVersionHash = shortHash(`${t.group}/${t.resource}`, 11);
      resources.push(r);
      if (t.status) resources.push({ name: `${t.resource}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] });
      if (t.scale) resources.push({ name: `${t.resource}/scale`, singularName: '', namespaced: t.namespaced, group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: ['get', 'patch', 'update'] });
      if (t.group === '' && t.resource === 'pods') {
        resources.push({ name: 'pods/log', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get'] });
        resources.push({ name: 'pods/eviction', singularName: '', namespaced: true, group: 'policy', version: 'v1', kind: 'Eviction', verbs: ['create'] });
      }
    }
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gvString(group, version), resources };
  }

  private openapiDoc(group: string, version: string): Record<string, unknown> | undefined {
    const types = this.api.allTypes().filter((x) => x.t.group === group && x.version === version).map((x) => x.t);
    if (!types.length) return undefined;
    const paths: Record<string, unknown> = {};
    const schemas: Record<string, unknown> = {};
    const prefix = group ? `/apis/${group}/${version}` : `/api/${version}`;
    const obj = { schema: { type: 'object' } };
    for (const t of types) {
      const gvk = { group: t.group, version, kind: t.kind };
      const p = t.namespaced ? `${prefix}/namespaces/{namespace}/${t.resource}/{name}` : `${prefix}/${t.resource}/{name}`;
      const content: Record<string, unknown> = { 'application/json-patch+json': obj, 'application/merge-patch+json': obj, 'application/apply-patch+yaml': obj };
      paths[p] = {
        patch: {
          'x-kubernetes-group-version-kind': gvk,
          'x-kubernetes-action': 'patch',
          parameters: ['dryRun', 'fieldManager', 'fieldValidation', 'force'].map((n) => ({ name: n, in: 'query', schema: { type: n === 'force' ? 'boolean' : 'string', uniqueItems: true } })),
          requestBody: { content },
          responses: { '200': { description: 'OK', content: { 'application/json': obj } } },
        },
      };
      if (t.custom && t.schemas?.[version]) {
        schemas[`${t.group.split('.').reverse().join('.')}.${version}.${t.kind}`] = { ...(t.schemas[version] as object), 'x-kubernetes-group-version-kind': [gvk] };
      }
    }
    return { openapi: '3.0.0', info: { title: 'Kubernetes', version: 'v1.32.0' }, paths, components: { schemas } };
  }

  // ---------------------------------------------------------------- routing
  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const q = url.searchParams;
    const method = req.method ?? 'GET';
    const accept = String(req.headers.accept ?? '');

    if (path === '/_harness/requests') {
      if (method === 'DELETE' || method === 'POST') this.resetCounts();
      return this.send(res, 200, this.counts);
    }
    if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('ok');
      return;
    }
    if (path === '/version') {
      return this.send(res, 200, { major: '1', minor: '32', gitVersion: 'v1.32.0-walkeeper-harness', gitCommit: '0000000000000000000000000000000000000000', gitTreeState: 'clean', buildDate: '2025-01-01T00:00:00Z', goVersion: 'go1.23', compiler: 'gc', platform: 'linux/amd64' });
    }
    if (path === '/api' || path === '/apis') {
      // aggregated discovery is not implemented: answer the legacy format (or 406 if JSON was not acceptable)
      if (accept && !/application\/json(?![^,]*as=)|\*\/\*/.test(accept)) return this.send(res, 406, new ApiError(406, 'NotAcceptable', 'only the following media types are accepted: application/json').toStatus());
      if (path === '/api') return this.send(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${this.port}` }] });
      const groups = [...this.groups()].filter(([g]) => g !== '').map(([g, vs]) => this.apiGroup(g, vs));
      return this.send(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups });
    }
    if (path === '/openapi/v3') {
      const paths: Record<string, unknown> = {};
      for (const [g, vs] of this.groups()) {
        for (const v of vs) {
          const key = g ? `apis/${g}/${v}` : `api/${v}`;
          paths[key] = { serverRelativeURL: `/openapi/v3/${key}?hash=${shortHash(JSON.stringify(this.openapiDoc(g, v)), 16).toUpperCase()}` };
        }
      }
      return this.send(res, 200, { paths });
    }
    if (path.startsWith('/openapi/v3/')) {
      const segs = path.slice('/openapi/v3/'.length).split('/');
      const doc = segs[0] === 'api' ? this.openapiDoc('', segs[1] ?? '') : this.openapiDoc(segs[1] ?? '', segs[2] ?? '');
      if (!doc) throw errors.notFoundPath();
      return this.send(res, 200, doc);
    }
    const segs = path.split('/').filter(Boolean).map(decodeURIComponent);
    let group: string;
    let version: string;
    let rest: string[];
    if (segs[0] === 'api' && segs.length >= 2) { group = ''; version = segs[1]!; rest = segs.slice(2); }
    else if (segs[0] === 'apis' && segs.length >= 2) {
      if (segs.length === 2) {
        const vs = this.groups().get(segs[1]!);
        if (!vs) throw errors.notFoundPath();
        return this.send(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...this.apiGroup(segs[1]!, vs) });
      }
      group = segs[1]!; version = segs[2]!; rest = segs.slice(3);
    } else throw errors.notFoundPath();
    if (rest.length === 0) {
      const rl = this.resourceList(group, version);
      if (!rl) throw errors.notFoundPath();
      return this.send(res, 200, rl);
    }
    let watchPath = false;
    if (rest[0] === 'watch') { watchPath = true; rest = rest.slice(1); }
    let ns: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3 && !(rest.length === 3 && (rest[2] === 'status' || rest[2] === 'finalize'))) {
      ns = rest[1];
      rest = rest.slice(2);
    }
    const [resource, name, sub] = rest as [string, string | undefined, string | undefined];
    if (rest.length > 3) throw errors.notFoundPath();
    const t = this.api.type(group, version, resource);
    if (!t) throw errors.notFoundPath();
    if (ns !== undefined && !t.namespaced) throw errors.notFoundPath();
    const resLabel = `${t.group ? `${t.resource}.${t.group}` : t.resource}${sub ? `/${sub}` : ''}`;
    const gv = gvString(group, version);
    const isWatch = watchPath || q.get('watch') === 'true' || q.get('watch') === '1';

    if (method === 'GET') {
      if (isWatch) { this.count(req, 'watch', resLabel); return this.watch(req, res, t, version, ns, name, q, accept); }
      if (name === undefined) {
        this.count(req, 'list', resLabel);
        const items = this.api.list(t, ns, q.get('labelSelector') ?? undefined, q.get('fieldSelector') ?? undefined).map((o) => this.api.out(t, o, version));
        const rv = String(this.api.store.rv);
        if (/as=Table/.test(accept)) return this.send(res, 200, toTable(t, items, rv, q.get('includeObject') ?? 'Metadata', false));
        return this.send(res, 200, { kind: t.listKind, apiVersion: gv, metadata: { resourceVersion: rv }, items });
      }
      this.count(req, 'get', resLabel);
      if (sub === 'scale' && t.scale) return this.send(res, 200, this.scaleOf(t, this.api.get(t, ns, name)));
      if (sub === 'log' && t.resource === 'pods') {
        this.api.get(t, ns, name);
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end(this.hooks.podLogs?.(ns!, name, q.get('container') ?? undefined) ?? '');
        return;
      }
      if (sub && sub !== 'status') throw errors.notFoundPath();
      if (sub === 'status' && !t.status) throw errors.notFoundPath();
      const obj = this.api.out(t, this.api.get(t, ns, name), version);
      if (/as=Table/.test(accept)) return this.send(res, 200, toTable(t, [obj], String(this.api.store.rv), q.get('includeObject') ?? 'Metadata', true));
      return this.send(res, 200, obj);
    }

    const warnings: string[] = [];
    const opts: WriteOptions = {
      fieldManager: q.get('fieldManager') ?? String(req.headers['user-agent'] ?? 'unknown').split('/')[0],
      fieldValidation: q.get('fieldValidation') ?? undefined,
      dryRun: q.getAll('dryRun').includes('All'),
      subresource: sub,
      gv,
      warnings,
    };
    const warnHeader = (): Record<string, string> => (warnings.length ? { Warning: warnings.map((w) => `299 - ${JSON.stringify(w)}`).join(', ') } : {});
    const ctype = String(req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim();
    const rawBuf = await this.readBody(req);
    const raw = rawBuf.toString('utf8');
    const parse = (): unknown => {
      if (!rawBuf.length) return undefined;
      if (ctype === PROTOBUF_MEDIA_TYPE) {
        const o = decodeK8sProtobuf(rawBuf);
        if (!o) throw errors.unsupportedMediaType(['application/json', 'application/yaml']);
        return o;
      }
      if (ctype === 'application/apply-patch+yaml') return loadYaml(raw);
      if (!ctype.includes('json') && ctype !== '*/*' && ctype !== 'application/yaml') throw errors.unsupportedMediaType(['application/json', 'application/yaml']);
      try { return ctype === 'application/yaml' ? loadYaml(raw) : JSON.parse(raw); } catch (e) { throw errors.badRequest(`error decoding request body: ${(e as Error).message}`); }
    };

    if (method === 'POST') {
      if (sub === 'eviction' && t.resource === 'pods' && name) {
        this.count(req, 'create', resLabel);
        this.api.delete(t, ns, name, {});
        return this.send(res, 201, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 });
      }
      if (name !== undefined) throw errors.methodNotAllowed();
      this.count(req, 'create', resLabel);
      const created = this.api.create(t, ns, parse() as KObject, opts);
      return this.send(res, 201, this.api.out(t, created, version), warnHeader());
    }
    if (method === 'PUT') {
      if (name === undefined) throw errors.methodNotAllowed();
      this.count(req, 'update', resLabel);
      const body = parse() as KObject;
      if (sub === 'scale' && t.scale) return this.send(res, 200, this.writeScale(t, ns, name, () => body, opts));
      if (sub && sub !== 'status') throw errors.notFoundPath();
      if (sub === 'status' && !t.status) throw errors.notFoundPath();
      const updated = this.api.update(t, ns, name, body, opts);
      return this.send(res, 200, this.api.out(t, updated, version), warnHeader());
    }
    if (method === 'PATCH') {
      if (name === undefined) throw errors.methodNotAllowed();
      this.count(req, 'patch', resLabel);
      const types: Record<string, PatchType> = {
        'application/merge-patch+json': 'merge',
        'application/json-patch+json': 'json',
        'application/strategic-merge-patch+json': 'strategic',
        'application/apply-patch+yaml': 'apply',
      };
      const pt = types[ctype];
      const accepted = ['application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml'];
      if (!pt || (pt === 'strategic' && t.custom)) throw errors.unsupportedMediaType(t.custom ? accepted : [...accepted, 'application/strategic-merge-patch+json']);
      const body = parse();
      if (sub === 'scale' && t.scale) {
        return this.send(res, 200, this.writeScale(t, ns, name, (cur) => (pt === 'json' ? cur : (mergePatch(cur, body) as KObject)), opts));
      }
      if (sub && sub !== 'status') throw errors.notFoundPath();
      if (sub === 'status' && !t.status) throw errors.notFoundPath();
      const { obj, created } = this.api.patch(t, ns, name, pt, body, { ...opts, force: q.get('force') === 'true' });
      return this.send(res, created ? 201 : 200, this.api.out(t, obj, version), warnHeader());
    }
    if (method === 'DELETE') {
      const body = (parse() ?? {}) as Record<string, unknown>;
      const dopts: DeleteOptions = {
        propagationPolicy: (body.propagationPolicy ?? q.get('propagationPolicy') ?? undefined) as DeleteOptions['propagationPolicy'],
        gracePeriodSeconds: body.gracePeriodSeconds !== undefined ? Number(body.gracePeriodSeconds) : q.get('gracePeriodSeconds') !== null ? Number(q.get('gracePeriodSeconds')) : undefined,
        preconditions: isObj(body.preconditions) ? (body.preconditions as DeleteOptions['preconditions']) : undefined,
        dryRun: (Array.isArray(body.dryRun) && body.dryRun.includes('All')) || q.getAll('dryRun').includes('All'),
      };
      if (body.orphanDependents === true) dopts.propagationPolicy = 'Orphan';
      if (name === undefined) {
        this.count(req, 'deletecollection', resLabel);
        const items = this.api.list(t, ns, q.get('labelSelector') ?? undefined, q.get('fieldSelector') ?? undefined);
        const out: KObject[] = [];
        for (const o of items) {
          try { out.push(this.api.out(t, this.api.delete(t, o.metadata.namespace, o.metadata.name!, dopts), version)); } catch (e) { if (!(e instanceof ApiError && e.code === 404)) throw e; }
        }
        return this.send(res, 200, { kind: t.listKind, apiVersion: gv, metadata: { resourceVersion: String(this.api.store.rv) }, items: out });
      }
      this.count(req, 'delete', resLabel);
      if (sub) throw errors.methodNotAllowed();
      const gone = this.api.delete(t, ns, name, dopts);
      return this.send(res, 200, this.api.out(t, gone, version));
    }
    throw errors.methodNotAllowed();
  }

  // ---------------------------------------------------------------- scale subresource
  private readPath(o: unknown, p: string): unknown {
    let cur = o;
    for (const s of p.split('.').filter(Boolean)) cur = isObj(cur) ? cur[s] : undefined;
    return cur;
  }
  private scaleOf(t: ResourceType, o: KObject): KObject {
    const s = t.scale!;
    const sel = s.labelSelectorPath ? this.readPath(o, s.labelSelectorPath) : undefined;
    let selector: string | undefined;
    if (isObj(sel)) selector = Object.entries((sel.matchLabels as Record<string, string>) ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
    else if (typeof sel === 'string') selector = sel;
    return {
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      metadata: { name: o.metadata.name, namespace: o.metadata.namespace, uid: o.metadata.uid, resourceVersion: o.metadata.resourceVersion, creationTimestamp: o.metadata.creationTimestamp },
      spec: { replicas: (this.readPath(o, s.specReplicasPath) as number) ?? 0 },
      status: { replicas: (this.readPath(o, s.statusReplicasPath) as number) ?? 0, ...(selector !== undefined ? { selector } : {}) },
    };
  }
  private writeScale(t: ResourceType, ns: string | undefined, name: string, f: (cur: KObject) => KObject, opts: WriteOptions): KObject {
    const o = this.api.get(t, ns, name);
    const scale = f(this.scaleOf(t, o));
    if (scale.metadata?.resourceVersion && scale.metadata.resourceVersion !== o.metadata.resourceVersion) throw errors.conflict(t.resource, t.group, name);
    const replicas = (scale.spec as { replicas?: number } | undefined)?.replicas;
    const next = this.api.out(t, o);
    const segs = t.scale!.specReplicasPath.split('.').filter(Boolean);
    let cur: Record<string, unknown> = next as Record<string, unknown>;
    for (const s of segs.slice(0, -1)) cur = (isObj(cur[s]) ? cur[s] : (cur[s] = {})) as Record<string, unknown>;
    cur[segs[segs.length - 1]!] = replicas;
    const updated = this.api.update(t, ns, name, next, { ...opts, subresource: undefined });
    return this.scaleOf(t, updated);
  }

  // ---------------------------------------------------------------- watch
  private watch(req: http.IncomingMessage, res: http.ServerResponse, t: ResourceType, version: string, ns: string | undefined, name: string | undefined, q: URLSearchParams, accept: string): void {
    const ls = parseLabelSelector(q.get('labelSelector'));
    let fieldSel = q.get('fieldSelector') ?? '';
    if (name) fieldSel = [fieldSel, `metadata.name=${name}`].filter(Boolean).join(',');
    const fs = parseFieldSelector(fieldSel);
    const key = storageKey(t);
    const matches = (o: KObject | undefined) => !!o && (!t.namespaced || ns === undefined || o.metadata.namespace === ns) && ls(o) && fs(o);
    const table = /as=Table/.test(accept);
    const store = this.api.store;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    let closed = false;
    const write = (type: string, obj: KObject | Record<string, unknown>) => {
      if (closed) return;
      const o = type === 'ERROR' || type === 'BOOKMARK' ? obj : this.api.out(t, obj as KObject, version);
      const payload = table && type !== 'ERROR' && type !== 'BOOKMARK' ? toTable(t, [o as KObject], (o as KObject).metadata.resourceVersion ?? '', q.get('includeObject') ?? 'Metadata', false) : o;
      res.write(`${JSON.stringify({ type, object: payload })}\n`);
    };
    const onEvent = (e: StoreEvent) => {
      if (e.key !== key) return;
      const now = matches(e.object);
      const before = e.type === 'MODIFIED' ? matches(e.old) : false;
      if (e.type === 'ADDED' && now) write('ADDED', e.object);
      else if (e.type === 'DELETED' && matches(e.object)) write('DELETED', e.object);
      else if (e.type === 'MODIFIED') {
        if (now && before) write('MODIFIED', e.object);
        else if (now) write('ADDED', e.object);
        else if (before) write('DELETED', e.object);
      }
    };
    const rvParam = q.get('resourceVersion');
    const sendInitial = q.get('sendInitialEvents') === 'true';
    if (!rvParam || rvParam === '0' || sendInitial) {
      for (const o of store.list(key, t.namespaced ? ns : undefined)) if (matches(o)) write('ADDED', o);
      if (sendInitial) write('BOOKMARK', { kind: t.kind, apiVersion: gvString(t.group, version), metadata: { resourceVersion: String(store.rv), annotations: { 'k8s.io/initial-events-end': 'true' } } });
    } else {
      const n = Number(rvParam);
      const evs = Number.isFinite(n) ? store.since(n) : undefined;
      if (!evs) {
        write('ERROR', errors.gone(`too old resource version: ${rvParam} (${store.oldestRv})`).toStatus());
        res.end();
        return;
      }
      for (const e of evs) onEvent(e);
    }
    const unsub = store.subscribe(onEvent);
    const timeout = Math.max(1, Number(q.get('timeoutSeconds') ?? 1800));
    const bookmarks = q.get('allowWatchBookmarks') === 'true'
      ? setInterval(() => write('BOOKMARK', { kind: t.kind, apiVersion: gvString(t.group, version), metadata: { resourceVersion: String(store.rv) } }), 15000)
      : undefined;
    const stop = () => {
      if (closed) return;
      closed = true;
      unsub();
      clearTimeout(timer);
      if (bookmarks) clearInterval(bookmarks);
      this.watches.delete(stop);
      res.end();
    };
    const timer = setTimeout(stop, timeout * 1000);
    this.watches.add(stop);
    req.on('close', stop);
    res.on('close', stop);
  }
}
