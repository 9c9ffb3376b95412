import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Gauge, Histogram, type Registry } from 'prom-client';
import { BoundedLabel, methodLabel, statusLabel } from './bounded-label';

/** Seconds; from 1 ms (a cached JWKS hit) to 10 s (a large firmware signature). */
export const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The route label of a request that matched no route (404s, and refusals before the router: edge checks, 429). */
export const UNMATCHED_ROUTE = '(unmatched)';

type RoutedRequest = IncomingMessage & { route?: { path?: unknown }; baseUrl?: string };

const METRICS_ROUTE = Symbol('keyserverMetricsRoute');

/**
 * Names the route of a request that a handler dispatches itself (the keyclient's proxy matches its allow-list:
 * `/api/v1/operations/:id` rather than the router's `/api/*path`). `template` must be one of the code's own
 * patterns, never built from the request.
 */
export function setMetricsRoute(req: IncomingMessage, template: string): void {
  (req as unknown as Record<symbol, string>)[METRICS_ROUTE] = template;
}

/**
 * The route TEMPLATE the router matched (`/api/v1/crl/:keyid`) or a handler named with {@link setMetricsRoute},
 * never the request's path: a path holds ids and whatever a caller types, a template is one of the code's routes.
 * Unmatched requests share one value.
 */
export function routeTemplate(req: RoutedRequest): string {
  const own = (req as unknown as Record<symbol, unknown>)[METRICS_ROUTE];
  if (typeof own === 'string') return own;
  const path = req.route?.path;
  if (typeof path !== 'string') return UNMATCHED_ROUTE;
  return `${req.baseUrl ?? ''}${path}` || '/';
}

/**
 * Records one finished (or aborted) request; see {@link requestMetrics}. `route` is a template from the code.
 */
export interface RequestMetrics {
  /** Call when the request arrives (the in-flight gauge goes up). */
  started(): void;
  /** Call once from the response's `close`: the gauge goes down and the duration is observed. */
  finished(method: string | undefined, route: string, res: ServerResponse, startMs: number): void;
}

/**
 * `http_request_duration_seconds{method,route,status}` (its _count is the request rate) and
 * `http_requests_in_flight`, for servers that name the route themselves (the API's Fastify hook). Per request:
 * two clock reads, one gauge inc/dec and one observation through a child histogram cached per label triple (the
 * triples are bounded: routes x methods x statuses), so no label object is built or hashed on the hot path.
 */
export function requestMetrics(registry: Registry, options: { maxRoutes?: number } = {}): RequestMetrics {
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP requests by method, route template and status: latency from the first middleware to the end of the response.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: HTTP_BUCKETS,
    registers: [registry],
  });
  const inFlight = new Gauge({ name: 'http_requests_in_flight', help: 'HTTP requests being served.', registers: [registry] });
  // Templates are the code's routes; the cap only guards against a router that would hand out raw paths.
  const routes = new BoundedLabel(options.maxRoutes ?? 500);
  const children = new Map<string, Map<string, { observe(v: number): void }>>();
  const child = (method: string, route: string, status: string) => {
    const key = `${method} ${route}`;
    let byStatus = children.get(key);
    if (!byStatus) children.set(key, (byStatus = new Map()));
    let c = byStatus.get(status);
    if (!c) byStatus.set(status, (c = duration.labels(method, route, status)));
    return c;
  };
  return {
    started: () => inFlight.inc(),
    finished(method, route, res, startMs) {
      inFlight.dec();
      // A response closed before it finished (the client went away) has no meaningful status.
      const status = res.writableFinished ? statusLabel(res.statusCode) : 'aborted';
      child(methodLabel(method), routes.admit(route), status).observe((performance.now() - startMs) / 1000);
    },
  };
}

/**
 * Express middleware form of {@link requestMetrics} (the keyclient): the route is read from Express' router (or
 * {@link setMetricsRoute}) when the response closes.
 */
export function httpMetrics(registry: Registry, options: { maxRoutes?: number } = {}) {
  const metrics = requestMetrics(registry, options);
  return (req: IncomingMessage, res: ServerResponse, next: () => void): void => {
    const start = performance.now();
    metrics.started();
    res.once('close', () => metrics.finished(req.method, routeTemplate(req), res, start));
    next();
  };
}
