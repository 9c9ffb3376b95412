import type { KeyGrant } from '@keyserver/api-contract';
import type { KeyserverError } from '@keyserver/errors';
import { AuthzError } from './authz-error';
import type { Actor } from './subject';

// The access policy every service applies first, after the guard's route-level decision (subject.ts `authorize`).
// The rule the code has always followed (docs/auth.md §5): a nature opens routes; acting on a key needs a grant on
// THAT key — natures never grant on every key. Administrators and auditors see every key, operation and
// certificate; everyone else sees what their grants (or their own orders) touch. Channel and app-principal
// restrictions are route-level and stay in the guard.

/** True when the actor's roles give `grant` on key `keyid` (per-key grants only). */
export function holds(actor: Pick<Actor, 'keyGrants'>, grant: KeyGrant, keyid: string): boolean {
  return actor.keyGrants.get(keyid)?.has(grant) ?? false;
}

/**
 * The one key-level check: refuses unless the actor holds `grant` on `keyid`. Each feature keeps its own stable
 * refusal code (`refuse`); the default is 403 `key_permission_denied`.
 * @throws the refusal
 */
export function requireAccess(
  actor: Pick<Actor, 'keyGrants'>,
  grant: KeyGrant,
  keyid: string,
  refuse: () => KeyserverError = () => new AuthzError('key_permission_denied', `no ${grant} grant on ${keyid}`),
): void {
  if (!holds(actor, grant, keyid)) throw refuse();
}

/** Administrators may act on what others ordered or issued (cancel an operation, revoke a certificate). */
export function isAdministrator(actor: Pick<Actor, 'natures'>): boolean {
  return actor.natures.has('ADMINISTRATOR');
}

/** What an operation is, for visibility: who ordered it and which keys it uses. */
export interface VisibleOperation {
  ordererId: string;
  keys: readonly { keyid: string }[];
}

/** The visibility policy: what a caller may see (what it may not see does not exist for it: 404, never 403). */
export const visibility = {
  /** Administrators and auditors see everything. */
  everything(actor: Pick<Actor, 'natures'>): boolean {
    return actor.natures.has('ADMINISTRATOR') || actor.natures.has('AUDITOR');
  },
  /** A key: everything-seers, and holders of any grant on it. */
  key(actor: Pick<Actor, 'natures' | 'keyGrants'>, keyid: string): boolean {
    return visibility.everything(actor) || (actor.keyGrants.get(keyid)?.size ?? 0) > 0;
  },
  /** A certificate: as its issuing key. */
  certificate(actor: Pick<Actor, 'natures' | 'keyGrants'>, cert: { issuerKeyid: string }): boolean {
    return visibility.key(actor, cert.issuerKeyid);
  },
  /** An operation: its orderer, everything-seers, and approvers of any of its keys. */
  operation(actor: Pick<Actor, 'subjectId' | 'natures' | 'keyGrants'>, op: VisibleOperation): boolean {
    return op.ordererId === actor.subjectId || visibility.everything(actor) || op.keys.some((k) => holds(actor, 'APPROVE', k.keyid));
  },
} as const;
