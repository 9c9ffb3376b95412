import type { IncomingMessage } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { InstallationRepository, type Db } from '@keyserver/data-access';
import type { EdgeServices } from '../edge/edge';
import { BootstrapError, BootstrapErrorCode } from './bootstrap-error';

/** Routes an unbootstrapped installation still answers: probes and the API description. */
const OPEN = /^\/(?:healthz|readyz)$|^\/api\/docs(?:\/|$)/;

/**
 * Keeps an installation without first administrators closed: every /api request gets 503 `not_bootstrapped`
 * (audited, bounded like every edge refusal) until `keyserver-api bootstrap` (or the demo seed) committed. Once
 * bootstrapped an installation stays so, so the answer is cached and the gate costs nothing afterwards.
 * `next` continues the request; `refused` is told when the gate answered it.
 */
export function bootstrapGate(db: Db, edge: EdgeServices) {
  const installation = new InstallationRepository(db);
  let open = false;
  return (req: FastifyRequest, reply: FastifyReply, next: () => void, refused: (req: FastifyRequest) => void): void => {
    if (open) return next();
    const path = (req.raw.url ?? '').split('?')[0];
    if (OPEN.test(path)) return next();
    installation.get().then(
      (row) => {
        if (row) {
          open = true;
          return next();
        }
        const refusal = new BootstrapError(BootstrapErrorCode.NotBootstrapped, 'this installation has no administrators yet: run `keyserver-api bootstrap` (docs/operations.md)');
        refused(req);
        edge.sendRefusal(req, reply, refusal);
        void edge.auditEdgeRefusal(req as unknown as IncomingMessage, refusal.code, refusal.status);
      },
      // The database is unreachable: the handlers answer that (503 database_unavailable) themselves.
      () => next(),
    );
  };
}
