import type { NextFunction, Request, Response } from 'express';
import { InstallationRepository, type Db } from '@keyserver/data-access';
import type { EdgeServices } from '../edge/edge';
import { BootstrapError, BootstrapErrorCode } from './bootstrap-error';

/** Routes an unbootstrapped installation still answers: probes and the API description. */
const OPEN = /^\/(?:healthz|readyz)$|^\/api\/docs(?:\/|$)/;

/**
 * Keeps an installation without first administrators closed: every /api request gets 503 `not_bootstrapped`
 * (audited, bounded like every edge refusal) until `keyserver-api bootstrap` (or the demo seed) committed. Once
 * bootstrapped an installation stays so, so the answer is cached and the gate costs nothing afterwards.
 */
export function bootstrapGate(db: Db, edge: EdgeServices) {
  const installation = new InstallationRepository(db);
  let open = false;
  return (req: Request, res: Response, next: NextFunction): void => {
    if (open) return next();
    const path = (req.originalUrl ?? req.url ?? '').split('?')[0];
    if (OPEN.test(path)) return next();
    installation.get().then(
      (row) => {
        if (row) {
          open = true;
          return next();
        }
        const refusal = new BootstrapError(BootstrapErrorCode.NotBootstrapped, 'this installation has no administrators yet: run `keyserver-api bootstrap` (docs/operations.md)');
        edge.sendRefusal(req, res, refusal);
        void edge.auditEdgeRefusal(req, refusal.code, refusal.status);
      },
      // The database is unreachable: the handlers answer that (503 database_unavailable) themselves.
      () => next(),
    );
  };
}
