import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Inject, Logger, Optional } from '@nestjs/common';
import { KeyserverError, PROBLEM_CONTENT_TYPE, problemFor, ProblemDetails } from '@keyserver/errors';
import { IncomingMessage, STATUS_CODES, ServerResponse } from 'node:http';
/** Injection token of the optional {@link RefusalObserver}. */
export const REFUSAL_OBSERVER = Symbol('KEYSERVER_REFUSAL_OBSERVER');

/** The single body for every 401, whatever the reason (the reason goes to logs only). */
export const INVALID_TOKEN_PROBLEM: Readonly<ProblemDetails> = Object.freeze(
  problemFor(401, 'invalid_token', 'Unauthorized', 'The access token is missing or invalid.'),
);
export const WWW_AUTHENTICATE_INVALID_TOKEN = 'Bearer error="invalid_token"';

const CODE_BY_STATUS: Record<number, string> = {
  400: 'bad_request',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  406: 'not_acceptable',
  408: 'request_timeout',
  409: 'conflict',
  410: 'gone',
  411: 'length_required',
  413: 'payload_too_large',
  414: 'uri_too_long',
  415: 'unsupported_media_type',
  422: 'unprocessable_entity',
  429: 'too_many_requests',
  500: 'internal_error',
  501: 'not_implemented',
  502: 'bad_gateway',
  503: 'service_unavailable',
  504: 'gateway_timeout',
};

/** body-parser / raw-body error types -> stable codes (also listed per body route in the OpenAPI document). */
export const BODY_ERROR_CODES: Record<string, string> = {
  'entity.parse.failed': 'invalid_json',
  'entity.too.large': 'payload_too_large',
  'encoding.unsupported': 'unsupported_encoding',
  'charset.unsupported': 'unsupported_charset',
  'request.aborted': 'request_aborted',
  'request.size.invalid': 'request_size_invalid',
  'parameters.too.many': 'too_many_parameters',
};

export interface RenderedProblem {
  status: number;
  body: ProblemDetails;
  headers: Record<string, string>;
}

/**
 * Sees every 4xx the filter is about to send (the one place every refusal passes): audits refusals nobody else
 * audits and applies rate limits. It may return a replacement (a 429 for a caller over its limit). Must not throw.
 */
export interface RefusalObserver {
  observe(request: IncomingMessage, exception: unknown, problem: RenderedProblem): RenderedProblem | undefined;
}

const title = (status: number): string => STATUS_CODES[status] ?? 'Error';
const codeFor = (status: number): string => CODE_BY_STATUS[status] ?? (status >= 500 ? 'internal_error' : `http_${status}`);

function unauthorized(): RenderedProblem {
  return {
    status: 401,
    body: { ...INVALID_TOKEN_PROBLEM },
    headers: { 'www-authenticate': WWW_AUTHENTICATE_INVALID_TOKEN, 'cache-control': 'no-store' },
  };
}

function isBodyParserError(e: unknown): e is { type?: string; status: number; expose?: boolean } {
  if (typeof e !== 'object' || e === null) return false;
  const r = e as Record<string, unknown>;
  // body-parser / raw-body / http-errors: a client error carries its 4xx status (a corrupt gzip stream has no `type`).
  return typeof r['status'] === 'number' && r['status'] >= 400 && r['status'] < 500 && (typeof r['type'] === 'string' || r['expose'] === true);
}

/** `Retry-After` for a refusal that says how long to wait (429). */
function retryAfter(e: KeyserverError): Record<string, string> {
  const s = (e as { retryAfterSeconds?: unknown }).retryAfterSeconds;
  return typeof s === 'number' && Number.isFinite(s) && s > 0 ? { 'retry-after': String(Math.ceil(s)) } : {};
}

