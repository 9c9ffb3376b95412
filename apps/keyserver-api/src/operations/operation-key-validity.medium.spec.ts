// Medium tier: an operation's window against its keys' certificates, on a real PostgreSQL and a real SoftHSM token
// (the external chain above a ROOT is a certificate the HSM signed). ADR 0017 addendum 2026-12-07 (session 25).
import { randomBytes } from 'node:crypto';
import { Permission } from '@keyserver/api-contract';
import { AdminSessionRepository, AuditRepository, CrlRepository, KeyLifecycleRepository, KeyLimitsRepository, KeyRepository, OperationRepository, SubjectRepository, type Db } from '@keyserver/data-access';
import { createRootCertificate } from '@keyserver/pki';
import pino from 'pino';
import { AdminSessionGate } from '../admin-sessions/admin-session-gate';
import { Audited } from '../common/audited';
import { CrlService } from '../crl/crl.service';
import { KeyAdminService } from '../key-admin/key-admin.service';
import { KeyLifecycleService } from '../key-admin/key-lifecycle.service';
import { KeysService } from '../keys/keys.service';
import { adminInSession, codeOf, mediumActor, mediumConfig, mediumDatabase, mediumSigner, seedKey } from '../testing/medium';
import { OperationsService } from './operations.service';

const HOUR = 3_600_000;
const CODE = 'window_outside_certificate';

