/** Which door a token came through; decides what it may ever do. */
export type PrincipalChannel = 'bff' | 'provisioning' | 'app';

/** A user's account in the tenant, from the `acct` optional claim: `0` a member, `1` an Entra B2B guest. */
export type PrincipalAccount = 'member' | 'guest';

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
  /**
   * User tokens: `acct` 0 → `member`, 1 → `guest`. Absent when the token has no `acct` (the optional claim is not
   * configured) and on app tokens: it proves nothing then. Only `member` opens the human-only natures (ADR 0040).
   */
  account?: PrincipalAccount;
  displayName?: string;
  username?: string;
  /** `uti` (Entra) or `jti`. */
  tokenId?: string;
  /** `exp` in seconds since the epoch. */
  expiresAt: number;
  /** `iat` in seconds since the epoch: orders the account proofs of one subject (ADR 0040 addendum). */
  issuedAt?: number;
}
