import type { IncomingMessage, ServerResponse } from 'node:http';
import express from 'express';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiConfig } from '../config/api-config';
import { checkJsonValue } from '../edge/input-checks';
import { ApiErrorCode, EdgeRefusal } from './api-error';

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);
/**
 * Routes whose JSON bodies may be larger than MAX_BODY_BYTES: a message sign order carries up to 64 KiB of message
 * in base64 (87,384 characters) next to a description of up to 1,000 characters (ADR 0030).
 */
const LARGE_BODY_ROUTES = new Map([['/api/signorders', 96 * 1024]]);
/** Routes that stream their own (non-JSON) body; their handler checks the type and the size. */
export const STREAMED_BODY_ROUTES = new Set(['/api/v1/firmware/signatures', '/api/v1/tsa']);
/**
 * Streamed routes that authorise the caller and check what the body is for before they read it: an `Expect:
 * 100-continue` is met by the handler (proceedToBody) only once those checks pass (ADR 0011 addendum "refused before
 * the image"); every other route gets its 100 before its body is parsed.
 */
export const CONTINUE_AFTER_CHECKS_ROUTES = new Set(['/api/v1/firmware/signatures']);

type Done = (err: Error | null, body?: unknown) => void;

/**
 * The server's only body parser (every other content-type parser is removed), so its errors reach the
 * problem+json filter: a request with a body must say application/json (415), is capped at MAX_BODY_BYTES (413),
 * must be strict JSON (400) and nested at most MAX_JSON_DEPTH levels with storable strings and no prototype keys
 * (400, see checkJsonValue). The streamed routes get no parsing at all: their handler reads the raw request
 * stream itself (the firmware image in constant memory, the TSA query capped). Bodies of other methods
 * (DELETE, OPTIONS) are not read, as before.
 */
export function installBodyParser(server: FastifyInstance, config: ApiConfig): void {
  // body-parser's JSON reader (the one the API has always used): same limits, strictness and error types
  // (entity.too.large, entity.parse.failed, charset.unsupported, request.aborted, ...). inflate: false: the
  // request guard already refused any Content-Encoding.
  const parser = (limit: number) => express.json({ limit, strict: true, inflate: false, type: () => true });
  const parse = parser(config.maxBodyBytes);
  const parseLarge = new Map([...LARGE_BODY_ROUTES].map(([route, limit]) => [route, parser(Math.max(limit, config.maxBodyBytes))]));
  const maxDepth = config.maxJsonDepth;
  server.removeAllContentTypeParsers();
  server.addContentTypeParser('*', (request: FastifyRequest, _payload: IncomingMessage, done: Done) => {
    const req = request.raw as IncomingMessage & { body?: unknown };
    if (!BODY_METHODS.has(request.method)) return done(null, undefined);
    // The route template the router matched (case and a trailing slash already folded), none for a 404.
    const route = request.is404 ? '' : (request.routeOptions.url ?? '');
    if (STREAMED_BODY_ROUTES.has(route)) return done(null, undefined);
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (!hasBody) return done(null, undefined);
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/json' && !type.endsWith('+json')) {
      return done(new EdgeRefusal(ApiErrorCode.UnsupportedMediaType, 'request bodies must be application/json'));
    }
    (parseLarge.get(route) ?? parse)(req as express.Request, undefined as unknown as ServerResponse as express.Response, (err?: unknown) => {
      if (err) return done(err as Error);
      try {
        checkJsonValue(req.body, maxDepth);
      } catch (e) {
        return done(e as Error);
      }
      done(null, req.body);
    });
  });
}
