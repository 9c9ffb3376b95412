/** Route permissions the Keyserver grants (mirror of @keyserver/authz `Permission`, which is server-only). */
export const Perm = {
  KeysRead: 'keys:read',
  KeysAdmin: 'keys:admin',
  OperationsRead: 'operations:read',
  OperationsCreate: 'operations:create',
  OperationsApprove: 'operations:approve',
  SubjectsRead: 'subjects:read',
  SubjectsAdmin: 'subjects:admin',
  RolesRead: 'roles:read',
  RolesAdmin: 'roles:admin',
  AuditRead: 'audit:read',
  AdminSessionsManage: 'admin-sessions:manage',
} as const;
export type PermName = (typeof Perm)[keyof typeof Perm];

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
