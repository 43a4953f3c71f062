// How a term of the proposer ends: the service starts a fresh term, retries slowly, or stops.
export type TermOutcome = { kind: 'fenced'; reason: string } | { kind: 'refused'; reason: string } | { kind: 'ended'; reason: string };
