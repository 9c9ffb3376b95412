import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { keepIdleConnections } from '@keyserver/config';
import { PROBLEM_CONTENT_TYPE, problemFor } from '@keyserver/errors';
import type { MetricsConfig } from './metrics-config';

/** A started metrics listener. */
export interface MetricsServer {
  /** `http://host:port/metrics`. */
  url: string;
  close(): Promise<void>;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** True when the request carries `Authorization: Bearer <token>` (compared in constant time). */
export function hasBearer(req: IncomingMessage, token: string): boolean {
  const header = req.headers['authorization'];
  const m = typeof header === 'string' ? /^Bearer ([\x21-\x7e]{1,1024})$/i.exec(header) : null;
  return m !== null && timingSafeEqual(digest(m[1]), digest(token));
}

function problem(res: ServerResponse, status: number, code: string, title: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(problemFor(status, code, title));
  res.writeHead(status, { ...headers, 'content-type': `${PROBLEM_CONTENT_TYPE}; charset=utf-8`, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

/**
 * Serves `GET /metrics` (Prometheus text exposition) on its own listener, never on the public port: the API's
 * and the keyclient's routers, the keyclient's proxy and the public-routes registry never see it
 * (docs/adr/0022-metrics-endpoint.md). With a token, a scrape without `Authorization: Bearer <token>` gets 401.
 * Anything but GET/HEAD /metrics is a problem+json 404/405. Collection errors are logged and answered 500.
 */
export async function startMetricsServer(config: MetricsConfig, registry: Registry, logger: Logger): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') return problem(res, 404, 'not_found', 'Not Found');
    if (req.method !== 'GET' && req.method !== 'HEAD') return problem(res, 405, 'method_not_allowed', 'Method Not Allowed', { allow: 'GET, HEAD' });
    if (config.token !== undefined && !hasBearer(req, config.token)) {
      return problem(res, 401, 'metrics_unauthorized', 'Unauthorized', { 'www-authenticate': 'Bearer realm="metrics"' });
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        logger.error({ event: 'metrics_collect_failed', err: err instanceof Error ? err.message : String(err) }, 'metrics collection failed');
        problem(res, 500, 'metrics_unavailable', 'Internal Server Error');
      },
    );
  });
  keepIdleConnections(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${host}:${port}/metrics`;
  logger.info({ event: 'metrics_listening', url, token: config.token !== undefined }, 'metrics listening');
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
