import { HUMAN_ONLY_NATURES as HUMAN_ONLY_NATURE_LIST, Permission, type Nature } from '@keyserver/api-contract';

// The words (Permission, Nature, KeyGrant) are declared once in @keyserver/api-contract; this file holds the rules
// that combine them at the route level. docs/auth.md §5 shows these tables and access-matrix.spec.ts holds the
// document to them.

/** Re-exported for this library's modules and tests; declared in @keyserver/api-contract. */
export { Permission };

/** Granted to every resolved, enabled subject whatever its natures. */
export const BASE_PERMISSIONS: readonly Permission[] = [Permission.SelfRead, Permission.NotificationsSelf];

/** Natures -> the route permissions they open, in one table. */
export const NATURE_PERMISSIONS: Readonly<Record<Nature, readonly Permission[]>> = {
  ADMINISTRATOR: [
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
  APPROVER: [Permission.KeysRead, Permission.OperationsRead, Permission.OperationsApprove],
  ORDERER: [Permission.KeysRead, Permission.OperationsRead, Permission.OperationsCreate],
  SIGNER: [Permission.KeysRead, Permission.OperationsRead, Permission.SignOrdersCreate],
  PROVISIONER: [Permission.KeysRead, Permission.OperationsRead, Permission.SignOrdersCreate, Permission.CertificatesIssue],
  AUDITOR: [Permission.KeysRead, Permission.OperationsRead, Permission.SubjectsRead, Permission.RolesRead, Permission.AuditRead],
};

/** Natures an app (client-credentials / WIF) principal never uses: humans approve and administer. */
export const HUMAN_ONLY_NATURES: ReadonlySet<Nature> = new Set<Nature>(HUMAN_ONLY_NATURE_LIST);

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
