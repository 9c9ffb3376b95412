import { ArgumentsHost, Catch, ExceptionFilter, HttpException } from '@nestjs/common';
import type { Request, Response } from 'express';
import type { Logger } from 'pino';
import { KeyclientError, KeyclientErrorCode } from '../errors/keyclient-error';
import { sendProblem } from '../http/problem';
import { isSessionStoreUnavailable } from '../session/bff-session.repository';

const HTTP_STATUS_CODES: Record<number, KeyclientErrorCode> = {
  404: KeyclientErrorCode.NotFound,
  405: KeyclientErrorCode.MethodNotAllowed,
  413: KeyclientErrorCode.PayloadTooLarge,
};

/** Every error leaves as problem+json with a stable code; unknown errors are logged, never echoed. */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  constructor(private readonly log: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const req = http.getRequest<Request>();
    const res = http.getResponse<Response>();
    let err: KeyclientError;
    if (exception instanceof KeyclientError) {
      err = exception;
    } else if (isSessionStoreUnavailable(exception)) {
      // A database restart or failover (ADR 0026): the client retries, as with the API's 503 database_unavailable.
      this.log.warn({ event: 'session_store_unavailable', requestId: req.requestId }, 'session database unavailable');
      err = new KeyclientError(KeyclientErrorCode.SessionStoreUnavailable);
    } else if (exception instanceof HttpException && HTTP_STATUS_CODES[exception.getStatus()]) {
      err = new KeyclientError(HTTP_STATUS_CODES[exception.getStatus()]);
    } else {
      this.log.error(
        { event: 'unhandled_error', requestId: req.requestId, err: exception instanceof Error ? exception.message : String(exception) },
        'unhandled error',
      );
      err = new KeyclientError(KeyclientErrorCode.InternalError);
    }
    sendProblem(res, err, req.requestId);
  }
}
