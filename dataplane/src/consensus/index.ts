// Public API of the consensus core: pure acceptor and proposer state machines, term
// history and quorum arithmetic. No I/O; shells in safekeeper/ and proposer/ drive them.
export * from './messages.js';
export * from './errors.js';
export * from './state.js';
export * from './termHistory.js';
export * from './quorum.js';
export * from './acceptor.js';
export * from './proposer.js';
