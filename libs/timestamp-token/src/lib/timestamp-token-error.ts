import { errorClass } from '@keyserver/errors';

/** Why a time-stamp token does not verify. Callers map each code once to their own (the API's TsaError, ksctl's CliError). */
export enum TimestampTokenErrorCode {
  /** Not a CMS SignedData over a TSTInfo of version 1 with one signer and signed attributes, or an attribute malformed. */
  Malformed = 'token_malformed',
  /** The TSTInfo's messageImprint is not the expected one (another signature, another query). */
  ImprintMismatch = 'imprint_mismatch',
  /** The TSTInfo does not echo the query's nonce. */
  NonceMismatch = 'nonce_mismatch',
  /** A digest or signature algorithm the verifier does not support. */
  UnsupportedAlgorithm = 'unsupported_algorithm',
  /** The signer's certificate is neither in the token nor among the certificates the caller gave. */
  SignerNotFound = 'signer_not_found',
  /** content-type or message-digest attribute wrong, or the signature does not verify with the signer's key. */
  SignatureInvalid = 'signature_invalid',
  /** No ESS signing-certificate(-v2) attribute, or one whose certHash or issuerSerial names another certificate. */
  SigningCertificateMismatch = 'signing_certificate_mismatch',
  /** The signer's certificate is no TSA certificate: extendedKeyUsage must be timeStamping only, critical. */
  NotTimestamping = 'not_timestamping',
}

// A token that does not verify is bad input wherever it came from; the callers answer with their own codes.
const STATUS = Object.fromEntries(Object.values(TimestampTokenErrorCode).map((code) => [code, 400])) as Record<TimestampTokenErrorCode, number>;

export class TimestampTokenError extends errorClass(STATUS) {}
