// Records core/v1 Events against our resources. Best effort: a failed Event never fails a reconcile.
// Repeats of the same reason and message for one object within a window are dropped.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { KubeObject } from '../specs/types.js';
import { kinds, type KubeClient } from './kube.js';
import { type Clock, systemClock } from './queue.js';

export type EventType = 'Normal' | 'Warning';

export interface EventRecorder {
  record(obj: KubeObject, type: EventType, reason: string, message: string): void;
}

export class KubeEventRecorder implements EventRecorder {
  private readonly recent = new Map<string, number>();

  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
    private readonly component = 'walkeeper-operator',
    private readonly clock: Clock = systemClock,
    private readonly dedupWindowMs = 5 * 60_000,
  ) {}

  record(obj: KubeObject, type: EventType, reason: string, message: string): void {
    const now = this.clock.now();
    const dedupKey = `${obj.metadata.uid}|${reason}|${message}`;
    const last = this.recent.get(dedupKey);
    if (last !== undefined && now - last < this.dedupWindowMs) return;
    this.recent.set(dedupKey, now);
    if (this.recent.size > 5000) this.recent.clear();
    const ts = new Date(now).toISOString();
    const event: KubeObject = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${obj.metadata.name}.${now.toString(16)}${randomBytes(2).toString('hex')}`, namespace: obj.metadata.namespace },
      involvedObject: {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        name: obj.metadata.name,
        namespace: obj.metadata.namespace,
        uid: obj.metadata.uid,
        resourceVersion: obj.metadata.resourceVersion,
      },
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: this.component },
      reportingComponent: this.component,
      firstTimestamp: ts,
      lastTimestamp: ts,
      count: 1,
    };
    this.log.info({ object: `${obj.kind}/${obj.metadata.namespace}/${obj.metadata.name}`, type, reason }, message);
    this.client.create(kinds.Event, event).catch((e: unknown) => this.log.warn({ err: String(e), reason }, 'could not record event'));
  }
}

/** Keeps events in memory (tests). */
export class MemoryEventRecorder implements EventRecorder {
  readonly events: Array<{ name: string; type: EventType; reason: string; message: string }> = [];
  record(obj: KubeObject, type: EventType, reason: string, message: string): void {
    this.events.push({ name: obj.metadata.name ?? '', type, reason, message });
  }
}
