import type { Principal } from '@keyserver/entra-token';
import { authorize, assertKeyPermission, naturePermissions, ResolvedSubject } from './subject';
import { AuthzError, AuthzErrorCode } from './authz-error';
import { HUMAN_ONLY_PERMISSIONS, NATURE_PERMISSIONS, NATURES, Permission } from './permissions';

const principal = (o: Partial<Principal> = {}): Principal => ({
  kind: 'user',
  channel: 'provisioning',
  tid: 't',
  oid: 'o',
  sub: 's',
  azp: 'a',
  scopes: ['keyserver'],
  roles: [],
  expiresAt: 0,
  ...o,
});
const subject = (o: Partial<ResolvedSubject> = {}): ResolvedSubject => ({
  subjectId: 'sub-1',
  kind: 'user',
  enabled: true,
  natures: [],
  keyPermissions: [],
  ...o,
});
const APP = principal({ kind: 'app', channel: 'app', scopes: [] });

function codeOf(run: () => unknown): AuthzErrorCode | 'ok' {
  try {
    run();
    return 'ok';
  } catch (e) {
    if (e instanceof AuthzError) {
      expect(e.status).toBe(403);
      return e.code;
    }
    throw e;
  }
}

describe(authorize.name, () => {
  const cases: Array<[string, Principal, ResolvedSubject | null, Permission, AuthzErrorCode | 'ok']> = [
    ['fail unknown subject', principal(), null, Permission.SelfRead, 'unknown_subject'],
    ['fail disabled subject', principal(), subject({ enabled: false, natures: ['administrator'] }), Permission.KeysRead, 'subject_disabled'],
    ['fail app principal on a user subject', APP, subject({ natures: ['signer'] }), Permission.KeysRead, 'subject_kind_mismatch'],
    ['fail app principal approving', APP, subject({ kind: 'client', natures: ['approver'] }), Permission.OperationsApprove, 'app_principal_forbidden'],
    ['fail app principal via key grant', APP, subject({ kind: 'client', keyPermissions: [{ keyid: 'k', permissions: [Permission.OperationsApprove] }] }), Permission.OperationsApprove, 'app_principal_forbidden'],
    ['fail bff signing', principal({ channel: 'bff' }), subject({ natures: ['provisioner'] }), Permission.SignOrdersCreate, 'bff_token_not_allowed'],
    ['fail bff issuing certificates', principal({ channel: 'bff' }), subject({ natures: ['provisioner'] }), Permission.CertificatesIssue, 'bff_token_not_allowed'],
    ['fail no nature', principal(), subject(), Permission.KeysRead, 'permission_denied'],
    ['fail auditor approving', principal({ channel: 'bff' }), subject({ natures: ['auditor'] }), Permission.OperationsApprove, 'permission_denied'],
    ['ok any enabled subject reads itself', principal(), subject(), Permission.SelfRead, 'ok'],
    ['ok any enabled subject manages its own notification settings', principal({ channel: 'bff' }), subject(), Permission.NotificationsSelf, 'ok'],
    ['fail a disabled subject cannot change its notification settings', principal(), subject({ enabled: false }), Permission.NotificationsSelf, 'subject_disabled'],
    ['ok bff approver approves', principal({ channel: 'bff' }), subject({ natures: ['approver'] }), Permission.OperationsApprove, 'ok'],
    ['ok app signer signs', APP, subject({ kind: 'client', natures: ['signer'] }), Permission.SignOrdersCreate, 'ok'],
    ['ok app orderer orders', APP, subject({ kind: 'client', natures: ['orderer'] }), Permission.OperationsCreate, 'ok'],
    ['ok key grant opens the route', principal(), subject({ keyPermissions: [{ keyid: 'fw', permissions: [Permission.SignOrdersCreate] }] }), Permission.SignOrdersCreate, 'ok'],
  ];
  it.each(cases)('%s', (_n, p, s, perm, code) => {
    expect(codeOf(() => authorize(p, s, perm))).toBe(code);
  });

  it('strips administrator and approver natures from app principals', () => {
    const perms = naturePermissions(APP, subject({ kind: 'client', natures: ['administrator', 'approver', 'signer'] }));
    for (const p of HUMAN_ONLY_PERMISSIONS) expect(perms.has(p)).toBe(false);
    expect(perms.has(Permission.SignOrdersCreate)).toBe(true);
  });

  it('maps every nature to known permissions and keeps signing out of approver/administrator/auditor', () => {
    for (const n of NATURES) expect(NATURE_PERMISSIONS[n].every((p) => Object.values(Permission).includes(p))).toBe(true);
    for (const n of ['approver', 'administrator', 'auditor'] as const) {
      expect(NATURE_PERMISSIONS[n]).not.toContain(Permission.SignOrdersCreate);
      expect(NATURE_PERMISSIONS[n]).not.toContain(Permission.CertificatesIssue);
    }
  });
});

describe(assertKeyPermission.name, () => {
  it('allows a granted key and refuses another', () => {
    const ctx = authorize(principal(), subject({ keyPermissions: [{ keyid: 'fw-a', permissions: [Permission.SignOrdersCreate] }] }), Permission.SignOrdersCreate);
    expect(codeOf(() => assertKeyPermission(ctx, 'fw-a', Permission.SignOrdersCreate))).toBe('ok');
    expect(codeOf(() => assertKeyPermission(ctx, 'fw-b', Permission.SignOrdersCreate))).toBe('key_permission_denied');
  });
  it('lets a nature grant a permission on every key', () => {
    const ctx = authorize(principal(), subject({ natures: ['provisioner'] }), Permission.CertificatesIssue);
    expect(codeOf(() => assertKeyPermission(ctx, 'any-ca', Permission.CertificatesIssue))).toBe('ok');
  });
  it('keeps the bff restriction on key checks', () => {
    const ctx = authorize(principal({ channel: 'bff' }), subject({ natures: ['provisioner'] }), Permission.KeysRead);
    expect(codeOf(() => assertKeyPermission(ctx, 'fw', Permission.SignOrdersCreate))).toBe('bff_token_not_allowed');
  });
});
