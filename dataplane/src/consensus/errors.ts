// Typed errors of the consensus core. Shells map `code` to a log field / HTTP code and
// close the offending connection; the timeline itself stays usable.
export type AcceptorErrorCode =
  | 'tenant_mismatch'
  | 'timeline_mismatch'
  | 'wal_seg_size_mismatch'
  | 'pg_version_mismatch'
  | 'system_id_mismatch'
  | 'generation_mismatch'
  | 'unknown_connection'
  | 'not_greeted'
  | 'elected_before_vote'
  | 'invalid_term_history'
  | 'common_point_mismatch'
  | 'truncate_below_commit'
  | 'wal_gap'
  | 'append_before_elected'
  | 'invalid_append'
  | 'non_sequential_append'
  | 'flush_out_of_range'
  | 'potential_data_loss'
  | 'invalid_pg_timeline'
  | 'pg_timeline_before_elected'
  | 'pg_timeline_regressed'
  | 'pg_timeline_mismatch'
  | 'invalid_history_file'
  | 'invalid_persist_ack';

export class AcceptorError extends Error {
  constructor(
    readonly code: AcceptorErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AcceptorError';
  }
}

export type ProposerErrorCode = 'invalid_member' | 'not_elected' | 'invalid_vote' | 'ack_beyond_sent' | 'wal_regressed' | 'invalid_pg_timeline';

export class ProposerError extends Error {
  constructor(
    readonly code: ProposerErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ProposerError';
  }
}
