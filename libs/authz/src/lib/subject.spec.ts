import fc from 'fast-check';
import type { Principal } from '@keyserver/entra-token';
import { KEY_GRANTS, NATURES, Permission, PERMISSIONS } from '@keyserver/api-contract';
import { authorize, naturePermissions, ResolvedSubject } from './subject';
import { holds, isAdministrator, requireAccess, visibility } from './access';
import { AuthzError, AuthzErrorCode } from './authz-error';
import { HUMAN_ONLY_NATURES, HUMAN_ONLY_PERMISSIONS, NATURE_PERMISSIONS } from './permissions';

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
// A user whose token carries acct 0 (a member of the tenant) or acct 1 (an Entra B2B guest); no acct proves nothing.
const MEMBER = principal({ account: 'member' });
const GUEST = principal({ account: 'guest' });
const NO_ACCT = principal();

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
    ['fail auditor approving', principal({ channel: 'bff', account: 'member' }), subject({ natures: ['AUDITOR'] }), Permission.OperationsApprove, 'permission_denied'],
    ['ok any enabled subject reads itself', principal(), subject(), Permission.SelfRead, 'ok'],
    ['ok any enabled subject manages its own notification settings', principal({ channel: 'bff' }), subject(), Permission.NotificationsSelf, 'ok'],
    ['fail a disabled subject cannot change its notification settings', principal(), subject({ enabled: false }), Permission.NotificationsSelf, 'subject_disabled'],
    ['ok bff approver approves', principal({ channel: 'bff', account: 'member' }), subject({ natures: ['APPROVER'] }), Permission.OperationsApprove, 'ok'],
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

  it('strips administrator and approver natures from users whose token does not prove a member account', () => {
    for (const account of ['guest', undefined] as const) {
      const perms = naturePermissions(principal({ account }), subject({ natures: ['ADMINISTRATOR', 'APPROVER', 'ORDERER'] }));
      for (const p of HUMAN_ONLY_PERMISSIONS) expect(perms.has(p)).toBe(false);
      expect(perms.has(Permission.SubjectsRead)).toBe(false);
      expect(perms.has(Permission.OperationsCreate)).toBe(true);
    }
    expect(naturePermissions(MEMBER, subject({ natures: ['ADMINISTRATOR'] })).has(Permission.AdminSessionsManage)).toBe(true);
  });

  it('maps every nature to known permissions and keeps signing out of approver/administrator/auditor', () => {
    for (const n of NATURES) expect(NATURE_PERMISSIONS[n].every((p) => Object.values(Permission).includes(p))).toBe(true);
    for (const n of ['APPROVER', 'ADMINISTRATOR', 'AUDITOR'] as const) {
      expect(NATURE_PERMISSIONS[n]).not.toContain(Permission.SignOrdersCreate);
      expect(NATURE_PERMISSIONS[n]).not.toContain(Permission.CertificatesIssue);
    }
  });
});

