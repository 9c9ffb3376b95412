import { Inject, Injectable, OnApplicationBootstrap, RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { AuthzError } from './authz-error';
import { PUBLIC_ROUTE_KEY, REQUIRED_PERMISSION_KEY } from './decorators';
import { isPermission } from '@keyserver/api-contract';
import { normalizeRoutePath, PublicRoute } from './public-routes';
import { AUTHZ_OPTIONS } from './tokens';

/** Options of the authz wiring. */
export interface AuthzOptions {
  /** The registry of every `@Public()` route. */
  publicRoutes: readonly PublicRoute[];
}

/** A route found on a controller with its authorization metadata. */
export interface DiscoveredRoute {
  controller: string;
  handler: string;
  method: string;
  path: string;
  isPublic: boolean;
  permission: unknown;
}

const asArray = (v: unknown): string[] => (Array.isArray(v) ? (v as string[]) : [typeof v === 'string' ? v : '/']);

/**
 * Boot-time check: every route has exactly one of `@Public()` / `@RequirePermission()` with a known
 * permission, every public route is in the registry and every registry entry is a public route.
 * Throws `AuthzError('route_authorization_misconfigured')`, which fails `app.init()`.
 */
@Injectable()
export class RouteAuthorizationAudit implements OnApplicationBootstrap {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    @Inject(AUTHZ_OPTIONS) private readonly options: AuthzOptions,
  ) {}

  onApplicationBootstrap(): void {
    const problems = auditRoutes(this.routes(), this.options.publicRoutes);
    if (problems.length > 0) throw new AuthzError('route_authorization_misconfigured', problems.join('; '));
  }

  /** All controller routes (paths relative to the global prefix). */
  routes(): DiscoveredRoute[] {
    const out: DiscoveredRoute[] = [];
    for (const wrapper of this.discovery.getControllers()) {
      const ctrl = wrapper.metatype as (new (...a: never[]) => unknown) | undefined;
      if (!ctrl || !wrapper.instance) continue;
      const proto = Object.getPrototypeOf(wrapper.instance) as Record<string, unknown>;
      const ctrlPaths = asArray(Reflect.getMetadata(PATH_METADATA, ctrl));
      for (const name of this.scanner.getAllMethodNames(proto)) {
        const handler = proto[name] as (...args: unknown[]) => unknown;
        const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
        if (method === undefined) continue;
        const isPublic = this.reflector.getAllAndOverride<boolean | undefined>(PUBLIC_ROUTE_KEY, [handler, ctrl]) === true;
        const permission = this.reflector.getAllAndOverride<unknown>(REQUIRED_PERMISSION_KEY, [handler, ctrl]);
        for (const cp of ctrlPaths) {
          for (const hp of asArray(Reflect.getMetadata(PATH_METADATA, handler))) {
            out.push({ controller: ctrl.name, handler: name, method: RequestMethod[method], path: normalizeRoutePath(cp, hp), isPublic, permission });
          }
        }
      }
    }
    return out;
  }
}

/** Pure check behind {@link RouteAuthorizationAudit}; returns the problems found. */
export function auditRoutes(routes: readonly DiscoveredRoute[], registry: readonly PublicRoute[]): string[] {
  const problems: string[] = [];
  const key = (m: string, p: string): string => `${m} ${normalizeRoutePath(p)}`;
  const listed = new Set(registry.map((r) => key(r.method, r.path)));
  const publicSeen = new Set<string>();
  for (const r of routes) {
    const where = `${r.controller}.${r.handler} (${r.method} ${r.path})`;
    if (r.isPublic && r.permission !== undefined) problems.push(`${where} is both @Public and @RequirePermission`);
    else if (r.isPublic) {
      const k = key(r.method, r.path);
      publicSeen.add(k);
      if (!listed.has(k)) problems.push(`${where} is @Public but not in the public-route registry`);
    } else if (r.permission === undefined) problems.push(`${where} has neither @Public nor @RequirePermission`);
    else if (!isPermission(r.permission)) problems.push(`${where} requires an unknown permission`);
  }
  const served = new Set(routes.map((r) => key(r.method, r.path)));
  for (const r of registry) {
    if (!r.reason?.trim()) problems.push(`public route ${r.method} ${r.path} has no reason`);
    if (r.edge) {
      if (served.has(key(r.method, r.path))) problems.push(`registry serves ${r.method} ${r.path} at the edge but a controller serves it too`);
    } else if (!publicSeen.has(key(r.method, r.path))) problems.push(`registry lists ${r.method} ${r.path} but no such @Public route exists`);
  }
  return problems;
}
