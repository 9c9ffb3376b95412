/** Which door a token came through; decides what it may ever do. */
export type PrincipalChannel = 'bff' | 'provisioning' | 'app';

/**
 * An authenticated Entra caller. `(tid, oid)` is the identity; `displayName` and `username` are
 * mutable and for display only: never authorize on them.
 */
export interface Principal {
  kind: 'user' | 'app';
  channel: PrincipalChannel;
  tid: string;
  oid: string;
  /** Pairwise subject, for audit only. */
  sub: string;
  /** Calling client (application) id. */
  azp: string;
  azpacr?: string;
  /** Delegated scopes (user tokens), e.g. `['keyserver']`. */
  scopes: string[];
  /** App roles from the token (for app tokens, includes the matched APP_ROLE). */
  roles: string[];
  displayName?: string;
  username?: string;
  /** `uti` (Entra) or `jti`. */
  tokenId?: string;
  /** `exp` in seconds since the epoch. */
  expiresAt: number;
}
