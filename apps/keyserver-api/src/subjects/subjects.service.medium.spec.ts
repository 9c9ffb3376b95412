// Medium tier: the service with its real repositories on a real PostgreSQL (src/testing/medium.ts).
import { randomBytes, randomUUID } from 'node:crypto';
import { Permission } from '@keyserver/api-contract';
import type { Actor } from '@keyserver/authz';
import { AdminSessionRepository, AuditRepository, KeyRepository, SubjectRepository, type Db } from '@keyserver/data-access';
import { AdminSessionGate } from '../admin-sessions/admin-session-gate';
import { Audited } from '../common/audited';
import { adminInSession, codeOf, LateGate, MEDIUM_TENANT, mediumActor, mediumDatabase } from '../testing/medium';
import { SubjectsService } from './subjects.service';

describe(`${SubjectsService.name} (medium: real PostgreSQL)`, () => {
  const pg = mediumDatabase('ks_api_medium_subjects');
  let db: Db;
  let subjects: SubjectRepository;
  let audit: AuditRepository;
  let service: SubjectsService;
  let admin: Actor;
  let session: string;

  beforeAll(async () => {
    db = pg.db;
    subjects = new SubjectRepository(db);
    audit = new AuditRepository(db);
    service = new SubjectsService(subjects, new KeyRepository(db), new AdminSessionGate(new AdminSessionRepository(db)), new Audited(audit));
    ({ admin, session } = await adminInSession(db, Permission.SubjectsAdmin));
    await subjects.upsertRole('medium-signers', ['SIGNER']);
    await subjects.upsertRole('medium-approvers', ['APPROVER']);
  });

  const requestId = () => `req-${randomBytes(4).toString('hex')}`;
  const eventsOf = async (id: string) => (await audit.list({ requestId: id })).items.map((e) => [e.action, e.outcome, e.errorCode ?? null]);

  it('ok creates a subject and records one SUCCESS event in the same transaction, with the admin session', async () => {
    const id = requestId();
    const oid = randomUUID();
    const view = await service.create(admin, session, { kind: 'CLIENT', tid: MEDIUM_TENANT, oid, displayName: 'ci', roles: ['medium-signers'] }, id);
    expect([view.kind, view.natures]).toEqual(['CLIENT', ['SIGNER']]);
    const events = (await audit.list({ requestId: id })).items;
    expect(events.map((e) => [e.action, e.outcome, e.adminSessionId])).toEqual([['subject.create', 'SUCCESS', session]]);
  });

  it.each([
    ['fail without an admin session', () => ({ sessionId: undefined, body: { kind: 'USER', tid: MEDIUM_TENANT, oid: randomUUID(), displayName: 'x' } }), 'admin_session_required'],
    ['fail a body that does not validate (refused inside the audited wrapper)', () => ({ sessionId: session, body: { kind: 'USER', tid: 'not-a-guid', oid: randomUUID(), displayName: 'x' } }), 'validation_failed'],
    ['fail an unknown role', () => ({ sessionId: session, body: { kind: 'USER', tid: MEDIUM_TENANT, oid: randomUUID(), displayName: 'x', roles: ['no-such-role'] } }), 'role_not_found'],
    ['fail a CLIENT holding a human-only nature', () => ({ sessionId: session, body: { kind: 'CLIENT', tid: MEDIUM_TENANT, oid: randomUUID(), displayName: 'x', roles: ['medium-approvers'] } }), 'human_only_nature'],
  ] as const)('%s: refused, audited DENIED with its code, nothing stored', async (_n, input, code) => {
    const id = requestId();
    const { sessionId, body } = input();
    const before = (await subjects.list()).length;
    expect(await codeOf(service.create(admin, sessionId, body, id))).toBe(code);
    expect(await eventsOf(id)).toEqual([['subject.create', 'DENIED', code]]);
    expect((await subjects.list()).length).toBe(before);
  });

  it('ok an upper-case tid and oid are stored as Entra writes them (RFC 4122: case-insensitive on input), so the token finds the subject', async () => {
    const oid = randomUUID();
    const view = await service.create(admin, session, { kind: 'USER', tid: MEDIUM_TENANT.toUpperCase(), oid: oid.toUpperCase(), displayName: 'pasted' }, requestId());
    expect([view.tid, view.oid]).toEqual([MEDIUM_TENANT, oid]);
    expect((await subjects.findByTidOid(MEDIUM_TENANT, oid))?.id).toBe(view.id);
    const id = requestId();
    expect(await codeOf(service.create(admin, session, { kind: 'USER', tid: MEDIUM_TENANT, oid, displayName: 'again' }, id))).toBe('subject_exists');
  });

  it('fail a second subject with the same tid and oid: DENIED subject_exists', async () => {
    const body = { kind: 'USER', tid: MEDIUM_TENANT, oid: randomUUID(), displayName: 'twice' };
    await service.create(admin, session, body, requestId());
    const id = requestId();
    expect(await codeOf(service.create(admin, session, body, id))).toBe('subject_exists');
    expect(await eventsOf(id)).toEqual([['subject.create', 'DENIED', 'subject_exists']]);
  });

  it.each([
    ['fail a role name an existing role has in lower case', (n: string) => n.toLowerCase()],
    ['fail a role name an existing role has in upper case', (n: string) => n.toUpperCase()],
  ])('%s: 409 role_exists, audited DENIED, nothing stored (ADR 0016 addendum)', async (_n, variant) => {
    const name = `Demo-Administrators-${randomBytes(3).toString('hex')}`;
    await service.createRole(admin, session, { name, natures: ['ADMINISTRATOR'] }, requestId());
    const id = requestId();
    expect(await codeOf(service.createRole(admin, session, { name: variant(name), natures: ['ADMINISTRATOR'] }, id))).toBe('role_exists');
    expect(await eventsOf(id)).toEqual([['role.create', 'DENIED', 'role_exists']]);
    expect((await subjects.listRoles()).filter((r) => r.name.toLowerCase() === name.toLowerCase()).map((r) => r.name)).toEqual([name]);
  });

  it('fail two creates of one role name in two cases at once: one SUCCESS, the other 409 role_exists (the database decides)', async () => {
    const name = `Race-Admins-${randomBytes(3).toString('hex')}`;
    const ids = [requestId(), requestId()];
    const codes = await Promise.all([name, name.toLowerCase()].map((n, i) => codeOf(service.createRole(admin, session, { name: n, natures: ['ORDERER'] }, ids[i]))));
    expect([...codes].sort()).toEqual(['ok', 'role_exists']);
    expect((await subjects.listRoles()).filter((r) => r.name.toLowerCase() === name.toLowerCase())).toHaveLength(1);
  });

  it('fail an update naming a malformed id: DENIED invalid_id, the id kept out of the event', async () => {
    const id = requestId();
    expect(await codeOf(service.update(admin, session, 'not-a-uuid', { displayName: 'y' }, id))).toBe('invalid_id');
    const events = (await audit.list({ requestId: id })).items;
    expect(events.map((e) => [e.action, e.outcome, e.errorCode, e.details])).toEqual([['subject.update', 'DENIED', 'invalid_id', { subjectId: null }]]);
  });

  it('fail an administrator who did not take part in the session: DENIED admin_session_not_participant', async () => {
    const other = await mediumActor(db, { natures: ['ADMINISTRATOR'] }, Permission.SubjectsAdmin);
    const id = requestId();
    expect(await codeOf(service.createRole(other, session, { name: `r-${randomBytes(3).toString('hex')}`, natures: ['SIGNER'] }, id))).toBe('admin_session_not_participant');
    expect(await eventsOf(id)).toEqual([['role.create', 'DENIED', 'admin_session_not_participant']]);
  });
});

