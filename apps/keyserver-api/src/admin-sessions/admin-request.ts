import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import type { z } from 'zod';
import { KeyserverError } from '@keyserver/errors';
import { ZodBody } from '../common/zod-body';

/** The header that names the ACTIVE administrative session a change is made in. */
export const ADMIN_SESSION_HEADER = 'x-admin-session';

/** Controller parameter: the raw `X-Admin-Session` header (checked by {@link AdminSessionGate}). */
export const AdminSessionHeader = createParamDecorator((_d: unknown, ctx: ExecutionContext): string | undefined => {
  const v = ctx.switchToHttp().getRequest<{ headers: Record<string, string | string[] | undefined> }>().headers[ADMIN_SESSION_HEADER];
  return Array.isArray(v) ? v.join(',') : v;
});

/**
 * Validates a body inside the service (not in a pipe) so that a refused body is audited like any other
 * refusal; same rules and codes as {@link ZodBody}.
 */
export function validateBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  return new ZodBody(schema).transform(body ?? {}, { type: 'body' });
}

/** The error code an audit entry records for a thrown value. */
export function errorCodeOf(err: unknown): string {
  return err instanceof KeyserverError ? err.code : 'internal_error';
}

/** DENIED for refusals (4xx), FAILED for faults. */
export function outcomeOf(err: unknown): 'DENIED' | 'FAILED' {
  return err instanceof KeyserverError && err.status < 500 ? 'DENIED' : 'FAILED';
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (v: unknown): v is string => typeof v === 'string' && UUID.test(v);
