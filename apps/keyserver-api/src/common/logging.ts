import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoggerService } from '@nestjs/common';
import pino, { Logger } from 'pino';
import pinoHttp from 'pino-http';
import { redactText, redactUrl } from '@keyserver/config';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'keyserver-api' },
    // Tokens and cookies never reach the logs, whatever a log call passes.
    redact: { paths: ['req.headers.authorization', 'req.headers.cookie', '*.pin', '*.password', '*.clientSecret'], censor: '***' },
  });
}

/** JSON request logs with a request id taken from `x-request-id` when well-formed, else generated. */
export function httpLogger(logger: Logger) {
  return pinoHttp({
    logger,
    genReqId: (req: IncomingMessage, res: ServerResponse) => {
      const incoming = req.headers['x-request-id'];
      const id = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
      res.setHeader('x-request-id', id);
      return id;
    },
    customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info'),
    serializers: {
      // Tokens never reach the logs: credential query parameters (access_token, code, ...) and JWT-shaped values are masked.
      req: (req: { id: string; method: string; url: string }) => ({ id: req.id, method: req.method, url: redactUrl(req.url) }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
  });
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
