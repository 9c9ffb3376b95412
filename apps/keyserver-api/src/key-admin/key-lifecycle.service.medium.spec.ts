// Medium tier: the key lifecycle with its real repositories on a real PostgreSQL and a real SoftHSM token
// (src/testing/medium.ts); certificates are checked with openssl.
import { randomBytes, X509Certificate } from 'node:crypto';
import { Permission } from '@keyserver/api-contract';
import type { Actor } from '@keyserver/authz';
import {
  AdminSessionRepository,
  AuditRepository,
  CrlRepository,
  DataAccessError,
  KeyLifecycleRepository,
  KeyLimitsRepository,
  KeyRepository,
  SubjectRepository,
  type AuditInput,
  type Db,
  type Key,
  type KeyVersion,
  type NewKeyVersion,
  type PendingKey,
} from '@keyserver/data-access';
import { HsmError } from '@keyserver/pkcs11-signer';
import { basicConstraintsExtension, buildName, keyUsageExtension, signCertificate, skiExtension, akiExtension, createRootCertificate, type HsmKeyInfo, type HsmSigner } from '@keyserver/pki';
import pino from 'pino';
import { AdminSessionGate } from '../admin-sessions/admin-session-gate';
import { Audited } from '../common/audited';
import { CrlService } from '../crl/crl.service';
import { KeysService } from '../keys/keys.service';
import { adminInSession, codeOf, mediumActor, mediumConfig, mediumDatabase, mediumOpenssl, mediumSigner } from '../testing/medium';
import { KeyAdminService } from './key-admin.service';
import { HsmKeyDisposer } from './hsm-key-disposer';
import { KeyLifecycleService } from './key-lifecycle.service';

const DAY = 86_400_000;