// An insider in a session both administrators opened with powers must not leave the installation with fewer
// administrators than a session needs: nobody could open one again (ADR 0012 addendum "the last administrators").
describe(`${SubjectsService.name} keeps the administrators a session needs (medium: real PostgreSQL)`, () => {
  const pg = mediumDatabase('ks_api_medium_lastadmins');

  it('fail disabling the co-authorizer or taking her role when the two of them are the only administrators: 409 too_few_administrators, audited DENIED, nothing written', async () => {
    const db = pg.db;
    const subjects = new SubjectRepository(db);
    const audit = new AuditRepository(db);
    const sessions = new AdminSessionRepository(db);
    const service = new SubjectsService(subjects, new KeyRepository(db), new AdminSessionGate(sessions), new Audited(audit));
    const ada = await mediumActor(db, { natures: ['ADMINISTRATOR'] }, Permission.SubjectsAdmin);
    const ivy = await mediumActor(db, { natures: ['ADMINISTRATOR'] }, Permission.SubjectsAdmin);
    const s = await sessions.open({ description: 'powers', creatorId: ada.subjectId, requiredApprovals: 1, expiresAt: new Date(Date.now() + 3_600_000), powers: true });
    await sessions.authorize(s.id, ivy.subjectId);
    for (const change of [{ enabled: false }, { roles: [] }]) {
      const id = `req-${randomBytes(4).toString('hex')}`;
      expect(await codeOf(service.update(ada, s.id, ivy.subjectId, change, id))).toBe('too_few_administrators');
      expect((await audit.list({ requestId: id })).items.map((e) => [e.outcome, e.errorCode])).toEqual([['DENIED', 'too_few_administrators']]);
      expect((await service.get(ivy.subjectId)).natures).toEqual(['ADMINISTRATOR']);
      expect((await sessions.get(s.id)).state).toBe('ACTIVE');
    }
    // A third administrator registered first: then one of them may go.
    const eve = await mediumActor(db, { natures: ['ADMINISTRATOR'] }, Permission.SubjectsAdmin);
    expect((await service.update(ada, s.id, eve.subjectId, { enabled: false }, 'req-ok')).enabled).toBe(false);
  });
});

