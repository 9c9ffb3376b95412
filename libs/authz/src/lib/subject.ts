import { KEY_GRANT_PERMISSION, type KeyGrant, type Nature, type Permission, type SubjectKind } from '@keyserver/api-contract';
import type { Principal } from '@keyserver/entra-token';
import { AuthzError, AuthzErrorCode } from './authz-error';
import { BASE_PERMISSIONS, BFF_FORBIDDEN_PERMISSIONS, HUMAN_ONLY_NATURES, HUMAN_ONLY_PERMISSIONS, NATURE_PERMISSIONS } from './permissions';

// The caller has three names, one per step: the token's `Principal` (entra-token) -> the database's
// `ResolvedSubject` (the SubjectResolver) -> the authorized `Actor` (the guard), which services receive.

/** What the API's database knows about a principal: its natures and, per keyid, its key grants. */
export interface ResolvedSubject {
  subjectId: string;
  kind: SubjectKind;
  enabled: boolean;
  natures: readonly Nature[];
  keyGrants: Readonly<Record<string, readonly KeyGrant[]>>;
  displayName?: string;
}

/** The authenticated, registered and authorized caller of a protected route (`@CurrentActor()`). */
export interface Actor {
  subjectId: string;
  kind: SubjectKind;
  tid: string;
  oid: string;
  displayName: string;
  /** The client the token was issued to (azp). */
  client: string;
  channel: Principal['channel'];
  /** The subject's natures this principal may use: without the human-only ones unless {@link mayUseHumanOnly}. */
  natures: ReadonlySet<Nature>;
  /** Per keyid, the grants the subject's roles give on that key (without APPROVE unless {@link mayUseHumanOnly}). */
  keyGrants: ReadonlyMap<string, ReadonlySet<KeyGrant>>;
  /** Route permissions from those natures; key grants not included. */
  permissions: ReadonlySet<Permission>;
  principal: Principal;
}

/** The request being authorized, for the resolver's audit records. */
export interface AuthRequestInfo {
  method: string;
  path: string;
  ip?: string;
}

/**
 * Maps an authenticated principal to a Keyserver subject by (tid, oid). Implemented by the API with
 * the database. Returns null for an unknown principal (it should record/audit it; it gets no rights).
 * A returned ResolvedSubject is a snapshot that is never mutated: a changed subject is a new object
 * ({@link authorize} derives the Actor's sets once per object).
 */
export interface SubjectResolver {
  resolve(principal: Principal, request: AuthRequestInfo): Promise<ResolvedSubject | null>;
}

/** Injection token for the {@link SubjectResolver}. */
export const SUBJECT_RESOLVER = Symbol('KEYSERVER_SUBJECT_RESOLVER');

/**
 * Whether the principal may use the human-only natures (ADMINISTRATOR, APPROVER), their permissions and the APPROVE
 * grant: only a user whose token proves a member account of the tenant (`acct` 0). Never an app principal, never an
 * Entra B2B guest (`acct` 1), and not a user token without `acct` (deny by default; ADR 0040).
 */
export function mayUseHumanOnly(principal: Pick<Principal, 'kind' | 'account'>): boolean {
  return principal.kind === 'user' && principal.account === 'member';
}

/** Nature-derived permissions for this principal/subject pair (human-only natures only when {@link mayUseHumanOnly}). */
export function naturePermissions(principal: Pick<Principal, 'kind' | 'account'>, subject: Pick<ResolvedSubject, 'natures'>): Set<Permission> {
  return permissionsOf(mayUseHumanOnly(principal) ? subject.natures : subject.natures.filter((n) => !HUMAN_ONLY_NATURES.has(n)));
}

function permissionsOf(natures: readonly Nature[]): Set<Permission> {
  const out = new Set<Permission>(BASE_PERMISSIONS);
  for (const nature of natures) for (const p of NATURE_PERMISSIONS[nature] ?? []) out.add(p);
  return out;
}

/** Why `permission` is refused by the principal's kind, account or channel, whatever the subject holds. */
export function channelRestriction(principal: Principal, permission: Permission): AuthzErrorCode | null {
  if (HUMAN_ONLY_PERMISSIONS.has(permission) && !mayUseHumanOnly(principal)) {
    return principal.kind === 'app' ? 'app_principal_forbidden' : 'member_account_required';
  }
  if (principal.channel === 'bff' && BFF_FORBIDDEN_PERMISSIONS.has(permission)) return 'bff_token_not_allowed';
  return null;
}

