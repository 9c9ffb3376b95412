import { createParamDecorator, CustomDecorator, ExecutionContext, SetMetadata } from '@nestjs/common';
import { AuthzError } from './authz-error';
import { Permission } from './permissions';
import type { Principal } from '@keyserver/entra-token';
import type { AuthContext } from './subject';

export const PUBLIC_ROUTE_KEY = 'keyserver:public-route';
export const REQUIRED_PERMISSION_KEY = 'keyserver:required-permission';
/** Request property holding the {@link AuthContext} of a protected route. */
export const AUTH_CONTEXT_KEY = 'keyserverAuth';

/**
 * Marks a route (or controller) as reachable without a token. Every use must also be listed in the
 * `publicRoutes` registry given to `AuthzModule.forRoot`, or the boot fails.
 */
export const Public = (): CustomDecorator<string> => SetMetadata(PUBLIC_ROUTE_KEY, true);

/** Requires an authenticated, resolved subject holding `permission` (a route has exactly one). */
export const RequirePermission = (permission: Permission): CustomDecorator<string> =>
  SetMetadata(REQUIRED_PERMISSION_KEY, permission);

/** Request property holding the validated principal of a request the guard refused (403 after a valid token). */
export const REFUSED_PRINCIPAL_KEY = 'keyserverRefusedPrincipal';

/** The principal whose valid token the guard refused (e.g. an unknown subject), if any. */
export function getRefusedPrincipal(request: object): Principal | undefined {
  return (request as Record<string, Principal | undefined>)[REFUSED_PRINCIPAL_KEY];
}

/** The {@link AuthContext} put on the request by the guard. */
export function getAuthContext(request: object): AuthContext | undefined {
  return (request as Record<string, AuthContext | undefined>)[AUTH_CONTEXT_KEY];
}

/** Controller parameter: the {@link AuthContext} (principal + subject). Refuses on routes without one. */
export const CurrentSubject = createParamDecorator((_data: unknown, ctx: ExecutionContext): AuthContext => {
  const auth = getAuthContext(ctx.switchToHttp().getRequest<object>());
  if (!auth) throw new AuthzError('route_not_authorized', 'no authenticated subject on this route');
  return auth;
});
