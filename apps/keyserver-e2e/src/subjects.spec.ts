import { randomUUID } from 'node:crypto';
import { clientCredentialsToken, demoTenant, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, auditOf, bffUserToken, sql, userOid, type Api } from './admin-helpers';

interface Problem {
  code: string;
}
interface SubjectView {
  id: string;
  oid: string;
  kind: string;
  displayName: string;
  enabled: boolean;
  roles: string[];
  natures: string[];
  keyPermissions: Record<string, string[]>;
}
interface RoleView {
  name: string;
  natures: string[];
  keys: { keyid: string; permissions: string[] }[];
}
interface MeView {
  subjectId: string;
  kind: string;
  displayName: string;
  tid: string;
  oid: string;
  channel: string;
  natures: string[];
  keyPermissions: Record<string, string[]>;
  permissions: string[];
}

describe('subjects, roles and /me', () => {
  let p: RunningPlatform;
  let ada: Api;
  let alan: Api;
  let aude: Api;
  let nora: Api;
  let noraToken: string;
  let ci: Api;
  let ciToken: string;
  let session: string;
  let powerSession: string;
  const tid = demoTenant.tenant.id;

  beforeAll(async () => {
    p = await startPlatform();
    ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    aude = apiAs(p, await bffUserToken(p, 'aude.auditor@demo.test'));
    noraToken = await bffUserToken(p, 'nora.nobody@demo.test');
    nora = apiAs(p, noraToken);
    const demoCi = demoTenant.ciClients.find((c) => c.name === 'demo-ci');
    if (!demoCi?.clientSecret) throw new Error('demo-ci missing');
    ciToken = await clientCredentialsToken(p.facts, demoCi.clientId, demoCi.clientSecret);
    ci = apiAs(p, ciToken);
    session = await activeSession(ada, alan, 'subjects and roles e2e');
    powerSession = await activeSession(ada, alan, 'administrators and approvers e2e', true);
  });

  afterAll(async () => {
    await p?.stop();
  });

  it('tells an administrator who they are without echoing a token', async () => {
    const r = await ada<MeView>('GET', '/api/v1/me');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ kind: 'USER', displayName: 'Ada Admin', tid, oid: userOid('ada.admin@demo.test'), channel: 'bff', natures: ['ADMINISTRATOR'] });
    expect(r.body.permissions).toEqual(expect.arrayContaining(['admin-sessions:manage', 'subjects:admin', 'keys:admin', 'audit:read', 'self:read']));
    expect(r.text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
  });

  it('shows an app principal its key grants but no human-only permission', async () => {
    const r = await ci<MeView>('GET', '/api/v1/me');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ kind: 'CLIENT', channel: 'app', displayName: 'demo-ci' });
    expect(r.body.keyPermissions['demo-fw-dev']).toEqual(['ISSUE', 'ORDER', 'SIGN']);
    expect(r.body.permissions).not.toContain('admin-sessions:manage');
    expect(r.text).not.toContain(ciToken);
  });

  it('registers an unknown principal with a new role; a disabled subject is refused on its next request', async () => {
    // Nora has a valid Entra token but no subject: refused and listed for the administrators.
    const unknown = await nora<Problem>('GET', '/api/v1/me');
    expect([unknown.status, unknown.body.code]).toEqual([403, 'unknown_subject']);
    const listed = await aude<{ items: { oid: string; kind: string; displayName: string }[] }>('GET', '/api/v1/unknown-principals');
    expect(listed.status).toBe(200);
    const entry = listed.body.items.find((u) => u.oid === userOid('nora.nobody@demo.test'));
    expect(entry).toMatchObject({ kind: 'USER', displayName: 'Nora Nobody' });

    const role = await ada<RoleView>('POST', '/api/v1/roles', {
      session,
      body: { name: 'e2e-dev-orderers', description: 'order on the dev FW key', natures: ['ORDERER'], keys: [{ keyid: 'demo-fw-dev', permissions: ['ORDER'] }] },
    });
    expect(role.status).toBe(201);
    expect(role.body).toMatchObject({ name: 'e2e-dev-orderers', natures: ['ORDERER'], keys: [{ keyid: 'demo-fw-dev', permissions: ['ORDER'] }] });

    const created = await ada<SubjectView>('POST', '/api/v1/subjects', {
      session,
      body: { kind: 'USER', tid, oid: userOid('nora.nobody@demo.test'), displayName: 'Nora Nobody', username: 'nora.nobody@demo.test', roles: ['e2e-dev-orderers'] },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ enabled: true, roles: ['e2e-dev-orderers'], natures: ['ORDERER'], keyPermissions: { 'demo-fw-dev': ['ORDER'] } });

    // The same token now works, with the new rights.
    const me = await nora<MeView>('GET', '/api/v1/me');
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ subjectId: created.body.id, natures: ['ORDERER'], keyPermissions: { 'demo-fw-dev': ['ORDER'] } });
    const gone = await ada<{ items: { oid: string }[] }>('GET', '/api/v1/unknown-principals');
    expect(gone.body.items.map((u) => u.oid)).not.toContain(userOid('nora.nobody@demo.test'));

    const changed = await alan<RoleView>('PATCH', '/api/v1/roles/e2e-dev-orderers', { session, body: { keys: [{ keyid: 'demo-ca-dev', permissions: ['ORDER', 'ISSUE'] }] } });
    expect(changed.status).toBe(200);
    expect(changed.body.keys).toEqual([{ keyid: 'demo-ca-dev', permissions: ['ISSUE', 'ORDER'] }]);
    expect((await nora<MeView>('GET', '/api/v1/me')).body.keyPermissions).toEqual({ 'demo-ca-dev': ['ISSUE', 'ORDER'] });

    const disabled = await ada<SubjectView>('PATCH', `/api/v1/subjects/${created.body.id}`, { session, body: { enabled: false } });
    expect([disabled.status, disabled.body.enabled]).toEqual([200, false]);
    for (const path of ['/api/v1/me', '/api/keys']) {
      const refused = await nora<Problem>('GET', path);
      expect([path, refused.status, refused.body.code]).toEqual([path, 403, 'subject_disabled']);
    }

    const entries = await auditOf(aude, `adminSessionId=${session}&outcome=SUCCESS`);
    expect(entries.map((e) => e.action)).toEqual(expect.arrayContaining(['role.create', 'subject.create', 'role.update', 'subject.disable']));
    expect(entries.find((e) => e.action === 'subject.disable')?.details).toMatchObject({ subjectId: created.body.id, changes: { enabled: false } });
  });

  it('refuses a third administrator who took no part in the session with admin_session_not_participant', async () => {
    const subjects = await ada<{ items: SubjectView[] }>('GET', '/api/v1/subjects');
    const otto = subjects.body.items.find((s) => s.displayName === 'Otto Orderer');
    if (!otto) throw new Error('Otto missing');
    const promoted = await ada<SubjectView>('PATCH', `/api/v1/subjects/${otto.id}`, { session: powerSession, body: { roles: [...otto.roles, 'demo-administrators'] } });
    expect(promoted.body.natures).toContain('ADMINISTRATOR');
    const ottoApi = apiAs(p, await bffUserToken(p, 'otto.orderer@demo.test'));
    const r = await ottoApi<Problem>('PATCH', `/api/v1/subjects/${otto.id}`, { session, body: { displayName: 'Otto the Admin' } });
    expect([r.status, r.body.code]).toEqual([403, 'admin_session_not_participant']);
    // Authorizing an ACTIVE session does not make him a participant either.
    const late = await ottoApi<Problem>('POST', `/api/v1/admin-sessions/${session}/authorizations`);
    expect([late.status, late.body.code]).toEqual([409, 'admin_session_not_active']);
  });

  it('lists subjects and roles for auditors but refuses their changes', async () => {
    const subjects = await aude<{ items: SubjectView[] }>('GET', '/api/v1/subjects');
    expect(subjects.status).toBe(200);
    expect(subjects.body.items.find((s) => s.displayName === 'Ada Admin')).toMatchObject({ kind: 'USER', roles: ['demo-administrators'], natures: ['ADMINISTRATOR'] });
    const roles = await aude<{ items: RoleView[] }>('GET', '/api/v1/roles');
    expect(roles.body.items.find((r) => r.name === 'demo-ci')?.keys).toEqual(
      expect.arrayContaining([{ keyid: 'demo-fw-prod', permissions: ['SIGN'] }]),
    );
    const change = await aude<Problem>('POST', '/api/v1/roles', { session, body: { name: 'aude-role', natures: ['AUDITOR'] } });
    expect([change.status, change.body.code]).toEqual([403, 'permission_denied']);
  });

  describe('bad input', () => {
    const norole = demoTenant.ciClients.find((c) => c.name === 'demo-norole');
    const user = (over: Record<string, unknown> = {}) => ({ kind: 'USER', tid, oid: '0b2f7a9e-1111-4222-8333-444455556666', displayName: 'Someone New', roles: [], ...over });
    it.each([
      ['fail extra field on a subject', 'POST', '/api/v1/subjects', user({ superuser: true }), 400, 'validation_failed', 'subject.create'],
      ['fail oid that is not a GUID', 'POST', '/api/v1/subjects', user({ oid: 'nora' }), 400, 'validation_failed', 'subject.create'],
      ['fail oversize display name', 'POST', '/api/v1/subjects', user({ displayName: 'n'.repeat(201) }), 400, 'validation_failed', 'subject.create'],
      ['fail unknown role', 'POST', '/api/v1/subjects', user({ roles: ['no-such-role'] }), 404, 'role_not_found', 'subject.create'],
      ['fail existing subject', 'POST', '/api/v1/subjects', user({ oid: userOid('ada.admin@demo.test') }), 409, 'subject_exists', 'subject.create'],
      ['fail client with an administrator role', 'POST', '/api/v1/subjects', { kind: 'CLIENT', tid, oid: norole?.servicePrincipalOid, displayName: 'no role', roles: ['demo-administrators'] }, 400, 'human_only_nature', 'subject.create'],
      ['fail malformed subject id', 'PATCH', '/api/v1/subjects/not-a-uuid', { displayName: 'x' }, 400, 'invalid_id', 'subject.update'],
      ['fail unknown subject id', 'PATCH', '/api/v1/subjects/0b2f7a9e-1111-4222-8333-444455556666', { displayName: 'x' }, 404, 'subject_not_found', 'subject.update'],
      ['fail empty change', 'PATCH', '/api/v1/subjects/0b2f7a9e-1111-4222-8333-444455556666', {}, 400, 'validation_failed', 'subject.update'],
      ['fail existing role', 'POST', '/api/v1/roles', { name: 'demo-ci', natures: [] }, 409, 'role_exists', 'role.create'],
      ['fail bad role name', 'POST', '/api/v1/roles', { name: '../admin', natures: [] }, 400, 'validation_failed', 'role.create'],
      ['fail unknown nature', 'POST', '/api/v1/roles', { name: 'e2e-root', natures: ['ROOT'] }, 400, 'validation_failed', 'role.create'],
      ['fail unknown key in a role', 'POST', '/api/v1/roles', { name: 'e2e-nokey', natures: [], keys: [{ keyid: 'nope', permissions: ['SIGN'] }] }, 404, 'key_not_found', 'role.create'],
      ['fail unknown permission in a role', 'POST', '/api/v1/roles', { name: 'e2e-badperm', natures: [], keys: [{ keyid: 'demo-fw-dev', permissions: ['OWN'] }] }, 400, 'validation_failed', 'role.create'],
      ['fail unknown role change', 'PATCH', '/api/v1/roles/no-such-role', { natures: [] }, 404, 'role_not_found', 'role.update'],
      // demo-ci is held by CLIENT subjects: the same rule as for subjects, checked in the role's transaction.
      ['fail administrator nature on a role a CLIENT holds', 'PATCH', '/api/v1/roles/demo-ci', { natures: ['SIGNER', 'ORDERER', 'ADMINISTRATOR'] }, 400, 'human_only_nature', 'role.update'],
      ['fail approver nature on a role a CLIENT holds', 'PATCH', '/api/v1/roles/demo-ci', { natures: ['APPROVER'] }, 400, 'human_only_nature', 'role.update'],
    ] as const)('%s', async (_name, method, path, body, status, code, action) => {
      const counts = async () => (await sql<{ s: string; r: string }>(p, 'SELECT (SELECT count(*) FROM "subject")::text AS s, (SELECT count(*) FROM "role")::text AS r'))[0];
      const before = await counts();
      const r = await ada<Problem>(method, path, { body, session });
      expect([r.status, r.body.code]).toEqual([status, code]);
      expect(await counts()).toEqual(before);
      const [last] = await auditOf(ada, `action=${action}&outcome=DENIED&limit=1`);
      expect(last).toMatchObject({ errorCode: code, adminSessionId: session });
    });

    it('keeps the natures of a role a CLIENT holds after a refused change', async () => {
      const roles = await ada<{ items: RoleView[] }>('GET', '/api/v1/roles');
      expect(roles.body.items.find((r) => r.name === 'demo-ci')?.natures).not.toEqual(expect.arrayContaining(['ADMINISTRATOR']));
      expect((await ci<MeView>('GET', '/api/v1/me')).body.natures).not.toContain('APPROVER');
    });
  });

  describe('who holds the human-only natures (ADR 0044)', () => {
    it('refuses to make or unmake an administrator or approver in a session not opened with powers, and audits it', async () => {
      const oid = randomUUID();
      const sock = await ada<Problem>('POST', '/api/v1/subjects', { session, body: { kind: 'USER', tid, oid, displayName: 'Ada second account', roles: ['demo-administrators'] } });
      expect([sock.status, sock.body.code]).toEqual([403, 'admin_session_scope']);
      expect((await ada<{ items: SubjectView[] }>('GET', '/api/v1/subjects')).body.items.some((x) => x.displayName === 'Ada second account')).toBe(false);
      const [denied] = await auditOf(aude, 'action=subject.create&outcome=DENIED');
      expect(denied).toMatchObject({ errorCode: 'admin_session_scope', adminSessionId: session, actorOid: userOid('ada.admin@demo.test') });
      const alanSubject = (await ada<{ items: SubjectView[] }>('GET', '/api/v1/subjects')).body.items.find((x) => x.displayName.startsWith('Alan'));
      if (!alanSubject) throw new Error('Alan missing');
      const disable = await ada<Problem>('PATCH', `/api/v1/subjects/${alanSubject.id}`, { session, body: { enabled: false } });
      expect([disable.status, disable.body.code]).toEqual([403, 'admin_session_scope']);
      const shown = await ada<{ powers: boolean }>('GET', `/api/v1/admin-sessions/${session}`);
      expect(shown.body.powers).toBe(false);
    });

    it('refuses an approver in all but name (a role granting APPROVE on a key) in a session not opened with powers; makes it with powers', async () => {
      // The APPROVE grant opens the approval route by itself: a participant alone must not make her second account
      // the second pair of eyes on a production key through it (ADR 0044 addendum).
      const name = `e2e-approve-${randomUUID().slice(0, 8)}`;
      const role = await ada('POST', '/api/v1/roles', { session, body: { name, natures: ['SIGNER'], keys: [{ keyid: 'demo-fw-prod', permissions: ['APPROVE'] }] } });
      expect(role.status).toBe(201);
      const body = { kind: 'USER', tid, oid: randomUUID(), displayName: 'Ada alternate approver', roles: [name] };
      const alt = await ada<Problem>('POST', '/api/v1/subjects', { session, body });
      expect([alt.status, alt.body.code]).toEqual([403, 'admin_session_scope']);
      expect((await ada<{ items: SubjectView[] }>('GET', '/api/v1/subjects')).body.items.some((x) => x.displayName === 'Ada alternate approver')).toBe(false);
      const made = await ada<SubjectView>('POST', '/api/v1/subjects', { session: powerSession, body });
      expect(made.status).toBe(201);
    });

    it('makes an administrator in a session opened with powers, which its authorizer saw', async () => {
      expect((await alan<{ powers: boolean }>('GET', `/api/v1/admin-sessions/${powerSession}`)).body.powers).toBe(true);
      const oid = randomUUID();
      const made = await ada<SubjectView>('POST', '/api/v1/subjects', { session: powerSession, body: { kind: 'USER', tid, oid, displayName: 'Grace Officer', roles: ['demo-administrators'] } });
      expect(made.status).toBe(201);
      const [opened] = await auditOf(aude, `action=admin_session.create&adminSessionId=${powerSession}`);
      expect(opened.details).toMatchObject({ powers: true });
    });
  });

  describe('administrative sessions of an administrator who loses the role', () => {
    it('ends the session her co-authorizer is disabled in, in the same change, and refuses it afterwards', async () => {
      const subjects = await ada<{ items: SubjectView[] }>('GET', '/api/v1/subjects');
      const otto = subjects.body.items.find((s) => s.displayName === 'Otto Orderer' || s.displayName === 'Otto the Admin');
      if (!otto) throw new Error('Otto missing');
      if (!otto.roles.includes('demo-administrators')) {
        expect((await ada('PATCH', `/api/v1/subjects/${otto.id}`, { session: powerSession, body: { roles: [...otto.roles, 'demo-administrators'] } })).status).toBe(200);
      }
      const ottoApi = apiAs(p, await bffUserToken(p, 'otto.orderer@demo.test'));
      const paired = await activeSession(ada, ottoApi, 'ada and otto', true);
      // Ada disables Otto in the very session Otto authorized: the change stands, the session ends with it.
      const disabled = await ada<SubjectView>('PATCH', `/api/v1/subjects/${otto.id}`, { session: paired, body: { enabled: false } });
      expect([disabled.status, disabled.body.enabled]).toEqual([200, false]);
      const state = await ada<{ state: string; closedAt: string | null }>('GET', `/api/v1/admin-sessions/${paired}`);
      expect(state.body).toMatchObject({ state: 'CLOSED', closedAt: expect.any(String) });
      const alone = await ada<Problem>('PATCH', `/api/v1/subjects/${otto.id}`, { session: paired, body: { displayName: 'Otto alone' } });
      expect([alone.status, alone.body.code]).toEqual([403, 'admin_session_required']);
      const [ended] = await auditOf(aude, `action=admin_session.ended&adminSessionId=${paired}`);
      expect(ended).toMatchObject({ outcome: 'SUCCESS', actorOid: userOid('ada.admin@demo.test'), details: { reason: 'participant_disabled', subjectId: otto.id, previousState: 'ACTIVE', cause: 'subject.disable' } });
      // The session of Ada and Alan is untouched.
      expect((await ada<{ state: string }>('GET', `/api/v1/admin-sessions/${session}`)).body.state).toBe('ACTIVE');
    });
  });

  describe('the last administrators (ADR 0012 addendum)', () => {
    it('fail disabling the co-authorizer when only the two of them are administrators: 409 too_few_administrators, audited, nothing written', async () => {
      const all = (await ada<{ items: SubjectView[] }>('GET', '/api/v1/subjects')).body.items;
      const ids = { ada: userOid('ada.admin@demo.test'), alan: userOid('alan.admin@demo.test') };
      const byOid = (oid: string) => all.find((x) => x.oid === oid);
      const alanSubject = byOid(ids.alan);
      if (!alanSubject) throw new Error('Alan missing');
      // Every other enabled administrator goes first (each allowed while two remain), in the session with powers.
      for (const other of all.filter((x) => x.enabled && x.natures.includes('ADMINISTRATOR') && x.id !== alanSubject.id && x.id !== byOid(ids.ada)?.id)) {
        expect((await ada('PATCH', `/api/v1/subjects/${other.id}`, { session: powerSession, body: { enabled: false } })).status).toBe(200);
      }
      for (const body of [{ enabled: false }, { roles: [] }]) {
        const refused = await ada<Problem>('PATCH', `/api/v1/subjects/${alanSubject.id}`, { session: powerSession, body });
        expect([refused.status, refused.body.code]).toEqual([409, 'too_few_administrators']);
      }
      const after = (await ada<SubjectView>('GET', `/api/v1/subjects/${alanSubject.id}`)).body;
      expect([after.enabled, after.natures.includes('ADMINISTRATOR')]).toEqual([true, true]);
      expect((await ada<{ state: string }>('GET', `/api/v1/admin-sessions/${powerSession}`)).body.state).toBe('ACTIVE');
      const denied = await auditOf(aude, 'outcome=DENIED&limit=50');
      expect(denied.filter((e) => e.errorCode === 'too_few_administrators' && e.adminSessionId === powerSession)).toHaveLength(2);
    });
  });
});
