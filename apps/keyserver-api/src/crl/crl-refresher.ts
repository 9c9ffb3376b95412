import type { Logger } from 'pino';
import { PeriodicJob } from '../common/periodic-job';
import type { CrlService } from './crl.service';

/**
 * Keeps the CRL of every live ROOT/CA key version fresh (ADR 0029), so relying parties never find a CRL past its
 * nextUpdate even for versions nobody fetches. Every replica runs one: the per-version advisory lock in
 * CrlRepository.refresh makes replicas that meet on a version sign it once.
 */
export class CrlRefresher {
  private readonly job = new PeriodicJob(() => this.run());

  constructor(
    private readonly crls: CrlService,
    private readonly logger: Logger,
    private readonly everyMs: number,
  ) {}

  start(): void {
    this.job.start(this.everyMs);
  }

  stop(): Promise<void> {
    return this.job.stop();
  }

  /** One pass; never throws (a database or HSM outage is retried next time). */
  pass(): Promise<void> {
    return this.job.pass();
  }

  private async run(): Promise<void> {
    try {
      const signed = await this.crls.refreshAll();
      if (signed) this.logger.info({ signed }, 'CRLs refreshed');
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'CRL refresh pass failed; will retry');
    }
  }
}
