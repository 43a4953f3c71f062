// What every controller needs from the outside world, injected so tests can supply fakes.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { kinds, type KubeClient } from '../runtime/kube.js';
import type { EventRecorder } from '../runtime/events.js';
import type { FetchLike } from './common/dataplane.js';
import { DEFAULT_COMMIT_SLACK_BYTES } from '../rollout/planner.js';

export interface ControllerOptions {
  clusterDomain: string;
  /** Timeout of each data-plane HTTP call. */
  httpTimeoutMs: number;
  /** A member within this many bytes of the commit LSN counts as caught up (default: one WAL segment). */
  lagThresholdBytes: bigint;
  /** Restart gate: how far below the commit LSN a member may be and still count as at it (planner.ts). */
  commitSlackBytes: bigint;
  /** Poll interval for quorum health when nothing else is going on. */
  pollIntervalMs: number;
}

export const defaultControllerOptions: ControllerOptions = {
  clusterDomain: 'cluster.local',
  httpTimeoutMs: 3000,
  lagThresholdBytes: 16n * 1024n * 1024n,
  commitSlackBytes: DEFAULT_COMMIT_SLACK_BYTES,
  pollIntervalMs: 30_000,
};

export interface ControllerContext {
  client: KubeClient;
  events: EventRecorder;
  log: Logger;
  fetch?: FetchLike;
  now: () => Date;
  randomHex: (bytes: number) => string;
  options: ControllerOptions;
}

export const cryptoRandomHex = (bytes: number) => randomBytes(bytes).toString('hex');

/** Reads a key of a Secret (decoded), or undefined. */
export async function readSecretKey(ctx: ControllerContext, namespace: string, name: string, key: string): Promise<string | undefined> {
  const secret = await ctx.client.get<{ apiVersion: string; kind: string; metadata: { name?: string }; data?: Record<string, string> }>(kinds.Secret, namespace, name);
  const v = secret?.data?.[key];
  return v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8').trim();
}