// ADR 0040: ADMINISTRATOR and APPROVER (and the APPROVE grant) need a token that proves a member account (acct 0).
describe('member account (acct) and the human-only natures', () => {
  const admin = subject({ natures: ['ADMINISTRATOR'] });
  const approver = subject({ natures: ['APPROVER'], keyGrants: { fw: ['APPROVE'] } });
  const cases: Array<[string, Principal, ResolvedSubject, Permission, AuthzErrorCode | 'ok']> = [
    ['fail guest ADMINISTRATOR opening or authorizing an admin session', GUEST, admin, Permission.AdminSessionsManage, 'member_account_required'],
    ['fail guest ADMINISTRATOR changing subjects', GUEST, admin, Permission.SubjectsAdmin, 'member_account_required'],
    ['fail guest ADMINISTRATOR creating keys', GUEST, admin, Permission.KeysAdmin, 'member_account_required'],
    ['fail guest ADMINISTRATOR reading subjects (only the nature gives it)', GUEST, admin, Permission.SubjectsRead, 'member_account_required'],
    ['fail guest ADMINISTRATOR reading the audit log', GUEST, admin, Permission.AuditRead, 'member_account_required'],
    ['fail guest ADMINISTRATOR reading keys', GUEST, admin, Permission.KeysRead, 'member_account_required'],
    ['fail guest APPROVER approving', principal({ channel: 'bff', account: 'guest' }), approver, Permission.OperationsApprove, 'member_account_required'],
    ['fail guest holding only the APPROVE key grant', GUEST, subject({ keyGrants: { fw: ['APPROVE'] } }), Permission.OperationsApprove, 'member_account_required'],
    ['fail guest ORDERER asking to approve (like an app principal)', GUEST, subject({ natures: ['ORDERER'] }), Permission.OperationsApprove, 'member_account_required'],
    ['fail no acct ADMINISTRATOR opening an admin session', NO_ACCT, admin, Permission.AdminSessionsManage, 'member_account_required'],
    ['fail no acct APPROVER approving', principal({ channel: 'bff' }), approver, Permission.OperationsApprove, 'member_account_required'],
    ['fail no acct ADMINISTRATOR reading subjects', NO_ACCT, admin, Permission.SubjectsRead, 'member_account_required'],
    ['fail guest on bff still cannot sign (the channel rule first)', principal({ channel: 'bff', account: 'guest' }), subject({ natures: ['SIGNER'] }), Permission.SignOrdersCreate, 'bff_token_not_allowed'],
    ['fail guest with no nature: permission_denied as anyone', GUEST, subject(), Permission.KeysRead, 'permission_denied'],
    ['ok member ADMINISTRATOR opens an admin session', MEMBER, admin, Permission.AdminSessionsManage, 'ok'],
    ['ok member ADMINISTRATOR changes subjects', MEMBER, admin, Permission.SubjectsAdmin, 'ok'],
    ['ok member APPROVER approves', principal({ channel: 'bff', account: 'member' }), approver, Permission.OperationsApprove, 'ok'],
    ['ok member with the APPROVE grant only approves', MEMBER, subject({ keyGrants: { fw: ['APPROVE'] } }), Permission.OperationsApprove, 'ok'],
    ['ok guest ORDERER orders', GUEST, subject({ natures: ['ORDERER'] }), Permission.OperationsCreate, 'ok'],
    ['ok guest PROVISIONER issues on the provisioning channel', GUEST, subject({ natures: ['PROVISIONER'] }), Permission.CertificatesIssue, 'ok'],
    ['ok guest AUDITOR reads the audit log', GUEST, subject({ natures: ['AUDITOR'] }), Permission.AuditRead, 'ok'],
    ['ok guest ADMINISTRATOR and AUDITOR reads subjects (the auditor nature gives it)', GUEST, subject({ natures: ['ADMINISTRATOR', 'AUDITOR'] }), Permission.SubjectsRead, 'ok'],
    ['ok guest reads itself', GUEST, admin, Permission.SelfRead, 'ok'],
    ['ok no acct ORDERER orders (only the human-only natures need a member)', NO_ACCT, subject({ natures: ['ORDERER'] }), Permission.OperationsCreate, 'ok'],
  ];
  it.each(cases)('%s', (_n, p, s, perm, code) => {
    expect(codeOf(() => authorize(p, s, perm))).toBe(code);
  });

  // What services and GET /me read: the Actor of a non-member holds neither the natures nor the APPROVE grant.
  const everything = subject({ natures: ['ADMINISTRATOR', 'APPROVER', 'ORDERER', 'AUDITOR'], keyGrants: { fw: ['APPROVE', 'ORDER'], ca: ['APPROVE'] } });
  it.each([
    ['fail guest', GUEST, ['AUDITOR', 'ORDERER'], [['fw', ['ORDER']]], false],
    ['fail no acct', NO_ACCT, ['AUDITOR', 'ORDERER'], [['fw', ['ORDER']]], false],
    ['ok member', MEMBER, ['ADMINISTRATOR', 'APPROVER', 'AUDITOR', 'ORDERER'], [['fw', ['APPROVE', 'ORDER']], ['ca', ['APPROVE']]], true],
  ] as const)('%s: the Actor holds what the account allows', (_n, p, natures, grants, human) => {
    const actor = authorize(p, everything, Permission.SelfRead);
    expect([...actor.natures].sort()).toEqual(natures);
    expect([...actor.keyGrants].map(([k, g]) => [k, [...g].sort()])).toEqual(grants);
    expect(isAdministrator(actor)).toBe(human);
    expect(holds(actor, 'APPROVE', 'fw')).toBe(human);
    expect(visibility.operation(actor, { ordererId: 'other', keys: [{ keyid: 'ca' }] })).toBe(true); // AUDITOR sees everything
    expect([...HUMAN_ONLY_PERMISSIONS].some((x) => actor.permissions.has(x))).toBe(human);
  });

  // The principal's account comes from the validator (only 'member' | 'guest'); anything else reaching authz is not a member.
  it.each([['Member'], ['member '], ['0'], [0], [true], [['member']], [null], ['guest']])('fail hostile account value %j is not a member', (account) => {
    const p = principal({ account: account as unknown as Principal['account'] });
    expect(codeOf(() => authorize(p, subject({ natures: ['ADMINISTRATOR'] }), Permission.AdminSessionsManage))).toBe('member_account_required');
  });

  it('gives a non-member neither a human-only nature, permission nor the APPROVE grant, whatever the subject holds (property)', () => {
    const natures = fc.subarray([...NATURES]);
    const grants = fc.dictionary(fc.constantFrom('fw', 'ca', 'root'), fc.subarray([...KEY_GRANTS], { minLength: 1 }));
    const account = fc.oneof(fc.constant(undefined), fc.constant('guest'), fc.anything()).filter((a) => a !== 'member');
    fc.assert(
      fc.property(natures, grants, account, fc.constantFrom<Principal['channel']>('bff', 'provisioning'), fc.constantFrom(...PERMISSIONS), (n, g, a, channel, perm) => {
        const p = principal({ channel, account: a as Principal['account'] });
        const s = subject({ natures: n, keyGrants: g });
        let actor;
        try {
          actor = authorize(p, s, perm);
        } catch (e) {
          expect(e).toBeInstanceOf(AuthzError);
          if (HUMAN_ONLY_PERMISSIONS.has(perm)) expect((e as AuthzError).code).toBe('member_account_required');
          return;
        }
        expect(HUMAN_ONLY_PERMISSIONS.has(perm)).toBe(false);
        expect([...actor.natures].some((x) => HUMAN_ONLY_NATURES.has(x))).toBe(false);
        expect([...actor.keyGrants.values()].some((set) => set.has('APPROVE'))).toBe(false);
        expect([...actor.permissions].some((x) => HUMAN_ONLY_PERMISSIONS.has(x))).toBe(false);
        // The same subject with a member token keeps all it holds.
        const member = authorize({ ...p, account: 'member' }, s, Permission.SelfRead);
        expect([...member.natures].sort()).toEqual([...new Set(n)].sort());
      }),
      { numRuns: 500 },
    );
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
