import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { KeyclientConfig } from '../config/keyclient-config';
import { KeyclientError, KeyclientErrorCode } from '../errors/keyclient-error';
import { checkRawPath } from '../proxy/proxy-routes';
import { sendProblem } from './problem';

declare module 'http' {
  interface IncomingMessage {
    /** Set by the request-id middleware; propagated to the API as x-request-id. */
    requestId?: string;
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/** Reuses a well-formed incoming x-request-id, otherwise mints one; echoes it on the response. */
export function requestIdMiddleware(req: Request, res: Response, next: NextFunction): void {
  const incoming = req.headers['x-request-id'];
  req.requestId = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
  res.setHeader('x-request-id', req.requestId);
  next();
}

/** How long a request body may still arrive after its answer went out (a refusal, an early answer of the API). */
export const UNREAD_BODY_GRACE_MS = 1_000;

/**
 * A body the keyclient did not read (a refused request: CSRF, no session, a route off the list) would otherwise be
 * read and dropped by Node for as long as the client sends it, up to its request timeout (minutes, unbounded bytes).
 * The answer goes out as usual; a body still arriving a second later ends the connection. Not at once: closing a
 * socket with unread bytes resets it, and the client could lose the answer it has not read yet.
 */
export function unreadBodyMiddleware(req: Request, res: Response, next: NextFunction): void {
  res.on('finish', () => {
    if (req.complete) return;
    const timer = setTimeout(() => {
      if (!req.complete) req.socket.destroy();
    }, UNREAD_BODY_GRACE_MS);
    timer.unref();
    req.socket.once('close', () => clearTimeout(timer));
  });
  next();
}

/**
 * The Content-Security-Policy. Scripts only from 'self'; inline styles only with the per-response
 * nonce that the SPA's index.html receives (Angular's ngCspNonce), never 'unsafe-inline'.
 */
export function contentSecurityPolicy(formActionOrigins: string[], styleNonce?: string): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    styleNonce ? `style-src 'self' 'nonce-${styleNonce}'` : "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'none'",
    `form-action ${["'self'", ...formActionOrigins].join(' ')}`,
  ].join('; ');
}

/** Strict CSP and friends on every response. `formActionOrigins` are the provider's origins. */
export function securityHeadersMiddleware(formActionOrigins: () => string[]) {
  return (_req: Request, res: Response, next: NextFunction): void => {
    res.setHeader('content-security-policy', contentSecurityPolicy(formActionOrigins()));
    res.setHeader('strict-transport-security', 'max-age=31536000; includeSubDomains');
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    res.setHeader('x-frame-options', 'DENY');
    res.setHeader('cross-origin-opener-policy', 'same-origin');
    res.setHeader('cross-origin-resource-policy', 'same-origin');
    res.setHeader('permissions-policy', 'camera=(), microphone=(), geolocation=()');
    res.removeHeader('x-powered-by');
    next();
  };
}

/** Refuses traversal and encoding tricks on every path before any routing happens. */
export function pathGuardMiddleware(req: Request, res: Response, next: NextFunction): void {
  if (checkRawPath(req.url) === null) {
    sendProblem(res, new KeyclientError(KeyclientErrorCode.PathRejected), req.requestId);
    return;
  }
  next();
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Fetch metadata a proxied call may carry: the SPA's own fetch, or the officer typing the address. */
const PROXY_FETCH_SITES = new Set(['same-origin', 'none']);

/**
 * CSRF defence, the one place for it (ADR 0043 addendum). State-changing requests: the static `X-Keyserver-CSRF: 1`
 * header (a cross-site form cannot set it and a cross-site fetch would need a CORS preflight we never grant) AND a
 * same-origin Origin, or when Origin is absent `Sec-Fetch-Site: same-origin`. Every proxied call (`/api`, reads
 * too): a `Sec-Fetch-Site` other than same-origin or none is refused, because some API reads act (audit verify and
 * export append events and read the whole chain) and a same-site page's image or frame carries the Strict cookie.
 */
export function csrfMiddleware(config: KeyclientConfig) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const site = req.headers['sec-fetch-site'];
    // As the router matches it (case-insensitively), so no spelling of /api escapes the rule.
    const proxied = /^\/api(\/|$)/i.test(req.path);
    if (proxied && site !== undefined && !PROXY_FETCH_SITES.has(site)) {
      sendProblem(res, new KeyclientError(KeyclientErrorCode.CsrfRejected), req.requestId);
      return;
    }
    if (!UNSAFE.has(req.method)) {
      next();
      return;
    }
    const header = req.headers['x-keyserver-csrf'] === '1';
    const origin = req.headers['origin'];
    const sameOrigin = typeof origin === 'string' ? origin === config.publicOrigin : site === 'same-origin';
    if (!header || !sameOrigin) {
      sendProblem(res, new KeyclientError(KeyclientErrorCode.CsrfRejected), req.requestId);
      return;
    }
    next();
  };
}

/** Methods other than the ones the keyclient uses are refused before routing (TRACE, CONNECT, ...). */
export function methodGuardMiddleware(req: Request, res: Response, next: NextFunction): void {
  if (!['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(req.method)) {
    sendProblem(res, new KeyclientError(KeyclientErrorCode.MethodNotAllowed), req.requestId);
    return;
  }
  next();
}
