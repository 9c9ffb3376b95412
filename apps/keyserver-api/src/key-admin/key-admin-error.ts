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
  // CRLs per version and external rotation (ADR 0029)
  /** An externally certified key already has a rotation waiting for its certificate. */
  VersionPending = 'version_pending',
  /** The imported chain ends at another anchor than the one the key's first import was verified to. */
  AnchorMismatch = 'anchor_mismatch',
  /** The imported certificate names another subject than the key's current certificate. */
  SubjectMismatch = 'subject_mismatch',
  /** The final CRLs could not be signed before destruction: nothing was destroyed. */
  FinalCrlFailed = 'final_crl_failed',
  // The renewed external chain of an imported ROOT (ADR 0020 addendum "the renewed external chain")
  /** Only an ACTIVE ROOT certified by an external root has an external chain to replace. */
  NotExternallyCertified = 'not_externally_certified',
  /** The certificate and chain given are the ones stored: nothing to replace. */
  ExternalChainUnchanged = 'external_chain_unchanged',
  /** An ACTIVE key below the ROOT would end after the new certificate or chain: its tail would have no valid path. */
  KeysBelowOutliveChain = 'keys_below_outlive_chain',
  /** The new certificate or chain allows fewer CA levels below the ROOT than the CA keys there already use. */
  ChainPathLenTooSmall = 'chain_path_len_too_small',
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
  [KeyAdminErrorCode.VersionPending]: 409,
  [KeyAdminErrorCode.AnchorMismatch]: 400,
  [KeyAdminErrorCode.SubjectMismatch]: 400,
  [KeyAdminErrorCode.FinalCrlFailed]: 503,
  [KeyAdminErrorCode.NotExternallyCertified]: 409,
  [KeyAdminErrorCode.ExternalChainUnchanged]: 409,
  [KeyAdminErrorCode.KeysBelowOutliveChain]: 409,
  [KeyAdminErrorCode.ChainPathLenTooSmall]: 409,
};

/** Refusals of key administration. */
export class KeyAdminError extends errorClass(STATUS) {}