/** The same instant written with another UTC offset (what a client in that zone may send). */
function inZone(at: Date, offsetMinutes: number): string {
  const local = new Date(at.getTime() + offsetMinutes * 60_000).toISOString().slice(0, -1);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

describe(`${OperationsService.name} and the validity of its keys' certificates (medium: real PostgreSQL, SoftHSM)`, () => {
  const pg = mediumDatabase('ks_api_medium_op_validity');
  const hsm = mediumSigner('op-validity');
  let db: Db;
  let operations: OperationRepository;
  let audit: AuditRepository;
  let service: OperationsService;

  beforeAll(() => {
    db = pg.db;
    operations = new OperationRepository(db);
    audit = new AuditRepository(db);
    service = new OperationsService(operations, new SubjectRepository(db), new KeyLimitsRepository(db), new Audited(audit));
  });

  /** A key whose certificate runs from `notBefore` to `notAfter`, and an orderer who may order it. */
  async function keyValid(notBefore: Date, notAfter: Date, opts: { requiredApprovers?: number; parentKeyid?: string } = {}) {
    const keyid = await seedKey(db, { requiredApprovers: opts.requiredApprovers ?? 0, parentKeyid: opts.parentKeyid, certificate: { pem: '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n', serialHex: randomBytes(8).toString('hex'), notBefore, notAfter } });
    return keyid;
  }

  const orderer = (keyids: string[]) => mediumActor(db, { natures: ['ORDERER'], grants: ['ORDER'], keyids }, Permission.OperationsCreate);

  /** Creates the operation; returns its code ('ok' or the refusal), after checking a refusal left nothing but a DENIED event. */
  async function create(keyids: string[], validFrom: string, validTo: string): Promise<string> {
    const requestId = `req-${randomBytes(6).toString('hex')}`;
    const before = (await operations.list({ keyid: keyids[0] })).items.length;
    const code = await codeOf(service.create(await orderer(keyids), { description: 'validity', validFrom, validTo, digests: [], keys: keyids.map((keyid) => ({ keyid, usages: 1 })) }, requestId));
    if (code !== 'ok') {
      expect((await operations.list({ keyid: keyids[0] })).items.length).toBe(before);
      const events = (await audit.list({ action: 'operation.create', requestId })).items;
      expect(events.map((e) => [e.outcome, e.errorCode])).toEqual([['DENIED', code]]);
    }
    return code;
  }

  describe('the end of the window against notAfter (validTo is exclusive, as notAfter is for signing)', () => {
    const notAfter = new Date(Date.now() + 2 * HOUR);
    let keyid: string;
    beforeAll(async () => {
      keyid = await keyValid(new Date(Date.now() - 24 * HOUR), notAfter);
    });
    const from = () => new Date(Date.now() - 60_000).toISOString();
    it.each([
      ['ok validTo 1 ms before notAfter', () => new Date(notAfter.getTime() - 1).toISOString(), 'ok'],
      ['ok validTo exactly notAfter', () => notAfter.toISOString(), 'ok'],
      ['ok validTo exactly notAfter, written at +05:30', () => inZone(notAfter, 330), 'ok'],
      ['ok validTo exactly notAfter, written at -08:00', () => inZone(notAfter, -480), 'ok'],
      ['fail validTo 1 ms after notAfter', () => new Date(notAfter.getTime() + 1).toISOString(), CODE],
      ['fail validTo 1 ms after notAfter, written at +14:00', () => inZone(new Date(notAfter.getTime() + 1), 840), CODE],
      ['fail validTo 1 ms after notAfter, written at -11:00', () => inZone(new Date(notAfter.getTime() + 1), -660), CODE],
      ['fail validTo a day after notAfter', () => new Date(notAfter.getTime() + 24 * HOUR).toISOString(), CODE],
    ])('%s', async (_n, validTo, expected) => {
      expect(await create([keyid], from(), validTo())).toBe(expected);
    });
  });

  describe('the start of the window against notBefore (a certificate not yet valid)', () => {
    const notBefore = new Date(Date.now() + 2 * HOUR);
    let keyid: string;
    beforeAll(async () => {
      keyid = await keyValid(notBefore, new Date(notBefore.getTime() + 48 * HOUR));
    });
    const to = () => new Date(notBefore.getTime() + HOUR).toISOString();
    it.each([
      ['ok validFrom exactly notBefore', () => notBefore.toISOString(), 'ok'],
      ['ok validFrom 1 ms after notBefore', () => new Date(notBefore.getTime() + 1).toISOString(), 'ok'],
      ['ok validFrom exactly notBefore, written at +09:00', () => inZone(notBefore, 540), 'ok'],
      ['fail validFrom 1 ms before notBefore', () => new Date(notBefore.getTime() - 1).toISOString(), CODE],
      ['fail validFrom 1 ms before notBefore, written at -03:30', () => inZone(new Date(notBefore.getTime() - 1), -210), CODE],
      ['fail validFrom now (the certificate starts in two hours)', () => new Date().toISOString(), CODE],
    ])('%s', async (_n, validFrom, expected) => {
      expect(await create([keyid], validFrom(), to())).toBe(expected);
    });

    it('ok a backdated start before notBefore once notBefore has passed: only the window still ahead can be used', async () => {
      const fresh = await keyValid(new Date(Date.now() - 10_000), new Date(Date.now() + 24 * HOUR));
      expect(await create([fresh], new Date(Date.now() - 120_000).toISOString(), new Date(Date.now() + HOUR).toISOString())).toBe('ok');
    });
  });

  it('fail an operation of two keys when the second key\'s certificate ends inside the window: the refusal names that key, nothing is stored', async () => {
    const long = await keyValid(new Date(Date.now() - HOUR), new Date(Date.now() + 48 * HOUR));
    const short = await keyValid(new Date(Date.now() - HOUR), new Date(Date.now() + HOUR));
    const requestId = `req-${randomBytes(6).toString('hex')}`;
    const refused = service.create(await orderer([long, short]), { description: 'two keys', validFrom: new Date().toISOString(), validTo: new Date(Date.now() + 2 * HOUR).toISOString(), digests: [], keys: [{ keyid: long, usages: 1 }, { keyid: short, usages: 1 }] }, requestId);
    await expect(refused).rejects.toMatchObject({ code: CODE, status: 409, detail: expect.stringContaining(short) });
    expect((await operations.list({ keyid: long })).items).toEqual([]);
  });

  it('ok once the key\'s certificate was renewed to cover the window (the key row describes the newest version)', async () => {
    const keyid = await keyValid(new Date(Date.now() - HOUR), new Date(Date.now() + HOUR));
    const validTo = new Date(Date.now() + 3 * HOUR).toISOString();
    expect(await create([keyid], new Date().toISOString(), validTo)).toBe(CODE);
    await db.prisma.key.update({ where: { keyid }, data: { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 365 * 24 * HOUR), currentVersion: 2 } });
    expect(await create([keyid], new Date().toISOString(), validTo)).toBe('ok');
  });

  it('fail a window past the notAfter of a certificate in the external chain above the ROOT, when that issuer expires before the key', async () => {
    const whole = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);
    const anchorKey = await hsm.signer.generateKey({ algorithm: 'EC-P256', label: `op-validity-anchor-${randomBytes(3).toString('hex')}` });
    const anchorNotAfter = whole(Date.now() + 3 * HOUR);
    const anchor = await createRootCertificate(hsm.signer, anchorKey, { subject: { commonName: 'Offline anchor' }, notBefore: whole(Date.now() - 24 * HOUR), notAfter: anchorNotAfter });
    const root = await seedKey(db, { type: 'ROOT', prefix: 'root' });
    await db.prisma.key.update({ where: { keyid: root }, data: { issuerChainPem: anchor.certificatePem } });
    const ca = await seedKey(db, { type: 'CA', prefix: 'ca', parentKeyid: root });
    const fw = await keyValid(new Date(Date.now() - HOUR), new Date(Date.now() + 300 * 24 * HOUR), { parentKeyid: ca });
    const from = new Date().toISOString();
    expect(await create([fw], from, anchorNotAfter.toISOString())).toBe('ok');
    expect(await create([fw], from, new Date(anchorNotAfter.getTime() + 1).toISOString())).toBe(CODE);
  });

  describe('at the approval (the certificate may have changed since the operation was ordered)', () => {
    it('fail approving a window the key\'s current certificate no longer covers (re-issued with an earlier notAfter): 409, audited DENIED, nothing counted', async () => {
      const keyid = await keyValid(new Date(Date.now() - HOUR), new Date(Date.now() + 48 * HOUR), { requiredApprovers: 1 });
      const op = await service.create(await orderer([keyid]), { description: 'approve later', validFrom: new Date().toISOString(), validTo: new Date(Date.now() + 6 * HOUR).toISOString(), digests: [], keys: [{ keyid, usages: 1 }] }, 'req-create');
      await db.prisma.key.update({ where: { keyid }, data: { notAfter: new Date(Date.now() + 2 * HOUR), currentVersion: 2 } });
      const approver = await mediumActor(db, { natures: ['APPROVER'], grants: ['APPROVE'], keyids: [keyid] }, Permission.OperationsApprove);
      const requestId = `req-${randomBytes(6).toString('hex')}`;
      await expect(service.approve(approver, op.id, requestId)).rejects.toMatchObject({ code: CODE, status: 409, detail: expect.stringContaining(keyid) });
      const events = (await audit.list({ action: 'operation.approve', requestId })).items;
      expect(events.map((e) => [e.outcome, e.errorCode, e.operationId])).toEqual([['DENIED', CODE, op.id]]);
      const after = await operations.get(op.id);
      expect([after.state, after.keys[0].approverIds]).toEqual(['REQUESTED', []]);
    });

    it('ok approving once the certificate was renewed to cover the window again', async () => {
      const keyid = await keyValid(new Date(Date.now() - HOUR), new Date(Date.now() + 48 * HOUR), { requiredApprovers: 1 });
      const op = await service.create(await orderer([keyid]), { description: 'approve after renewal', validFrom: new Date().toISOString(), validTo: new Date(Date.now() + 6 * HOUR).toISOString(), digests: [], keys: [{ keyid, usages: 1 }] }, 'req-create');
      await db.prisma.key.update({ where: { keyid }, data: { notAfter: new Date(Date.now() + 2 * HOUR), currentVersion: 2 } });
      await db.prisma.key.update({ where: { keyid }, data: { notAfter: new Date(Date.now() + 96 * HOUR), currentVersion: 3 } });
      const approver = await mediumActor(db, { natures: ['APPROVER'], grants: ['APPROVE'], keyids: [keyid] }, Permission.OperationsApprove);
      expect((await service.approve(approver, op.id, 'req-approve')).state).toBe('APPROVED');
    });
  });

  describe('with real renewals (KeyAdminService and KeyLifecycleService on SoftHSM)', () => {
    let admin: KeyAdminService;
    let lifecycle: KeyLifecycleService;
    let session: string;
    let root: string;
    let ada: Awaited<ReturnType<typeof adminInSession>>['admin'];
    const DAY = 24 * HOUR;

    beforeAll(async () => {
      const keys = new KeyRepository(db);
      const versions = new KeyLifecycleRepository(db);
      const config = mediumConfig();
      const logger = pino({ level: 'silent' });
      const views = new KeysService(keys, new KeyLimitsRepository(db), versions);
      const crls = new CrlService(new CrlRepository(db), hsm.signer, logger);
      const gate = new AdminSessionGate(new AdminSessionRepository(db));
      admin = new KeyAdminService(keys, hsm.signer, config, logger, gate, new Audited(audit), views, crls);
      lifecycle = new KeyLifecycleService(keys, versions, new SubjectRepository(db), hsm.signer, config, logger, gate, new Audited(audit), views, crls);
      ({ admin: ada, session } = await adminInSession(db, Permission.KeysAdmin));
      root = `root-${randomBytes(4).toString('hex')}`;
      await lifecycle.rootCeremony(ada, session, { keyid: root, algorithm: 'EC_P256', subject: { commonName: 'Validity Root' }, validityDays: 3650, mode: 'self-signed' }, 'req-root');
    });

    it('fail, then ok after a renewal, then fail at the approval after a renewal to a shorter validity: the window is judged against the current certificate each time', async () => {
      const keyid = `ca-${randomBytes(4).toString('hex')}`;
      await admin.create(ada, session, { keyid, type: 'CA', algorithm: 'EC_P256', requiredApprovers: 1, validityDays: 1, commonName: `CA ${keyid}`, issuer: root }, 'req-ca');
      const window = { validFrom: new Date().toISOString(), validTo: new Date(Date.now() + 2 * DAY).toISOString() };
      expect(await create([keyid], window.validFrom, window.validTo)).toBe(CODE);

      await lifecycle.renew(ada, session, keyid, { validityDays: 30 }, 'req-renew-long');
      const op = await service.create(await orderer([keyid]), { description: 'after renewal', ...window, digests: [], keys: [{ keyid, usages: 1 }] }, 'req-op');

      await lifecycle.renew(ada, session, keyid, { validityDays: 1 }, 'req-renew-short');
      const approver = await mediumActor(db, { natures: ['APPROVER'], grants: ['APPROVE'], keyids: [keyid] }, Permission.OperationsApprove);
      expect(await codeOf(service.approve(approver, op.id, `req-${randomBytes(4).toString('hex')}`))).toBe(CODE);
      expect((await operations.get(op.id)).keys[0].approverIds).toEqual([]);

      await lifecycle.rotate(ada, session, keyid, { validityDays: 10 }, 'req-rotate');
      expect((await service.approve(approver, op.id, `req-${randomBytes(4).toString('hex')}`)).state).toBe('APPROVED');
    });

    it.each([
      ['fail approving an operation whose key was retired since the order: 409 key_revoked (as a new order is), nothing counted', 'retire'],
      ['fail approving an operation whose key was revoked since the order: 409 key_revoked, nothing counted', 'revoke'],
    ] as const)('%s', async (_n, change) => {
      const keyid = `ca-${randomBytes(4).toString('hex')}`;
      await admin.create(ada, session, { keyid, type: 'CA', algorithm: 'EC_P256', requiredApprovers: 1, validityDays: 30, commonName: `CA ${keyid}`, issuer: root }, 'req-ca');
      const op = await service.create(await orderer([keyid]), { description: 'key leaves service', validFrom: new Date().toISOString(), validTo: new Date(Date.now() + HOUR).toISOString(), digests: [], keys: [{ keyid, usages: 1 }] }, 'req-op');
      if (change === 'retire') await lifecycle.retire(ada, session, keyid, {}, 'req-retire');
      else await admin.revoke(ada, session, keyid, { reason: 'keyCompromise' }, 'req-revoke');
      const approver = await mediumActor(db, { natures: ['APPROVER'], grants: ['APPROVE'], keyids: [keyid] }, Permission.OperationsApprove);
      const requestId = `req-${randomBytes(4).toString('hex')}`;
      expect(await codeOf(service.approve(approver, op.id, requestId))).toBe('key_revoked');
      expect((await audit.list({ action: 'operation.approve', requestId })).items.map((e) => [e.outcome, e.errorCode])).toEqual([['DENIED', 'key_revoked']]);
      const after = await operations.get(op.id);
      expect([after.state, after.keys[0].approverIds]).toEqual(['REQUESTED', []]);
    });
  });
});
