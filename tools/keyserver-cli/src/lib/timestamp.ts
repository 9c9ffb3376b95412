import type * as asn1js from 'asn1js';
import type * as pkijs from 'pkijs';
import type { X509Certificate } from 'node:crypto';
import { TIMESTAMP_TOKEN_OID, TimestampTokenError, TimestampTokenErrorCode, type VerifiedTimeStampToken, verifyTimeStampToken } from '@keyserver/timestamp-token';
import { CliError, Exit } from './errors';
import { verifyChain } from './verify';

// RFC 3161 signature timestamps (the unsigned attribute id-aa-timeStampToken of a CMS SignerInfo), checked
// offline: the one token verifier (@keyserver/timestamp-token, shared with the API) checks that the imprint is the
// hash of that SignerInfo's signature value, that the token's CMS signature verifies with a TSA certificate whose
// only extended key usage is timeStamping (critical) and that the ESS signing-certificate attribute names it; ksctl's
// policy is that its chain leads to --ca at the time the token states, a time not after the verification time.

export const TIMESTAMP_OID = {
  ...TIMESTAMP_TOKEN_OID,
  attribute: TIMESTAMP_TOKEN_OID.timeStampToken,
};

/** ksctl's code for each refusal of the token verifier: `timestamp_invalid` but for two that say more. */
const TOKEN_REFUSAL: Record<TimestampTokenErrorCode, string> = {
  ...(Object.fromEntries(Object.values(TimestampTokenErrorCode).map((code) => [code, 'timestamp_invalid'])) as Record<TimestampTokenErrorCode, string>),
  [TimestampTokenErrorCode.ImprintMismatch]: 'timestamp_imprint_mismatch',
  [TimestampTokenErrorCode.NotTimestamping]: 'not_timestamping',
};

/** A verified signature timestamp. */
export interface VerifiedTimestamp {
  /** The time the TSA states (TSTInfo genTime), ISO 8601. */
  time: string;
  serial: string;
  policy: string;
  /** Stated accuracy in milliseconds, when the token states one. */
  accuracyMs?: number;
  tsa: X509Certificate;
  chain: X509Certificate[];
}

function invalid(message: string, code = 'timestamp_invalid'): CliError {
  return new CliError(`signature timestamp: ${message}`, Exit.Invalid, code);
}

/** The raw token of a SignerInfo's id-aa-timeStampToken attribute, or undefined; more than one is refused. */
export function timestampTokenOf(si: pkijs.SignerInfo): Buffer | undefined {
  const found = si.unsignedAttrs?.attributes.filter((a) => a.type === TIMESTAMP_OID.attribute) ?? [];
  if (found.length === 0) return undefined;
  if (found.length > 1 || found[0].values.length !== 1) throw invalid('the signature carries more than one timestamp token');
  return Buffer.from((found[0].values[0] as asn1js.BaseBlock).valueBeforeDecodeView);
}

/**
 * Verifies a signature timestamp token over `signatureValue` (the SignerInfo's signature) and its TSA chain to
 * one of `anchors` at the time the token states; the TSA certificate may come from the token or from `pool`.
 * `at` is the verification time: a token stating a later time (beyond its accuracy and 5 minutes) is refused.
 */
export function verifySignatureTimestamp(token: Buffer, signatureValue: Buffer, anchors: X509Certificate[], pool: X509Certificate[], at = new Date()): VerifiedTimestamp {
  let verified: VerifiedTimeStampToken;
  try {
    verified = verifyTimeStampToken(token, { imprintOver: signatureValue, pool });
  } catch (err) {
    if (err instanceof TimestampTokenError) throw invalid(err.detail ?? err.code, TOKEN_REFUSAL[err.code]);
    throw err;
  }
  const { info, signer: tsa, carried } = verified;
  const genTime = info.genTime;
  if (genTime.getTime() - (info.accuracyMs ?? 0) > at.getTime() + 5 * 60_000) throw invalid(`the token states ${genTime.toISOString()}, after the verification time`);
  // The TSA's chain as it stood when it stamped (its certificate may have expired since, like the signer's).
  const chain = verifyChain(tsa, [...carried, ...pool], anchors, { at: genTime });
  return {
    time: genTime.toISOString(),
    serial: info.serialHex,
    policy: info.policy,
    ...(info.accuracyMs !== undefined ? { accuracyMs: info.accuracyMs } : {}),
    tsa,
    chain,
  };
}
