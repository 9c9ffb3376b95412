import { CanActivate, ExecutionContext, Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { EntraTokenValidator, Principal } from '@keyserver/entra-token';
import { KeyserverError } from '@keyserver/errors';
import type { IncomingMessage } from 'node:http';
import { AuthzError } from './authz-error';
import { AuthEventSink } from './auth-events';
import { ACTOR_KEY, PUBLIC_ROUTE_KEY, REFUSED_PRINCIPAL_KEY, REQUIRED_PERMISSION_KEY } from './decorators';
import { isPermission, type Permission } from '@keyserver/api-contract';
import { authorize, AuthRequestInfo, ResolvedSubject, SUBJECT_RESOLVER, SubjectResolver, type Actor } from './subject';
import { AUTH_EVENT_SINK, ENTRA_TOKEN_VALIDATOR, PRINCIPAL_GATE } from './tokens';

/**
 * Sees every authorized caller before its handler runs and may refuse it by throwing (the API: a principal over
 * its limit of refused requests gets 429). Runs in the guard, so no route pays for an interceptor pipeline.
 */
export interface PrincipalGate {
  admit(actor: Actor): void;
}

/** Express' request is Node's; Fastify's (the API) wraps it as `raw`. */
type HttpRequest = IncomingMessage & { ip?: string; originalUrl?: string; raw?: IncomingMessage };

/** Every `Authorization` header line (Node keeps only the first in `headers`). */
export function authorizationHeaders(req: IncomingMessage): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i].toLowerCase() === 'authorization') out.push(req.rawHeaders[i + 1]);
  }
  return out;
}

/** True when the query string carries an `access_token` (RFC 6750 §2.3: refused, it leaks into logs). */
export function queryHasToken(url: string | undefined): boolean {
  const q = (url ?? '').indexOf('?');
  if (q < 0) return false;
  return new URLSearchParams(url?.slice(q + 1)).has('access_token');
}

/**
 * Global guard (named so as not to shadow @nestjs/passport's `AuthGuard`; ADR 0001 says why there is no Passport
 * strategy), deny by default: `@Public()` routes pass; `@RequirePermission(p)` routes need a valid
 * Entra token, a known enabled subject and `p`; anything else is refused.
 */
@Injectable()
export class EntraAuthGuard implements CanActivate {
  private readonly logger = new Logger(EntraAuthGuard.name);

  constructor(
    private readonly reflector: Reflector,
    @Inject(ENTRA_TOKEN_VALIDATOR) private readonly validator: EntraTokenValidator,
    @Inject(SUBJECT_RESOLVER) private readonly resolver: SubjectResolver,
    @Optional() @Inject(AUTH_EVENT_SINK) private readonly events?: AuthEventSink,
    @Optional() @Inject(PRINCIPAL_GATE) private readonly gate?: PrincipalGate,
  ) {}

  private readonly marks = new WeakMap<object, WeakMap<object, { isPublic: boolean; permission: unknown }>>();

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') throw new AuthzError('route_not_authorized');
    const { isPublic, permission } = this.routeMarks(context.getHandler(), context.getClass());
    const req = context.switchToHttp().getRequest<HttpRequest>();
    if (isPublic && permission === undefined) return true;
    const info: AuthRequestInfo = { method: req.method ?? '', path: (req.originalUrl ?? req.url ?? '').split('?')[0], ip: req.ip };
    let principal: Principal | undefined;
    let subject: ResolvedSubject | null | undefined;
    let actor: Actor;
    try {
      if (isPublic || !isPermission(permission)) {
        throw new AuthzError('route_not_authorized', 'route has no valid authorization decorator');
      }
      principal = await this.validator.authenticate(authorizationHeaders(req.raw ?? req), { queryHasToken: queryHasToken(req.url) });
      subject = await this.resolver.resolve(principal, info);
      actor = authorize(principal, subject, permission as Permission);
      (req as unknown as Record<string, unknown>)[ACTOR_KEY] = actor;
    } catch (e) {
      // Who was refused, for the refusal observer's per-principal limits.
      if (principal) (req as unknown as Record<string, unknown>)[REFUSED_PRINCIPAL_KEY] = principal;
      if (e instanceof KeyserverError) this.report(e, info, principal, subject ?? undefined);
      throw e;
    }
    // Outside the try: the gate's refusal is not an authentication failure (the problem filter sees it as is).
    this.gate?.admit(actor);
    return true;
  }

  /** A route's decorators, read once per (handler, controller): metadata does not change after boot. */
  private routeMarks(handler: object, controller: object): { isPublic: boolean; permission: unknown } {
    let byController = this.marks.get(handler);
    if (!byController) this.marks.set(handler, (byController = new WeakMap()));
    let marks = byController.get(controller);
    if (!marks) {
      const targets = [handler, controller] as unknown as Parameters<Reflector['getAllAndOverride']>[1];
      marks = {
        isPublic: this.reflector.getAllAndOverride<boolean | undefined>(PUBLIC_ROUTE_KEY, targets) === true,
        permission: this.reflector.getAllAndOverride<unknown>(REQUIRED_PERMISSION_KEY, targets),
      };
      byController.set(controller, marks);
    }
    return marks;
  }

  private report(e: KeyserverError, info: AuthRequestInfo, principal?: Principal, subject?: ResolvedSubject): void {
    const event = {
      status: e.status,
      code: e.code,
      ...info,
      ...(principal
        ? { principal: { tid: principal.tid, oid: principal.oid, azp: principal.azp, kind: principal.kind, channel: principal.channel, tokenId: principal.tokenId, account: principal.account } }
        : {}),
      ...(subject ? { subjectId: subject.subjectId } : {}),
    };
    this.logger.warn(`${info.method} ${info.path} refused: ${e.status} ${e.code}`);
    try {
      void Promise.resolve(this.events?.authFailed(event)).catch((err: unknown) => this.logger.error(`auth event sink failed: ${String(err)}`));
    } catch (err) {
      this.logger.error(`auth event sink failed: ${String(err)}`);
    }
  }
}
