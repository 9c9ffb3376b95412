// Types only: the SPA reuses the API contract's shapes without bundling zod.
import type { z } from 'zod';
import type {
  AdminSessionView,
  AuditEventView,
  AuditPage,
  AuditVerification,
  CertificatePage,
  CertificateView,
  CreateOperationRequest,
  CreateRoleRequest,
  CreateSubjectRequest,
  KeyDetail,
  LegacyKey,
  OperationPage,
  OperationView,
  RevocationReason,
  RoleView,
  SubjectView,
  UnknownPrincipalView,
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
export type LegacyKeyView = z.infer<typeof LegacyKey>;
export type RevocationReasonName = z.infer<typeof RevocationReason>;
export type CreateRoleBody = z.input<typeof CreateRoleRequest>;
export type UpdateRoleBody = z.input<typeof UpdateRoleRequest>;
export type CreateSubjectBody = z.input<typeof CreateSubjectRequest>;

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
