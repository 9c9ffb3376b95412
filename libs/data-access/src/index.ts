export { DATA_ACCESS_ERROR_STATUS, DataAccessError, DataAccessErrorCode } from './lib/errors';
export {
  type AdminSession,
  type AdminSessionState,
  type AuditEvent,
  type AuditInput,
  type AuditOutcome,
  type Certificate,
  HASH_ALGORITHMS,
  type HashAlgorithm,
  type Installation,
  type Key,
  KEY_ALGORITHMS,
  KEY_STATES,
  KEY_TYPES,
  type KeyAlgorithm,
  type KeyPermission,
  type KeyState,
  type KeyType,
  type KeyVersion,
  type Nature,
  type Operation,
  OPERATION_STATES,
  type OperationKey,
  type OperationProvenance,
  type OperationState,
  type Page,
  type PendingKey,
  type Role,
  type SignOrder,
  type Subject,
  type SubjectKind,
  type SubjectAccount,
  type SubjectWithAccess,
  type UnknownPrincipal,
} from './lib/types';
export {
  approvalComplete,
  effectiveState,
  certificateCoversWindow,
  isUsable,
  needsApproval,
  usability,
  type CertificateValidity,
  type PolicyOperation,
  type PolicyOperationKey,
  type UsabilityRefusal,
} from './lib/policy/operation-policy';
export { externalChainValidity, type ExternalChainValidity } from './lib/policy/chain-validity';
export { createDb, isDatabaseUnavailable, type Db, type Isolation } from './lib/db';
export { CONNECTION_DEFAULTS, parseDatabaseUrl, poolConfig, type ConnectionOptions, type DatabasePooler } from './lib/connection';
export { migrateDatabase, readMigrations, defaultMigrationsDir, PRISMA_MIGRATE_ADVISORY_LOCK } from './lib/migrate/migrator';
export type { MigrationFile, MigrationLogger } from './lib/migrate/migrator';
export { AUDIT_GENESIS_HASH, auditEventHash, canonicalJson } from './lib/audit-hash';
export {
  type CreateRoleInput,
  type CreateSubjectInput,
  type RoleGrants,
  SubjectRepository,
  type UnknownPrincipalInput,
  type UpdateRoleInput,
  type UpdateSubjectInput,
} from './lib/repositories/subject.repository';
export { cascadeReason, type CreateKeyInput, type KeyRevocation, KeyRepository, REVOKE_CASCADE_ACTION, type RevokedBelow, toKey } from './lib/repositories/key.repository';
export { type CancelledPending, type CreatePendingKeyInput, type DestructionPlan, type ExternalChainChange, type HsmKeyDisposal, type KeyBelow, KeyLifecycleRepository, type NewKeyVersion, type PendingKeyVersion } from './lib/repositories/key-lifecycle.repository';
export { CRL_NUMBER_SECOND_BITS, CrlRepository, crlEntriesSha256, crlNumberFloor, crlNumberSecond, type CrlEntry, type CrlScope, type CrlSigner, type SignedCrl, type StoredCrl } from './lib/repositories/crl.repository';
export { BOOTSTRAP_ADMIN_ROLE, type BootstrapAdmin, InstallationRepository } from './lib/repositories/installation.repository';
export {
  type ApprovalResult,
  type CreateOperationInput,
  type CreatedOperation,
  type OperationIdempotency,
  lockOperation,
  type OperationFilter,
  OperationRepository,
  toOperation,
} from './lib/repositories/operation.repository';
export { type RecordedSignOrder, SignOrderRepository, type SignRequest, type UsageOptions } from './lib/repositories/sign-order.repository';
export { requestFingerprint } from './lib/repositories/idempotency';
export {
  DEFAULT_KEY_LIMITS,
  type EffectiveKeyLimits,
  effectiveLimits,
  keyClass,
  KeyLimitsRepository,
  type KeyOperationLimits,
  operationLimitViolation,
} from './lib/repositories/key-limits';
export { type CertificateFilter, CertificateRepository, type InsertCertificateInput } from './lib/repositories/certificate.repository';
export { AdminSessionRepository, type AuthorizeResult, type OpenAdminSessionInput } from './lib/repositories/admin-session.repository';
export { AuditRepository, type AuditChainSnapshot, type AuditFilter, type ChainSeals, type ChainVerification } from './lib/repositories/audit.repository';
export { AUDIT_CHECKPOINT_LOCK, AuditCheckpointRepository, type AuditHead, type NewAuditCheckpoint } from './lib/repositories/audit-checkpoint.repository';
export { createRepositories, type Repositories } from './lib/repositories';
export { CertificateIssuanceRepository, SERIAL_ATTEMPTS, type CertificateAnswer, type IssuedCertificate, type IssuedCertificateRecord, type IssueRequest } from './lib/repositories/certificate-issuance.repository';
export { releaseExpiredReservations, observeReservations, DEFAULT_USAGE_LEASE_MS, type ReleasedReservation, type ReservationKind, type ReservationObserver } from './lib/repositories/usage';
export { DeviceProfileRepository } from './lib/repositories/device-profile.repository';
export {
  type AdminSessionNoticePayload,
  type ClaimedDelivery,
  type DeliveryRow,
  enqueueAdminSessionNotice,
  enqueueOperationNotice,
  type ExpandedEvent,
  type NoticePayload,
  type NotificationRecipient,
  NotificationRepository,
  type NotificationSettings,
  type OperationNotice,
  type OperationNoticePayload,
  RECIPIENT_HOURLY_LIMIT,
  ENDPOINT_HOURLY_LIMIT,
  type NotificationCaps,
  canonicalMailbox,
  canonicalEndpoint,
  endpointCapKey,
  SUPERSEDED,
  type WebhookCapTarget,
  storedAddress,
} from './lib/repositories/notification.repository';
export { TimestampRepository, type TimestampRecord } from './lib/repositories/timestamp.repository';
export { MetricsRepository, type AwaitingApproval } from './lib/repositories/metrics.repository';
export { observeAuditAppends, type AuditAppendObserver, type AuditAppendPath } from './lib/repositories/audit-observer';
