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
import type { Actor } from '@keyserver/authz';
import type { HsmSigner } from '@keyserver/pki';
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

  // A destruction is irreversible from its HSM deletion on. It is decided in the session held (`destructionPlan`) and
  // decided again, held, after the final CRLs and just before the HSM deletion: a session closed, or a co-authorizer
  // disabled, while the final CRLs were being signed stops it with the key material intact. Once the HSM objects are
  // gone `markDestroyed` records the fact whatever became of the session: refusing it would leave the database naming
  // key material that no longer exists (ADR 0012 and ADR 0045 addenda "destruction").
  describe('key.destroy', () => {
    type World = { db: typeof pg.db; sessions: AdminSessionRepository; subjects: SubjectRepository; audit: AuditRepository; keys: KeyRepository };
    const setup = async () => {
      const db = pg.db;
      const w: World = { db, sessions: new AdminSessionRepository(db), subjects: new SubjectRepository(db), audit: new AuditRepository(db), keys: new KeyRepository(db) };
      const ada = await mediumActor(db, { natures: ['ADMINISTRATOR'] }, Permission.KeysAdmin);
      const ivy = await mediumActor(db, { natures: ['ADMINISTRATOR'] }, Permission.KeysAdmin);
      const s = await w.sessions.open({ description: 'destroy', creatorId: ada.subjectId, requiredApprovals: 1, expiresAt: new Date(Date.now() + 3_600_000), powers: true });
      await w.sessions.authorize(s.id, ivy.subjectId);
      return { w, ada, ivy: ivy.subjectId, session: s.id };
    };
    /** The services as main.ts wires them, with `crls` and `signer` standing in where a test needs another replica's change. */
    const services = (w: World, o: { gate?: AdminSessionGate; crls?: CrlService; signer?: HsmSigner } = {}) => {
      const logger = pino({ level: 'silent' });
      const gate = o.gate ?? new AdminSessionGate(w.sessions);
      const limits = new KeyLimitsRepository(w.db);
      const views = new KeysService(w.keys, limits, new KeyLifecycleRepository(w.db));
      const crls = o.crls ?? new CrlService(new CrlRepository(w.db), hsm.signer, logger);
      const signer = o.signer ?? hsm.signer;
      return {
        admin: new KeyAdminService(w.keys, signer, mediumConfig(), logger, gate, new Audited(w.audit), views, crls),
        lifecycle: new KeyLifecycleService(w.keys, new KeyLifecycleRepository(w.db), w.subjects, signer, mediumConfig(), logger, gate, new Audited(w.audit), views, crls),
      };
    };
    /** A self-signed ROOT and a RETIRED CA below it, both in the HSM: the CA's destruction signs its final CRL first. */
    const retiredCa = async (w: World, ada: Actor, session: string) => {
      const { admin, lifecycle } = services(w);
      const root = `root-${randomBytes(4).toString('hex')}`;
      await lifecycle.rootCeremony(ada, session, { keyid: root, algorithm: 'EC_P256', subject: { commonName: `Root ${root}` }, validityDays: 3650, mode: 'self-signed' }, `req-${randomBytes(4).toString('hex')}`);
      const ca = `ca-${randomBytes(4).toString('hex')}`;
      await admin.create(ada, session, { keyid: ca, type: 'CA', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 365, commonName: `CA ${ca}`, issuer: root, pathLen: 0 }, `req-${randomBytes(4).toString('hex')}`);
      await lifecycle.retire(ada, session, ca, {}, `req-${randomBytes(4).toString('hex')}`);
      return ca;
    };
    const hsmHolds = async (hsmKeyId: string) => (await codeOf(hsm.signer.getKey(hsmKeyId))) === 'ok';
    /** Another replica's change while this destruction signs its final CRLs (after its decision, before its HSM deletion). */
    const lateCrls = (w: World, between: () => Promise<unknown>) =>
      new (class extends CrlService {
        override async finalCrls(keyid: string): Promise<number[]> {
          const done = await super.finalCrls(keyid);
          await between();
          return done;
        }
      })(new CrlRepository(w.db), hsm.signer, pino({ level: 'silent' }));

    it.each<[string, (x: { w: World; ivy: string; session: string }) => Promise<unknown>]>([
      ['fail a destruction whose session was closed while its final CRLs were signed', ({ w, session }) => w.sessions.close(session)],
      ['fail a destruction whose authorizer was disabled while its final CRLs were signed', ({ w, ivy }) => w.subjects.update(ivy, { enabled: false })],
    ])('%s: 409 session_not_active, audited DENIED, the HSM objects kept, not destroyed; a retry in a new session finishes it', async (_n, between) => {
      const { w, ada, ivy, session } = await setup();
      const ca = await retiredCa(w, ada, session);
      const { hsmKeyId } = await w.keys.getByKeyid(ca);
      const id = `req-${randomBytes(4).toString('hex')}`;
      const { lifecycle } = services(w, { crls: lateCrls(w, () => between({ w, ivy, session })) });
      expect(await codeOf(lifecycle.destroy(ada, session, ca, {}, id))).toBe('session_not_active');
      expect((await w.audit.list({ requestId: id })).items.map((e) => [e.action, e.outcome, e.errorCode])).toEqual([['key.destroy', 'DENIED', 'session_not_active']]);
      expect([(await w.keys.getByKeyid(ca)).destroyedAt, await hsmHolds(hsmKeyId)]).toEqual([null, true]);
      // What it left (a final CRL, the key material) is what a destruction failing at its HSM leaves: a retry finishes it.
      const again = await setup();
      const retry = `req-${randomBytes(4).toString('hex')}`;
      expect(await codeOf(services(again.w).lifecycle.destroy(again.ada, again.session, ca, {}, retry))).toBe('ok');
      expect([(await w.keys.getByKeyid(ca)).destroyedAt !== null, await hsmHolds(hsmKeyId)]).toEqual([true, false]);
    });

    it('fail a destruction whose session was closed after the gate let it through: refused at its decision, nothing signed or deleted', async () => {
      const { w, ada, session } = await setup();
      const ca = await retiredCa(w, ada, session);
      const { hsmKeyId } = await w.keys.getByKeyid(ca);
      const id = `req-${randomBytes(4).toString('hex')}`;
      const { lifecycle } = services(w, { gate: new LateGate(w.sessions, (sid) => w.sessions.close(sid)) });
      expect(await codeOf(lifecycle.destroy(ada, session, ca, {}, id))).toBe('session_not_active');
      expect((await w.audit.list({ requestId: id })).items.map((e) => [e.action, e.outcome, e.errorCode])).toEqual([['key.destroy', 'DENIED', 'session_not_active']]);
      expect([(await w.keys.getByKeyid(ca)).destroyedAt, await hsmHolds(hsmKeyId)]).toEqual([null, true]);
      const crls = new CrlRepository(w.db);
      const scopes = (await crls.liveScopes()).filter((x) => x.keyid === ca);
      expect(await Promise.all(scopes.map(async (x) => (await crls.stored(x.versionId))?.final ?? false))).toEqual([false]);
    });

    it.each<[string, (x: { w: World; ivy: string; session: string }) => Promise<unknown>]>([
      ['ok a destruction whose session was closed once its HSM objects were deleted is recorded', ({ w, session }) => w.sessions.close(session)],
      ['ok a destruction whose authorizer was disabled once its HSM objects were deleted is recorded', ({ w, ivy }) => w.subjects.update(ivy, { enabled: false })],
    ])('%s: SUCCESS in that session, the key destroyed', async (_n, between) => {
      const { w, ada, ivy, session } = await setup();
      const ca = await retiredCa(w, ada, session);
      const { hsmKeyId } = await w.keys.getByKeyid(ca);
      const signer = Object.assign(Object.create(hsm.signer) as HsmSigner, {
        destroyKey: async (x: string) => {
          await hsm.signer.destroyKey(x);
          await between({ w, ivy, session });
        },
      });
      const id = `req-${randomBytes(4).toString('hex')}`;
      expect(await codeOf(services(w, { signer }).lifecycle.destroy(ada, session, ca, {}, id))).toBe('ok');
      expect((await w.audit.list({ requestId: id })).items.map((e) => [e.action, e.outcome, e.adminSessionId])).toEqual([['key.destroy', 'SUCCESS', session]]);
      expect([(await w.keys.getByKeyid(ca)).destroyedAt !== null, await hsmHolds(hsmKeyId)]).toEqual([true, false]);
    });

    it('ok two destructions of one key at once, in two sessions on two replicas: both delete, one records it (SUCCESS), the other is key_already_destroyed (DENIED)', async () => {
      const first = await setup();
      const second = await setup();
      const ca = await retiredCa(first.w, first.ada, first.session);
      const { hsmKeyId } = await first.w.keys.getByKeyid(ca);
      // Each replica waits, its HSM objects deleted, until the other has deleted too: both get past every decision.
      let arrived = 0;
      let release: () => void = () => undefined;
      const both = new Promise<void>((r) => (release = r));
      const replica = (x: typeof first) =>
        services(x.w, {
          signer: Object.assign(Object.create(hsm.signer) as HsmSigner, {
            destroyKey: async (id: string) => {
              await hsm.signer.destroyKey(id);
              if (++arrived === 2) release();
              await both;
            },
          }),
        }).lifecycle;
      const ids = [`req-${randomBytes(4).toString('hex')}`, `req-${randomBytes(4).toString('hex')}`];
      const codes = await Promise.all([codeOf(replica(first).destroy(first.ada, first.session, ca, {}, ids[0])), codeOf(replica(second).destroy(second.ada, second.session, ca, {}, ids[1]))]);
      expect([...codes].sort()).toEqual(['key_already_destroyed', 'ok']);
      const events = await Promise.all(ids.map(async (id) => (await first.w.audit.list({ requestId: id })).items.map((e) => [e.action, e.outcome, e.errorCode ?? null])));
      expect(events.flat().sort()).toEqual([['key.destroy', 'DENIED', 'key_already_destroyed'], ['key.destroy', 'SUCCESS', null]]);
      expect([(await first.w.keys.getByKeyid(ca)).destroyedAt !== null, await hsmHolds(hsmKeyId)]).toEqual([true, false]);
    });
  });
});
