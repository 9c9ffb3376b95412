import { Controller, Get, Inject, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { Public } from '@keyserver/authz';
import type { Db } from '@keyserver/data-access';
import type { HsmSigner } from '@keyserver/pki';
import { API_CONFIG, DATABASE, HSM_SIGNER } from '../app/tokens';
import type { ApiConfig } from '../config/api-config';

type Check = 'ok' | string;

/** Readiness: the database, the HSM and the OpenID metadata document (liveness is served at the edge: ./liveness.ts). */
@ApiExcludeController()
@Controller()
export class HealthController {
  constructor(
    @Inject(DATABASE) private readonly db: Db,
    @Inject(HSM_SIGNER) private readonly signer: HsmSigner,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  @Public()
  @Get('readyz')
  async readyz(@Res({ passthrough: true }) res: FastifyReply) {
    const [database, hsm, metadata] = await Promise.all([
      this.check(() => this.db.prisma.$queryRaw`SELECT 1`),
      this.check(() => this.signer.health()),
      this.check(async () => {
        const r = await fetch(this.config.metadataUrl, { signal: AbortSignal.timeout(2000) });
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
      }),
    ]);
    const ready = database === 'ok' && hsm === 'ok' && metadata === 'ok';
    res.code(ready ? 200 : 503);
    if (!ready) res.header('Retry-After', '5');
    return { status: ready ? 'ready' : 'not_ready', checks: { database, hsm, metadata } };
  }

  private async check(fn: () => Promise<unknown>): Promise<Check> {
    try {
      await Promise.race([fn(), new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 3000))]);
      return 'ok';
    } catch {
      return 'unavailable';
    }
  }
}
