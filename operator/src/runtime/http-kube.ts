// KubeClient over the Kubernetes REST API, using @kubernetes/client-node's KubeConfig for the server
// address, TLS and credentials (KUBECONFIG or in-cluster) and node's http(s) for the requests.
import http from 'node:http';
import https from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import type { KubeObject } from '../specs/types.js';
import {
  ApiError,
  type DeleteOptions,
  type KubeClient,
  type ListResult,
  type ResourceKind,
  type WatchEventType,
  type WatchHandle,
} from './kube.js';

export function loadKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}

/** Sent on every request, so API audit logs and request counters can tell the operator's calls apart. */
export const USER_AGENT = `walkeeper-operator/0.1.0 (node ${process.version})`;

// One kept-alive connection pool per client instead of a new TCP (and TLS) connection per request.
const agents = { http: new http.Agent({ keepAlive: true, maxSockets: 16 }), https: new https.Agent({ keepAlive: true, maxSockets: 16 }) };

interface RawResponse {
  statusCode: number;
  body: string;
}

export class HttpKubeClient implements KubeClient {
  private readonly server: string;

  constructor(
    private readonly kc: KubeConfig,
    private readonly timeoutMs = 30_000,
  ) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = cluster.server.replace(/\/+$/, '');
  }

  private path(kind: ResourceKind, namespace: string | undefined, name?: string, sub?: string): string {
    const base = kind.apiVersion.includes('/') ? `/apis/${kind.apiVersion}` : `/api/${kind.apiVersion}`;
    const ns = kind.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
    return `${base}${ns}/${kind.plural}${name ? `/${encodeURIComponent(name)}` : ''}${sub ? `/${sub}` : ''}`;
  }

  private async options(method: string, url: URL, contentType?: string): Promise<https.RequestOptions> {
    const opts: https.RequestOptions = { method, headers: { Accept: 'application/json' } };
    await this.kc.applyToHTTPSOptions(opts);
    opts.headers = { ...(opts.headers as Record<string, string>), 'User-Agent': USER_AGENT, ...(contentType ? { 'Content-Type': contentType } : {}) };
    opts.protocol = url.protocol;
    opts.agent ??= url.protocol === 'http:' ? agents.http : agents.https;
    opts.hostname = url.hostname.replace(/^\[|\]$/g, '');
    opts.port = url.port;
    opts.path = url.pathname + url.search;
    return opts;
  }

  private async request(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<RawResponse> {
    const url = new URL(this.server + path);
    const opts = await this.options(method, url, body === undefined ? undefined : contentType);
    const mod = url.protocol === 'http:' ? http : https;
    return new Promise<RawResponse>((resolve, reject) => {
      const req = mod.request(opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`${method} ${path}: timed out after ${this.timeoutMs} ms`)));
      req.on('error', reject);
      if (body !== undefined) req.write(JSON.stringify(body));
      req.end();
    });
  }

  private async call<T>(method: string, path: string, body?: unknown, contentType?: string): Promise<T> {
    const res = await this.request(method, path, body, contentType);
    if (res.statusCode >= 200 && res.statusCode < 300) return (res.body ? JSON.parse(res.body) : {}) as T;
    throw toApiError(method, path, res);
  }

  async get<T extends KubeObject>(kind: ResourceKind, namespace: string | undefined, name: string): Promise<T | undefined> {
    const res = await this.request('GET', this.path(kind, namespace, name));
    if (res.statusCode === 404) return undefined;
    if (res.statusCode >= 300) throw toApiError('GET', this.path(kind, namespace, name), res);
    return withKind(JSON.parse(res.body) as T, kind);
  }

  async list<T extends KubeObject>(kind: ResourceKind, namespace: string | undefined, labelSelector?: string): Promise<ListResult<T>> {
    const q = labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : '';
    const list = await this.call<{ items?: T[]; metadata?: { resourceVersion?: string } }>('GET', this.path(kind, namespace) + q);
    return { items: (list.items ?? []).map((i) => withKind(i, kind)), resourceVersion: list.metadata?.resourceVersion ?? '' };
  }

  async create<T extends KubeObject>(kind: ResourceKind, obj: T): Promise<T> {
    return withKind(await this.call<T>('POST', this.path(kind, obj.metadata.namespace), obj), kind);
  }

  async replace<T extends KubeObject>(kind: ResourceKind, obj: T): Promise<T> {
    return withKind(await this.call<T>('PUT', this.path(kind, obj.metadata.namespace, obj.metadata.name), obj), kind);
  }

  async replaceStatus<T extends KubeObject>(kind: ResourceKind, obj: T): Promise<T> {
    return withKind(await this.call<T>('PUT', this.path(kind, obj.metadata.namespace, obj.metadata.name, 'status'), obj), kind);
  }

  async mergePatch<T extends KubeObject>(kind: ResourceKind, namespace: string | undefined, name: string, patch: Record<string, unknown>): Promise<T> {
    return withKind(await this.call<T>('PATCH', this.path(kind, namespace, name), patch, 'application/merge-patch+json'), kind);
  }

  async delete(kind: ResourceKind, namespace: string | undefined, name: string, opts: DeleteOptions = {}): Promise<boolean> {
    const body: Record<string, unknown> = { apiVersion: 'v1', kind: 'DeleteOptions' };
    if (opts.uid) body.preconditions = { uid: opts.uid };
    if (opts.propagationPolicy) body.propagationPolicy = opts.propagationPolicy;
    const path = this.path(kind, namespace, name);
    const res = await this.request('DELETE', path, body);
    if (res.statusCode === 404) return false;
    if (res.statusCode >= 300) throw toApiError('DELETE', path, res);
    return true;
  }

  async watch(
    kind: ResourceKind,
    namespace: string | undefined,
    resourceVersion: string,
    onEvent: (type: WatchEventType, obj: KubeObject) => void,
    labelSelector?: string,
  ): Promise<WatchHandle> {
    const params = new URLSearchParams({ watch: 'true', allowWatchBookmarks: 'true', timeoutSeconds: '300' });
    if (resourceVersion) params.set('resourceVersion', resourceVersion);
    if (labelSelector) params.set('labelSelector', labelSelector);
    const path = `${this.path(kind, namespace)}?${params}`;
    const url = new URL(this.server + path);
    const opts = await this.options('GET', url);
    opts.agent = false; // a watch holds its connection for minutes: keep it out of the request pool
    const mod = url.protocol === 'http:' ? http : https;
    let finish!: (e: Error | undefined) => void;
    const done = new Promise<Error | undefined>((r) => (finish = r));
    let settled = false;
    const end = (e: Error | undefined) => {
      if (!settled) {
        settled = true;
        finish(e);
      }
    };
    const req = mod.request(opts, (res) => {
      if ((res.statusCode ?? 0) >= 300) {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => end(toApiError('WATCH', path, { statusCode: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') })));
        return;
      }
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl).trim();
          buffer = buffer.slice(nl + 1);
          if (!line) continue;
          let ev: { type: WatchEventType; object: KubeObject & { code?: number; reason?: string; message?: string } };
          try {
            ev = JSON.parse(line);
          } catch (e) {
            end(new Error(`watch ${path}: bad event line: ${(e as Error).message}`));
            req.destroy();
            return;
          }
          if (ev.type === 'ERROR') {
            const st = ev.object;
            end(new ApiError(st.code ?? 500, st.reason ?? 'WatchError', `watch ${path}: ${st.message ?? 'error event'}`));
            req.destroy();
            return;
          }
          onEvent(ev.type, withKind(ev.object, kind));
        }
      });
      res.on('end', () => end(undefined));
      res.on('error', (e) => end(e));
      res.on('close', () => end(undefined));
    });
    req.on('error', (e) => end(e));
    req.end();
    return { stop: () => { end(undefined); req.destroy(); }, done };
  }
}

function withKind<T extends KubeObject>(obj: T, kind: ResourceKind): T {
  if (!obj.apiVersion) obj.apiVersion = kind.apiVersion;
  if (!obj.kind) obj.kind = kind.kind;
  return obj;
}

function toApiError(method: string, path: string, res: RawResponse): ApiError {
  let reason = 'Unknown';
  let message = res.body.slice(0, 500);
  try {
    const st = JSON.parse(res.body) as { reason?: string; message?: string };
    reason = st.reason ?? reason;
    message = st.message ?? message;
  } catch {
    /* not a Status body */
  }
  return new ApiError(res.statusCode, reason, `${method} ${path}: ${res.statusCode} ${reason}: ${message}`);
}
