import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { PROBLEM_CONTENT_TYPE, problemFor } from '@keyserver/errors';
import type { Logger } from 'pino';
import { KeyclientError, KeyclientErrorCode } from '../errors/keyclient-error';

/**
 * Answers requests Node's HTTP parser refuses with problem+json instead of a bare status line: a header section
 * over the limit (an oversize cookie or Authorization) is 431 header_too_large, anything else 400 malformed_request.
 */
export function answerClientErrors(server: Server, log: Logger): void {
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const e = new KeyclientError(err.code === 'HPE_HEADER_OVERFLOW' ? KeyclientErrorCode.HeaderTooLarge : KeyclientErrorCode.MalformedRequest);
    const payload = JSON.stringify(problemFor(e.status, e.code, e.title));
    socket.end(
      `HTTP/1.1 ${e.status} ${e.title}\r\ncontent-type: ${PROBLEM_CONTENT_TYPE}\r\ncontent-length: ${Buffer.byteLength(payload)}\r\n` +
        `cache-control: no-store\r\nconnection: close\r\n\r\n${payload}`,
    );
    log.warn({ event: 'client_error', code: e.code, parser: err.code }, 'request refused by the HTTP parser');
  });
}