/** The refusal's detail: a guest is told so; a token without `acct` points at the missing optional claim. */
function refusal(code: AuthzErrorCode, principal: Principal): AuthzError {
  if (code !== 'member_account_required') return new AuthzError(code);
  return new AuthzError(
    code,
    principal.account === 'guest'
      ? 'a guest account (acct 1) never holds the administrator or approver natures'
      : 'the token proves no member account (no acct claim): the administrator and approver natures need one',
  );
}

/**
 * The whole route-level decision, in order: unknown subject, disabled, kind mismatch, principal
 * restrictions (kind, account, channel), then the permission: from a nature, or from a key grant on any key (the
 * service then checks the grant on the key the request names, `requireAccess`).
 * @throws AuthzError (403)
 */
export function authorize(principal: Principal, subject: ResolvedSubject | null, permission: Permission): Actor {
  if (!subject) throw new AuthzError('unknown_subject');
  if (!subject.enabled) throw new AuthzError('subject_disabled');
  const expectedKind: SubjectKind = principal.kind === 'app' ? 'CLIENT' : 'USER';
  if (subject.kind !== expectedKind) throw new AuthzError('subject_kind_mismatch');
  const restricted = channelRestriction(principal, permission);
  if (restricted) throw refusal(restricted, principal);
  const d = derivedOf(subject);
  const human = mayUseHumanOnly(principal);
  const v = human ? d.human : d.restricted;
  if (!v.permissions.has(permission) && !v.grantPermissions.has(permission)) {
    // Only a human-only nature the user may not use would give it: name that cause rather than a bare denial.
    const wouldHave = d.human.permissions.has(permission) || d.human.grantPermissions.has(permission);
    throw refusal(principal.kind === 'user' && !human && wouldHave ? 'member_account_required' : 'permission_denied', principal);
  }
  return {
    subjectId: subject.subjectId,
    kind: subject.kind,
    tid: principal.tid,
    oid: principal.oid,
    displayName: subject.displayName ?? principal.displayName ?? principal.oid,
    client: principal.azp,
    channel: principal.channel,
    natures: v.natures,
    keyGrants: v.keyGrants,
    permissions: v.permissions,
    principal,
  };
}

/** What an Actor holds of its subject. */
interface AccessView {
  natures: ReadonlySet<Nature>;
  keyGrants: ReadonlyMap<string, ReadonlySet<KeyGrant>>;
  /** Route permissions any key grant gives (the service then checks the grant on the key the request names). */
  grantPermissions: ReadonlySet<Permission>;
  permissions: ReadonlySet<Permission>;
}

/**
 * What an Actor takes from its subject, built once per ResolvedSubject object (the resolver hands out one per cached
 * snapshot): everything for a member (`human`), and without the human-only natures and grants for app principals,
 * guests and tokens without `acct` (`restricted`).
 */
interface SubjectDerived {
  human: AccessView;
  restricted: AccessView;
}

// Keyed by the object: a changed subject is a new object (the access cache reloads it), so nothing goes stale.
const derived = new WeakMap<ResolvedSubject, SubjectDerived>();

/** Grants that open a human-only permission (APPROVE): as human-only as the natures. */
const humanOnlyGrant = (g: KeyGrant): boolean => HUMAN_ONLY_PERMISSIONS.has(KEY_GRANT_PERMISSION[g]);

function viewOf(natures: readonly Nature[], keyGrants: [string, readonly KeyGrant[]][]): AccessView {
  return {
    natures: new Set(natures),
    keyGrants: new Map(keyGrants.map(([keyid, grants]) => [keyid, new Set(grants)])),
    grantPermissions: new Set(keyGrants.flatMap(([, grants]) => grants.map((g) => KEY_GRANT_PERMISSION[g]))),
    permissions: permissionsOf(natures),
  };
}

function derivedOf(subject: ResolvedSubject): SubjectDerived {
  let d = derived.get(subject);
  if (!d) {
    const grants = Object.entries(subject.keyGrants);
    d = {
      human: viewOf(subject.natures, grants),
      restricted: viewOf(
        subject.natures.filter((n) => !HUMAN_ONLY_NATURES.has(n)),
        // A key left with no grant is not listed: it gives nothing, not even visibility.
        grants.map(([keyid, g]): [string, KeyGrant[]] => [keyid, g.filter((x) => !humanOnlyGrant(x))]).filter(([, g]) => g.length > 0),
      ),
    };
    derived.set(subject, d);
  }
  return d;
}
