// The one error type of the wire codecs: anything malformed, truncated or oversized that
// arrives from (or would be sent to) a peer. `code` is the SQLSTATE a server reports back.

/** SQLSTATE codes used by the protocol layer. */
export const SqlState = {
  protocolViolation: '08P01',
  syntaxError: '42601',
  featureNotSupported: '0A000',
  invalidParameterValue: '22023',
  invalidAuthorization: '28000',
  invalidPassword: '28P01',
  undefinedObject: '42704',
  internalError: 'XX000',
} as const;

export class ProtocolError extends Error {
  /** SQLSTATE, '08P01' (protocol_violation) unless said otherwise */
  readonly code: string;

  constructor(message: string, code: string = SqlState.protocolViolation) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
  }
}
