import type { FastifyInstance } from 'fastify';
import type { PublicRoute } from '@keyserver/authz';

/** The liveness probe's path (orchestrators, docker-compose and the Kubernetes manifests poll it). */
export const LIVENESS_PATH = '/healthz';
/** The readiness probe's path (HealthController: database, HSM and OpenID metadata). */
export const READINESS_PATH = '/readyz';

const LIVE_BODY = '{"status":"ok"}';

/**
 * Serves the public-route registry's edge entries (only the liveness probe) on the HTTP server itself, before Nest:
 * liveness says that the process accepts and answers requests, which needs no guard, controller or dependency, and
 * probes poll it often, so it skips Nest's per-request pipeline (docs/adr/0032-fastify-adapter.md). The server's
 * onRequest hook still runs: request id, metrics, log line, edge checks.
 */
export function installEdgeRoutes(server: FastifyInstance, registry: readonly PublicRoute[]): void {
  for (const r of registry) {
    if (!r.edge) continue;
    if (r.method !== 'GET' || r.path !== LIVENESS_PATH) throw new Error(`no edge handler for ${r.method} ${r.path}`);
    server.get(LIVENESS_PATH, (_request, reply) => {
      void reply.header('content-type', 'application/json; charset=utf-8').send(LIVE_BODY);
    });
  }
}
