// What every part of a running safekeeper shares: its id, its timelines, auth, logs, metrics.
import type { SecureContext } from 'node:tls';
import type { Authenticator } from '../auth/jwt.js';
import type { Logger } from '../common/log.js';
import type { SafekeeperMetrics } from './metrics.js';
import type { Registry } from './registry.js';
import type { WalBackup } from './walBackup.js';
import type { DiskSpace } from '../storage/diskSpace.js';

export interface SafekeeperContext {
  nodeId: number;
  registry: Registry;
  auth: Authenticator | undefined;
  /** set when --tls-cert/--tls-key are given: the Postgres port then requires TLS */
  tls?: SecureContext;
  log: Logger;
  metrics: SafekeeperMetrics;
  /** WAL offload to remote storage; undefined when --remote-storage is not set */
  walBackup?: WalBackup;
  /** disk usage, high-water mark and the reserve file of the data directory */
  disk?: DiskSpace;
}
