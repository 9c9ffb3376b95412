import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import { getActor, type Actor } from '@keyserver/authz';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { StreamedRequest } from '../firmware/firmware.service';
import { ApiError, ApiErrorCode } from './api-error';

/** Controller parameter: the authenticated, registered caller as an {@link Actor}. */
export const Caller = createParamDecorator((_d: unknown, ctx: ExecutionContext): Actor => {
  const actor = getActor(ctx.switchToHttp().getRequest<object>());
  if (!actor) throw new ApiError(ApiErrorCode.ServiceUnavailable, 'route has no authenticated caller');
  return actor;
});

/** Controller parameter: the request id (the server's, echoed in x-request-id). */
export const RequestId = createParamDecorator((_d: unknown, ctx: ExecutionContext): string => {
  const req = ctx.switchToHttp().getRequest<{ id?: string }>();
  return String(req.id ?? '');
});

/** JSON Schema (2020-12) of a contract schema, for the OpenAPI document. */
export function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { unrepresentable: 'any', io: 'input' }) as Record<string, unknown>;
  return rest; // OpenAPI 3.1 schema objects are already JSON Schema 2020-12
}

/**
 * The raw request stream of a route whose body the server does not parse (STREAMED_BODY_ROUTES), linked to its
 * response so a handler that refuses before reading to the end can close the connection.
 */
export function streamedRequest(req: FastifyRequest, reply: FastifyReply): StreamedRequest {
  return Object.assign(req.raw, { res: reply.raw });
}
