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
  natures: ReadonlySet<Nature>;
  /** Per keyid, the grants the subject's roles give on that key. */
  keyGrants: ReadonlyMap<string, ReadonlySet<KeyGrant>>;
  /** Route permissions from the natures (app principals lose human-only natures); key grants not included. */
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

/** Nature-derived permissions for this principal/subject pair (app principals lose human-only natures). */
export function naturePermissions(principal: Pick<Principal, 'kind'>, subject: Pick<ResolvedSubject, 'natures'>): Set<Permission> {
  const out = new Set<Permission>(BASE_PERMISSIONS);
  for (const nature of subject.natures) {
    if (principal.kind === 'app' && HUMAN_ONLY_NATURES.has(nature)) continue;
    for (const p of NATURE_PERMISSIONS[nature] ?? []) out.add(p);
  }
  return out;
}

/** Why `permission` is refused by the principal's kind or channel, whatever the subject holds. */
export function channelRestriction(principal: Principal, permission: Permission): AuthzErrorCode | null {
  if (principal.kind === 'app' && HUMAN_ONLY_PERMISSIONS.has(permission)) return 'app_principal_forbidden';
  if (principal.channel === 'bff' && BFF_FORBIDDEN_PERMISSIONS.has(permission)) return 'bff_token_not_allowed';
  return null;
}

/**
 * The whole route-level decision, in order: unknown subject, disabled, kind mismatch, principal
 * restrictions, then the permission: from a nature, or from a key grant on any key (the service then
 * checks the grant on the key the request names, `requireAccess`).
 * @throws AuthzError (403)
 */
export function authorize(principal: Principal, subject: ResolvedSubject | null, permission: Permission): Actor {
  if (!subject) throw new AuthzError('unknown_subject');
  if (!subject.enabled) throw new AuthzError('subject_disabled');
  const expectedKind: SubjectKind = principal.kind === 'app' ? 'CLIENT' : 'USER';
  if (subject.kind !== expectedKind) throw new AuthzError('subject_kind_mismatch');
  const restricted = channelRestriction(principal, permission);
  if (restricted) throw new AuthzError(restricted);
  const d = derivedOf(subject);
  const permissions = d.permissions[principal.kind];
  if (!permissions.has(permission) && !d.grantPermissions.has(permission)) throw new AuthzError('permission_denied');
  return {
    subjectId: subject.subjectId,
    kind: subject.kind,
    tid: principal.tid,
    oid: principal.oid,
    displayName: subject.displayName ?? principal.displayName ?? principal.oid,
    client: principal.azp,
    channel: principal.channel,
    natures: d.natures,
    keyGrants: d.keyGrants,
    permissions,
    principal,
  };
}

/** What an Actor takes from its subject, built once per ResolvedSubject object (the resolver hands out one per cached snapshot). */
interface SubjectDerived {
  natures: ReadonlySet<Nature>;
  keyGrants: ReadonlyMap<string, ReadonlySet<KeyGrant>>;
  /** Route permissions any key grant gives (the service then checks the grant on the key the request names). */
  grantPermissions: ReadonlySet<Permission>;
  permissions: Record<Principal['kind'], ReadonlySet<Permission>>;
}

// Keyed by the object: a changed subject is a new object (the access cache reloads it), so nothing goes stale.
const derived = new WeakMap<ResolvedSubject, SubjectDerived>();

function derivedOf(subject: ResolvedSubject): SubjectDerived {
  let d = derived.get(subject);
  if (!d) {
    d = {
      natures: new Set(subject.natures),
      keyGrants: new Map(Object.entries(subject.keyGrants).map(([keyid, grants]) => [keyid, new Set(grants)])),
      grantPermissions: new Set(Object.values(subject.keyGrants).flatMap((grants) => grants.map((g) => KEY_GRANT_PERMISSION[g]))),
      permissions: { app: naturePermissions({ kind: 'app' }, subject), user: naturePermissions({ kind: 'user' }, subject) },
    };
    derived.set(subject, d);
  }
  return d;
}
