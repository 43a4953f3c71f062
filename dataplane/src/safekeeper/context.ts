// What every part of a running safekeeper shares: its id, its timelines, auth, logs, metrics.
import type { Authenticator } from '../auth/jwt.js';
import type { Logger } from '../common/log.js';
import type { SafekeeperMetrics } from '../http/metrics.js';
import type { Registry } from './registry.js';

export interface SafekeeperContext {
  nodeId: number;
  registry: Registry;
  auth: Authenticator | undefined;
  log: Logger;
  metrics: SafekeeperMetrics;
}
