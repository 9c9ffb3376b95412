import { startPlatform, type DemoTenant, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, auditOf, bffUserToken, sql, type Api } from './admin-helpers';
import { operationBody } from './operations-support';

// ADR 0040: Entra B2B guests (acct 1) never hold the human-only natures, whatever an administrator registered; a
// member (acct 0) registered the same way does. Real emulator tokens (acct as Entra writes it), real API and audit.

interface Problem {
  code: string;
  detail?: string;
}
interface MeView {
  account: string | null;
  natures: string[];
  keyPermissions: Record<string, string[]>;
  permissions: string[];
}
interface Op {
  id: string;
  state: string;
  keys: { keyid: string; approvals: number }[];
}
interface SessionView {
  id: string;
  state: string;
  authorizedBy: { displayName: string }[];
}

const PASSWORD = 'demo-password';
// A partner tenant's account invited into the device maker's tenant, and a member registered with the same roles.
const GUEST = { username: 'gus.guest@partner.test', password: PASSWORD, name: 'Gus Guest (Partner Ltd)', oid: 'b2b00001-0000-4000-8000-000000000001', natures: [], userType: 'Guest' as const };
const MEMBER = { username: 'mia.member@demo.test', password: PASSWORD, name: 'Mia Member', oid: 'a0000001-0000-4000-8000-0000000000a2', natures: [] };
const HUMAN_ONLY_ROLES = ['demo-administrators', 'demo-approvers'];
const HUMAN_ONLY_PERMISSIONS = ['operations:approve', 'keys:admin', 'subjects:admin', 'roles:admin', 'admin-sessions:manage'];

// A second partner account that tries to sign in before anyone registered it.
const EARLY_GUEST = { username: 'gwen.guest@partner.test', password: PASSWORD, name: 'Gwen Guest (Partner Ltd)', oid: 'b2b00001-0000-4000-8000-000000000002', natures: [], userType: 'Guest' as const };
// Registered as an approver, never signed in (no token has proved anything about it).
const NEW_APPROVER = { username: 'nina.new@demo.test', name: 'Nina New', oid: 'a0000001-0000-4000-8000-0000000000a3' };

const addUsers = (t: DemoTenant): void => {
  t.users.push(GUEST, MEMBER, EARLY_GUEST);
};

/** Registers `user` as an administrator and approver of every demo key, as an administrator would (four eyes). */
async function register(admin: Api, session: string, tid: string, user: { oid: string; name: string; username: string }): Promise<void> {
  const r = await admin('POST', '/api/v1/subjects', {
    session,
    body: { kind: 'USER', tid, oid: user.oid, displayName: user.name, username: user.username, roles: HUMAN_ONLY_ROLES },
  });
  if (r.status !== 201) throw new Error(`register ${user.username}: ${r.status} ${r.text}`);
}

