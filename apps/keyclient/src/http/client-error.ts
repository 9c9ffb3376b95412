import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { PROBLEM_CONTENT_TYPE, problemFor, rawProblemResponse } from '@keyserver/errors';
import { responseInFlight } from '@keyserver/http-problems';
import type { Logger } from 'pino';
import { KeyclientError, KeyclientErrorCode } from '../errors/keyclient-error';

/** Node's error codes for a request it stops reading: the header section too large (431), a slow sender (408). */
const PARSER_CODES: Record<string, KeyclientErrorCode> = {
  HPE_HEADER_OVERFLOW: KeyclientErrorCode.HeaderTooLarge,
  ERR_HTTP_REQUEST_TIMEOUT: KeyclientErrorCode.RequestTimeout,
};

/**
 * Answers requests Node's HTTP parser refuses with problem+json instead of a bare status line, as the API does
 * (ADR 0011 addendum "the transport"): a header section over the limit (an oversize cookie or Authorization) is 431
 * header_too_large, headers or a request slower than HTTP_HEADERS_TIMEOUT_MS / HTTP_REQUEST_TIMEOUT_MS 408
 * request_timeout, anything else 400 malformed_request; the connection is closed once the answer is written (a
 * client that neither sends nor closes keeps nothing open). Once a response has started, the connection is only
 * closed (a second status line would corrupt it). An `Expect` other than 100-continue, which Node would answer with
 * a bare 417, is 417 expectation_failed.
 */
export function answerClientErrors(server: Server, log: Logger): void {
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
    const inFlight = responseInFlight(socket);
    if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const e = new KeyclientError(PARSER_CODES[err.code ?? ''] ?? KeyclientErrorCode.MalformedRequest);
    socket.end(rawProblemResponse(e.status, e.code, e.title));
    (socket as Duplex & { destroySoon?: () => void }).destroySoon?.();
    log.warn({ event: 'client_error', code: e.code, parser: err.code }, 'request refused by the HTTP parser');
  });
  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    const e = new KeyclientError(KeyclientErrorCode.ExpectationFailed);
    res.shouldKeepAlive = false;
    res.writeHead(e.status, { 'content-type': PROBLEM_CONTENT_TYPE, 'cache-control': 'no-store', connection: 'close' });
    res.end(JSON.stringify(problemFor(e.status, e.code, e.title)));
    log.warn({ event: 'client_error', code: e.code }, 'request refused: unmet Expect');
  });
}
