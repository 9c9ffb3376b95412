import { createParamDecorator, CustomDecorator, ExecutionContext, SetMetadata } from '@nestjs/common';
import { AuthzError } from './authz-error';
import type { Permission } from '@keyserver/api-contract';
import type { Principal } from '@keyserver/entra-token';
import type { Actor } from './subject';

export const PUBLIC_ROUTE_KEY = 'keyserver:public-route';
export const REQUIRED_PERMISSION_KEY = 'keyserver:required-permission';
/** Request property holding the {@link Actor} of a protected route. */
export const ACTOR_KEY = 'keyserverActor';

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

/** The {@link Actor} put on the request by the guard. */
export function getActor(request: object): Actor | undefined {
  return (request as Record<string, Actor | undefined>)[ACTOR_KEY];
}

/** Controller parameter: the authorized {@link Actor}. Refuses on routes without one. */
export const CurrentActor = createParamDecorator((_data: unknown, ctx: ExecutionContext): Actor => {
  const actor = getActor(ctx.switchToHttp().getRequest<object>());
  if (!actor) throw new AuthzError('route_not_authorized', 'no authenticated subject on this route');
  return actor;
});
