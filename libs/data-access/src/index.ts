export * from './lib/errors';
export * from './lib/types';
export {
  approvalComplete,
  effectiveState,
  isUsable,
  needsApproval,
  usability,
  type PolicyOperation,
  type PolicyOperationKey,
  type UsabilityRefusal,
} from './lib/policy/operation-policy';
export { createDb, isDatabaseUnavailable, type Db, type Isolation } from './lib/db';
export { migrateDatabase, readMigrations, defaultMigrationsDir, PRISMA_MIGRATE_ADVISORY_LOCK } from './lib/migrate/migrator';
export type { MigrationFile, MigrationLogger } from './lib/migrate/migrator';
export { AUDIT_GENESIS_HASH, auditEventHash, canonicalJson } from './lib/audit-hash';
export * from './lib/repositories/subject.repository';
export * from './lib/repositories/key.repository';
export * from './lib/repositories/operation.repository';
export * from './lib/repositories/sign-order.repository';
export { requestFingerprint } from './lib/repositories/idempotency';
export * from './lib/repositories/key-limits';
export * from './lib/repositories/certificate.repository';
export * from './lib/repositories/admin-session.repository';
export { AuditRepository, type AuditFilter, type ChainVerification } from './lib/repositories/audit.repository';
export { createRepositories, type Repositories } from './lib/repositories';
export * from './lib/repositories/certificate-issuance.repository';
export * from './lib/bff-session.repository';
export { releaseExpiredReservations, DEFAULT_USAGE_LEASE_MS, type ReleasedReservation, type ReservationKind } from './lib/repositories/usage';
export * from './lib/repositories/device-profile.repository';
export * from './lib/repositories/notification.repository';
export { MetricsRepository, type AwaitingApproval } from './lib/repositories/metrics.repository';
export { observeAuditAppends, type AuditAppendObserver, type AuditAppendPath } from './lib/repositories/audit-observer';
