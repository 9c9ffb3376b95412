import 'reflect-metadata';
import { type DynamicModule, type INestApplication, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { DestinationStream, Logger } from 'pino';
import pinoHttp from 'pino-http';
import { applyHttpTimeouts, logTarget } from '@keyserver/config';
import { ConnectionGate, type ConnectionRefusal } from '@keyserver/http-problems';
import type { NextFunction, Request, Response } from 'express';
import type { Server } from 'node:http';
import { connectionMetrics, httpMetrics } from '@keyserver/observability';
import type { Registry } from 'prom-client';
import { keyclientMetrics } from '../metrics/keyclient-metrics';
import { type KeyclientConfig, describeKeyclientConfig, insecureLoopbackWarnings } from '../config/keyclient-config';
import { answerClientErrors } from '../http/client-error';
import { KeyclientError, KeyclientErrorCode } from '../errors/keyclient-error';
import { sendProblem } from '../http/problem';
import { cookieNames } from '../http/cookies';
import {
  contentSecurityPolicy,
  csrfMiddleware,
  methodGuardMiddleware,
  pathGuardMiddleware,
  requestIdMiddleware,
  securityHeadersMiddleware,
  unreadBodyMiddleware,
} from '../http/middleware';
import { createLogger } from '../logging/logger';
import { OidcService } from '../oidc/oidc.service';
import { ProxyService } from '../proxy/proxy.service';
import { BffSessionRepository } from '../session/bff-session.repository';
import { SessionService } from '../session/session.service';
import { AuthController } from './auth.controller';
import { KEYCLIENT_CONTEXT, type KeyclientContext } from './context';
import { HealthController } from './health.controller';
import { ProblemFilter } from './problem.filter';
import { ProxyController } from './proxy.controller';
import { SpaController } from './spa.controller';

const SWEEP_INTERVAL_MS = 10 * 60_000;
/** At most one log line about refused connections per this many ms (a flood would otherwise be a flood of lines). */
const REFUSAL_LOG_EVERY_MS = 10_000;

/** A throttled warn line for refused connections, with the count since the last line (as the API logs them). */
function connectionRefusalLog(log: Logger, counted?: (reason: ConnectionRefusal) => void): (reason: ConnectionRefusal, ip: string) => void {
  let last = 0;
  let count = 0;
  return (reason, ip) => {
    counted?.(reason);
    // A refusal while shutting down is the keyclient's doing, not the client's: counted, not logged.
    if (reason === 'shutdown') return;
    count++;
    const now = Date.now();
    if (now - last < REFUSAL_LOG_EVERY_MS) return;
    log.warn({ event: 'connection_refused', reason, ip, refused: count }, 'connections refused at the connection limit');
    last = now;
    count = 0;
  };
}

export interface KeyclientAppOptions {
  /** Where JSON logs go (default stdout); tests pass a sink to inspect them. */
  logDestination?: DestinationStream;
  /** Clock for sessions and login transactions (ms since epoch). */
  now?: () => number;
}

/** A created (not yet listening) keyclient with the handles tests and main.ts need. */
export interface KeyclientApp {
  app: INestApplication;
  context: KeyclientContext;
  /** The metrics registry when METRICS_PORT is set (main.ts serves it on its own listener). */
  metrics?: Registry;
  /** The bounded shutdown of the HTTP server (the connection gate, HTTP_SHUTDOWN_GRACE_MS), then the upstream agent and the database pool; once. */
  close(): Promise<void>;
}

@Module({})
class KeyclientModule {
  static forContext(context: KeyclientContext): DynamicModule {
    return {
      module: KeyclientModule,
      // Order matters: the SPA catch-all must come last.
      controllers: [HealthController, AuthController, ProxyController, SpaController],
      providers: [{ provide: KEYCLIENT_CONTEXT, useValue: context }],
    };
  }
}

/**
 * Builds the keyclient (BFF) Nest application from a validated config. Used by main.ts and by the
 * tests, which run it in-process over real HTTP. Call `app.listen()` afterwards.
 */
export async function createKeyclientApp(config: KeyclientConfig, options: KeyclientAppOptions = {}): Promise<KeyclientApp> {
  const log: Logger = createLogger(config, options.logDestination);
  // Connects as the keyclient's own role: its session schema only (ADR 0018).
  const repo = new BffSessionRepository(config.databaseUrl);
  const oidc = new OidcService(config, options.now);
  const context: KeyclientContext = {
    config,
    log,
    cookies: cookieNames(config),
    oidc,
    repo,
    sessions: new SessionService(config, repo, oidc, log, options.now),
    proxy: new ProxyService(config, log),
    csp: (styleNonce?: string) => contentSecurityPolicy(formActionOrigins, styleNonce),
  };

  // The provider may be down at boot; discovery is retried on first use and /readyz reports it.
  let formActionOrigins: string[] = [new URL(config.metadataDocumentUrl).origin];
  await oidc.providerOrigins().then(
    (origins) => {
      formActionOrigins = [...new Set([...formActionOrigins, ...origins])];
    },
    (err: unknown) => log.warn({ event: 'discovery_failed', err: err instanceof Error ? err.message : String(err) }, 'provider discovery failed; will retry'),
  );

  const app = await NestFactory.create<NestExpressApplication>(KeyclientModule.forContext(context), {
    bodyParser: false, // the proxy streams request bodies untouched
    logger: false,
  });
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  const server = app.getHttpServer() as Server;
  // The API's transport (ADR 0043 addendum "the keyclient's transport"): its timeouts and keep-alive, set before
  // listen (Node fixes the timeout check interval then), and its connection gate in front of Node's parser, with its
  // bounded shutdown (close() below).
  applyHttpTimeouts(server, config.transport);
  const connections = new ConnectionGate(config.transport, {
    total: KeyclientErrorCode.ConnectionLimitReached,
    perIp: KeyclientErrorCode.ClientConnectionLimitReached,
    serviceUnavailable: KeyclientErrorCode.ServiceUnavailable,
    shuttingDown: KeyclientErrorCode.ShuttingDown,
  });
  connections.install(server);
  // First, so requests refused by the guards below are counted too (route "(unmatched)").
  const metrics = config.metrics ? keyclientMetrics(repo) : undefined;
  if (metrics) app.use(httpMetrics(metrics));
  connections.onRefused = connectionRefusalLog(log, metrics && connectionMetrics(metrics, () => connections.openConnections));
  app.use(requestIdMiddleware);
  // Routed after close() began the bounded shutdown (its header section was still arriving): nothing runs, nothing
  // is proxied; the client may send it again to another replica (as the API's refuseWhileShuttingDown).
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (!connections.closing) return next();
    res.setHeader('connection', 'close');
    sendProblem(res, new KeyclientError(KeyclientErrorCode.ShuttingDown, 'the keyclient is shutting down; send the request again'), req.requestId);
  });
  app.use(unreadBodyMiddleware);
  app.use(
    pinoHttp({
      logger: log,
      genReqId: (req) => req.requestId ?? '',
      // Paths only: query strings carry authorization codes and state.
      serializers: {
        // ...and a path may hold a JWT-shaped value (masked like every credential) or be 16 KiB long (cut).
        req: (req: { id: string; method: string; url: string }) => ({ id: req.id, method: req.method, path: logTarget(req.url.split('?')[0]) }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
      customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : 'info'),
    }),
  );
  app.use(securityHeadersMiddleware(() => formActionOrigins));
  app.use(methodGuardMiddleware);
  app.use(pathGuardMiddleware);
  app.use(csrfMiddleware(config));
  app.useGlobalFilters(new ProblemFilter(log));
  answerClientErrors(server, log);
  // No enableShutdownHooks: main.ts handles the signals, logs them and calls close() below.

  log.info({ event: 'config', config: describeKeyclientConfig(config) }, 'keyclient configured');
  for (const warning of insecureLoopbackWarnings(config)) log.warn({ event: 'insecure_loopback' }, warning);

  // Expired rows are never served (queries check the deadlines); this only keeps the table small.
  const sweeper = setInterval(() => {
    repo.deleteExpired(new Date(options.now?.() ?? Date.now())).then(
      (n: number) => n > 0 && log.debug({ event: 'sessions_swept', count: n }, 'expired sessions deleted'),
      () => undefined,
    );
  }, SWEEP_INTERVAL_MS);
  sweeper.unref();

  let closed: Promise<void> | undefined;
  const close = async () => {
    clearInterval(sweeper);
    // First, and bounded as at the API (ADR 0011 addendum "connections"): no new connections, idle ones closed at
    // once, a header section still arriving answered 503 shutting_down once complete or after HTTP_SHUTDOWN_GRACE_MS,
    // requests in flight given the grace. Nest's app.close() alone waited for every connection (a client trickling
    // headers held the shutdown up to HTTP_HEADERS_TIMEOUT_MS).
    const openAtSignal = connections.openConnections;
    if (server.listening) await connections.shutdown(server);
    log.info({ event: 'connections_closed', openAtSignal }, 'HTTP connections closed');
    await app.close();
    context.proxy.close();
    await repo.close();
  };
  return {
    app,
    context,
    metrics,
    // Once: main.ts's signal handler and a test may both call it.
    close: () => (closed ??= close()),
  };
}
