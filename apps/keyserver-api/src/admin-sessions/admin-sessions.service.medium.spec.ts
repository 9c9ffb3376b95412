// Medium tier: the service with its real repositories on a real PostgreSQL (src/testing/medium.ts).
import { randomBytes } from 'node:crypto';
import { Permission } from '@keyserver/api-contract';
import type { Actor } from '@keyserver/authz';
import { AdminSessionRepository, AuditRepository, SubjectRepository } from '@keyserver/data-access';
import { Audited } from '../common/audited';
import { codeOf, mediumActor, mediumConfig, mediumDatabase } from '../testing/medium';
import { AdminSessionsService } from './admin-sessions.service';

describe(`${AdminSessionsService.name} (medium: real PostgreSQL)`, () => {
  const pg = mediumDatabase('ks_api_medium_admin_sessions');
  let audit: AuditRepository;
  let sessions: AdminSessionRepository;
  let service: AdminSessionsService;
  let ada: Actor;
  let bob: Actor;

  beforeAll(async () => {
    audit = new AuditRepository(pg.db);
    sessions = new AdminSessionRepository(pg.db);
    const config = mediumConfig({ ADMIN_SESSION_APPROVALS: '2' });
    service = new AdminSessionsService(sessions, new SubjectRepository(pg.db), config, new Audited(audit));
    ada = await mediumActor(pg.db, { natures: ['ADMINISTRATOR'] }, Permission.AdminSessionsManage);
    bob = await mediumActor(pg.db, { natures: ['ADMINISTRATOR'] }, Permission.AdminSessionsManage);
  });

  const requestId = () => `req-${randomBytes(4).toString('hex')}`;
  /** The request's events, oldest first. */
  const eventsOf = async (id: string) => (await audit.list({ requestId: id })).items.reverse().map((e) => [e.action, e.outcome, e.errorCode ?? null]);

  it('ok a second administrator activates the session: the authorization and the activation are recorded', async () => {
    const s = await service.create(ada, { description: 'rotate keys' }, requestId());
    const id = requestId();
    expect((await service.authorize(bob, s.id, {}, id)).state).toBe('ACTIVE');
    expect(await eventsOf(id)).toEqual([
      ['admin_session.authorize', 'SUCCESS', null],
      ['admin_session.activated', 'SUCCESS', null],
    ]);
  });

  it('fail the creator authorizing her own session: DENIED already_authorized, still PENDING', async () => {
    const s = await service.create(ada, { description: 'four eyes' }, requestId());
    const id = requestId();
    expect(await codeOf(service.authorize(ada, s.id, {}, id))).toBe('already_authorized');
    expect(await eventsOf(id)).toEqual([['admin_session.authorize', 'DENIED', 'already_authorized']]);
    expect((await sessions.get(s.id)).state).toBe('PENDING');
  });

  it('fail an activation whose event cannot be written: nothing of the authorization counts and it is recorded FAILED once', async () => {
    const s = await service.create(ada, { description: 'a fault on activation' }, requestId());
    // A real refusal of the database for exactly that event (dropped again below).
    await pg.db.pool.query(`
      CREATE FUNCTION medium_refuse_activation() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW."action" = 'admin_session.activated' THEN RAISE EXCEPTION 'medium: activation event refused'; END IF; RETURN NEW; END $$;
      CREATE TRIGGER medium_refuse_activation BEFORE INSERT ON "audit_event" FOR EACH ROW EXECUTE FUNCTION medium_refuse_activation();`);
    const id = requestId();
    try {
      expect(await codeOf(service.authorize(bob, s.id, {}, id))).not.toBe('ok');
    } finally {
      await pg.db.pool.query(`DROP TRIGGER medium_refuse_activation ON "audit_event"; DROP FUNCTION medium_refuse_activation();`);
    }
    expect((await sessions.get(s.id)).state).toBe('PENDING');
    expect(await eventsOf(id)).toEqual([['admin_session.authorize', 'FAILED', 'internal_error']]);
  });
});
