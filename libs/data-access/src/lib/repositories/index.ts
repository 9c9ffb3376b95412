import type { Db } from '../db';
import { AdminSessionRepository } from './admin-session.repository';
import { AuditRepository } from './audit.repository';
import { CertificateRepository } from './certificate.repository';
import { KeyRepository } from './key.repository';
import { KeyLimitsRepository } from './key-limits';
import { NotificationRepository } from './notification.repository';
import { OperationRepository } from './operation.repository';
import { SignOrderRepository } from './sign-order.repository';
import { SubjectRepository } from './subject.repository';

/** Every repository over one database handle. */
export interface Repositories {
  subjects: SubjectRepository;
  keys: KeyRepository;
  keyLimits: KeyLimitsRepository;
  operations: OperationRepository;
  signOrders: SignOrderRepository;
  certificates: CertificateRepository;
  adminSessions: AdminSessionRepository;
  audit: AuditRepository;
  notifications: NotificationRepository;
}

/** Builds all repositories over `db`. */
export function createRepositories(db: Db): Repositories {
  return {
    subjects: new SubjectRepository(db),
    keys: new KeyRepository(db),
    keyLimits: new KeyLimitsRepository(db),
    operations: new OperationRepository(db),
    signOrders: new SignOrderRepository(db),
    certificates: new CertificateRepository(db),
    adminSessions: new AdminSessionRepository(db),
    audit: new AuditRepository(db),
    notifications: new NotificationRepository(db),
  };
}
