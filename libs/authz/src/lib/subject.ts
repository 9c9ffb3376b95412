import type { Principal } from '@keyserver/entra-token';
import { AuthzError, AuthzErrorCode } from './authz-error';
import {
  BASE_PERMISSIONS,
  BFF_FORBIDDEN_PERMISSIONS,
  HUMAN_ONLY_NATURES,
  HUMAN_ONLY_PERMISSIONS,
  Nature,
  NATURE_PERMISSIONS,
  Permission,
} from './permissions';

/** Keyserver subject kinds: a human `user`, or a non-interactive `client` (app principal). */
export type SubjectKind = 'user' | 'client';

/** Rights on one key, granted in addition to the natures. */
export interface KeyPermission {
  keyid: string;
  permissions: Permission[];
}

/** What the API's database knows about a principal. */
export interface ResolvedSubject {
  subjectId: string;
  kind: SubjectKind;
  enabled: boolean;
  natures: Nature[];
  keyPermissions: KeyPermission[];
  displayName?: string;
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
 */
export interface SubjectResolver {
  resolve(principal: Principal, request: AuthRequestInfo): Promise<ResolvedSubject | null>;
}

/** Injection token for the {@link SubjectResolver}. */
export const SUBJECT_RESOLVER = Symbol('KEYSERVER_SUBJECT_RESOLVER');

/** The authenticated and resolved caller of a protected route (see `@CurrentSubject()`). */
export interface AuthContext {
  principal: Principal;
  subject: ResolvedSubject;
  /** Global permissions from natures (after principal restrictions), not including key grants. */
  permissions: ReadonlySet<Permission>;
}

/** Nature-derived permissions for this principal/subject pair (app principals lose human-only natures). */
export function naturePermissions(principal: Principal, subject: ResolvedSubject): Set<Permission> {
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
 * restrictions, then the permission (from natures or any key grant; the key itself is checked by
 * {@link assertKeyPermission} in the controller).
 * @throws AuthzError (403)
 */
export function authorize(principal: Principal, subject: ResolvedSubject | null, permission: Permission): AuthContext {
  if (!subject) throw new AuthzError('unknown_subject');
  if (!subject.enabled) throw new AuthzError('subject_disabled');
  const expectedKind: SubjectKind = principal.kind === 'app' ? 'client' : 'user';
  if (subject.kind !== expectedKind) throw new AuthzError('subject_kind_mismatch');
  const restricted = channelRestriction(principal, permission);
  if (restricted) throw new AuthzError(restricted);
  const permissions = naturePermissions(principal, subject);
  const granted = permissions.has(permission) || subject.keyPermissions.some((k) => k.permissions.includes(permission));
  if (!granted) throw new AuthzError('permission_denied');
  return { principal, subject, permissions };
}

/** True when the caller may use `permission` on key `keyid` (natures grant it on every key). */
export function hasKeyPermission(ctx: AuthContext, keyid: string, permission: Permission): boolean {
  if (channelRestriction(ctx.principal, permission)) return false;
  if (ctx.permissions.has(permission)) return true;
  return ctx.subject.keyPermissions.some((k) => k.keyid === keyid && k.permissions.includes(permission));
}

/** @throws AuthzError key_permission_denied (or the channel restriction) */
export function assertKeyPermission(ctx: AuthContext, keyid: string, permission: Permission): void {
  const restricted = channelRestriction(ctx.principal, permission);
  if (restricted) throw new AuthzError(restricted);
  if (!hasKeyPermission(ctx, keyid, permission)) throw new AuthzError('key_permission_denied');
}
