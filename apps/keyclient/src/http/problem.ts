import type { Response } from 'express';
import { PROBLEM_CONTENT_TYPE, problemFor } from '@keyserver/errors';
import { KeyclientError, KeyclientErrorCode } from '../errors/keyclient-error';

/** Seconds a client waits before retrying an answer that says "retry" (the API's database_unavailable uses 2 too). */
export const RETRY_AFTER_SECONDS: Partial<Record<KeyclientErrorCode, number>> = {
  [KeyclientErrorCode.SessionStoreUnavailable]: 2,
};

/** Writes an RFC 9457 problem+json answer for a KeyclientError. */
export function sendProblem(res: Response, err: KeyclientError, requestId: string | undefined): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // Details are set only by keyclient code (reason codes, probe results), never from request or provider input.
  const body = problemFor(err.status, err.code, err.title, err.detail, requestId ? { requestId } : undefined);
  res.status(err.status);
  res.setHeader('content-type', PROBLEM_CONTENT_TYPE);
  res.setHeader('cache-control', 'no-store');
  if (err.status === 413) res.setHeader('connection', 'close');
  const retryAfter = RETRY_AFTER_SECONDS[err.code];
  if (retryAfter !== undefined) res.setHeader('retry-after', String(retryAfter));
  res.end(JSON.stringify(body));
}