describe('guest accounts and the human-only natures', () => {
  let p: RunningPlatform;
  let ada: Api;
  let alan: Api;
  let otto: Api;
  let ann: Api;
  let guest: Api;
  let member: Api;

  beforeAll(async () => {
    p = await startPlatform({ tenant: addUsers });
    ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    otto = apiAs(p, await bffUserToken(p, 'otto.orderer@demo.test'));
    ann = apiAs(p, await bffUserToken(p, 'ann.approver@demo.test'));
    const session = await activeSession(ada, alan, 'register a partner guest and a member', true);
    await register(ada, session, p.facts.tenantId, GUEST);
    await register(ada, session, p.facts.tenantId, MEMBER);
    await register(ada, session, p.facts.tenantId, NEW_APPROVER);
    guest = apiAs(p, await bffUserToken(p, GUEST.username, GUEST.password));
    member = apiAs(p, await bffUserToken(p, MEMBER.username, MEMBER.password));
  });

  afterAll(async () => {
    await p?.stop();
  });

  /**
   * The guest's refusals by the guard since `after` (audited DENIED, action auth.forbidden), once there are `count`:
   * the guard's audit hook does not hold up the answer, so the last entries may land a moment after it.
   */
  async function guestRefusals(after: string, count: number): Promise<{ errorCode: string | null; details: Record<string, unknown> }[]> {
    for (let i = 0; ; i++) {
      const rows = (await auditOf(ada, `action=auth.forbidden&outcome=DENIED&actor=${GUEST.oid}&limit=500`)).filter((r) => BigInt(r.seq) > BigInt(after));
      if (rows.length >= count || i === 100) return rows;
      await new Promise((done) => setTimeout(done, 50));
    }
  }
  const lastSeq = async (): Promise<string> => (await auditOf(ada, 'limit=1'))[0]?.seq ?? '0';

  it('GET /api/v1/me shows what the guest effectively holds: neither nature, no APPROVE grant; the member holds both', async () => {
    const g = await guest<MeView>('GET', '/api/v1/me');
    expect(g.status).toBe(200);
    expect(g.body).toMatchObject({ account: 'guest', natures: [], keyPermissions: {} });
    expect(g.body.permissions).toEqual(['notifications:self', 'self:read']);

    const m = await member<MeView>('GET', '/api/v1/me');
    expect(m.body).toMatchObject({ account: 'member', natures: ['ADMINISTRATOR', 'APPROVER'] });
    expect(m.body.keyPermissions['demo-fw-prod']).toEqual(['APPROVE']);
    expect(m.body.permissions).toEqual(expect.arrayContaining(HUMAN_ONLY_PERMISSIONS));
    // The demo users are members too: the emulator writes acct 0 like Entra with the optional claim.
    expect((await ada<MeView>('GET', '/api/v1/me')).body.account).toBe('member');
  });

  interface SubjectRow {
    id: string;
    oid: string;
    account: string;
    accountProvenAt: string | null;
  }
  const subjectOf = async (oid: string): Promise<SubjectRow> => {
    const all = await ada<{ items: SubjectRow[] }>('GET', '/api/v1/subjects');
    const found = all.body.items.find((x) => x.oid === oid);
    if (!found) throw new Error(`no subject ${oid}`);
    return (await ada<SubjectRow>('GET', `/api/v1/subjects/${found.id}`)).body;
  };

  it('records the account kind a sign-in proves, once (audited), and GET /api/v1/subjects shows it: guest, member, unknown until a sign-in', async () => {
    for (let i = 0; i < 5; i++) await Promise.all([guest('GET', '/api/v1/me'), member('GET', '/api/v1/me')]);
    expect([(await subjectOf(GUEST.oid)).account, (await subjectOf(MEMBER.oid)).account, (await subjectOf(NEW_APPROVER.oid)).account]).toEqual(['guest', 'member', 'unknown']);
    expect((await subjectOf(GUEST.oid)).accountProvenAt).toEqual(expect.any(String));
    expect((await subjectOf(NEW_APPROVER.oid)).accountProvenAt).toBeNull();
    // One write per change, not per request: one event each however many requests came.
    const events = await auditOf(ada, `action=subject.account&actor=${GUEST.oid}`);
    expect(events.map((e) => [e.outcome, e.details['before'], e.details['account']])).toEqual([['SUCCESS', 'UNKNOWN', 'GUEST']]);
    expect(await auditOf(ada, `action=subject.account&actor=${MEMBER.oid}`)).toHaveLength(1);
  });

  it('asks member approvers and administrators only: no approval or session notice for the guest, nor for an approver never signed in', async () => {
    const op = await otto<Op>('POST', '/api/v1/operations', { body: operationBody('demo-fw-prod', 1) });
    expect(op.status).toBe(201);
    const ids = Object.fromEntries(await Promise.all([GUEST, MEMBER, NEW_APPROVER].map(async (u) => [u.oid, (await subjectOf(u.oid)).id])));
    const recipientsOf = async (column: 'operationId' | 'adminSessionId', id: string) =>
      (await sql<{ recipientIds: string[] }>(p, `SELECT "recipientIds"::text[] AS "recipientIds" FROM "notification_outbox" WHERE "${column}" = $1::uuid`, [id]))[0]?.recipientIds ?? [];
    const asked = await recipientsOf('operationId', op.body.id);
    expect(asked).toContain(ids[MEMBER.oid]);
    expect(asked).not.toContain(ids[GUEST.oid]);
    expect(asked).not.toContain(ids[NEW_APPROVER.oid]);
    const pending = await ada<SessionView>('POST', '/api/v1/admin-sessions', { body: { description: 'who is asked' } });
    const askedToAuthorize = await recipientsOf('adminSessionId', pending.body.id);
    expect(askedToAuthorize).toContain(ids[MEMBER.oid]);
    expect(askedToAuthorize).not.toContain(ids[GUEST.oid]);
    expect((await ada('POST', `/api/v1/admin-sessions/${pending.body.id}/closure`)).status).toBeLessThan(300);
  });

  it('refuses the guest approver an approval or a rejection (403 member_account_required, audited); a member approves', async () => {
    const created = await otto<Op>('POST', '/api/v1/operations', { body: operationBody('demo-fw-prod', 1) });
    expect(created.status).toBe(201);
    const id = created.body.id;
    const since = await lastSeq();

    const approve = await guest<Problem>('POST', `/api/v1/operations/${id}/approvals`);
    expect([approve.status, approve.body.code]).toEqual([403, 'member_account_required']);
    expect(approve.body.detail).toMatch(/guest account \(acct 1\)/);
    const reject = await guest<Problem>('POST', `/api/v1/operations/${id}/rejection`, { body: { reason: 'a partner says no' } });
    expect([reject.status, reject.body.code]).toEqual([403, 'member_account_required']);
    // Reading operations comes with the natures it may not use, too.
    expect((await guest<Problem>('GET', `/api/v1/operations/${id}`)).body.code).toBe('member_account_required');

    const untouched = await ada<Op>('GET', `/api/v1/operations/${id}`);
    expect(untouched.body).toMatchObject({ state: 'REQUESTED', keys: [{ keyid: 'demo-fw-prod', approvals: 0 }] });
    expect(await auditOf(ada, `action=operation.approve&operationId=${id}`)).toEqual([]);
    const refused = await guestRefusals(since, 3);
    expect(refused.map((r) => [r.errorCode, r.details['path'], r.details['account']])).toEqual(
      expect.arrayContaining([
        ['member_account_required', `/api/v1/operations/${id}/approvals`, 'guest'],
        ['member_account_required', `/api/v1/operations/${id}/rejection`, 'guest'],
      ]),
    );

    const byMember = await member<Op>('POST', `/api/v1/operations/${id}/approvals`);
    expect(byMember.status).toBe(201);
    expect(byMember.body.keys[0].approvals).toBe(1);
    const second = await ann<Op>('POST', `/api/v1/operations/${id}/approvals`);
    expect(second.body.state).toBe('APPROVED');
  });

  it('refuses the guest administrator opening or authorizing an admin session and every admin route; a member co-authorizes', async () => {
    const since = await lastSeq();
    const open = await guest<Problem>('POST', '/api/v1/admin-sessions', { body: { description: 'a partner wants in' } });
    expect([open.status, open.body.code]).toEqual([403, 'member_account_required']);

    const pending = await ada<SessionView>('POST', '/api/v1/admin-sessions', { body: { description: 'guest tries to be the second pair of eyes' } });
    expect(pending.status).toBe(201);
    const sid = pending.body.id;
    const byGuest = await guest<Problem>('POST', `/api/v1/admin-sessions/${sid}/authorizations`);
    expect([byGuest.status, byGuest.body.code]).toEqual([403, 'member_account_required']);
    expect((await ada<SessionView>('GET', `/api/v1/admin-sessions/${sid}`)).body.state).toBe('PENDING');

    const subjects = await ada<{ items: { id: string; displayName: string }[] }>('GET', '/api/v1/subjects');
    const ottoId = subjects.body.items.find((s) => s.displayName === 'Otto Orderer')?.id ?? '';
    const adminCalls: [string, string, unknown][] = [
      ['GET', '/api/v1/admin-sessions', undefined],
      ['PATCH', `/api/v1/subjects/${ottoId}`, { displayName: 'Otto via partner' }],
      ['POST', '/api/v1/roles', { name: 'partner-role', natures: ['ADMINISTRATOR'] }],
      ['POST', '/api/v1/keys', { keyid: 'partner-key', type: 'FW', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 1, commonName: 'Partner' }],
      ['GET', '/api/v1/subjects', undefined],
      ['GET', '/api/v1/audit', undefined],
    ];
    for (const [method, path, body] of adminCalls) {
      const r = await guest<Problem>(method, path, { body, session: sid });
      expect([method, path, r.status, r.body.code]).toEqual([method, path, 403, 'member_account_required']);
    }
    const refused = await guestRefusals(since, 2 + adminCalls.length);
    expect(refused.filter((r) => r.errorCode === 'member_account_required' && r.details['account'] === 'guest')).toHaveLength(2 + adminCalls.length);

    // The member, registered with the same roles, is a second pair of eyes and may act in the session.
    const byMember = await member<SessionView>('POST', `/api/v1/admin-sessions/${sid}/authorizations`);
    expect(byMember.status).toBe(200);
    expect(byMember.body.state).toBe('ACTIVE');
    expect(byMember.body.authorizedBy.map((a) => a.displayName)).toEqual(['Ada Admin', 'Mia Member']);
    const renamed = await member<{ displayName: string }>('PATCH', `/api/v1/subjects/${ottoId}`, { body: { displayName: 'Otto Orderer' }, session: sid });
    expect(renamed.status).toBe(200);
    const authorizations = await auditOf(ada, `action=admin_session.authorize&adminSessionId=${sid}`);
    expect(authorizations.map((e) => [e.outcome, e.actorOid])).toEqual([['SUCCESS', MEMBER.oid]]);
  });

  it('refuses giving a recorded guest the administrator or approver nature: 409 subject_is_guest, audited, nothing written; taking it away works', async () => {
    const session = await activeSession(ada, alan, 'partner roles', true);
    const g = await subjectOf(GUEST.oid);
    const taken = await ada<{ roles: string[] }>('PATCH', `/api/v1/subjects/${g.id}`, { body: { roles: [] }, session });
    expect([taken.status, taken.body.roles]).toEqual([200, []]);
    for (const roles of [['demo-approvers'], ['demo-administrators']]) {
      const r = await ada<Problem>('PATCH', `/api/v1/subjects/${g.id}`, { body: { roles }, session });
      expect([r.status, r.body.code]).toEqual([409, 'subject_is_guest']);
    }
    expect((await ada<{ roles: string[] }>('GET', `/api/v1/subjects/${g.id}`)).body.roles).toEqual([]);
    const refused = await auditOf(ada, `action=subject.update&outcome=DENIED`);
    expect(refused.filter((e) => e.errorCode === 'subject_is_guest' && e.details['subjectId'] === g.id)).toHaveLength(2);

    // A guest that tried to sign in before it was registered is known as one at registration.
    const early = apiAs(p, await bffUserToken(p, EARLY_GUEST.username, EARLY_GUEST.password));
    expect((await early<Problem>('GET', '/api/v1/me')).body.code).toBe('unknown_subject');
    const body = { kind: 'USER', tid: p.facts.tenantId, oid: EARLY_GUEST.oid, displayName: EARLY_GUEST.name, username: EARLY_GUEST.username };
    const asApprover = await ada<Problem>('POST', '/api/v1/subjects', { body: { ...body, roles: ['demo-approvers'] }, session });
    expect([asApprover.status, asApprover.body.code]).toEqual([409, 'subject_is_guest']);
    expect((await auditOf(ada, 'action=subject.create&outcome=DENIED')).some((e) => e.errorCode === 'subject_is_guest')).toBe(true);
    const plain = await ada<SubjectRow>('POST', '/api/v1/subjects', { body: { ...body, roles: [] }, session });
    expect([plain.status, plain.body.account]).toEqual([201, 'guest']);
  });
});

