import { Inject, Injectable, NestMiddleware } from '@nestjs/common';
import express, { type NextFunction, type Request, type Response } from 'express';
import { API_CONFIG } from '../app/tokens';
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
const STREAMED_BODY_ROUTES = new Set(['/api/v1/firmware/signatures', '/api/v1/tsa']);

/**
 * Body handling as Nest middleware, so its errors reach the problem+json filter: a request with a body
 * must say application/json (415), is capped at MAX_BODY_BYTES (413), must be strict JSON (400) and nested at
 * most MAX_JSON_DEPTH levels with storable strings and no prototype keys (400, see checkJsonValue).
 */
@Injectable()
export class JsonBodyMiddleware implements NestMiddleware {
  private readonly parse: ReturnType<typeof express.json>;
  private readonly parseLarge = new Map<string, ReturnType<typeof express.json>>();
  private readonly maxDepth: number;

  constructor(@Inject(API_CONFIG) config: ApiConfig) {
    // inflate: false — RequestGuardMiddleware already refused any Content-Encoding.
    const parser = (limit: number) => express.json({ limit, strict: true, inflate: false, type: () => true });
    this.parse = parser(config.maxBodyBytes);
    for (const [route, limit] of LARGE_BODY_ROUTES) this.parseLarge.set(route, parser(Math.max(limit, config.maxBodyBytes)));
    this.maxDepth = config.maxJsonDepth;
  }

  use(req: Request, res: Response, next: NextFunction) {
    if (!BODY_METHODS.has(req.method)) return next();
    const route = req.originalUrl.split('?')[0].replace(/\/+$/, '');
    if (STREAMED_BODY_ROUTES.has(route)) return next();
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (!hasBody) return next();
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/json' && !type.endsWith('+json')) {
      return next(new EdgeRefusal(ApiErrorCode.UnsupportedMediaType, 'request bodies must be application/json'));
    }
    (this.parseLarge.get(route) ?? this.parse)(req, res, (err?: unknown) => {
      if (err) return next(err);
      try {
        checkJsonValue(req.body, this.maxDepth);
      } catch (e) {
        return next(e);
      }
      next();
    });
  }
}
