import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoggerService } from '@nestjs/common';
import pino, { Logger } from 'pino';
import { logTarget, redactText } from '@keyserver/config';
import { AuditQuery } from '@keyserver/api-contract';
import { LIVENESS_PATH, READINESS_PATH } from '../health/liveness';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'keyserver-api' },
    // Tokens and cookies never reach the logs, whatever a log call passes.
    redact: { paths: ['req.headers.authorization', 'req.headers.cookie', '*.pin', '*.password', '*.clientSecret'], censor: '***' },
  });
}

/** The request id: the caller's `x-request-id` when well-formed, else a fresh UUID (Node batches its randomness). */
export function requestId(req: IncomingMessage): string {
  const incoming = req.headers['x-request-id'];
  return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

/**
 * The query parameters the API's routes define (docs/openapi.json, and the audit list's filters): a request line
 * shows their values; any other parameter's value is masked, since only a client's mistake puts one there and
 * it may be a credential (`api_key`, `pin`, …) that no fixed list of names foresees.
 */
export const LOGGED_QUERY_PARAMS: ReadonlySet<string> = new Set([
  ...['awaiting', 'cursor', 'description', 'ended', 'issuer', 'key', 'keyid', 'limit', 'mine', 'operationid', 'serial', 'state', 'subject', 'type'],
  ...Object.keys(AuditQuery.shape),
]);

/** Liveness and readiness probes: orchestrators poll them every few seconds, so their successes log at debug. */
const PROBES = new Set([LIVENESS_PATH, READINESS_PATH]);

/**
 * One JSON line per request, written with the process logger when the response closes (no per-request child
 * logger): `{req: {id, method, url}, res: {statusCode}, responseTime}`, at error for 5xx, warn for 4xx, info
 * otherwise, debug for successful probes; a response the client abandoned is "request aborted" at warn. The URL
 * is redacted (credential and undefined query parameters, JWT-shaped values) and cut to 1 KiB; headers are never logged.
 */
export function logRequest(logger: Logger, id: string, req: IncomingMessage, res: ServerResponse, startMs: number, route: string): void {
  const aborted = !res.writableFinished;
  const status = res.statusCode;
  const level = aborted ? 'warn' : status >= 500 ? 'error' : status >= 400 ? 'warn' : PROBES.has(route) ? 'debug' : 'info';
  if (!logger.isLevelEnabled(level)) return;
  const line = {
    req: { id, method: req.method, url: logTarget(req.url ?? '', LOGGED_QUERY_PARAMS) },
    res: { statusCode: status },
    responseTime: Math.round(performance.now() - startMs),
  };
  logger[level](line, aborted ? 'request aborted' : 'request completed');
}

/** Routes Nest's own log lines into pino. */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}
  log(message: unknown, context?: string) {
    this.logger.info({ context }, redactText(String(message)));
  }
  error(message: unknown, trace?: string, context?: string) {
    this.logger.error({ context, trace: trace === undefined ? undefined : redactText(trace) }, redactText(String(message)));
  }
  warn(message: unknown, context?: string) {
    this.logger.warn({ context }, redactText(String(message)));
  }
  debug(message: unknown, context?: string) {
    this.logger.debug({ context }, redactText(String(message)));
  }
  verbose(message: unknown, context?: string) {
    this.logger.trace({ context }, redactText(String(message)));
  }
}
