import type { Duplex } from 'node:stream';
import { rawProblemResponse } from '@keyserver/errors';
import type { Logger } from 'pino';
import { ApiError, ApiErrorCode } from '../common/api-error';
import type { EdgeServices } from './edge';

/** Node's parser error codes that mean "the header section is too large" (431 rather than 400). */
const HEADER_TOO_LARGE = new Set(['HPE_HEADER_OVERFLOW']);

/** The raw HTTP/1.1 response for a request Node's parser refused, as problem+json. */
export function clientErrorResponse(parserCode: string | undefined): { status: number; code: ApiErrorCode; raw: string } {
  const error = new ApiError(HEADER_TOO_LARGE.has(parserCode ?? '') ? ApiErrorCode.HeaderTooLarge : ApiErrorCode.MalformedRequest);
  const title = error.status === 431 ? 'Request Header Fields Too Large' : 'Bad Request';
  return { status: error.status, code: error.code, raw: rawProblemResponse(error.status, error.code, title) };
}

/**
 * Answers requests Node's HTTP parser refuses (oversize headers: 431; a malformed request line or header,
 * e.g. a raw NUL: 400) with problem+json and a stable code instead of Node's bare status line, and audits
 * them like other refusals at the edge (bounded). Nothing about the request is trusted: it did not parse.
 * The server's `clientError` listener (Fastify's clientErrorHandler option).
 */
export function clientErrorHandler(edge: EdgeServices, logger: Logger): (err: Error & { code?: string }, socket: Duplex) => void {
  return (err, socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const r = clientErrorResponse(err.code);
    socket.end(r.raw);
    const remote = (socket as Duplex & { remoteAddress?: string }).remoteAddress ?? 'unknown';
    logger.warn({ code: r.code, parser: err.code, ip: remote }, 'request refused by the HTTP parser');
    const req = { method: '', url: '', headers: {}, socket: { remoteAddress: remote } } as unknown as Parameters<EdgeServices['auditEdgeRefusal']>[0];
    if (edge.chargeRefusal(req, r.status).ok) void edge.auditEdgeRefusal(req, r.code, r.status);
    else void edge.auditEdgeRefusal(req, ApiErrorCode.RateLimited, 429);
  };
}
