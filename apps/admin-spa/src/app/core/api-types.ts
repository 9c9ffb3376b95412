// Types only: the SPA reuses the API contract's shapes without bundling zod.
import type { z } from 'zod';
import type {
  AdminSessionView,
  AuditEventView,
  AuditPage,
  AuditVerification,
  CertificatePage,
  CertificateView,
  CreateKeyRequest,
  CreateOperationRequest,
  CreateRoleRequest,
  CreateSubjectRequest,
  HashAlgorithm,
  KeyAlgorithm,
  KeyDetail,
  KeyList,
  KeyRevocationReason,
  KeyRevocationResult,
  KeyState,
  KeySummary,
  KeyType,
  LegacyKey,
  OperationPage,
  OperationView,
  RevocationReason,
  RoleView,
  SubjectView,
  UnknownPrincipalView,
  UpdateKeyRequest,
  UpdateRoleRequest,
  UpdateSubjectRequest,
} from '@keyserver/api-contract';

export type {
  AdminSessionView,
  AuditEventView,
  AuditPage,
  AuditVerification,
  CertificatePage,
  CertificateView,
  CreateOperationRequest,
  OperationPage,
  OperationView,
  RoleView,
  SubjectView,
  UnknownPrincipalView,
  UpdateSubjectRequest,
};

export type KeyDetailView = z.infer<typeof KeyDetail>;
export type KeyRevocationView = z.infer<typeof KeyRevocationResult>;
export type LegacyKeyView = z.infer<typeof LegacyKey>;
export type KeySummaryView = z.infer<typeof KeySummary>;
export type KeyListView = z.infer<typeof KeyList>;
export type KeyStateName = z.infer<typeof KeyState>;
export type KeyTypeName = z.infer<typeof KeyType>;
export type RevocationReasonName = z.infer<typeof RevocationReason>;
export type CreateRoleBody = z.input<typeof CreateRoleRequest>;
export type UpdateRoleBody = z.input<typeof UpdateRoleRequest>;
export type CreateSubjectBody = z.input<typeof CreateSubjectRequest>;
export type CreateKeyBody = z.input<typeof CreateKeyRequest>;
export type UpdateKeyBody = z.input<typeof UpdateKeyRequest>;
export type KeyAlgorithmName = z.infer<typeof KeyAlgorithm>;
export type HashAlgorithmName = z.infer<typeof HashAlgorithm>;
export type KeyRevocationReasonName = z.infer<typeof KeyRevocationReason>;

/** A page of a cursor-paginated list. */
export interface CursorPage<T> {
  items: T[];
  nextCursor: string | null;
}

/** RFC 5280 reasons, in the order the revoke dialogs offer them. */
export const REVOCATION_REASONS: readonly RevocationReasonName[] = [
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'privilegeWithdrawn',
];

/** The key types an administrator may create (the ROOT is made once, at setup). */
export const CREATABLE_KEY_TYPES: readonly CreateKeyBody['type'][] = ['CA', 'FW', 'TSA'];
/** The contract's KeyAlgorithm and HashAlgorithm, in the order the new-key dialog offers them. */
export const KEY_ALGORITHMS: readonly KeyAlgorithmName[] = ['EC_P256', 'EC_P384', 'EC_P521', 'ED25519', 'RSA_2048', 'RSA_3072', 'RSA_4096'];
export const HASH_ALGORITHMS: readonly HashAlgorithmName[] = ['SHA256', 'SHA384', 'SHA512'];

