// Medium tier: the service with its real repositories on a real PostgreSQL (src/testing/medium.ts).
import { randomBytes, randomUUID } from 'node:crypto';
import { Permission } from '@keyserver/api-contract';
import type { Actor } from '@keyserver/authz';
import { AdminSessionRepository, AuditRepository, NotificationRepository, type Db } from '@keyserver/data-access';
import { AdminSessionGate } from '../admin-sessions/admin-session-gate';
import { Audited } from '../common/audited';
import { adminInSession, mediumActor, mediumDatabase } from '../testing/medium';
import { NotificationsService } from './notifications.service';

describe(`${NotificationsService.name} (medium: real PostgreSQL)`, () => {
  const pg = mediumDatabase('ks_api_medium_notify');
  let db: Db;
  let audit: AuditRepository;
  let service: NotificationsService;
  let admin: Actor;
  let session: string;

  beforeAll(async () => {
    db = pg.db;
    audit = new AuditRepository(db);
    service = new NotificationsService(new NotificationRepository(db), new AdminSessionGate(new AdminSessionRepository(db)), new Audited(audit));
    ({ admin, session } = await adminInSession(db, Permission.SubjectsAdmin));
  });

  const requestId = () => `req-${randomBytes(4).toString('hex')}`;
  const refusal = (p: Promise<unknown>) => p.then(() => ['ok'], (e: { code?: string; status?: number }) => [e.code, e.status]);

  it('ok sets a subject\'s address in an admin session: one SUCCESS event', async () => {
    const signer = await mediumActor(db, { natures: ['SIGNER'] }, Permission.NotificationsSelf);
    const id = requestId();
    expect((await service.setAddress(admin, session, signer.subjectId, { email: 'signer@contoso.example' }, id)).email).toBe('signer@contoso.example');
    expect((await audit.list({ requestId: id })).items.map((e) => [e.action, e.outcome])).toEqual([['notification.address_set', 'SUCCESS']]);
  });

  it.each([
    ['fail an id that is not a UUID: 404, the id kept out of the event', 'not-a-uuid', null],
    ['fail an unknown subject: 404, the id in the event', '0b5c1e2a-8d4f-4c3b-9a1e-5f6d7c8b9a01', '0b5c1e2a-8d4f-4c3b-9a1e-5f6d7c8b9a01'],
  ] as [string, string, string | null][])('%s', async (_n, subject, recorded) => {
    const id = requestId();
    expect(await refusal(service.setAddress(admin, session, subject, { email: 'x@contoso.example' }, id))).toEqual(['subject_not_found', 404]);
    const events = (await audit.list({ requestId: id })).items;
    expect(events.map((e) => [e.action, e.outcome, e.errorCode, e.details])).toEqual([['notification.address_set', 'DENIED', 'subject_not_found', { subjectId: recorded }]]);
  });

  it('fail own settings that do not validate: DENIED validation_failed, settings unchanged', async () => {
    const signer = await mediumActor(db, { natures: ['SIGNER'] }, Permission.NotificationsSelf);
    const before = await service.mine(signer);
    const id = requestId();
    expect(await refusal(service.updateMine(signer, { emailEnabled: 'no', webhookEnabled: true, extra: randomUUID() }, id))).toEqual(['validation_failed', 400]);
    expect((await audit.list({ requestId: id })).items.map((e) => [e.action, e.outcome, e.errorCode])).toEqual([['notification.settings_update', 'DENIED', 'validation_failed']]);
    expect(await service.mine(signer)).toEqual(before);
  });
});
