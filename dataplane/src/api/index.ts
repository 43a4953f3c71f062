/**
 * The wire types of walkeeper's HTTP APIs, defined once: the safekeeper and proposer type what
 * they send with them, and walctl, local/ and the operator read answers with them. Each type
 * has a key list (`WireKeys`) beside it for checking a live answer at run time.
 */
export * from './wireKeys.js';
export * from './errorWire.js';
export * from './safekeeperWire.js';
export * from './proposerWire.js';
