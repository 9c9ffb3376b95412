import type { Duplex } from 'node:stream';
import { rawProblemResponse } from '@keyserver/errors';
import type { Logger } from 'pino';
import { ApiError, ApiErrorCode, markTransportRefusal } from '../common/api-error';
import { responseInFlight } from './connections';
import type { EdgeServices } from './edge';

/** Node's error codes for a request it stops reading: the header section too large (431), a slow sender (408). */
const PARSER_CODES: Record<string, ApiErrorCode> = {
  HPE_HEADER_OVERFLOW: ApiErrorCode.HeaderTooLarge,
  ERR_HTTP_REQUEST_TIMEOUT: ApiErrorCode.RequestTimeout,
};
const TITLES: Record<number, string> = { 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };

/** The raw HTTP/1.1 response for a request Node's parser refused or timed out, as problem+json. */
export function clientErrorResponse(parserCode: string | undefined): { status: number; code: ApiErrorCode; raw: string } {
  const error = new ApiError(PARSER_CODES[parserCode ?? ''] ?? ApiErrorCode.MalformedRequest);
  return { status: error.status, code: error.code, raw: rawProblemResponse(error.status, error.code, TITLES[error.status] ?? 'Bad Request') };
}

/**
 * Answers requests Node's HTTP parser refuses (oversize headers: 431; a malformed request line, header or chunk:
 * 400) or times out (headers or the whole request slower than HTTP_HEADERS_TIMEOUT_MS / HTTP_REQUEST_TIMEOUT_MS:
 * 408) with problem+json and a stable code instead of Node's bare status line, and audits them like other
 * refusals at the edge (bounded). Nothing about the request is trusted: it did not parse. A request already being
 * handled (its body still arriving) is marked with the code, so its handler records why its body ended; once its
 * response has started, the connection is only closed (a second status line would corrupt it).
 * The server's `clientError` listener (Fastify's clientErrorHandler option).
 */
export function clientErrorHandler(edge: EdgeServices, logger: Logger): (err: Error & { code?: string }, socket: Duplex) => void {
  return (err, socket) => {
    const inFlight = responseInFlight(socket);
    if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    // The client ended its side in the middle of a body: an abort, which the request's own handler records
    // (request_aborted); nothing was refused.
    if (err.code === 'HPE_INVALID_EOF_STATE' && inFlight) {
      socket.destroy();
      return;
    }
    const r = clientErrorResponse(err.code);
    if (inFlight?.req) markTransportRefusal(inFlight.req, r.code);
    // Answered, then closed once written: a client that neither sends nor closes keeps nothing open (nor a half-read
    // request whose handler would wait for the rest).
    socket.end(r.raw);
    (socket as Duplex & { destroySoon?: () => void }).destroySoon?.();
    const remote = (socket as Duplex & { remoteAddress?: string }).remoteAddress ?? 'unknown';
    logger.warn({ code: r.code, parser: err.code, ip: remote }, 'request refused by the HTTP parser');
    const req = { method: '', url: '', headers: {}, socket: { remoteAddress: remote } } as unknown as Parameters<EdgeServices['auditEdgeRefusal']>[0];
    if (edge.chargeRefusal(req, r.status).ok) void edge.auditEdgeRefusal(req, r.code, r.status);
    else void edge.auditEdgeRefusal(req, ApiErrorCode.RateLimited, 429);
  };
}
