// The pod runtime interface (a stand-in kubelet) and loopback address allocation.
import fs from 'node:fs';
import type { KObject } from './util.js';

export interface ContainerStatusReport {
  name: string;
  ready: boolean;
  restartCount?: number;
  state?: 'waiting' | 'running' | 'terminated';
  exitCode?: number;
  reason?: string;
  message?: string;
}

export interface PodStatusReport {
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
  /** pod-level readiness; defaults to every container ready */
  ready?: boolean;
  containers?: ContainerStatusReport[];
  /** init containers, in order; the pod is Initialized once each has exited 0 */
  initContainers?: ContainerStatusReport[];
  reason?: string;
  message?: string;
}

export interface PodContext {
  /** the pod's own loopback address (127.x.y.z); containers should bind there */
  podIP: string;
  /** volume name → host directory (PVC directories, emptyDirs, materialised configMaps/secrets) */
  volumes: Record<string, string>;
  /** a scratch directory owned by this pod */
  podDir: string;
  /** report a status change; the harness writes it to the pod's status subresource */
  report(status: PodStatusReport): void;
}

/**
 * Runs a pod's containers. The harness calls start() once a pod is placed and stop() when it is
 * deleted (stop() must resolve once every container has exited; grace is the allowed seconds).
 */
export interface PodRuntime {
  start(pod: KObject, ctx: PodContext): void | Promise<void>;
  stop(pod: KObject, graceSeconds: number): Promise<void>;
  logs?(namespace: string, name: string, container?: string): string;
  close?(): Promise<void>;
}

/** No containers are run: pods become Running, and Ready only when told (or readyByDefault). */
export class NullRuntime implements PodRuntime {
  private pods = new Map<string, { pod: KObject; ctx: PodContext; ready: boolean }>();
  constructor(private readonly readyByDefault = false) {}

  start(pod: KObject, ctx: PodContext): void {
    const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    const ready = this.readyByDefault;
    this.pods.set(key, { pod, ctx, ready });
    ctx.report(this.status(pod, ready));
  }

  async stop(pod: KObject): Promise<void> {
    this.pods.delete(`${pod.metadata.namespace}/${pod.metadata.name}`);
  }

  /** Marks a running pod (not) ready; returns false if the pod is not running here. */
  setReady(namespace: string, name: string, ready: boolean): boolean {
    const p = this.pods.get(`${namespace}/${name}`);
    if (!p) return false;
    p.ready = ready;
    p.ctx.report(this.status(p.pod, ready));
    return true;
  }

  running(): string[] {
    return [...this.pods.keys()];
  }

  private status(pod: KObject, ready: boolean): PodStatusReport {
    const containers = ((pod.spec as { containers?: { name: string }[] })?.containers ?? []).map((c) => ({ name: c.name, ready, state: 'running' as const }));
    return { phase: 'Running', ready, containers };
  }
}

/**
 * IPv4 addresses with a listening TCP socket on this machine (Linux /proc/net/tcp; empty where
 * unreadable). Another harness on the same machine hands out the same loopback addresses; its
 * pods' listeners tell us which ones to leave alone.
 */
export function listeningAddresses(): Set<string> {
  const out = new Set<string>();
  let text: string;
  try {
    text = fs.readFileSync('/proc/net/tcp', 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[3] !== '0A') continue; // 0A = LISTEN
    const hex = f[1]!.split(':')[0]!;
    if (hex.length !== 8) continue;
    const n = Number.parseInt(hex, 16); // little-endian on the machines we run on
    out.add([n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.'));
  }
  return out;
}

/** Hands out loopback addresses 127.<a>.<b>.<c> from a /16 (127.0.0.1 is never used), skipping any another process listens on. */
export class LoopbackAllocator {
  private used = new Set<string>();
  private next = 2;
  constructor(
    private readonly prefix: string,
    private readonly foreign: () => Set<string> = listeningAddresses,
  ) {}

  /** A free address; `preferred` (e.g. the one a StatefulSet pod had before) when it is free. */
  allocate(preferred?: string): string {
    const busy = this.foreign();
    if (preferred && preferred.startsWith(`${this.prefix}.`) && !this.used.has(preferred) && !busy.has(preferred)) {
      this.used.add(preferred);
      return preferred;
    }
    for (let i = 0; i < 65000; i++) {
      const n = this.next;
      this.next = this.next >= 65533 ? 2 : this.next + 1;
      const ip = `${this.prefix}.${Math.floor(n / 256)}.${n % 256}`;
      if (n % 256 === 0 || n % 256 === 255 || this.used.has(ip) || busy.has(ip)) continue;
      this.used.add(ip);
      return ip;
    }
    throw new Error(`address range ${this.prefix}.0.0/16 exhausted`);
  }

  reserve(ip: string): void {
    if (ip.startsWith(`${this.prefix}.`)) this.used.add(ip);
  }

  release(ip: string | undefined): void {
    if (ip) this.used.delete(ip);
  }
}
