import type { KeyRepository } from '@keyserver/data-access';
import type { HsmSigner } from '@keyserver/pki';
import type { Logger } from 'pino';

/** What became of an HSM key generated for a key change that failed (the refusal's audit event says it). */
export type DiscardOutcome = 'destroyed' | 'kept: the database names it' | 'left in the HSM';

/**
 * Destroys the key pair generated for a key change of `keyid` that did not succeed, unless the database names it: a
 * failure after the commit (the answer to COMMIT lost) leaves a key or version that signs with it, and destroying it
 * would leave an ACTIVE key without its HSM key. The decision is by the key pair's own CKA_ID (unique per generated
 * pair, never the keyid or label another request's pair shares), read under the keyid's lock, so a commit still
 * under way is waited for (ADR 0042). When the database cannot be asked, the key pair is left (an orphan the audit
 * event names is recoverable; a destroyed key in use is not).
 */
export async function discardUnlessNamed(keys: KeyRepository, signer: HsmSigner, logger: Logger, hsmKeyId: string, keyid: string): Promise<DiscardOutcome> {
  try {
    if (await keys.namesHsmKey(hsmKeyId, keyid)) {
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
