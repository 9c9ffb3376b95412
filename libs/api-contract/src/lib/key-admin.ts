import { z } from 'zod';
import { RevocationReason } from './certificates';
import { HashAlgorithm, KEY_HASH_RULE, KeyAlgorithm, KeyDetail, keyHashFits, KeyState, KeyType } from './contract';
import { KeyIdRef, NEW_KEYID_PATTERN } from './ids';
import { NAME_TEXT_RULE, readsAsItself } from './name-text';

/**
 * A key's certificate name attribute (CN, O, OU): its certificate's subject, the name relying parties and approvers
 * read (ADR 0047) and a name reserved against device CSRs (ADR 0010). The rule of a device subject value
 * (`name-text`: no control, bidi or invisible character, its own NFKC form, everyday characters, one script, no whole-script look-alike,
 * one digit system), after trimming; the console's forms check the same function.
 */
const NameText = z
  .string()
  .trim()
  .min(1)
  .max(64)
  // eslint-disable-next-line no-control-regex -- the part of the rule a JSON Schema pattern can state
  .regex(/^[^\u0000-\u001f\u007f-\u009f]+$/, 'no control characters')
  .refine(readsAsItself, NAME_TEXT_RULE)
  .describe(`A certificate name attribute (ADR 0010, ADR 0047); ${NAME_TEXT_RULE}`);

/** The keyid of a new key (a ROOT from the ceremony, a CA, FW or TSA key). */
export const NewKeyId = z.string().regex(NEW_KEYID_PATTERN, 'keyid is 3-64 characters [a-z0-9._-]');

/** `POST /api/v1/keys`: a CA, FW or TSA (RFC 3161 time-stamping) key generated in the HSM and certified by the ROOT (or the `issuer` named). */
export const CreateKeyRequest = z.strictObject({
  keyid: NewKeyId,
  type: z.enum(['CA', 'FW', 'TSA']),
  algorithm: KeyAlgorithm,
  hash: HashAlgorithm.optional(),
  requiredApprovers: z.number().int().min(0).max(10),
  validityDays: z.number().int().min(1).max(36_500),
  product: z.string().trim().min(1).max(128).optional(),
  commonName: NameText,
  organization: NameText.optional(),
  country: z.string().regex(/^[A-Z]{2}$/).optional(),
  issuer: KeyIdRef.optional().describe('keyid of the ACTIVE ROOT or CA key that certifies the new key (default: the one ACTIVE ROOT)'),
  pathLen: z.number().int().min(0).max(8).optional().describe('CA keys: how many CA levels may follow below this one (default 0: it issues end entities only)'),
}).refine(keyHashFits, KEY_HASH_RULE);
export type CreateKeyRequest = z.infer<typeof CreateKeyRequest>;

export { NameText as CertificateNameText };

/** `PATCH /api/v1/keys/{keyid}`. */
export const UpdateKeyRequest = z.strictObject({ requiredApprovers: z.number().int().min(0).max(10) });
export type UpdateKeyRequest = z.infer<typeof UpdateKeyRequest>;

/** The same RFC 5280 reasons as a device certificate's revocation (the key's certificate goes on the ROOT's CRL). */
export const KeyRevocationReason = RevocationReason;

/** `POST /api/v1/keys/{keyid}/revocation`. */
export const RevokeKeyRequest = z.strictObject({ reason: KeyRevocationReason });
export type RevokeKeyRequest = z.infer<typeof RevokeKeyRequest>;

/** A key revoked together with the key named in the request because it is below it (ADR 0041). */
export const RevokedBelowKey = z.object({
  keyid: z.string(),
  type: KeyType,
  issuer: z.string().describe('keyid of the key that certified it'),
  previousState: KeyState.exclude(['REVOKED']).describe('Its state before this revocation'),
  versions: z.array(z.number().int().min(1)).describe('Its versions revoked now; each serial is on the CRL of the issuer version that certified it'),
  reason: KeyRevocationReason.describe('cACompromise when the key named was revoked for keyCompromise or cACompromise, else that reason'),
});
export type RevokedBelowKey = z.infer<typeof RevokedBelowKey>;

/** `POST /api/v1/keys/{keyid}/revocation`: the revoked key, and the keys revoked with it. */
export const KeyRevocationResult = KeyDetail.extend({
  revokedBelow: z
    .array(RevokedBelowKey)
    .describe('Every key below this one (certified by it, or by a key below it) that this revocation revoked too, each after its issuer; keys revoked before or destroyed are not listed'),
});
export type KeyRevocationResult = z.infer<typeof KeyRevocationResult>;
