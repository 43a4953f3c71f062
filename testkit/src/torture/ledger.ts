// What the workload knows about its inserts, and the checker that compares it with the rows
// of the restored server. Only acknowledged inserts (COMMIT returned) must be there; an
// insert whose outcome is unknown (error, dropped connection) may or may not be; an id the
// workload never tried must never appear, and no id may appear twice.

export class LedgerRecord {
  /** every id the workload sent (acknowledged, failed or unknown) */
  readonly attempted = new Set<number>();
  /** ids whose COMMIT returned success */
  readonly acknowledged = new Set<number>();

  attempt(id: number): void {
    if (this.attempted.has(id)) throw new Error(`ledger id ${id} was attempted twice: the workload must never reuse an id`);
    this.attempted.add(id);
  }

  acknowledge(id: number): void {
    if (!this.attempted.has(id)) throw new Error(`ledger id ${id} acknowledged without an attempt`);
    this.acknowledged.add(id);
  }

  get unknown(): number {
    return this.attempted.size - this.acknowledged.size;
  }
}

/** The ledger table as read back from the restored server. */
export interface RestoredLedger {
  /** every row's id, duplicates included (read with a sequential scan) */
  ids: readonly number[];
  /** SELECT count(*) */
  countAll: number;
  /** SELECT count(DISTINCT id) */
  countDistinct: number;
}

export interface LedgerCheck {
  acknowledged: number;
  /** acknowledged ids missing from the restored server (sorted) */
  lost: number[];
  /** rows beyond one per id */
  duplicates: number;
  /** ids on the restored server the workload never sent (sorted) */
  phantoms: number[];
  /** unknown-outcome inserts that did survive */
  unknownPresent: number;
  ok: boolean;
}

export function checkLedger(acknowledged: ReadonlySet<number>, attempted: ReadonlySet<number>, restored: RestoredLedger): LedgerCheck {
  const present = new Set(restored.ids);
  const lost: number[] = [];
  for (const id of acknowledged) if (!present.has(id)) lost.push(id);
  lost.sort((a, b) => a - b);
  const phantoms: number[] = [];
  let unknownPresent = 0;
  for (const id of present) {
    if (!attempted.has(id)) phantoms.push(id);
    else if (!acknowledged.has(id)) unknownPresent++;
  }
  phantoms.sort((a, b) => a - b);
  const duplicates = Math.max(restored.countAll - restored.countDistinct, restored.ids.length - present.size, 0);
  return { acknowledged: acknowledged.size, lost, duplicates, phantoms, unknownPresent, ok: lost.length === 0 && duplicates === 0 && phantoms.length === 0 };
}

export type BreakRule = 'falsify-ack';

/**
 * Deliberately corrupts the workload's record so the run must fail: `falsify-ack` claims an
 * acknowledged id that was never inserted. Returns the id it made up.
 */
export function applyBreakRule(rule: BreakRule, record: { attempted: Set<number>; acknowledged: Set<number> }): number {
  switch (rule) {
    case 'falsify-ack': {
      let fake = 9_000_000_000_000;
      while (record.attempted.has(fake)) fake++;
      record.attempted.add(fake);
      record.acknowledged.add(fake);
      return fake;
    }
  }
}