describe(`${KeyLifecycleService.name} (medium: real PostgreSQL and SoftHSM)`, () => {
  const pg = mediumDatabase('ks_api_medium_key_lifecycle');
  const hsm = mediumSigner('ks-key-lifecycle');
  const openssl = mediumOpenssl('ks-api-medium-key-lifecycle');
  let db: Db;
  let audit: AuditRepository;
  let keys: KeyRepository;
  let service: KeyLifecycleService;
  let admin: KeyAdminService;
  let ada: Actor;
  let session: string;

  const build = (lifecycle: KeyLifecycleRepository, signer: HsmSigner = hsm.signer) => {
    const config = mediumConfig();
    const logger = pino({ level: 'silent' });
    const views = new KeysService(keys, new KeyLimitsRepository(db), new KeyLifecycleRepository(db));
    const crls = new CrlService(new CrlRepository(db), signer, logger);
    const gate = new AdminSessionGate(new AdminSessionRepository(db));
    return {
      lifecycle: new KeyLifecycleService(keys, lifecycle, new SubjectRepository(db), signer, config, logger, gate, new Audited(audit), views, crls),
      admin: new KeyAdminService(keys, signer, config, logger, gate, new Audited(audit), views, crls),
    };
  };

  beforeAll(async () => {
    db = pg.db;
    audit = new AuditRepository(db);
    keys = new KeyRepository(db);
    ({ lifecycle: service, admin } = build(new KeyLifecycleRepository(db)));
    ({ admin: ada, session } = await adminInSession(db, Permission.KeysAdmin));
  });

  const requestId = () => `req-${randomBytes(4).toString('hex')}`;
  const newKeyid = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;
  const eventsOf = async (id: string) => (await audit.list({ requestId: id })).items.map((e) => [e.action, e.outcome, e.errorCode ?? null]);
  const selfSignedRoot = async (keyid = newKeyid('root')) => {
    await service.rootCeremony(ada, session, { keyid, algorithm: 'EC_P256', subject: { commonName: `Root ${keyid}` }, validityDays: 3650, mode: 'self-signed' }, requestId());
    return keyid;
  };

  describe('a ROOT gets a new version only from two administrators, like its ceremony', () => {
    let solo: Actor;
    let soloSession: string;

    beforeAll(async () => {
      // A session one administrator activated alone (a configuration with ADMIN_SESSION_APPROVALS=1).
      solo = await mediumActor(db, { natures: ['ADMINISTRATOR'] }, Permission.KeysAdmin);
      soloSession = (await new AdminSessionRepository(db).open({ description: 'alone', creatorId: solo.subjectId, requiredApprovals: 0, expiresAt: new Date(Date.now() + 3_600_000) })).id;
    });

    it.each([
      ['fail a rotation of the ROOT (a new self-signed key pair) by one administrator', 'rotate', 'key.rotate'],
      ['fail a renewal of the ROOT (a new self-signed certificate) by one administrator', 'renew', 'key.renew'],
    ] as const)('%s: ceremony_needs_two_administrators, audited, the ROOT unchanged', async (_n, kind, action) => {
      const root = await selfSignedRoot();
      const before = await keys.getByKeyid(root);
      const id = requestId();
      expect(await codeOf(service[kind](solo, soloSession, root, { validityDays: 365 }, id))).toBe('ceremony_needs_two_administrators');
      expect(await eventsOf(id)).toEqual([[action, 'DENIED', 'ceremony_needs_two_administrators']]);
      const after = await keys.getByKeyid(root);
      expect([after.currentVersion, after.hsmKeyId]).toEqual([before.currentVersion, before.hsmKeyId]);
    });

    it.each([
      ['ok a rotation of the ROOT in a session of two administrators', 'rotate'],
      ['ok a renewal of the ROOT in a session of two administrators', 'renew'],
    ] as const)('%s: a new version', async (_n, kind) => {
      const root = await selfSignedRoot();
      await service[kind](ada, session, root, { validityDays: 365 }, requestId());
      expect((await keys.getByKeyid(root)).currentVersion).toBe(2);
    });

    it('ok a CA rotated by one administrator (the ROOT rule is for the ROOT)', async () => {
      const root = await selfSignedRoot();
      const ca = newKeyid('ca');
      await admin.create(ada, session, { keyid: ca, type: 'CA', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 365, commonName: `CA ${ca}`, issuer: root }, requestId());
      await service.rotate(solo, soloSession, ca, { validityDays: 30 }, requestId());
      expect((await keys.getByKeyid(ca)).currentVersion).toBe(2);
    });
  });

  describe('an externally certified ROOT allows below it only the CA levels its whole chain allows', () => {
    const now = Date.now();
    type Anchor = { key: HsmKeyInfo; pem: string; name: string };
    let anchor: Anchor;

    /** An offline root whose pathLenConstraint is `pathLen`. */
    const offlineRoot = async (pathLen: number): Promise<Anchor> => {
      const name = `Offline Anchor ${randomBytes(3).toString('hex')}`;
      const key = await hsm.signer.generateKey({ algorithm: 'EC-P256', label: 'offline-anchor' });
      const pem = (await createRootCertificate(hsm.signer, key, { subject: { commonName: name }, notBefore: new Date(now - 2 * DAY), notAfter: new Date(now + 3650 * DAY), pathLen })).certificatePem;
      return { key, pem, name };
    };

    beforeAll(async () => {
      // pathLenConstraint 1: exactly one CA level (the online ROOT) may follow below it.
      anchor = await offlineRoot(1);
    });

    /** What an offline CA may well issue: CA:true, by default without a pathLenConstraint of its own. */
    const certifyExternally = async (key: HsmKeyInfo, commonName: string, by: Anchor = anchor, pathLen?: number) =>
      (
        await signCertificate(hsm.signer, by.key, {
          issuerName: buildName({ commonName: by.name }),
          subject: buildName({ commonName }),
          spki: key.spki,
          validity: { notBefore: new Date(now - DAY), notAfter: new Date(now + 3000 * DAY) },
          extensions: [basicConstraintsExtension(true, pathLen), keyUsageExtension(['keyCertSign', 'cRLSign']), skiExtension(key.spki), akiExtension(by.key.spki)],
        })
      ).certificatePem;

    const externalRoot = async (by: Anchor = anchor) => {
      const keyid = newKeyid('online');
      await service.rootCeremony(ada, session, { keyid, algorithm: 'EC_P256', subject: { commonName: `Online ${keyid}` }, validityDays: 3650, mode: 'external' }, requestId());
      const pending = await new KeyLifecycleRepository(db).findPending(keyid);
      const key = await hsm.signer.getKey(pending?.hsmKeyId ?? '');
      await service.importCertificate(ada, session, keyid, { certificate: await certifyExternally(key, `Online ${keyid}`, by), chain: [by.pem] }, requestId());
      return keyid;
    };

    it('ok a rotation certified with a tighter constraint: the key allows that from then on (no new CA level, no renewal of one)', async () => {
      const wide = await offlineRoot(2);
      const root = await externalRoot(wide);
      expect((await keys.getByKeyid(root)).pathLen).toBe(1);
      const ca = newKeyid('ca');
      await admin.create(ada, session, { keyid: ca, type: 'CA', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 365, commonName: `CA ${ca}`, issuer: root }, requestId());
      await service.rotate(ada, session, root, { validityDays: 3650 }, requestId());
      const pending = await new KeyLifecycleRepository(db).findPendingVersion(root);
      const key = await hsm.signer.getKey(pending?.hsmKeyId ?? '');
      await service.importCertificate(ada, session, root, { version: 2, certificate: await certifyExternally(key, `Online ${root}`, wide, 0), chain: [wide.pem] }, requestId());
      expect((await keys.getByKeyid(root)).pathLen).toBe(0);
      const id = requestId();
      expect(await codeOf(service.renew(ada, session, ca, { validityDays: 30 }, id))).toBe('issuer_not_usable');
      expect(await eventsOf(id)).toEqual([['key.renew', 'DENIED', 'issuer_not_usable']]);
      const other = newKeyid('ca');
      expect(await codeOf(admin.create(ada, session, { keyid: other, type: 'CA', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 365, commonName: `CA ${other}`, issuer: root }, requestId()))).toBe('issuer_not_usable');
    });

    it('ok the imported ROOT records the CA levels its chain leaves (none), not the absent constraint of its own certificate', async () => {
      const root = await externalRoot();
      expect((await keys.getByKeyid(root)).pathLen).toBe(0);
    });

    it('fail a CA under it: issuer_not_usable, refused and audited (openssl refuses what it would have signed)', async () => {
      const root = await externalRoot();
      const id = requestId();
      const ca = newKeyid('ca');
      expect(await codeOf(admin.create(ada, session, { keyid: ca, type: 'CA', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 365, commonName: `CA ${ca}`, issuer: root }, id))).toBe('issuer_not_usable');
      expect(await eventsOf(id)).toEqual([['key.create', 'DENIED', 'issuer_not_usable']]);
      expect(await keys.findByKeyid(ca)).toBeNull();
    });

    it('ok an FW key under it: its chain verifies with openssl up to the offline anchor', async () => {
      const root = await externalRoot();
      const fw = newKeyid('fw');
      const detail = await admin.create(ada, session, { keyid: fw, type: 'FW', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 365, commonName: `FW ${fw}`, issuer: root }, requestId());
      const [leaf, ...above] = detail.chain;
      const r = openssl.run('verify', '-x509_strict', '-purpose', 'any', '-CAfile', openssl.write(`${fw}-anchor.pem`, anchor.pem), '-untrusted', openssl.write(`${fw}-chain.pem`, above.slice(0, -1).join('')), openssl.write(`${fw}.pem`, leaf));
      expect(r).toEqual({ status: 0, out: expect.stringContaining(': OK') });
    });

    it('ok the CA levels openssl enforces: a CA with the ROOT\'s former (absent) constraint makes a chain openssl refuses', async () => {
      // What the Keyserver signed before the fix: a CA (pathLen 0) under the online ROOT and an end entity below it.
      const online = await hsm.signer.generateKey({ algorithm: 'EC-P256', label: 'online-probe' });
      const onlinePem = await certifyExternally(online, 'Online Probe');
      const sub = await hsm.signer.generateKey({ algorithm: 'EC-P256', label: 'sub-probe' });
      const subPem = (
        await signCertificate(hsm.signer, online, {
          issuerName: buildName({ commonName: 'Online Probe' }),
          subject: buildName({ commonName: 'Sub Probe' }),
          spki: sub.spki,
          validity: { notBefore: new Date(now - DAY + 1000), notAfter: new Date(now + 100 * DAY) },
          extensions: [basicConstraintsExtension(true, 0), keyUsageExtension(['keyCertSign', 'cRLSign']), skiExtension(sub.spki), akiExtension(online.spki)],
        })
      ).certificatePem;
      const leaf = await hsm.signer.generateKey({ algorithm: 'EC-P256', label: 'leaf-probe' });
      const leafPem = (
        await signCertificate(hsm.signer, sub, {
          issuerName: buildName({ commonName: 'Sub Probe' }),
          subject: buildName({ commonName: 'Leaf Probe' }),
          spki: leaf.spki,
          validity: { notBefore: new Date(now - DAY + 2000), notAfter: new Date(now + 50 * DAY) },
          extensions: [basicConstraintsExtension(false), keyUsageExtension(['digitalSignature']), skiExtension(leaf.spki), akiExtension(sub.spki)],
        })
      ).certificatePem;
      const r = openssl.run('verify', '-purpose', 'any', '-CAfile', openssl.write('probe-anchor.pem', anchor.pem), '-untrusted', openssl.write('probe-chain.pem', subPem + onlinePem), openssl.write('probe-leaf.pem', leafPem));
      expect(r.status).not.toBe(0);
      expect(r.out).toMatch(/path length constraint exceeded/);
    });
  });

  describe('time in certificates and CRLs (RFC 5280 4.1.2.5, 5.1.2.4-5)', () => {
    /** The time types of a DER file as openssl's asn1parse names them, in order. */
    const timeTypes = (name: string, der: Uint8Array) => openssl.run('asn1parse', '-inform', 'DER', '-in', openssl.write(name, der)).out.match(/(UTCTIME|GENERALIZEDTIME)\s*:\S+/g) ?? [];

    it('ok a ROOT valid a century: notBefore UTCTime, notAfter GeneralizedTime without a fraction; a CA ends no later than it; its final CRL\'s nextUpdate is GeneralizedTime', async () => {
      const root = newKeyid('root');
      await service.rootCeremony(ada, session, { keyid: root, algorithm: 'EC_P256', subject: { commonName: `Century ${root}` }, validityDays: 36_500, mode: 'self-signed' }, requestId());
      const stored = (await keys.findByKeyid(root)) as Key;
      const x = new X509Certificate(stored.certificatePem);
      expect(new Date(x.validTo).getTime()).toBe(stored.notAfter.getTime());
      expect(stored.notAfter.getUTCFullYear()).toBeGreaterThanOrEqual(2050);
      expect(timeTypes(`${root}.der`, x.raw)).toEqual([expect.stringMatching(/^UTCTIME\s*:\d{12}Z$/), expect.stringMatching(/^GENERALIZEDTIME\s*:\d{14}Z$/)]);

      // A CA may not outlive its issuer by a second: the day that would take it past the ROOT's notAfter is refused.
      const tooLong = newKeyid('ca');
      expect(await codeOf(admin.create(ada, session, { keyid: tooLong, type: 'CA', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 36_500, commonName: `CA ${tooLong}`, issuer: root }, requestId()))).toBe('validity_exceeds_root');
      const ca = newKeyid('ca');
      const detail = await admin.create(ada, session, { keyid: ca, type: 'CA', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 36_499, commonName: `CA ${ca}`, issuer: root }, requestId());
      const caCert = new X509Certificate(detail.chain[0]);
      expect(Date.parse(caCert.validTo)).toBeLessThanOrEqual(Date.parse(x.validTo));
      expect(Date.parse(caCert.validFrom)).toBeGreaterThanOrEqual(Date.parse(x.validFrom));
      expect(timeTypes(`${ca}.der`, caCert.raw)).toEqual([expect.stringMatching(/^UTCTIME/), expect.stringMatching(/^GENERALIZEDTIME\s*:\d{14}Z$/)]);
      expect(openssl.run('verify', '-x509_strict', '-CAfile', openssl.write(`${root}.pem`, stored.certificatePem), openssl.write(`${ca}.pem`, detail.chain[0]))).toEqual({ status: 0, out: expect.stringContaining(': OK') });

      const crls = new CrlService(new CrlRepository(db), hsm.signer, pino({ level: 'silent' }));
      const daily = await crls.current(root);
      // thisUpdate and nextUpdate (a day on) are in UTCTime's years: UTCTime, whole seconds, Z.
      expect(timeTypes(`${root}-daily.crl`, daily)).toEqual([expect.stringMatching(/^UTCTIME\s*:\d{12}Z$/), expect.stringMatching(/^UTCTIME\s*:\d{12}Z$/)]);
      await crls.finalCrls(root);
      const last = await crls.current(root);
      expect(timeTypes(`${root}-final.crl`, last)).toEqual([expect.stringMatching(/^UTCTIME\s*:\d{12}Z$/), expect.stringMatching(/^GENERALIZEDTIME\s*:\d{14}Z$/)]);
      const text = openssl.run('crl', '-inform', 'DER', '-noout', '-text', '-in', openssl.write(`${root}-final.crl`, last));
      expect(text.out).toContain(`Next Update: ${x.validTo}`);
      expect(openssl.run('crl', '-inform', 'DER', '-noout', '-in', openssl.write(`${root}-final2.crl`, last), '-CAfile', openssl.write(`${root}-anchor.pem`, stored.certificatePem))).toEqual({ status: 0, out: expect.stringContaining('verify OK') });
    });
  });

  describe('a change whose commit was not confirmed keeps the HSM key the database may name', () => {
    /** Commits, then loses the answer (a connection that broke during COMMIT's reply). */
    class LostAnswer extends KeyLifecycleRepository {
      override async addVersion(keyid: string, expectedVersion: number, v: NewKeyVersion, a: AuditInput): Promise<{ key: Key; version: KeyVersion }> {
        await super.addVersion(keyid, expectedVersion, v, a);
        throw new DataAccessError('database_unavailable', 'the connection broke before the commit was confirmed');
      }
    }

    it('ok a rotation that committed but failed to answer: the new current key pair stays in the HSM', async () => {
      const root = await selfSignedRoot();
      const lossy = build(new LostAnswer(db)).lifecycle;
      const id = requestId();
      expect(await codeOf(lossy.rotate(ada, session, root, { validityDays: 365 }, id))).toBe('database_unavailable');
      const key = await keys.getByKeyid(root);
      expect(key.currentVersion).toBe(2);
      const hsmKey = await hsm.signer.getKey(key.hsmKeyId);
      expect(hsmKey.hsmKeyId).toBe(key.hsmKeyId);
      const [failed] = (await audit.list({ requestId: id })).items.filter((e) => e.outcome !== 'SUCCESS');
      expect(failed?.details).toMatchObject({ hsmKeyId: key.hsmKeyId, hsmKey: 'kept: the database names it' });
    });

    it('ok a rotation refused before its commit: the key pair generated for it is destroyed', async () => {
      const root = await selfSignedRoot();
      const before = await keys.getByKeyid(root);
      // Another rotation commits in between: this one's version is stale (version_conflict).
      class Raced extends KeyLifecycleRepository {
        override async addVersion(keyid: string, expectedVersion: number, v: NewKeyVersion, a: AuditInput): Promise<{ key: Key; version: KeyVersion }> {
          await service.rotate(ada, session, root, { validityDays: 30 }, requestId());
          return super.addVersion(keyid, expectedVersion, v, a);
        }
      }
      const id = requestId();
      expect(await codeOf(build(new Raced(db)).lifecycle.rotate(ada, session, root, { validityDays: 365 }, id))).toBe('version_conflict');
      const [refused] = (await audit.list({ requestId: id })).items;
      expect(refused?.details).toMatchObject({ hsmKey: 'destroyed' });
      expect(await codeOf(hsm.signer.getKey(String((refused?.details as { hsmKeyId?: string }).hsmKeyId)))).toBe('key_not_found');
      expect((await keys.getByKeyid(root)).currentVersion).toBe(before.currentVersion + 1);
    });
  });

  describe('only a ROOT or CA issues keys (RFC 5280 4.2.1.9: keyCertSign and CA:true)', () => {
    it.each([
      ['fail a CA below a TSA key', 'TSA', 'CA'],
      ['fail an FW key below a TSA key', 'TSA', 'FW'],
      ['fail a CA below an FW key', 'FW', 'CA'],
    ] as const)('%s: issuer_not_usable before the HSM generates anything, audited, no key row', async (_n, issuerType, type) => {
      const root = await selfSignedRoot();
      const ee = newKeyid(issuerType.toLowerCase());
      await admin.create(ada, session, { keyid: ee, type: issuerType, algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 365, commonName: `${issuerType} ${ee}`, issuer: root }, requestId());
      let generated = 0;
      const counting: HsmSigner = Object.assign(Object.create(hsm.signer) as HsmSigner, {
        generateKey: (spec: Parameters<HsmSigner['generateKey']>[0]) => (generated++, hsm.signer.generateKey(spec)),
      });
      const { admin: countingAdmin } = build(new KeyLifecycleRepository(db), counting);
      const keyid = newKeyid('below');
      const id = requestId();
      expect(await codeOf(countingAdmin.create(ada, session, { keyid, type, algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 30, commonName: `Below ${keyid}`, issuer: ee }, id))).toBe('issuer_not_usable');
      expect(generated).toBe(0);
      expect(await eventsOf(id)).toEqual([['key.create', 'DENIED', 'issuer_not_usable']]);
      expect(await keys.findByKeyid(keyid)).toBeNull();
    });
  });

  describe('an external ceremony or rotation waiting for its certificate can be cancelled (ADR 0042)', () => {
    const now = Date.now();
    let anchorKey: HsmKeyInfo;
    let anchorPem: string;
    let solo: Actor;
    let soloSession: string;
    const lifecycle = () => new KeyLifecycleRepository(db);

    beforeAll(async () => {
      anchorKey = await hsm.signer.generateKey({ algorithm: 'EC-P256', label: 'cancel-anchor' });
      anchorPem = (await createRootCertificate(hsm.signer, anchorKey, { subject: { commonName: 'Cancel Anchor' }, notBefore: new Date(now - 2 * DAY), notAfter: new Date(now + 3650 * DAY) })).certificatePem;
      solo = await mediumActor(db, { natures: ['ADMINISTRATOR'] }, Permission.KeysAdmin);
      soloSession = (await new AdminSessionRepository(db).open({ description: 'alone', creatorId: solo.subjectId, requiredApprovals: 0, expiresAt: new Date(Date.now() + 3_600_000) })).id;
    });

    /** The offline root's certificate for the key pair `hsmKeyId` under `commonName`. */
    const certify = async (hsmKeyId: string, commonName: string) => {
      const key = await hsm.signer.getKey(hsmKeyId);
      return (
        await signCertificate(hsm.signer, anchorKey, {
          issuerName: buildName({ commonName: 'Cancel Anchor' }),
          subject: buildName({ commonName }),
          spki: key.spki,
          validity: { notBefore: new Date(now - DAY), notAfter: new Date(now + 3000 * DAY) },
          extensions: [basicConstraintsExtension(true), keyUsageExtension(['keyCertSign', 'cRLSign']), skiExtension(key.spki), akiExtension(anchorKey.spki)],
        })
      ).certificatePem;
    };
    /** An external ceremony left waiting for its certificate: its keyid and pending key. */
    const pendingRoot = async (): Promise<PendingKey> => {
      const keyid = newKeyid('pending');
      await service.rootCeremony(ada, session, { keyid, algorithm: 'EC_P256', subject: { commonName: `Online ${keyid}` }, validityDays: 3650, mode: 'external' }, requestId());
      const p = await lifecycle().findPending(keyid);
      if (!p) throw new Error('no pending key');
      return p;
    };
    const hsmHolds = async (hsmKeyId: string) => (await codeOf(hsm.signer.getKey(hsmKeyId))) === 'ok';
    /** The real token, whose destroyKey fails: the HSM went away between the cancellation's two steps. */
    const flaky = (): HsmSigner =>
      Object.assign(Object.create(hsm.signer) as HsmSigner, {
        destroyKey: async () => {
          throw new HsmError('hsm_unavailable', 'the token went away');
        },
      });
    const disposalOf = (hsmKeyId: string) => db.prisma.hsmKeyDisposal.findMany({ where: { hsmKeyId: hsmKeyId.toLowerCase() }, select: { keyid: true, attempts: true } });

    it('ok cancelling an external ceremony: the pending key ends, its key pair is destroyed, audited with both administrators; the keyid is free again', async () => {
      const p = await pendingRoot();
      expect(await codeOf(service.rootCeremony(ada, session, { keyid: p.keyid, algorithm: 'EC_P256', subject: { commonName: 'again' }, validityDays: 10, mode: 'external' }, requestId()))).toBe('key_exists');
      const fingerprint = (await service.pending(p.keyid)).spkiSha256;
      const id = requestId();
      const r = await service.cancelPending(ada, session, p.keyid, {}, id);
      expect(r).toMatchObject({ keyid: p.keyid, version: 1, spkiSha256: fingerprint, adminSessionId: session, keyPairDestroyed: true });
      expect(r.administrators).toHaveLength(2);
      expect(await lifecycle().findPending(p.keyid)).toBeNull();
      expect(await hsmHolds(p.hsmKeyId)).toBe(false);
      const events = (await audit.list({ requestId: id })).items;
      expect(events.map((e) => [e.action, e.outcome, e.keyid])).toEqual([['key.csr_cancel', 'SUCCESS', p.keyid]]);
      expect(events[0].details).toMatchObject({ version: 1, hsmKeyId: p.hsmKeyId, spkiSha256: fingerprint, pendingSince: p.createdAt.toISOString() });
      expect((events[0].details as { administrators: unknown[] }).administrators).toHaveLength(2);
      expect(await codeOf(service.pending(p.keyid))).toBe('not_awaiting_certificate');
      const again = requestId();
      expect(await codeOf(service.cancelPending(ada, session, p.keyid, {}, again))).toBe('not_awaiting_certificate');
      expect(await eventsOf(again)).toEqual([['key.csr_cancel', 'DENIED', 'not_awaiting_certificate']]);
      const fresh = await service.rootCeremony(ada, session, { keyid: p.keyid, algorithm: 'EC_P256', subject: { commonName: `Online ${p.keyid}` }, validityDays: 3650, mode: 'external' }, requestId());
      expect(fresh.state).toBe('AWAITING_CERTIFICATE');
    });

    it.each<[string, string, (p: PendingKey) => Promise<unknown>]>([
      ['fail in a session one administrator activated alone', 'ceremony_needs_two_administrators', (p) => service.cancelPending(solo, soloSession, p.keyid, {}, requestId())],
      ['fail without an admin session', 'admin_session_required', (p) => service.cancelPending(ada, undefined, p.keyid, {}, requestId())],
      ['fail a version that is not pending', 'not_awaiting_certificate', (p) => service.cancelPending(ada, session, p.keyid, { version: 2 }, requestId())],
      ['fail an unknown field', 'validation_failed', (p) => service.cancelPending(ada, session, p.keyid, { destroy: true }, requestId())],
    ])('%s: %s, audited; the ceremony still waits with its key pair', async (_n, code, act) => {
      const p = await pendingRoot();
      const before = (await audit.list({ keyid: p.keyid })).items.length;
      expect(await codeOf(act(p))).toBe(code);
      const [last] = (await audit.list({ keyid: p.keyid })).items.filter((e) => e.action === 'key.csr_cancel');
      expect([last?.outcome, last?.errorCode]).toEqual(['DENIED', code]);
      expect((await audit.list({ keyid: p.keyid })).items).toHaveLength(before + 1);
      expect((await lifecycle().findPending(p.keyid))?.hsmKeyId).toBe(p.hsmKeyId);
      expect(await hsmHolds(p.hsmKeyId)).toBe(true);
    });

    it.each([
      ['fail an unknown keyid', async () => newKeyid('nothing')],
      ['fail an ACTIVE key with nothing pending', async () => selfSignedRoot()],
    ])('%s: not_awaiting_certificate, audited', async (_n, keyid) => {
      const k = await keyid();
      const id = requestId();
      expect(await codeOf(service.cancelPending(ada, session, k, {}, id))).toBe('not_awaiting_certificate');
      expect(await eventsOf(id)).toEqual([['key.csr_cancel', 'DENIED', 'not_awaiting_certificate']]);
    });

    it('ok a cancellation the HSM failed after its decision: it stands at once (keyid free, import refused), its key pair is recorded; the disposer destroys it later', async () => {
      const p = await pendingRoot();
      const certificate = await certify(p.hsmKeyId, `Online ${p.keyid}`);
      const fingerprint = (await service.pending(p.keyid)).spkiSha256;
      const id = requestId();
      const r = await build(new KeyLifecycleRepository(db), flaky()).lifecycle.cancelPending(ada, session, p.keyid, {}, id);
      expect(r).toMatchObject({ keyid: p.keyid, version: 1, spkiSha256: fingerprint, keyPairDestroyed: false });
      expect(await eventsOf(id)).toEqual([['key.csr_cancel', 'SUCCESS', null]]);
      expect(await hsmHolds(p.hsmKeyId)).toBe(true);
      expect(await disposalOf(p.hsmKeyId)).toEqual([{ keyid: p.keyid, attempts: 1 }]);
      expect(await codeOf(service.importCertificate(ada, session, p.keyid, { certificate, chain: [anchorPem] }, requestId()))).toBe('not_awaiting_certificate');
      expect(await keys.findByKeyid(p.keyid)).toBeNull();
      expect(await codeOf(service.pending(p.keyid))).toBe('not_awaiting_certificate');
      expect(await codeOf(service.cancelPending(ada, session, p.keyid, {}, requestId()))).toBe('not_awaiting_certificate');
      // Interrupted between the two steps (a crash is the same: the row stays): the disposer of any replica finishes it.
      expect(await new HsmKeyDisposer(lifecycle(), hsm.signer, pino({ level: 'silent' })).sweep()).toBeGreaterThanOrEqual(1);
      expect(await hsmHolds(p.hsmKeyId)).toBe(false);
      expect(await disposalOf(p.hsmKeyId)).toEqual([]);
      const [disposed] = (await audit.list({ keyid: p.keyid })).items.filter((e) => e.action === 'key.hsm_dispose');
      expect([disposed?.outcome, disposed?.details]).toEqual(['SUCCESS', expect.objectContaining({ hsmKeyId: p.hsmKeyId, version: 1, failedAttempts: 1 })]);
      expect((await service.rootCeremony(ada, session, { keyid: p.keyid, algorithm: 'EC_P256', subject: { commonName: 'again' }, validityDays: 10, mode: 'external' }, requestId())).state).toBe('AWAITING_CERTIFICATE');
    });

    it('ok a cancellation of a pending rotation interrupted after its decision (the HSM failed): the key shows no pending version at once, the import is refused, a new rotation can follow', async () => {
      const p = await pendingRoot();
      await service.importCertificate(ada, session, p.keyid, { certificate: await certify(p.hsmKeyId, `Online ${p.keyid}`), chain: [anchorPem] }, requestId());
      await service.rotate(ada, session, p.keyid, { validityDays: 3650 }, requestId());
      const pv = await lifecycle().findPendingVersion(p.keyid);
      if (!pv) throw new Error('no pending version');
      const certificate = await certify(pv.hsmKeyId, `Online ${p.keyid}`);
      const id = requestId();
      expect(await codeOf(build(new KeyLifecycleRepository(db), flaky()).lifecycle.cancelPending(ada, session, p.keyid, { version: 2 }, id))).toBe('ok');
      expect(await eventsOf(id)).toEqual([['key.csr_cancel', 'SUCCESS', null]]);
      expect((await service.versions(ada, p.keyid)).pendingVersion).toBeNull();
      expect(await codeOf(service.pending(p.keyid))).toBe('not_awaiting_certificate');
      expect(await codeOf(service.importCertificate(ada, session, p.keyid, { certificate, chain: [anchorPem], version: 2 }, requestId()))).toBe('not_awaiting_certificate');
      expect((await keys.getByKeyid(p.keyid)).currentVersion).toBe(1);
      expect(await hsmHolds(pv.hsmKeyId)).toBe(true);
      await service.rotate(ada, session, p.keyid, { validityDays: 3650 }, requestId());
      const next = await lifecycle().findPendingVersion(p.keyid);
      expect([next?.version, next?.hsmKeyId === pv.hsmKeyId]).toEqual([2, false]);
      // The next cancellation (of any key) destroys what an earlier one left, after its own.
      expect(await service.cancelPending(ada, session, p.keyid, {}, requestId())).toMatchObject({ version: 2, keyPairDestroyed: true });
      expect([await hsmHolds(pv.hsmKeyId), await hsmHolds(next?.hsmKeyId ?? ''), await hsmHolds(p.hsmKeyId)]).toEqual([false, false, true]);
      expect(await disposalOf(pv.hsmKeyId)).toEqual([]);
    });

    it('ok a cancellation racing the import of the certificate: exactly one wins; never a ROOT without its key pair, never a destroyed key pair a ROOT names', async () => {
      // Both reach the database together (the import after verifying the certificate), or either after 10 s.
      let arrived = 0;
      let open = () => undefined as void;
      const both = new Promise<void>((r) => (open = r));
      const late = setTimeout(open, 10_000);
      const meet = async () => {
        if (++arrived === 2) {
          clearTimeout(late);
          open();
        }
        await both;
      };
      class Meeting extends KeyLifecycleRepository {
        override async activatePending(...a: Parameters<KeyLifecycleRepository['activatePending']>) {
          await meet();
          return super.activatePending(...a);
        }
        override async cancelPending(...a: Parameters<KeyLifecycleRepository['cancelPending']>) {
          await meet();
          return super.cancelPending(...a);
        }
      }
      const p = await pendingRoot();
      const certificate = await certify(p.hsmKeyId, `Online ${p.keyid}`);
      const racing = build(new Meeting(db)).lifecycle;
      const [imported, cancelled] = await Promise.all([
        codeOf(racing.importCertificate(ada, session, p.keyid, { certificate, chain: [anchorPem] }, requestId())),
        codeOf(racing.cancelPending(ada, session, p.keyid, {}, requestId())),
      ]);
      expect([imported, cancelled].sort()).toEqual(['not_awaiting_certificate', 'ok']);
      expect(await lifecycle().findPending(p.keyid)).toBeNull();
      const key = await keys.findByKeyid(p.keyid);
      if (imported === 'ok') {
        expect([key?.state, key?.hsmKeyId, await hsmHolds(p.hsmKeyId)]).toEqual(['ACTIVE', p.hsmKeyId, true]);
      } else {
        expect([key, await hsmHolds(p.hsmKeyId)]).toEqual([null, false]);
      }
      const successes = (await audit.list({ keyid: p.keyid })).items.filter((e) => ['key.certificate_import', 'key.csr_cancel'].includes(e.action) && e.outcome === 'SUCCESS');
      expect(successes).toHaveLength(1);
    });

    it('ok cancelling the pending rotation of an externally certified ROOT: the current version stays; a new rotation can follow', async () => {
      const p = await pendingRoot();
      await service.importCertificate(ada, session, p.keyid, { certificate: await certify(p.hsmKeyId, `Online ${p.keyid}`), chain: [anchorPem] }, requestId());
      await service.rotate(ada, session, p.keyid, { validityDays: 3650 }, requestId());
      const pv = await lifecycle().findPendingVersion(p.keyid);
      expect(pv?.version).toBe(2);
      expect(await codeOf(service.cancelPending(ada, session, p.keyid, { version: 3 }, requestId()))).toBe('not_awaiting_certificate');
      const id = requestId();
      expect(await service.cancelPending(ada, session, p.keyid, { version: 2 }, id)).toMatchObject({ keyid: p.keyid, version: 2 });
      expect((await audit.list({ requestId: id })).items[0]?.details).toMatchObject({ version: 2, hsmKeyId: pv?.hsmKeyId });
      expect(await lifecycle().findPendingVersion(p.keyid)).toBeNull();
      expect(await hsmHolds(pv?.hsmKeyId ?? '')).toBe(false);
      const key = await keys.getByKeyid(p.keyid);
      expect([key.state, key.currentVersion, key.hsmKeyId, await hsmHolds(p.hsmKeyId)]).toEqual(['ACTIVE', 1, p.hsmKeyId, true]);
      expect((await service.versions(ada, p.keyid)).pendingVersion).toBeNull();
      await service.rotate(ada, session, p.keyid, { validityDays: 3650 }, requestId());
      expect((await lifecycle().findPendingVersion(p.keyid))?.version).toBe(2);
    });
  });

  describe('the lifecycle decides under its locks (ADR 0045)', () => {
    // Each level a shorter validity and one CA level fewer than its issuer.
    const create = async (type: 'CA' | 'FW', issuer: string, validityDays: number, pathLen?: number) => {
      const keyid = newKeyid(type.toLowerCase());
      await admin.create(ada, session, { keyid, type, algorithm: 'EC_P256', requiredApprovers: 0, validityDays, commonName: `${type} ${keyid}`, issuer, ...(pathLen !== undefined ? { pathLen } : {}) }, requestId());
      return keyid;
    };

    it('fail destroying a CA whose ACTIVE key is two levels below: key_has_active_children, audited, nothing destroyed', async () => {
      const ca = await create('CA', await selfSignedRoot(), 365, 1);
      const sub = await create('CA', ca, 300, 0);
      const fw = await create('FW', sub, 200);
      await service.retire(ada, session, sub, {}, requestId());
      await service.retire(ada, session, ca, {}, requestId());
      const id = requestId();
      expect(await codeOf(service.destroy(ada, session, ca, {}, id))).toBe('key_has_active_children');
      expect(await eventsOf(id)).toEqual([['key.destroy', 'DENIED', 'key_has_active_children']]);
      const key = await keys.getByKeyid(ca);
      expect(key.destroyedAt).toBeNull();
      expect((await hsm.signer.getKey(key.hsmKeyId)).hsmKeyId).toBe(key.hsmKeyId);
      expect((await keys.getByKeyid(fw)).state).toBe('ACTIVE');
    });

    it('fail a rotation whose issuer is retired before its version commits: issuer_not_usable, audited, the key pair generated for it destroyed', async () => {
      const ca = await create('CA', await selfSignedRoot(), 365, 0);
      const fw = await create('FW', ca, 300);
      class Raced extends KeyLifecycleRepository {
        override async addVersion(keyid: string, expectedVersion: number, v: NewKeyVersion, a: AuditInput): Promise<{ key: Key; version: KeyVersion }> {
          await service.retire(ada, session, ca, {}, requestId());
          return super.addVersion(keyid, expectedVersion, v, a);
        }
      }
      const id = requestId();
      expect(await codeOf(build(new Raced(db)).lifecycle.rotate(ada, session, fw, { validityDays: 30 }, id))).toBe('issuer_not_usable');
      const [refused] = (await audit.list({ requestId: id })).items;
      expect([refused?.action, refused?.outcome, refused?.errorCode, (refused?.details as { hsmKey?: string }).hsmKey]).toEqual(['key.rotate', 'DENIED', 'issuer_not_usable', 'destroyed']);
      expect(await codeOf(hsm.signer.getKey(String((refused?.details as { hsmKeyId?: string }).hsmKeyId)))).toBe('key_not_found');
      expect((await keys.getByKeyid(fw)).currentVersion).toBe(1);
    });
  });
});