// A registration that forgot the acct optional claim fails closed, and says so: nobody administers or approves.
describe('a Keyserver registration without the acct optional claim', () => {
  let p: RunningPlatform;

  beforeAll(async () => {
    p = await startPlatform({
      tenant: (t) => {
        t.keyserverApp.accessTokenOptionalClaims = [];
      },
    });
  });

  afterAll(async () => {
    await p?.stop();
  });

  it('refuses the administrators with member_account_required naming the missing claim; orderers still order', async () => {
    const ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    const me = await ada<MeView>('GET', '/api/v1/me');
    expect(me.body).toMatchObject({ account: null, natures: [] });
    const open = await ada<Problem>('POST', '/api/v1/admin-sessions', { body: { description: 'no acct claim' } });
    expect([open.status, open.body.code]).toEqual([403, 'member_account_required']);
    expect(open.body.detail).toMatch(/no acct claim/);

    const otto = apiAs(p, await bffUserToken(p, 'otto.orderer@demo.test'));
    const op = await otto<Op>('POST', '/api/v1/operations', { body: operationBody('demo-fw-prod', 1) });
    expect(op.status).toBe(201);
    const ann = apiAs(p, await bffUserToken(p, 'ann.approver@demo.test'));
    const approve = await ann<Problem>('POST', `/api/v1/operations/${op.body.id}/approvals`);
    expect([approve.status, approve.body.code]).toEqual([403, 'member_account_required']);
  });
});
