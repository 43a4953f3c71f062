// Small REST helpers for the harness tests.
import type { Harness } from '../../src/harness/index.js';

export interface Resp<T = Record<string, unknown>> { status: number; body: T }

export async function req<T = Record<string, unknown>>(h: Harness, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Resp<T>> {
  const r = await fetch(`${h.url}${path}`, {
    method,
    headers: { 'content-type': contentType, 'user-agent': 'harness-test/1.0' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: (text ? JSON.parse(text) : {}) as T };
}

export async function until<T>(f: () => Promise<T | undefined | false>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Reads a watch stream until `n` events arrived or the timeout passes. */
export async function watchEvents(h: Harness, path: string, n: number, timeoutMs = 5000): Promise<{ type: string; object: Record<string, unknown> }[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  const out: { type: string; object: Record<string, unknown> }[] = [];
  try {
    const r = await fetch(`${h.url}${path}`, { signal: ac.signal });
    const reader = r.body!.getReader();
    let buf = '';
    while (out.length < n) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += Buffer.from(value).toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) out.push(JSON.parse(line) as { type: string; object: Record<string, unknown> });
      }
    }
  } catch (e) {
    if ((e as Error).name !== 'AbortError') throw e;
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return out;
}

export const widgetCrd = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'widgets.test.io' },
  spec: {
    group: 'test.io',
    names: { kind: 'Widget', plural: 'widgets', singular: 'widget' },
    scope: 'Namespaced',
    versions: [{
      name: 'v1', served: true, storage: true, subresources: { status: {} },
      schema: { openAPIV3Schema: { type: 'object', properties: {
        spec: { type: 'object', properties: { size: { type: 'integer', default: 3 }, mode: { type: 'string', pattern: '^[a-z]+$' } } },
        status: { type: 'object', properties: { observedGeneration: { type: 'integer' }, phase: { type: 'string' } } },
      } } },
    }],
  },
};
