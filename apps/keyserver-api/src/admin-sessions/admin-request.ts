import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import type { z } from 'zod';
import { ZodBody } from '../common/zod-body';

/** The header that names the ACTIVE administrative session a change is made in. */
export const ADMIN_SESSION_HEADER = 'x-admin-session';

/** Reads the raw `X-Admin-Session` header; also how the OpenAPI document finds the routes that take one. */
export function adminSessionHeaderValue(_d: unknown, ctx: ExecutionContext): string | undefined {
  const v = ctx.switchToHttp().getRequest<{ headers: Record<string, string | string[] | undefined> }>().headers[ADMIN_SESSION_HEADER];
  return Array.isArray(v) ? v.join(',') : v;
}

/** Controller parameter: the raw `X-Admin-Session` header (checked by {@link AdminSessionGate}). */
export const AdminSessionHeader = createParamDecorator(adminSessionHeaderValue);

/**
 * Validates a body inside the service (not in a pipe) so that a refused body is audited like any other
 * refusal; same rules and codes as {@link ZodBody}.
 */
export function validateBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  return new ZodBody(schema).transform(body ?? {});
}

/** The one UUID check (@keyserver/api-contract ids.ts). */
export { isUuid } from '@keyserver/api-contract';