/** Maps any thrown value to an RFC 9457 problem (pure; used by {@link ProblemDetailsFilter}). */
export function renderProblem(exception: unknown): RenderedProblem {
  if (exception instanceof KeyserverError) {
    const status = exception.status;
    if (status === 401) return unauthorized();
    const headers: Record<string, string> =
      status === 403 ? { 'cache-control': 'no-store' } : status === 503 ? { 'retry-after': '2' } : status === 429 ? retryAfter(exception) : {};
    return { status, body: problemFor(status, exception.code, title(status), status >= 500 ? undefined : exception.detail), headers };
  }
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    if (status === 401) return unauthorized();
    if (status >= 500) return { status, body: problemFor(status, codeFor(status), title(status)), headers: {} };
    const res = exception.getResponse();
    const msg = typeof res === 'object' && res !== null ? (res as Record<string, unknown>)['message'] : res;
    // Validation messages (arrays) help clients; free-text messages may echo input, so they stay out.
    const extra = Array.isArray(msg) && msg.every((m) => typeof m === 'string') ? { errors: msg as string[] } : undefined;
    // Nest turns body-parser's SyntaxError into a BadRequestException carrying JSON.parse's message.
    const code = status === 400 && typeof msg === 'string' && /JSON/.test(msg) ? 'invalid_json' : codeFor(status);
    return { status, body: problemFor(status, code, title(status), undefined, extra), headers: {} };
  }
  if (isBodyParserError(exception)) {
    const status = exception.status;
    return { status, body: problemFor(status, BODY_ERROR_CODES[exception.type ?? ''] ?? codeFor(status), title(status)), headers: {} };
  }
  return { status: 500, body: problemFor(500, 'internal_error', title(500)), headers: {} };
}

/** The part of a Fastify reply the filter uses (duck-typed: this library does not depend on Fastify). */
interface ServerReply {
  raw: ServerResponse;
  sent: boolean;
  code(status: number): ServerReply;
  headers(values: Record<string, string>): ServerReply;
  send(payload: string): unknown;
}

function isServerReply(res: ServerResponse | ServerReply): res is ServerReply {
  return 'raw' in res && typeof (res as Partial<ServerReply>).send === 'function';
}

/**
 * Renders every error as `application/problem+json` with a stable `code`: KeyserverError (all 401s
 * as the same `invalid_token` body plus `WWW-Authenticate`), Nest HttpExceptions, body-parser errors,
 * and anything else as a detail-free 500.
 */
@Catch()
export class ProblemDetailsFilter implements ExceptionFilter {
  private readonly logger = new Logger(ProblemDetailsFilter.name);

  constructor(@Optional() @Inject(REFUSAL_OBSERVER) private readonly observer?: RefusalObserver) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<ServerResponse | ServerReply>();
    let rendered = renderProblem(exception);
    if (this.observer && rendered.status >= 400 && rendered.status < 500) {
      try {
        rendered = this.observer.observe(host.switchToHttp().getRequest<IncomingMessage>(), exception, rendered) ?? rendered;
      } catch (err) {
        this.logger.error(`refusal observer failed: ${String(err)}`);
      }
    }
    if (rendered.status >= 500) {
      this.logger.error(exception instanceof Error ? (exception.stack ?? exception.message) : String(exception));
    }
    const payload = JSON.stringify(rendered.body);
    if (isServerReply(res)) {
      // Fastify (the API): through the reply, so its hooks and the request's log line see the answer.
      if (res.sent || res.raw.headersSent) {
        res.raw.destroy();
        return;
      }
      void res.code(rendered.status).headers({ ...rendered.headers, 'content-type': `${PROBLEM_CONTENT_TYPE}; charset=utf-8` }).send(payload);
      return;
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.statusCode = rendered.status;
    for (const [k, v] of Object.entries(rendered.headers)) res.setHeader(k, v);
    res.setHeader('content-type', `${PROBLEM_CONTENT_TYPE}; charset=utf-8`);
    res.setHeader('content-length', Buffer.byteLength(payload));
    res.end(payload);
  }
}
