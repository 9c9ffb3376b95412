import type { FactoryProvider } from '@nestjs/common';
import {
  AdminSessionRepository,
  AuditCheckpointRepository,
  AuditRepository,
  CertificateIssuanceRepository,
  CertificateRepository,
  CrlRepository,
  DeviceProfileRepository,
  InstallationRepository,
  KeyLifecycleRepository,
  KeyLimitsRepository,
  KeyRepository,
  NotificationRepository,
  OperationRepository,
  SignOrderRepository,
  SubjectRepository,
  TimestampRepository,
  type Db,
} from '@keyserver/data-access';
import type { ApiConfig } from '../config/api-config';
import { API_CONFIG, DATABASE, DEPS, HSM_SIGNER, LOGGER, type ApiDeps } from './tokens';

/** The parts main.ts built, one provider each (see ./tokens.ts). */
export const dependencyProviders: FactoryProvider[] = [
  { provide: API_CONFIG, useFactory: (d: ApiDeps) => d.config, inject: [DEPS] },
  { provide: LOGGER, useFactory: (d: ApiDeps) => d.logger, inject: [DEPS] },
  { provide: DATABASE, useFactory: (d: ApiDeps) => d.db, inject: [DEPS] },
  { provide: HSM_SIGNER, useFactory: (d: ApiDeps) => d.signer, inject: [DEPS] },
];

const onDb = <T>(provide: new (db: Db) => T): FactoryProvider => ({ provide, useFactory: (db: Db) => new provide(db), inject: [DATABASE] });

/**
 * The repositories as Nest providers, built once at the composition root on the database handle: services list
 * the repositories they need in their constructors and never build one themselves.
 */
export const repositoryProviders: FactoryProvider[] = [
  onDb(AdminSessionRepository),
  onDb(AuditRepository),
  onDb(AuditCheckpointRepository),
  onDb(CertificateRepository),
  onDb(CrlRepository),
  onDb(DeviceProfileRepository),
  onDb(InstallationRepository),
  onDb(KeyLifecycleRepository),
  onDb(KeyLimitsRepository),
  onDb(KeyRepository),
  onDb(NotificationRepository),
  onDb(OperationRepository),
  onDb(SubjectRepository),
  onDb(TimestampRepository),
  // Usage reservations lease for the configured time (ADR 0007).
  { provide: SignOrderRepository, useFactory: (db: Db, c: ApiConfig) => new SignOrderRepository(db, { leaseMs: c.usageLeaseMs }), inject: [DATABASE, API_CONFIG] },
  { provide: CertificateIssuanceRepository, useFactory: (db: Db, c: ApiConfig) => new CertificateIssuanceRepository(db, { leaseMs: c.usageLeaseMs }), inject: [DATABASE, API_CONFIG] },
];
