import type { KeyRepository } from '@keyserver/data-access';
import type { HsmSigner } from '@keyserver/pki';
import type { Logger } from 'pino';

/** What became of an HSM key generated for a key change that failed (the refusal's audit event says it). */
export type DiscardOutcome = 'destroyed' | 'kept: the database names it' | 'left in the HSM';

/**
 * Destroys the key pair generated for a key change that did not succeed, unless the database names it: a failure
 * after the commit (the answer to COMMIT lost) leaves a key or version that signs with it, and destroying it would
 * leave an ACTIVE key without its HSM key. When the database cannot be asked, the key pair is left (an orphan the
 * audit event names is recoverable; a destroyed key in use is not).
 */
export async function discardUnlessNamed(keys: KeyRepository, signer: HsmSigner, logger: Logger, hsmKeyId: string): Promise<DiscardOutcome> {
  try {
    if (await keys.namesHsmKey(hsmKeyId)) {
      logger.error({ hsmKeyId }, 'a failed key change left a database row naming its HSM key: the key pair is kept');
      return 'kept: the database names it';
    }
    await signer.destroyKey(hsmKeyId);
    return 'destroyed';
  } catch (err) {
    logger.error({ err, hsmKeyId }, 'could not destroy the HSM key of a failed key change');
    return 'left in the HSM';
  }
}
