/**
 * The key list kept beside each wire type: every key of the type, marked as the producer must
 * send it. Declaring a list as `WireKeys<T>` makes tsc fail when the list and the type disagree,
 * so a test can check at run time that an answer has exactly the type's keys.
 */
export type Presence = 'required' | 'optional';

/** The empty object is assignable to `Pick<T, K>` exactly when K is optional in T. */
export type WireKeys<T> = { readonly [K in keyof T]-?: Record<never, never> extends Pick<T, K> ? 'optional' : 'required' };
