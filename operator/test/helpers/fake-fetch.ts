// A canned-JSON fetch for data-plane HTTP tests: routes by "METHOD url" to a status and body.
import type { FetchLike } from '../../src/controllers/common/dataplane.js';

export type Route = (method: string, url: string, body: unknown) => { status: number; body?: unknown } | undefined;

export function fakeFetch(route: Route, calls: string[] = []): FetchLike {
  return async (url, init) => {
    calls.push(`${init.method} ${url}`);
    const r = route(init.method, url, init.body ? JSON.parse(init.body) : undefined);
    if (!r) throw new Error(`connect ECONNREFUSED ${url}`);
    return { status: r.status, text: async () => (r.body === undefined ? '' : JSON.stringify(r.body)) };
  };
}
