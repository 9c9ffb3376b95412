// The vocabulary (Permission, Nature, KeyGrant) is declared in @keyserver/api-contract; Permission is re-exported
// here only because every controller names it next to @RequirePermission.
export { Permission } from '@keyserver/api-contract';
export { BASE_PERMISSIONS, NATURE_PERMISSIONS, HUMAN_ONLY_NATURES, HUMAN_ONLY_PERMISSIONS, BFF_FORBIDDEN_PERMISSIONS } from './lib/permissions';
export { AuthzError, AUTHZ_ERROR_CODES, type AuthzErrorCode } from './lib/authz-error';
export {
  authorize,
  channelRestriction,
  mayUseHumanOnly,
  naturePermissions,
  SUBJECT_RESOLVER,
  type Actor,
  type AuthRequestInfo,
  type ResolvedSubject,
  type SubjectResolver,
} from './lib/subject';
export { holds, isAdministrator, requireAccess, visibility, type VisibleOperation } from './lib/access';
export {
  ACTOR_KEY,
  CurrentActor,
  getActor,
  getRefusedPrincipal,
  Public,
  PUBLIC_ROUTE_KEY,
  REFUSED_PRINCIPAL_KEY,
  RequirePermission,
  REQUIRED_PERMISSION_KEY,
} from './lib/decorators';
export { definePublicRoutes, normalizeRoutePath, type PublicRoute } from './lib/public-routes';
export { AUTH_EVENT_SINK, AUTHZ_OPTIONS, ENTRA_TOKEN_VALIDATOR, PRINCIPAL_GATE, REFUSAL_OBSERVER } from './lib/tokens';
export type { AuthEventSink, AuthFailureEvent } from './lib/auth-events';
export { EntraAuthGuard, authorizationHeaders, queryHasToken, type PrincipalGate } from './lib/auth.guard';
export { RouteAuthorizationAudit, auditRoutes } from './lib/route-audit';
export type { AuthzOptions, DiscoveredRoute } from './lib/route-audit';
export { AuthzModule, type AuthzModuleOptions, type ProviderSpec } from './lib/authz.module';
