/**
 * What a timeline knows about each reader streaming from it. A leaf module: the timeline holds
 * these and sendWal fills them in, so neither has to import the other for the type.
 */
import type { Lsn } from '../common/lsn.js';

export interface ReaderInfo {
  applicationName: string;
  remote: string;
  position: Lsn;
  writeLsn: Lsn;
  flushLsn: Lsn;
  applyLsn: Lsn;
  xmin: bigint;
}
