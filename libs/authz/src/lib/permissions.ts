/** Every permission a route can require. Values are part of the API contract (shown in the SPA). */
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

/** Job functions ("natures") that roles grant; the single source of nature -> permission mapping is {@link NATURE_PERMISSIONS}. */
export const NATURES = ['administrator', 'approver', 'orderer', 'signer', 'provisioner', 'auditor'] as const;
export type Nature = (typeof NATURES)[number];

/** Granted to every resolved, enabled subject whatever its natures. */
export const BASE_PERMISSIONS: readonly Permission[] = [Permission.SelfRead, Permission.NotificationsSelf];

/** Natures -> permissions, in one table. */
export const NATURE_PERMISSIONS: Readonly<Record<Nature, readonly Permission[]>> = {
  administrator: [
    Permission.KeysRead,
    Permission.KeysAdmin,
    Permission.OperationsRead,
    Permission.SubjectsRead,
    Permission.SubjectsAdmin,
    Permission.RolesRead,
    Permission.RolesAdmin,
    Permission.AuditRead,
    Permission.AdminSessionsManage,
  ],
  approver: [Permission.KeysRead, Permission.OperationsRead, Permission.OperationsApprove],
  orderer: [Permission.KeysRead, Permission.OperationsRead, Permission.OperationsCreate],
  signer: [Permission.KeysRead, Permission.OperationsRead, Permission.SignOrdersCreate],
  provisioner: [Permission.KeysRead, Permission.OperationsRead, Permission.SignOrdersCreate, Permission.CertificatesIssue],
  auditor: [Permission.KeysRead, Permission.OperationsRead, Permission.SubjectsRead, Permission.RolesRead, Permission.AuditRead],
};

/** Natures an app (client-credentials / WIF) principal can never hold: humans approve and administer. */
export const HUMAN_ONLY_NATURES: ReadonlySet<Nature> = new Set<Nature>(['administrator', 'approver']);

/** Permissions an app principal can never use (403 app_principal_forbidden), even through key grants. */
export const HUMAN_ONLY_PERMISSIONS: ReadonlySet<Permission> = new Set([
  Permission.OperationsApprove,
  Permission.KeysAdmin,
  Permission.SubjectsAdmin,
  Permission.RolesAdmin,
  Permission.AdminSessionsManage,
]);

/** Permissions a BFF-channel token (azp = keyclient) can never use (403 bff_token_not_allowed). */
export const BFF_FORBIDDEN_PERMISSIONS: ReadonlySet<Permission> = new Set([Permission.SignOrdersCreate, Permission.CertificatesIssue]);

const ALL = new Set<string>(Object.values(Permission));
/** Type guard for permission strings read from the database. */
export function isPermission(v: unknown): v is Permission {
  return typeof v === 'string' && ALL.has(v);
}
/** Type guard for nature strings read from the database. */
export function isNature(v: unknown): v is Nature {
  return typeof v === 'string' && (NATURES as readonly string[]).includes(v);
}
