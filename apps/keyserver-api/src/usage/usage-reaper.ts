import type { Logger } from 'pino';
import { releaseExpiredReservations, type Db, type SubjectRepository } from '@keyserver/data-access';
import { PeriodicJob } from '../common/periodic-job';

/**
 * Gives back usages whose reservation outlived its lease: the replica that took them died (kill -9, OOM) or
 * hung between reserving and storing. Every replica runs one; SKIP LOCKED lets them run at the same time.
 * The same pass withdraws approvals whose approver lost the right without a withdrawing change (an earlier release
 * disabled him or recorded him as a guest, a hand edit: ADR 0017 addendum 2026-12-13); the first pass runs at boot.
 */
export class UsageReaper {
  private readonly job = new PeriodicJob(() => this.run());

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
    private readonly leaseMs: number,
    private readonly subjects?: Pick<SubjectRepository, 'withdrawStaleApprovals'>,
  ) {}

  /** Sweeps now and then every quarter lease (at least every second, at most every 15 s). */
  start(): void {
    this.job.start(Math.min(15_000, Math.max(1_000, Math.floor(this.leaseMs / 4))));
  }

  stop(): Promise<void> {
    return this.job.stop();
  }

  /** One pass; resolves to how many reservations it released. Never throws (a database outage is retried next time). */
  sweep(): Promise<number> {
    return this.job.pass();
  }

  private async run(): Promise<number> {
    let released = 0;
    try {
      for (let batch = await releaseExpiredReservations(this.db); batch.length > 0; batch = await releaseExpiredReservations(this.db)) {
        released += batch.length;
        for (const r of batch) this.logger.warn({ reservation: r }, 'usage reservation expired: usage given back');
      }
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'usage reaper could not sweep; will retry');
    }
    try {
      const withdrawn = (await this.subjects?.withdrawStaleApprovals()) ?? [];
      for (const w of withdrawn) this.logger.warn({ approval: w }, 'approval of an approver who lost the right withdrawn by the reconciler');
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'approval reconciler could not run; will retry');
    }
    return released;
  }
}
