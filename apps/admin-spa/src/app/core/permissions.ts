import { Permission } from '@keyserver/api-contract/access';

/** Route permissions the Keyserver grants: the contract's {@link Permission} (declared once in @keyserver/api-contract). */
export const Perm = Permission;
/** A permission's value (`keys:read`, ...): what `GET /me` lists. */
export type PermName = `${Permission}`;

export interface NavItem {
  path: string;
  label: string;
  /** Shown when the user holds any of these. */
  anyOf: readonly PermName[];
}

/** The navigation, in one table; each entry is shown only when /me grants one of its permissions. */
export const NAV_ITEMS: readonly NavItem[] = [
  { path: '/approvals', label: 'My approvals', anyOf: [Perm.OperationsApprove] },
  { path: '/operations', label: 'Operations', anyOf: [Perm.OperationsRead] },
  { path: '/operations/new', label: 'New operation', anyOf: [Perm.OperationsCreate] },
  { path: '/keys', label: 'Keys', anyOf: [Perm.KeysRead] },
  { path: '/certificates', label: 'Device certificates', anyOf: [Perm.OperationsRead] },
  { path: '/admin-sessions', label: 'Admin sessions', anyOf: [Perm.AdminSessionsManage] },
  { path: '/subjects', label: 'Subjects and roles', anyOf: [Perm.SubjectsRead, Perm.RolesRead] },
  { path: '/audit', label: 'Audit log', anyOf: [Perm.AuditRead] },
];
