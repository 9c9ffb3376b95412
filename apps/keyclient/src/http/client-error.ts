import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { PROBLEM_CONTENT_TYPE, problemFor, rawProblemResponse } from '@keyserver/errors';
import type { Logger } from 'pino';
import { KeyclientError, KeyclientErrorCode } from '../errors/keyclient-error';

/**
 * Answers requests Node's HTTP parser refuses with problem+json instead of a bare status line: a header section
 * over the limit (an oversize cookie or Authorization) is 431 header_too_large, anything else 400 malformed_request;
 * an `Expect` other than 100-continue, which Node would answer with a bare 417, is 417 expectation_failed.
 */
export function answerClientErrors(server: Server, log: Logger): void {
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const e = new KeyclientError(err.code === 'HPE_HEADER_OVERFLOW' ? KeyclientErrorCode.HeaderTooLarge : KeyclientErrorCode.MalformedRequest);
    socket.end(rawProblemResponse(e.status, e.code, e.title));
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
