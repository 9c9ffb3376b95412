import type { Logger } from 'pino';
import type { CrlService } from './crl.service';

/**
 * Keeps the CRL of every live ROOT/CA key version fresh (ADR 0029), so relying parties never find a CRL past its
 * nextUpdate even for versions nobody fetches. Every replica runs one: the per-version advisory lock in
 * CrlRepository.refresh makes replicas that meet on a version sign it once.
 */
export class CrlRefresher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly crls: CrlService,
    private readonly logger: Logger,
    private readonly everyMs: number,
  ) {}

  start(): void {
    void this.pass();
    this.timer = setInterval(() => void this.pass(), this.everyMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One pass; never throws (a database or HSM outage is retried next time). */
  async pass(): Promise<void> {
    if (this.running) return;
    this.running = (async () => {
      try {
        const signed = await this.crls.refreshAll();
        if (signed) this.logger.info({ signed }, 'CRLs refreshed');
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'CRL refresh pass failed; will retry');
      }
    })();
    await this.running;
    this.running = undefined;
  }
}
