import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { connectionsCheckingInterval, KEEP_ALIVE_IDLE_MS } from '@keyserver/config';
import type { Db } from '@keyserver/data-access';
import { connectionMetrics, UNMATCHED_ROUTE, type RequestMetrics } from '@keyserver/observability';
import { CONTINUE_AFTER_CHECKS_ROUTES, installBodyParser } from '../common/body-limits';
import { logRequest, requestId } from '../common/logging';
import { ApiErrorCode, EdgeRefusal } from '../common/api-error';
import { HTTP_CONNECTION_DEFAULTS, HTTP_TIMEOUT_DEFAULTS, type ApiConfig } from '../config/api-config';
import { bootstrapGate } from '../bootstrap/bootstrap-gate';
import { PUBLIC_ROUTES } from '../app/public-routes';
import { installEdgeRoutes } from '../health/liveness';
import { clientErrorHandler } from './client-error';
import { ConnectionGate, type ConnectionLimits, type ConnectionRefusal } from './connections';
import { deferContinue, holdBody, proceedToBody, refuseWhileShuttingDown, requestGuard, routeUnmetExpectation, type EdgeServices } from './edge';

/** What the server needs that exists only once Nest has built its providers (the edge's limiter and audit). */
export interface LateEdge {
  edge?: EdgeServices;
  logger: Logger;
  metrics?: RequestMetrics;
  /** Where the connection metrics go (the API's registry; none when metrics are off). */
  registry?: Registry;
}

/** How long a client may take to send its headers and its whole request (HTTP_HEADERS_TIMEOUT_MS, HTTP_REQUEST_TIMEOUT_MS). */
export interface TransportTimeouts {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
}

/**
 * Nest's Fastify adapter with the API's server settings (docs/adr/0032-fastify-adapter.md): Express' routing
 * (case-insensitive, a trailing slash ignored, no limit on a path parameter's length beyond Node's header
 * limit), no X-Forwarded-* trust, our request ids, Node's request timeout and our keep-alive, in-flight requests
 * served to the end on close, Node parser errors, an unmet `Expect` and malformed URLs answered as problem+json, and
 * Fastify's own errors (a syntactically invalid Content-Type) turned into the API's refusals before Nest's filter
 * sees them.
 */
export class ApiHttpAdapter extends FastifyAdapter {
  /** The connection limits and the bounded shutdown of this server ({@link ConnectionGate}). */
  readonly connections: ConnectionGate;

  constructor(late: LateEdge, timeouts: TransportTimeouts & Partial<ConnectionLimits> = HTTP_TIMEOUT_DEFAULTS) {
    super({
      logger: false,
      trustProxy: false,
      requestIdHeader: false,
      genReqId: (req: IncomingMessage) => requestId(req),
      // Node's 300 s by default (Fastify would turn it off); a timed-out request is answered 408 (clientErrorHandler).
      requestTimeout: timeouts.requestTimeoutMs,
      keepAliveTimeout: KEEP_ALIVE_IDLE_MS,
      // Timeouts are checked every 30 s by default: an expired sender could stay up to 30 s longer than its limit.
      // requireHostHeader off: Node's own refusal is a bare 400; requestGuard refuses a missing Host as problem+json.
      http: { connectionsCheckingInterval: connectionsCheckingInterval(timeouts.headersTimeoutMs), requireHostHeader: false },
      return503OnClosing: false,
      // No Nest middleware: the API's per-request steps are one hook (configureHttpServer).
      skipMiddie: true,
      routerOptions: { caseSensitive: false, ignoreTrailingSlash: true, maxParamLength: 16_384 },
      clientErrorHandler(err: Error & { code?: string }, socket: Duplex) {
        if (late.edge) clientErrorHandler(late.edge, late.logger)(err, socket);
        else socket.destroy();
      },
      // A path parameter with a malformed escape: refused like every bad request target (invalid_input_encoding).
      frameworkErrors(_err: Error, request: FastifyRequest, reply: FastifyReply) {
        const edge = late.edge;
        if (!edge) return void reply.code(503).send();
        track(late.logger, late.metrics, request, reply, true);
        if (requestGuard(edge, request, reply)) edge.sendRefusal(request, reply, new EdgeRefusal(ApiErrorCode.InvalidInputEncoding, 'the request target holds a malformed percent-encoding'));
      },
    });
    const server = (this.getInstance() as unknown as FastifyInstance).server;
    server.headersTimeout = timeouts.headersTimeoutMs;
    this.connections = new ConnectionGate({ ...HTTP_CONNECTION_DEFAULTS, ...stripUndefined(timeouts) });
    this.connections.install(server);
    this.connections.onRefused = connectionRefusals(late, this.connections);
    server.on('checkExpectation', routeUnmetExpectation(server));
    server.on('checkContinue', deferContinue(server));
    // CONNECT (authority-form): Node would drop the socket without a word; answered like any unparseable request.
    server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      if (late.edge) clientErrorHandler(late.edge, late.logger)(Object.assign(new Error('CONNECT is not served'), { code: 'HPE_CONNECT' }), socket);
      else socket.destroy();
    });
  }

  override setErrorHandler(handler: Parameters<FastifyAdapter['setErrorHandler']>[0]) {
    const wrapped = (err: unknown, request: FastifyRequest, reply: FastifyReply) =>
      (handler as (e: unknown, q: FastifyRequest, r: FastifyReply) => unknown)(fromServerError(err), request, reply);
    return super.setErrorHandler(wrapped as Parameters<FastifyAdapter['setErrorHandler']>[0]);
  }
}

