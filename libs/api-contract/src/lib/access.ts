// The access vocabulary, declared once: the API (guard, services, repositories), the SPA and ksctl import it from
// here (the SPA through `@keyserver/api-contract/access`, which has no runtime dependency). The database enums (schema.prisma `Nature`, `KeyPermission`) hold the same values; a data-access test
// compares them. The rules that combine these words (which nature opens which route, what a grant allows) live in
// @keyserver/authz and docs/auth.md §5.

/** Job functions that roles carry. */
export const NATURES = ['ADMINISTRATOR', 'APPROVER', 'ORDERER', 'SIGNER', 'PROVISIONER', 'AUDITOR'] as const;
export type Nature = (typeof NATURES)[number];

/** Rights a role gives on one key. */
export const KEY_GRANTS = ['ORDER', 'SIGN', 'ISSUE', 'APPROVE'] as const;
export type KeyGrant = (typeof KEY_GRANTS)[number];

/** Kinds of subject: a human `USER`, or a non-interactive `CLIENT` (an app principal). */
export const SUBJECT_KINDS = ['USER', 'CLIENT'] as const;
export type SubjectKind = (typeof SUBJECT_KINDS)[number];

/** Every permission a route can require. Values are part of the API contract (`GET /me`, shown in the SPA). */
export enum Permission {
  /** Any enabled subject: who am I, my natures. */
  SelfRead = 'self:read',
  /** Any enabled subject: its own notification settings (opt-outs; the address is set by administrators). */
  NotificationsSelf = 'notifications:self',
  KeysRead = 'keys:read',
  KeysAdmin = 'keys:admin',
  OperationsRead = 'operations:read',
  OperationsCreate = 'operations:create',
  OperationsApprove = 'operations:approve',
  SignOrdersCreate = 'signorders:create',
  CertificatesIssue = 'certificates:issue',
  SubjectsRead = 'subjects:read',
  SubjectsAdmin = 'subjects:admin',
  RolesRead = 'roles:read',
  RolesAdmin = 'roles:admin',
  AuditRead = 'audit:read',
  AdminSessionsManage = 'admin-sessions:manage',
}
export const PERMISSIONS: readonly Permission[] = Object.values(Permission);

/** The route permission each key grant opens (the grant itself is checked on the key the request names). */
export const KEY_GRANT_PERMISSION: Readonly<Record<KeyGrant, Permission>> = {
  ORDER: Permission.OperationsCreate,
  SIGN: Permission.SignOrdersCreate,
  ISSUE: Permission.CertificatesIssue,
  APPROVE: Permission.OperationsApprove,
};

/** Natures a CLIENT subject (app principal) can never hold: humans approve and administer (four-eyes). */
export const HUMAN_ONLY_NATURES: readonly Nature[] = ['ADMINISTRATOR', 'APPROVER'];

const NATURE_SET: ReadonlySet<string> = new Set(NATURES);
const GRANT_SET: ReadonlySet<string> = new Set(KEY_GRANTS);
const PERMISSION_SET: ReadonlySet<string> = new Set(PERMISSIONS);
/** Type guard for nature strings read from the database or a request. */
export const isNature = (v: unknown): v is Nature => typeof v === 'string' && NATURE_SET.has(v);
/** Type guard for key grant strings read from the database or a request. */
export const isKeyGrant = (v: unknown): v is KeyGrant => typeof v === 'string' && GRANT_SET.has(v);
/** Type guard for permission strings (route metadata, `GET /me`). */
export const isPermission = (v: unknown): v is Permission => typeof v === 'string' && PERMISSION_SET.has(v);
