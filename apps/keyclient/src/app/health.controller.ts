import { Controller, Get, Inject, Res } from '@nestjs/common';
import type { Response } from 'express';
import { KeyclientError, KeyclientErrorCode } from '../errors/keyclient-error';
import { KEYCLIENT_CONTEXT, type KeyclientContext } from './context';

@Controller()
export class HealthController {
  constructor(@Inject(KEYCLIENT_CONTEXT) private readonly ctx: KeyclientContext) {}

  /** Liveness: the process answers. */
  @Get('healthz')
  healthz(@Res() res: Response): void {
    res.setHeader('cache-control', 'no-store');
    res.status(200).json({ status: 'ok' });
  }

  /** Readiness: the session database and the provider's metadata document are reachable. */
  @Get('readyz')
  async readyz(@Res() res: Response): Promise<void> {
    const [database, provider] = await Promise.all([
      this.ctx.repo.ping().then(
        () => true,
        () => false,
      ),
      this.ctx.oidc.fetchMetadataDocument().then(
        () => true,
        () => false,
      ),
    ]);
    if (!database || !provider) {
      this.ctx.log.warn({ event: 'not_ready', database, provider }, 'readiness check failed');
      throw new KeyclientError(KeyclientErrorCode.NotReady, `database: ${database ? 'up' : 'down'}, provider: ${provider ? 'up' : 'down'}`);
    }
    res.setHeader('cache-control', 'no-store');
    res.status(200).json({ status: 'ready', checks: { database: 'up', provider: 'up' } });
  }
}