// The gate reads the session before the change's transaction starts; another replica may close it, or end it by
// disabling its authorizer, in between. The change is then refused in its transaction (ADR 0012 addendum "a change
// holds its session"): 409 session_not_active, audited DENIED, nothing written.
describe(`${SubjectsService.name} holds the session a change runs in (medium: real PostgreSQL)`, () => {
  const pg = mediumDatabase('ks_api_medium_sessionhold');


  it.each<[string, (x: { sessions: AdminSessionRepository; subjects: SubjectRepository; ivy: string }, sessionId: string) => Promise<unknown>]>([
    ['fail a change in a session closed after the gate let it through', ({ sessions }, id) => sessions.close(id)],
    ['fail a change in a session whose authorizer was disabled after the gate let it through', ({ subjects, ivy }) => subjects.update(ivy, { enabled: false })],
  ])('%s: 409 session_not_active, audited DENIED, nothing written', async (_n, between) => {
    const db = pg.db;
    const subjects = new SubjectRepository(db);
    const audit = new AuditRepository(db);
    const sessions = new AdminSessionRepository(db);
    const ada = await mediumActor(db, { natures: ['ADMINISTRATOR'] }, Permission.SubjectsAdmin);
    const changes: [string, (svc: SubjectsService, sessionId: string, id: string) => Promise<unknown>][] = [
      ['subject.create', (svc, s, id) => svc.create(ada, s, { kind: 'USER', tid: MEDIUM_TENANT, oid: randomUUID(), displayName: 'late' }, id)],
      ['subject.update', (svc, s, id) => svc.update(ada, s, ada.subjectId, { displayName: 'late' }, id)],
      ['role.create', (svc, s, id) => svc.createRole(ada, s, { name: `late-${randomBytes(3).toString('hex')}`, natures: ['SIGNER'] }, id)],
      ['role.update', (svc, s, id) => svc.updateRole(ada, s, 'medium-late', { description: 'late' }, id)],
    ];
    await subjects.upsertRole('medium-late', ['SIGNER'], 'before');
    for (const [action, change] of changes) {
      const ivy = await mediumActor(db, { natures: ['ADMINISTRATOR'] }, Permission.SubjectsAdmin);
      const s = await sessions.open({ description: 'late', creatorId: ada.subjectId, requiredApprovals: 1, expiresAt: new Date(Date.now() + 3_600_000), powers: true });
      await sessions.authorize(s.id, ivy.subjectId);
      // What is stored once the other replica's change committed: the refused change must add nothing to it.
      let stored: unknown;
      const late = async (sid: string) => {
        await between({ sessions, subjects, ivy: ivy.subjectId }, sid);
        stored = [await subjects.list(), await subjects.listRoleGrants()];
      };
      const service = new SubjectsService(subjects, new KeyRepository(db), new LateGate(sessions, late), new Audited(audit));
      const id = `req-${randomBytes(4).toString('hex')}`;
      expect([action, await codeOf(change(service, s.id, id))]).toEqual([action, 'session_not_active']);
      expect((await audit.list({ requestId: id })).items.map((e) => [e.action, e.outcome, e.errorCode])).toEqual([[action, 'DENIED', 'session_not_active']]);
      expect([await subjects.list(), await subjects.listRoleGrants()]).toEqual(stored);
    }
  });
});
