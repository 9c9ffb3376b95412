import { errorClass } from '@keyserver/errors';

/** Refusals of the public CRL routes (an unknown key stays ApiError key_not_found, as before versions). */
export enum CrlErrorCode {
  /** The version segment is not a whole number from 1 to 999999 (`/api/v1/crl/{keyid}/versions/{version}`). */
  CrlVersionInvalid = 'crl_version_invalid',
  /** The key exists but has no such version (a pending rotation is no version yet). */
  KeyVersionNotFound = 'key_version_not_found',
  /** The version's HSM key was destroyed and its last CRL is past its nextUpdate (or was never signed). */
  CrlNotAvailable = 'crl_not_available',
}

const STATUS: Record<CrlErrorCode, number> = {
  [CrlErrorCode.CrlVersionInvalid]: 400,
  [CrlErrorCode.KeyVersionNotFound]: 404,
  [CrlErrorCode.CrlNotAvailable]: 404,
};

export class CrlError extends errorClass(STATUS) {}
