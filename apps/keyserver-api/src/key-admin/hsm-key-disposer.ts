import type { KeyLifecycleRepository } from '@keyserver/data-access';
import type { HsmSigner } from '@keyserver/pki';
import type { Logger } from 'pino';
import { PeriodicJob } from '../common/periodic-job';

/**
 * Destroys the key pairs that cancellations decided to give up (`hsm_key_disposal`, ADR 0042 addendum): the HSM
 * objects first (destroying what is gone is a no-op), then the row with its `key.hsm_dispose` event. `only` narrows
 * the pass to one key pair (the cancellation that just decided). Never throws: a failure is counted on the row and
 * the next pass (a later cancellation, this sweeper on any replica) tries again. Resolves to how many it destroyed.
 */
export async function disposeCancelledKeyPairs(lifecycle: KeyLifecycleRepository, signer: HsmSigner, logger: Logger, only?: string): Promise<number> {
  let destroyed = 0;
  try {
    for (const d of await lifecycle.disposalsDue(20, only)) {
      try {
        await signer.destroyKey(d.hsmKeyId);
      } catch (err) {
        const message = (err as Error).message;
        logger.warn({ err: message, hsmKeyId: d.hsmKeyId, keyid: d.keyid, attempts: d.attempts + 1 }, 'could not destroy a cancelled key pair; retried later');
        await lifecycle.disposalFailed(d.hsmKeyId, message);
        continue;
      }
      if (await lifecycle.disposed(d.hsmKeyId, { action: 'key.hsm_dispose', outcome: 'SUCCESS', details: { reason: 'csr_cancel' } })) destroyed++;
    }
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'cancelled key pairs could not be disposed of now; retried later');
  }
  return destroyed;
}

/** Every replica retries the disposals an interrupted cancellation left (a crash, the HSM away) once a minute. */
export class HsmKeyDisposer {
  private readonly job = new PeriodicJob(() => disposeCancelledKeyPairs(this.lifecycle, this.signer, this.logger));

  constructor(
    private readonly lifecycle: KeyLifecycleRepository,
    private readonly signer: HsmSigner,
    private readonly logger: Logger,
    private readonly everyMs = 60_000,
  ) {}

  start(): void {
    this.job.start(this.everyMs);
  }

  stop(): Promise<void> {
    return this.job.stop();
  }

  /** One pass now (tests, and the start of each replica). */
  sweep(): Promise<number> {
    return this.job.pass();
  }
}
