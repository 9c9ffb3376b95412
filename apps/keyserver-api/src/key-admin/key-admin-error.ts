import { errorClass } from '@keyserver/errors';

export enum KeyAdminErrorCode {
  KeyExists = 'key_exists',
  KeyNotFound = 'key_not_found',
  RootNotAvailable = 'root_not_available',
  ValidityExceedsRoot = 'validity_exceeds_root',
  KeyAlreadyRevoked = 'key_already_revoked',
  RootNotRevocable = 'root_not_revocable',
  // Lifecycle (ADR 0020)
  KeyNotActive = 'key_not_active',
  KeyStillActive = 'key_still_active',
  KeyAlreadyDestroyed = 'key_already_destroyed',
  KeyHasActiveChildren = 'key_has_active_children',
  IssuerNotUsable = 'issuer_not_usable',
  CeremonyNeedsTwoAdministrators = 'ceremony_needs_two_administrators',
  NotAwaitingCertificate = 'not_awaiting_certificate',
  ExternallyCertified = 'externally_certified',
  VersionConflict = 'version_conflict',
}

const STATUS: Record<KeyAdminErrorCode, number> = {
  [KeyAdminErrorCode.KeyExists]: 409,
  [KeyAdminErrorCode.KeyNotFound]: 404,
  [KeyAdminErrorCode.RootNotAvailable]: 409,
  [KeyAdminErrorCode.ValidityExceedsRoot]: 400,
  [KeyAdminErrorCode.KeyAlreadyRevoked]: 409,
  [KeyAdminErrorCode.RootNotRevocable]: 409,
  [KeyAdminErrorCode.KeyNotActive]: 409,
  [KeyAdminErrorCode.KeyStillActive]: 409,
  [KeyAdminErrorCode.KeyAlreadyDestroyed]: 409,
  [KeyAdminErrorCode.KeyHasActiveChildren]: 409,
  [KeyAdminErrorCode.IssuerNotUsable]: 409,
  [KeyAdminErrorCode.CeremonyNeedsTwoAdministrators]: 403,
  [KeyAdminErrorCode.NotAwaitingCertificate]: 409,
  [KeyAdminErrorCode.ExternallyCertified]: 409,
  [KeyAdminErrorCode.VersionConflict]: 409,
};

/** Refusals of key administration. */
export class KeyAdminError extends errorClass(STATUS) {}