const stripUndefined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

const REFUSAL_CODES: Record<Exclude<ConnectionRefusal, 'shutdown'>, ApiErrorCode> = {
  total: ApiErrorCode.ConnectionLimitReached,
  per_ip: ApiErrorCode.ClientConnectionLimitReached,
};
/** At most one log line about refused connections per this many ms (a flood would otherwise be a flood of lines). */
const REFUSAL_LOG_EVERY_MS = 10_000;

/**
 * What a refused connection leaves behind: `http_connections_refused_total{reason}`, a `request.refused` audit through
 * the bounded refusal audit (identical refusals of one address aggregated per window; none for a shutdown, which is
 * not the client's doing) and at most one warn line per {@link REFUSAL_LOG_EVERY_MS} with the count since the last.
 * `http_connections_open` is read from the gate when scraped.
 */
function connectionRefusals(late: LateEdge, gate: ConnectionGate): (reason: ConnectionRefusal, ip: string) => void {
  const refused = late.registry ? connectionMetrics(late.registry, () => gate.openConnections) : undefined;
  let lastLine = 0;
  let sinceLine = 0;
  return (reason, ip) => {
    refused?.(reason);
    if (reason === 'shutdown') return;
    const code = REFUSAL_CODES[reason];
    sinceLine++;
    const now = Date.now();
    if (now - lastLine >= REFUSAL_LOG_EVERY_MS) {
      late.logger.warn({ event: 'connection_refused', code, ip, refused: sinceLine }, 'connection refused: limit reached');
      lastLine = now;
      sinceLine = 0;
    }
    const req = { method: '', url: '', headers: {}, socket: { remoteAddress: ip } } as unknown as IncomingMessage;
    void late.edge?.auditEdgeRefusal(req, code, 503);
  };
}

/** Fastify refuses a Content-Type it cannot parse (`a b`, no subtype) before any parser: the API's 415. */
function fromServerError(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new EdgeRefusal(ApiErrorCode.UnsupportedMediaType, 'request bodies must be application/json');
  return err;
}

const EDGE_ANSWERED = Symbol('keyserverEdgeAnswered');
/** The request was answered in front of Nest (a refusal at the edge): its metrics route is "(unmatched)". */
const markAnswered = (request: FastifyRequest): void => {
  (request as unknown as Record<symbol, boolean>)[EDGE_ANSWERED] = true;
};

/**
 * Per request, once: echoes the request id, counts the request in flight, and when the response closes observes
 * its duration under the route template (precomputed by the router; "(unmatched)" for 404s and for refusals at
 * the edge) and writes the one log line.
 */
function track(logger: Logger, metrics: RequestMetrics | undefined, request: FastifyRequest, reply: FastifyReply, unmatched: boolean): void {
  const start = performance.now();
  const res = reply.raw;
  res.setHeader('x-request-id', request.id);
  const template = unmatched || request.is404 ? UNMATCHED_ROUTE : (request.routeOptions.url ?? UNMATCHED_ROUTE);
  metrics?.started();
  res.once('close', () => {
    const route = (request as unknown as Record<symbol, boolean>)[EDGE_ANSWERED] ? UNMATCHED_ROUTE : template;
    metrics?.finished(request.method, route, res, start);
    logRequest(logger, request.id, request.raw, res, start, route);
  });
}

/**
 * The API's per-request path in front of Nest, as one `onRequest` hook: {@link track}, a request routed during the
 * bounded shutdown answered 503 shutting_down (`connections`, the adapter's gate), then the edge checks
 * ({@link requestGuard}: Content-Encoding, the request target, anonymous rate limits), then the bootstrap gate;
 * then the body parser ({@link installBodyParser}), then Nest (the global guard, the handler, the problem filter);
 * the registry's edge routes (the liveness probe, {@link installEdgeRoutes}) are answered without Nest.
 */
export function configureHttpServer(
  app: NestFastifyApplication,
  o: { edge: EdgeServices; db: Db; logger: Logger; config: ApiConfig; metrics?: RequestMetrics; connections?: Pick<ConnectionGate, 'closing'> },
): void {
  const server = app.getHttpAdapter().getInstance() as unknown as FastifyInstance;
  installBodyParser(server, o.config);
  installEdgeRoutes(server, PUBLIC_ROUTES);
  const gate = bootstrapGate(o.db, o.edge);
  const { edge, logger, metrics, connections } = o;
  server.addHook('onRequest', (request, reply, done) => {
    track(logger, metrics, request, reply, false);
    // Routed after SIGTERM (its header section was still arriving): nothing new starts (ConnectionGate.shutdown).
    if (connections?.closing) {
      refuseWhileShuttingDown(edge, request, reply);
      return markAnswered(request);
    }
    if (!requestGuard(edge, request, reply)) return markAnswered(request);
    gate(request, reply, done, markAnswered);
  });
  // `Expect: 100-continue` (deferContinue): met once the request passed the edge and the gate, as Node met it before
  // any route ran; a route that checks its caller and what the body is for first (CONTINUE_AFTER_CHECKS_ROUTES)
  // meets it in its handler, and until then any answer closes the connection rather than read the body (holdBody).
  server.addHook('preParsing', (request, reply, payload, done) => {
    const route = request.is404 ? '' : (request.routeOptions.url ?? '');
    if (CONTINUE_AFTER_CHECKS_ROUTES.has(route)) holdBody(request.raw, reply.raw);
    else proceedToBody(request.raw);
    done(null, payload);
  });
}
