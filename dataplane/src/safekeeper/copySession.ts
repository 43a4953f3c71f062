/**
 * The contract between a Postgres-protocol connection and the sub-protocol that owns its
 * CopyData stream after START_WAL_PUSH / START_REPLICATION. receiveWal and sendWal depend on
 * this leaf instead of the concrete connection, so the transport can import them without a circle.
 */
import type { SlotError } from './slots.js';

/** A sub-protocol that owns the connection's CopyData stream after START_*. */
export interface CopyHandler {
  onCopyData(data: Buffer): Promise<void> | void;
  /** called after every batch of messages that arrived together (group-commit point) */
  onBatchEnd(): Promise<void> | void;
  onCopyDone(): Promise<void> | void;
  onClose(): void;
}

/** What a copy session may do with the connection it runs on. */
export interface CopySession {
  readonly remote: string;
  readonly applicationName: string;
  readonly isClosed: boolean;
  write(buf: Buffer): boolean;
  /** Resolves once the socket can take more (backpressure for WAL senders). */
  drained(): Promise<void>;
  /** Leaves copy mode: sends `before`, a CommandComplete per tag, then ReadyForQuery. */
  endCopy(tags: string[], before?: Buffer[]): void;
  /** Reports the error to the client and closes the connection. */
  fail(err: unknown): void;
}

/** An error that ends the connection, sent to the client as FATAL unless it was an ERROR. */
export class ConnectionError extends Error {
  constructor(
    message: string,
    readonly sqlState: string,
    readonly severity: 'ERROR' | 'FATAL' = 'FATAL',
    readonly detail?: string,
    readonly hint?: string,
  ) {
    super(message);
  }

  /** A refused slot command, as PostgreSQL reports it. */
  static fromSlot(err: SlotError, severity: 'ERROR' | 'FATAL' = 'ERROR'): ConnectionError {
    return new ConnectionError(err.message, err.sqlState, severity, err.detail, err.hint);
  }
}
