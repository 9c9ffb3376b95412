import type { Principal } from '@keyserver/entra-token';
import { NATURES, Permission } from '@keyserver/api-contract';
import { authorize, naturePermissions, ResolvedSubject } from './subject';
import { requireAccess } from './access';
import { AuthzError, AuthzErrorCode } from './authz-error';
import { HUMAN_ONLY_PERMISSIONS, NATURE_PERMISSIONS } from './permissions';

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
  kind: 'USER',
  enabled: true,
  natures: [],
  keyGrants: {},
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
    ['fail disabled subject', principal(), subject({ enabled: false, natures: ['ADMINISTRATOR'] }), Permission.KeysRead, 'subject_disabled'],
    ['fail app principal on a user subject', APP, subject({ natures: ['SIGNER'] }), Permission.KeysRead, 'subject_kind_mismatch'],
    ['fail app principal approving', APP, subject({ kind: 'CLIENT', natures: ['APPROVER'] }), Permission.OperationsApprove, 'app_principal_forbidden'],
    ['fail app principal via key grant', APP, subject({ kind: 'CLIENT', keyGrants: { k: ['APPROVE'] } }), Permission.OperationsApprove, 'app_principal_forbidden'],
    ['fail bff signing', principal({ channel: 'bff' }), subject({ natures: ['PROVISIONER'] }), Permission.SignOrdersCreate, 'bff_token_not_allowed'],
    ['fail bff issuing certificates', principal({ channel: 'bff' }), subject({ natures: ['PROVISIONER'] }), Permission.CertificatesIssue, 'bff_token_not_allowed'],
    ['fail no nature', principal(), subject(), Permission.KeysRead, 'permission_denied'],
    ['fail auditor approving', principal({ channel: 'bff' }), subject({ natures: ['AUDITOR'] }), Permission.OperationsApprove, 'permission_denied'],
    ['ok any enabled subject reads itself', principal(), subject(), Permission.SelfRead, 'ok'],
    ['ok any enabled subject manages its own notification settings', principal({ channel: 'bff' }), subject(), Permission.NotificationsSelf, 'ok'],
    ['fail a disabled subject cannot change its notification settings', principal(), subject({ enabled: false }), Permission.NotificationsSelf, 'subject_disabled'],
    ['ok bff approver approves', principal({ channel: 'bff' }), subject({ natures: ['APPROVER'] }), Permission.OperationsApprove, 'ok'],
    ['ok app signer signs', APP, subject({ kind: 'CLIENT', natures: ['SIGNER'] }), Permission.SignOrdersCreate, 'ok'],
    ['ok app orderer orders', APP, subject({ kind: 'CLIENT', natures: ['ORDERER'] }), Permission.OperationsCreate, 'ok'],
    ['ok key grant opens the route', principal(), subject({ keyGrants: { fw: ['SIGN'] } }), Permission.SignOrdersCreate, 'ok'],
  ];
  it.each(cases)('%s', (_n, p, s, perm, code) => {
    expect(codeOf(() => authorize(p, s, perm))).toBe(code);
  });

  it('strips administrator and approver natures from app principals', () => {
    const perms = naturePermissions(APP, subject({ kind: 'CLIENT', natures: ['ADMINISTRATOR', 'APPROVER', 'SIGNER'] }));
    for (const p of HUMAN_ONLY_PERMISSIONS) expect(perms.has(p)).toBe(false);
    expect(perms.has(Permission.SignOrdersCreate)).toBe(true);
  });

  it('maps every nature to known permissions and keeps signing out of approver/administrator/auditor', () => {
    for (const n of NATURES) expect(NATURE_PERMISSIONS[n].every((p) => Object.values(Permission).includes(p))).toBe(true);
    for (const n of ['APPROVER', 'ADMINISTRATOR', 'AUDITOR'] as const) {
      expect(NATURE_PERMISSIONS[n]).not.toContain(Permission.SignOrdersCreate);
      expect(NATURE_PERMISSIONS[n]).not.toContain(Permission.CertificatesIssue);
    }
  });
});

// The production rule (docs/auth.md §5): acting on a key needs a grant on that key; natures open routes only.
describe(requireAccess.name, () => {
  it('allows a granted key and refuses another', () => {
    const actor = authorize(principal(), subject({ keyGrants: { 'fw-a': ['SIGN'] } }), Permission.SignOrdersCreate);
    expect(codeOf(() => requireAccess(actor, 'SIGN', 'fw-a'))).toBe('ok');
    expect(codeOf(() => requireAccess(actor, 'SIGN', 'fw-b'))).toBe('key_permission_denied');
  });
  it('refuses a nature without a grant on the key: natures never grant on every key', () => {
    const actor = authorize(principal(), subject({ natures: ['PROVISIONER'] }), Permission.CertificatesIssue);
    expect(codeOf(() => requireAccess(actor, 'ISSUE', 'any-ca'))).toBe('key_permission_denied');
  });
  it('refuses another grant on the same key', () => {
    const actor = authorize(principal(), subject({ natures: ['SIGNER'], keyGrants: { fw: ['ORDER'] } }), Permission.SignOrdersCreate);
    expect(codeOf(() => requireAccess(actor, 'SIGN', 'fw'))).toBe('key_permission_denied');
  });
});
