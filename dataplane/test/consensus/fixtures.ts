// Shared fixtures for consensus tests: a timeline identity and message builders.
import { parseLsn, type Lsn } from '../../src/common/lsn.js';
import { Acceptor, type AcceptorEffect, type AcceptorFaults } from '../../src/consensus/acceptor.js';
import { LEGACY_MCONF, type AppendRequest, type ProposerGreeting, type TermHistory } from '../../src/consensus/messages.js';
import { newTimelineState, type AcceptorPersistentState } from '../../src/consensus/state.js';

export const TENANT = '0123456789abcdef0123456789abcdef';
export const TIMELINE = 'fedcba9876543210fedcba9876543210';
export const SEG = 16 * 1024 * 1024;
export const L = parseLsn;

export const h = (...entries: [number, string][]): TermHistory =>
  entries.map(([t, l]) => ({ term: BigInt(t), lsn: L(l) }));

export function greeting(over: Partial<ProposerGreeting> = {}): ProposerGreeting {
  return {
    tag: 'proposer_greeting',
    tenantId: TENANT,
    timelineId: TIMELINE,
    mconf: LEGACY_MCONF,
    pgVersion: 160004,
    systemId: 7000000000000000001n,
    walSegSize: SEG,
    ...over,
  };
}

export function vote(term: number | bigint) {
  return { tag: 'vote_request' as const, generation: 0, term: BigInt(term) };
}

export function elected(term: number | bigint, startStreamingAt: Lsn, termHistory: TermHistory) {
  return { tag: 'proposer_elected' as const, generation: 0, term: BigInt(term), startStreamingAt, termHistory };
}

export function append(term: number | bigint, beginLsn: Lsn, len: number, commitLsn = 0n): AppendRequest {
  return {
    tag: 'append_request',
    generation: 0,
    term: BigInt(term),
    beginLsn,
    endLsn: beginLsn + BigInt(len),
    commitLsn,
    truncateLsn: 0n,
    walData: new Uint8Array(len).fill(Number(BigInt(term) & 0xffn)),
  };
}

export function freshState(over: Partial<AcceptorPersistentState> = {}): AcceptorPersistentState {
  return { ...newTimelineState({ tenantId: TENANT, timelineId: TIMELINE, walSegSize: SEG }), ...over };
}

export function makeAcceptor(
  opts: { state?: AcceptorPersistentState; write?: Lsn; flush?: Lsn; faults?: AcceptorFaults } = {},
): Acceptor {
  return new Acceptor({
    nodeId: 1n,
    state: opts.state ?? freshState(),
    writeLsn: opts.write ?? opts.flush ?? 0n,
    flushLsn: opts.flush ?? 0n,
    faults: opts.faults,
  });
}

export const kinds = (effects: AcceptorEffect[]) => effects.map((e) => e.kind);

export function replyOf(effects: AcceptorEffect[]) {
  const r = effects.find((e) => e.kind === 'reply');
  if (!r || r.kind !== 'reply') throw new Error(`no reply in ${JSON.stringify(kinds(effects))}`);
  return r.msg;
}

export function lastPersisted(effects: AcceptorEffect[]): AcceptorPersistentState {
  const p = [...effects].reverse().find((e) => e.kind === 'persist');
  if (!p || p.kind !== 'persist') throw new Error('no persist effect');
  return p.state;
}

/** The `code` of the error that fn throws, which must be a `type`. */
export function thrownCode(type: abstract new (...args: never[]) => Error & { code: string }, fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof type) return e.code;
    throw e;
  }
  throw new Error(`expected a ${type.name}`);
}
