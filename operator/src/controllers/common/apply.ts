// Applies one desired child object: create when missing, update only when the observed object
// differs semantically, re-read and retry on 409 (never a blind overwrite), refuse to take over an
// object another controller owns.
import type { Logger } from 'pino';
import type { KubeObject } from '../../specs/types.js';
import { isAlreadyExists, isConflict, kindOf, type KubeClient } from '../../runtime/kube.js';
import { firstDifference, overlay } from './compare.js';

/** Fields the API server refuses to change after creation, per kind (kept from the observed object). */
const IMMUTABLE: Record<string, string[][]> = {
  StatefulSet: [['spec', 'selector'], ['spec', 'serviceName'], ['spec', 'volumeClaimTemplates'], ['spec', 'podManagementPolicy']],
  Service: [['spec', 'clusterIP'], ['spec', 'clusterIPs']],
  PodDisruptionBudget: [],
};

export type ApplyOutcome = { result: 'created' | 'unchanged'; object: KubeObject } | { result: 'updated'; object: KubeObject; field: string };

function withoutPaths(obj: KubeObject, paths: string[][]): KubeObject {
  const copy = structuredClone(obj);
  for (const p of paths) {
    let cur: Record<string, unknown> | undefined = copy as Record<string, unknown>;
    for (let i = 0; i < p.length - 1 && cur; i++) cur = cur[p[i]] as Record<string, unknown> | undefined;
    if (cur) delete cur[p[p.length - 1]];
  }
  return copy;
}

function copyPaths(from: KubeObject, to: KubeObject, paths: string[][]): void {
  for (const p of paths) {
    let src: unknown = from;
    for (const k of p) src = (src as Record<string, unknown> | undefined)?.[k];
    if (src === undefined) continue;
    let dst = to as Record<string, unknown>;
    for (let i = 0; i < p.length - 1; i++) dst = (dst[p[i]] ??= {}) as Record<string, unknown>;
    dst[p[p.length - 1]] = structuredClone(src);
  }
}

export class NotOwnedError extends Error {}

export async function applyChild(client: KubeClient, desired: KubeObject, log?: Logger, attempts = 4): Promise<ApplyOutcome> {
  const kind = kindOf(desired.kind);
  const { namespace, name } = desired.metadata;
  const immutable = IMMUTABLE[desired.kind] ?? [];
  const ownerUid = desired.metadata.ownerReferences?.find((r) => r.controller)?.uid;
  let lastError: unknown;
  for (let i = 0; i < attempts; i++) {
    const observed = await client.get<KubeObject>(kind, namespace, name ?? '');
    if (!observed) {
      try {
        return { result: 'created', object: await client.create(kind, desired) };
      } catch (e) {
        if (isAlreadyExists(e)) {
          lastError = e;
          continue;
        }
        throw e;
      }
    }
    const controller = observed.metadata.ownerReferences?.find((r) => r.controller);
    if (controller && ownerUid && controller.uid !== ownerUid) {
      throw new NotOwnedError(`${desired.kind} ${namespace}/${name} is controlled by ${controller.kind} ${controller.name}, not by this resource; refusing to change it`);
    }
    const field = firstDifference(withoutPaths(desired, immutable), observed);
    if (!field) return { result: 'unchanged', object: observed };
    const next = overlay(observed, desired);
    copyPaths(observed, next, immutable);
    next.metadata = { ...next.metadata, resourceVersion: observed.metadata.resourceVersion };
    try {
      log?.info({ kind: desired.kind, namespace, name, field }, 'updating child: observed object differs');
      return { result: 'updated', object: await client.replace(kind, next), field };
    } catch (e) {
      if (isConflict(e)) {
        lastError = e;
        continue;
      }
      throw e;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(`could not apply ${desired.kind} ${namespace}/${name}`);
}

/** Writes `status` only when it differs from the observed one; on 409 the caller re-reconciles. */
export async function writeStatusIfChanged<T extends KubeObject & { status?: unknown }>(client: KubeClient, current: T, status: unknown): Promise<boolean> {
  if (JSON.stringify(canonical(current.status ?? {})) === JSON.stringify(canonical(status))) return false;
  await client.replaceStatus(kindOf(current.kind), { ...current, status } as T);
  return true;
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>)
        .filter(([, x]) => x !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, x]) => [k, canonical(x)]),
    );
  }
  return v;
}
