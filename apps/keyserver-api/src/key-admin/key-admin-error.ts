import { errorClass } from '@keyserver/errors';

export enum KeyAdminErrorCode {
  KeyExists = 'key_exists',
  KeyNotFound = 'key_not_found',
  RootNotAvailable = 'root_not_available',
  ValidityExceedsRoot = 'validity_exceeds_root',
  KeyAlreadyRevoked = 'key_already_revoked',
  RootNotRevocable = 'root_not_revocable',
}

const STATUS: Record<KeyAdminErrorCode, number> = {
  [KeyAdminErrorCode.KeyExists]: 409,
  [KeyAdminErrorCode.KeyNotFound]: 404,
  [KeyAdminErrorCode.RootNotAvailable]: 409,
  [KeyAdminErrorCode.ValidityExceedsRoot]: 400,
  [KeyAdminErrorCode.KeyAlreadyRevoked]: 409,
  [KeyAdminErrorCode.RootNotRevocable]: 409,
};

/** Refusals of key administration. */
export class KeyAdminError extends errorClass(STATUS) {}
