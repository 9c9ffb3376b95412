// Medium tier: the services with their real repositories on a real PostgreSQL and SoftHSM (src/testing/medium.ts).
import { randomBytes } from 'node:crypto';
import { Permission } from '@keyserver/api-contract';
import { AdminSessionRepository, AuditRepository, CrlRepository, KeyLifecycleRepository, KeyLimitsRepository, KeyRepository, SubjectRepository } from '@keyserver/data-access';
import pino from 'pino';
import { AdminSessionGate } from '../admin-sessions/admin-session-gate';
import { Audited } from '../common/audited';
import { CrlService } from '../crl/crl.service';
import { KeysService } from '../keys/keys.service';
import { KeyLimitsService } from '../key-limits/key-limits.service';
import { codeOf, LateGate, mediumActor, mediumConfig, mediumDatabase, mediumSigner, seedKey } from '../testing/medium';
import { KeyAdminService } from './key-admin.service';
import { KeyLifecycleService } from './key-lifecycle.service';

// The gate reads the session before the change's transaction starts; another replica may close it, or end it by
// disabling its authorizer, in between. Key, key-limit and key-lifecycle changes are then refused in their transaction
// like subject and role changes (ADR 0012 addendum "every change that needs a session holds it"): 409
// session_not_active, audited DENIED, nothing written.
describe(`${KeyLifecycleService.name}, ${KeyAdminService.name} and ${KeyLimitsService.name} hold the session a change runs in (medium: real PostgreSQL)`, () => {
  const pg = mediumDatabase('ks_api_medium_keysessionhold');
  const hsm = mediumSigner('ks-key-session-hold');


  it.each<[string, (x: { sessions: AdminSessionRepository; subjects: SubjectRepository; ivy: string }, sessionId: string) => Promise<unknown>]>([
    ['fail a change in a session closed after the gate let it through', ({ sessions }, id) => sessions.close(id)],
    ['fail a change in a session whose authorizer was disabled after the gate let it through', ({ subjects, ivy }) => subjects.update(ivy, { enabled: false })],
  ])('%s: 409 session_not_active, audited DENIED, nothing written', async (_n, between) => {
    const db = pg.db;
    const [subjects, audit, sessions, keys, limits] = [new SubjectRepository(db), new AuditRepository(db), new AdminSessionRepository(db), new KeyRepository(db), new KeyLimitsRepository(db)];
    const ada = await mediumActor(db, { natures: ['ADMINISTRATOR'] }, Permission.KeysAdmin);
    const keyid = await seedKey(db, { requiredApprovers: 1 });
    const changes: [string, (gate: AdminSessionGate, s: string, id: string) => Promise<unknown>][] = [
      ['key.limits', (gate, s, id) => new KeyLimitsService(keys, limits, gate, new Audited(audit), views()).set(ada, s, keyid, { maxWindowSeconds: 3600, maxUsagesPerOperation: 3, maxBackdateSeconds: 60, maxStartAheadSeconds: 3600 }, id)],
      ['key.update', (gate, s, id) => admin(gate).update(ada, s, keyid, { requiredApprovers: 2 }, id)],
      ['key.retire', (gate, s, id) => lifecycle(gate).retire(ada, s, keyid, {}, id)],
      ['key.revoke', (gate, s, id) => admin(gate).revoke(ada, s, keyid, { reason: 'keyCompromise' }, id)],
    ];
    const logger = pino({ level: 'silent' });
    const views = () => new KeysService(keys, limits, new KeyLifecycleRepository(db));
    const crls = new CrlService(new CrlRepository(db), hsm.signer, logger);
    const admin = (gate: AdminSessionGate) => new KeyAdminService(keys, hsm.signer, mediumConfig(), logger, gate, new Audited(audit), views(), crls);
    const lifecycle = (gate: AdminSessionGate) => new KeyLifecycleService(keys, new KeyLifecycleRepository(db), subjects, hsm.signer, mediumConfig(), logger, gate, new Audited(audit), views(), crls);
    const stored = async () => [await keys.getByKeyid(keyid), await limits.get(keyid)];
    for (const [action, change] of changes) {
      const ivy = await mediumActor(db, { natures: ['ADMINISTRATOR'] }, Permission.KeysAdmin);
      const s = await sessions.open({ description: 'late', creatorId: ada.subjectId, requiredApprovals: 1, expiresAt: new Date(Date.now() + 3_600_000), powers: true });
      await sessions.authorize(s.id, ivy.subjectId);
      const before = await stored();
      const id = `req-${randomBytes(4).toString('hex')}`;
      expect([action, await codeOf(change(new LateGate(sessions, (sid) => between({ sessions, subjects, ivy: ivy.subjectId }, sid)), s.id, id))]).toEqual([action, 'session_not_active']);
      expect((await audit.list({ requestId: id })).items.map((e) => [e.action, e.outcome, e.errorCode])).toEqual([[action, 'DENIED', 'session_not_active']]);
      expect(await stored()).toEqual(before);
    }
  });
});
