// The operator's single door to LSN arithmetic: re-exports the data plane's pure LSN helper
// (the only data-plane module the operator may import; everything else goes over HTTP).
export { parseLsn, formatLsn } from '@walkeeper/dataplane/lsn';
export type { Lsn } from '@walkeeper/dataplane/lsn';
