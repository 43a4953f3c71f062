// The operator's HTTP client for the data plane (safekeeper API on 7676, proposer status on 7677).
// fetch is injected so tests feed canned JSON; every call has a timeout. The answers' shapes are
// the data plane's own wire types (@walkeeper/dataplane/api), never a copy.
import { request as httpsRequest } from 'node:https';
import type {
  ApiErrorJson, BackupRunJson, BackupsJson, ProposerStatusJson, RetentionJson, RetentionRequestJson,
  SafekeeperStatusJson, TenantCreateJson, TenantListJson, TimelineCreateJson, TimelineStatusJson,
} from '@walkeeper/dataplane/api';

export interface FetchResponse {
  status: number;
  text(): Promise<string>;
}
export type FetchLike = (url: string, init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal }) => Promise<FetchResponse>;

export const globalFetch: FetchLike = (url, init) => fetch(url, init);

/**
 * A FetchLike over node:https that verifies the server against `ca` (PEM) and the name
 * `servername` (the member's DNS name, while the URL may hold its pod IP). A missing CA fails
 * every call with `missingCa` rather than falling back to the system's CAs.
 */
export function tlsFetch(tls: { ca: string | undefined; servername?: string; missingCa?: string }): FetchLike {
  return (url, init) =>
    new Promise<FetchResponse>((resolve, reject) => {
      if (!tls.ca) return reject(new Error(tls.missingCa ?? 'no CA certificate to verify the server with'));
      const req = httpsRequest(url, { method: init.method, headers: init.headers, ca: tls.ca, servername: tls.servername, signal: init.signal }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, text: async () => body });
        });
      });
      req.on('error', (err) => reject(init.signal.aborted ? init.signal.reason : err));
      req.end(init.body);
    });
}

/** An HTTP answer that is not what the operator expected, with the data plane's error code when given. */
export class DataPlaneError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'DataPlaneError';
  }
}

export interface DataPlaneClientOptions {
  fetch?: FetchLike;
  timeoutMs?: number;
  /** Admin JWT (scope admin) when the cluster has auth on. */
  token?: string;
}

export class DataPlaneClient {
  private readonly fetch: FetchLike;
  private readonly timeoutMs: number;

  constructor(
    readonly baseUrl: string,
    private readonly opts: DataPlaneClientOptions = {},
  ) {
    this.fetch = opts.fetch ?? globalFetch;
    this.timeoutMs = opts.timeoutMs ?? 3000;
  }

  private async call<T>(method: string, path: string, body?: unknown, okStatuses: number[] = [200, 201]): Promise<{ status: number; json: T | undefined }> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (this.opts.token) headers.Authorization = `Bearer ${this.opts.token}`;
    const url = this.baseUrl + path;
    let res: FetchResponse;
    try {
      res = await this.fetch(url, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      const msg = (e as Error).name === 'TimeoutError' ? `timed out after ${this.timeoutMs} ms` : (e as Error).message;
      throw new DataPlaneError(`${method} ${url}: ${msg}`, undefined, undefined);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!okStatuses.includes(res.status)) {
      const err = (json ?? {}) as Partial<ApiErrorJson>;
      throw new DataPlaneError(`${method} ${url}: HTTP ${res.status}${err.code ? ` ${err.code}` : ''}: ${err.error ?? text.slice(0, 200)}`, res.status, err.code);
    }
    return { status: res.status, json: json as T };
  }

  async status(): Promise<SafekeeperStatusJson> {
    return (await this.call<SafekeeperStatusJson>('GET', '/v1/status')).json!;
  }

  async listTenants(): Promise<TenantListJson> {
    const r = (await this.call<TenantListJson>('GET', '/v1/tenants')).json;
    return { tenants: r?.tenants ?? [] };
  }

  /** Creates the tenant; an existing one is fine. Returns whether it was created now. */
  async ensureTenant(tenantId: string): Promise<boolean> {
    const r = await this.call('POST', '/v1/tenants', { tenant_id: tenantId } satisfies TenantCreateJson, [200, 201, 409]);
    return r.status !== 409;
  }

  /** Creates the timeline; an existing one is fine. Returns whether it was created now. */
  async ensureTimeline(tenantId: string, timelineId: string): Promise<boolean> {
    const r = await this.call('POST', `/v1/tenants/${tenantId}/timelines`, { timeline_id: timelineId } satisfies TimelineCreateJson, [200, 201, 409]);
    return r.status !== 409;
  }

  /** The timeline's state, or undefined when the member does not have it (404). */
  async timeline(tenantId: string, timelineId: string): Promise<TimelineStatusJson | undefined> {
    const r = await this.call<TimelineStatusJson>('GET', `/v1/tenants/${tenantId}/timelines/${timelineId}`, undefined, [200, 404]);
    return r.status === 404 ? undefined : r.json;
  }

  /** Deletes the tenant and its data; a missing tenant is fine. Returns whether it existed. */
  async deleteTenant(tenantId: string): Promise<boolean> {
    const r = await this.call('DELETE', `/v1/tenants/${tenantId}`, undefined, [200, 202, 204, 404]);
    return r.status !== 404;
  }

  async proposerStatus(): Promise<ProposerStatusJson> {
    return (await this.call<ProposerStatusJson>('GET', '/v1/status')).json!;
  }

  /** The proposer's base backups: complete ones, the one running, the last failure. */
  async listBackups(): Promise<BackupsJson> {
    const r = (await this.call<BackupsJson>('GET', '/v1/backups')).json;
    if (!r || !Array.isArray(r.backups)) throw new DataPlaneError(`GET ${this.baseUrl}/v1/backups: not a backup list`, 200, undefined);
    return r;
  }

  /** Starts a base backup on the proposer (it runs pg_basebackup against its PostgreSQL). */
  async startBackup(): Promise<BackupRunJson> {
    return (await this.call<BackupRunJson>('POST', '/v1/backups', {}, [202])).json!;
  }

  /** Deletes backups (and bucket WAL below the oldest kept one) beyond the retention. */
  async applyBackupRetention(retention: RetentionRequestJson): Promise<RetentionJson> {
    return (await this.call<RetentionJson>('POST', '/v1/backups/retention', retention)).json!;
  }
}

/** Runs `fn` over items with at most `limit` in flight; results keep the input order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  });
  await Promise.all(workers);
  return out;
}
