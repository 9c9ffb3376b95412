// Medium tier: an externally certified ROOT whose offline intermediate expires before it (ADR 0020 addendum, session 25),
// on a real PostgreSQL and a real SoftHSM token; the certificates issued below it are checked with openssl.
import { randomBytes, X509Certificate } from 'node:crypto';
import { Permission } from '@keyserver/api-contract';
import type { Actor } from '@keyserver/authz';
import { AdminSessionRepository, AuditRepository, CrlRepository, KeyLifecycleRepository, KeyLimitsRepository, KeyRepository, SubjectRepository, TimestampRepository, type Db } from '@keyserver/data-access';
import { akiExtension, basicConstraintsExtension, buildName, createCaCertificate, createRootCertificate, keyUsageExtension, signCertificate, skiExtension, type HsmKeyInfo } from '@keyserver/pki';
import pino from 'pino';
import { AdminSessionGate } from '../admin-sessions/admin-session-gate';
import { Audited } from '../common/audited';
import { CrlService } from '../crl/crl.service';
import { KeysService } from '../keys/keys.service';
import { usableKey } from '../certificates/key-chain';
import { adminInSession, codeOf, mediumConfig, mediumDatabase, mediumOpenssl, mediumSigner, seedKey } from '../testing/medium';
import { TsaService } from '../tsa/tsa.service';
import { EdgeServices } from '../edge/edge';
import { KeyAdminService } from './key-admin.service';
import { KeyLifecycleService } from './key-lifecycle.service';

const DAY = 86_400_000;
const whole = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);

describe(`${KeyAdminService.name} and ${KeyLifecycleService.name} below a ROOT whose external chain ends first (medium: real PostgreSQL and SoftHSM)`, () => {
  const pg = mediumDatabase('ks_api_medium_external_chain');
  const hsm = mediumSigner('ks-external-chain');
  const openssl = mediumOpenssl('ks-api-medium-external-chain');
  const now = Date.now();
  // The offline intermediate ends in 10 days; the online ROOT it certified runs for 3000 (RFC 5280 allows that).
  const intermediateEnd = whole(now + 10 * DAY);
  let db: Db;
  let keys: KeyRepository;
  let audit: AuditRepository;
  let lifecycle: KeyLifecycleService;
  let admin: KeyAdminService;
  let ada: Actor;
  let session: string;
  let anchorPem: string;
  let intermediatePem: string;
  let root: string;

  const requestId = () => `req-${randomBytes(4).toString('hex')}`;
  const newKeyid = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;
  const eventsOf = async (id: string) => (await audit.list({ requestId: id })).items.map((e) => [e.action, e.outcome, e.errorCode ?? null]);

  /** A CA certificate for `spki` signed by `by` (no pathLenConstraint, as an offline CA may well issue it). */
  const certify = async (by: { key: HsmKeyInfo; name: string }, commonName: string, spki: Uint8Array, notBefore: Date, notAfter: Date) =>
    (
      await signCertificate(hsm.signer, by.key, {
        issuerName: buildName({ commonName: by.name }),
        subject: buildName({ commonName }),
        spki,
        validity: { notBefore, notAfter },
        extensions: [basicConstraintsExtension(true), keyUsageExtension(['keyCertSign', 'cRLSign']), skiExtension(spki), akiExtension(by.key.spki)],
      })
    ).certificatePem;

  beforeAll(async () => {
    db = pg.db;
    keys = new KeyRepository(db);
    audit = new AuditRepository(db);
    const config = mediumConfig();
    const logger = pino({ level: 'silent' });
    const views = new KeysService(keys, new KeyLimitsRepository(db), new KeyLifecycleRepository(db));
    const crls = new CrlService(new CrlRepository(db), hsm.signer, logger);
    const gate = new AdminSessionGate(new AdminSessionRepository(db));
    lifecycle = new KeyLifecycleService(keys, new KeyLifecycleRepository(db), new SubjectRepository(db), hsm.signer, config, logger, gate, new Audited(audit), views, crls);
    admin = new KeyAdminService(keys, hsm.signer, config, logger, gate, new Audited(audit), views, crls);
    ({ admin: ada, session } = await adminInSession(db, Permission.KeysAdmin));

    const tag = randomBytes(3).toString('hex');
    const anchor = { key: await hsm.signer.generateKey({ algorithm: 'EC-P256', label: `ext-anchor-${tag}` }), name: `Offline Anchor ${tag}` };
    anchorPem = (await createRootCertificate(hsm.signer, anchor.key, { subject: { commonName: anchor.name }, notBefore: whole(now - 2 * DAY), notAfter: whole(now + 3650 * DAY) })).certificatePem;
    const intermediate = { key: await hsm.signer.generateKey({ algorithm: 'EC-P256', label: `ext-intermediate-${tag}` }), name: `Offline Intermediate ${tag}` };
    intermediatePem = await certify(anchor, intermediate.name, intermediate.key.spki, whole(now - 2 * DAY), intermediateEnd);

    root = newKeyid('online');
    await lifecycle.rootCeremony(ada, session, { keyid: root, algorithm: 'EC_P256', subject: { commonName: `Online ${root}` }, validityDays: 3650, mode: 'external' }, requestId());
    const pending = await new KeyLifecycleRepository(db).findPending(root);
    const rootKey = await hsm.signer.getKey(pending?.hsmKeyId ?? '');
    // Decision (3): accepted, the ROOT's certificate outliving its issuer; everything below is narrowed to the chain.
    await lifecycle.importCertificate(ada, session, root, { certificate: await certify(intermediate, `Online ${root}`, rootKey.spki, whole(now - DAY), whole(now + 3000 * DAY)), chain: [intermediatePem, anchorPem] }, requestId());
  });

  it('ok the import of a ROOT certificate that outlives its own issuer: accepted, the certificate as issued (narrowed where it is used)', async () => {
    const key = await keys.getByKeyid(root);
    expect(key.state).toBe('ACTIVE');
    expect(key.notAfter.getTime()).toBe(whole(now + 3000 * DAY).getTime());
    expect(new X509Certificate(intermediatePem).validToDate.getTime()).toBe(intermediateEnd.getTime());
  });

  describe('a key created below the ROOT may not outlive the external chain above it', () => {
    it.each([
      ['fail a CA for 30 days (past the intermediate)', 'CA', 30, 'validity_exceeds_root'],
      ['fail an FW key for 30 days (past the intermediate)', 'FW', 30, 'validity_exceeds_root'],
      ['fail a TSA key for 30 days (past the intermediate)', 'TSA', 30, 'validity_exceeds_root'],
      ['fail a CA for 11 days (one day past the intermediate)', 'CA', 11, 'validity_exceeds_root'],
      ['ok a CA for 10 days (it starts 60 s back, so it ends 60 s before the intermediate)', 'CA', 10, 'ok'],
      ['ok a CA for 9 days (inside the intermediate)', 'CA', 9, 'ok'],
      ['ok an FW key for 9 days', 'FW', 9, 'ok'],
      ['ok a TSA key for 9 days', 'TSA', 9, 'ok'],
    ] as const)('%s', async (_n, type, validityDays, expected) => {
      const keyid = newKeyid(type.toLowerCase());
      const id = requestId();
      const code = await codeOf(admin.create(ada, session, { keyid, type, algorithm: 'EC_P256', requiredApprovers: 0, validityDays, commonName: `${type} ${keyid}`, issuer: root }, id));
      expect(code).toBe(expected);
      if (expected !== 'ok') {
        expect(await keys.findByKeyid(keyid)).toBeNull();
        expect(await eventsOf(id)).toEqual([['key.create', 'DENIED', expected]]);
      }
    });

    it('fail an FW key below a CA of the ROOT past the intermediate, the CA certified before this check (its own certificate outlives the intermediate)', async () => {
      const rootRow = await keys.getByKeyid(root);
      const caKey = await hsm.signer.generateKey({ algorithm: 'EC-P256', label: `ext-legacy-ca-${randomBytes(3).toString('hex')}` });
      const [notBefore, notAfter] = [whole(now - DAY + 1000), whole(now + 300 * DAY)];
      const cert = await createCaCertificate(hsm.signer, { key: await hsm.signer.getKey(rootRow.hsmKeyId), certificate: rootRow.certificatePem }, caKey, { subject: { commonName: 'Legacy CA' }, notBefore, notAfter, pathLen: 0 });
      const ca = await seedKey(db, { type: 'CA', prefix: 'ca', hsmKeyId: caKey.hsmKeyId, parentKeyid: root, certificate: { pem: cert.certificatePem, serialHex: cert.serialHex, notBefore, notAfter } });
      const fw = newKeyid('fw');
      const id = requestId();
      expect(await codeOf(admin.create(ada, session, { keyid: fw, type: 'FW', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 30, commonName: `FW ${fw}`, issuer: ca }, id))).toBe('validity_exceeds_root');
      expect(await eventsOf(id)).toEqual([['key.create', 'DENIED', 'validity_exceeds_root']]);
      expect(await codeOf(admin.create(ada, session, { keyid: fw, type: 'FW', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 9, commonName: `FW ${fw}`, issuer: ca }, requestId()))).toBe('ok');
    });

    it('ok what is issued inside the chain verifies with openssl up to the anchor, until the intermediate ends and not after', async () => {
      const fw = newKeyid('fw');
      await admin.create(ada, session, { keyid: fw, type: 'FW', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 10, commonName: `FW ${fw}`, issuer: root }, requestId());
      const leaf = openssl.write(`${fw}.pem`, (await keys.getByKeyid(fw)).certificatePem);
      const untrusted = openssl.write(`${fw}-chain.pem`, (await keys.getByKeyid(root)).certificatePem + intermediatePem);
      const anchorFile = openssl.write('anchor.pem', anchorPem);
      const at = (ms: number) => openssl.run('verify', '-x509_strict', '-attime', String(Math.floor(ms / 1000)), '-CAfile', anchorFile, '-untrusted', untrusted, leaf);
      const fwEnd = (await keys.getByKeyid(fw)).notAfter.getTime();
      expect(fwEnd).toBeLessThanOrEqual(intermediateEnd.getTime());
      expect(at(now + 60_000).status).toBe(0);
      expect(at(fwEnd - 1000).status).toBe(0);
      expect(at(intermediateEnd.getTime() + 1000).status).not.toBe(0);
      // The ROOT's own certificate runs for years, yet no path through the intermediate is valid once it has ended.
      const rootLeaf = openssl.write(`${root}.pem`, (await keys.getByKeyid(root)).certificatePem);
      const intermediateFile = openssl.write('intermediate.pem', intermediatePem);
      const rootAt = (ms: number) => openssl.run('verify', '-x509_strict', '-attime', String(Math.floor(ms / 1000)), '-CAfile', anchorFile, '-untrusted', intermediateFile, rootLeaf);
      expect(rootAt(intermediateEnd.getTime() - 1000).status).toBe(0);
      expect(rootAt(intermediateEnd.getTime() + 1000).out).toContain('certificate has expired');
    });
  });

  describe('a new version of a key below the ROOT may not outlive the external chain', () => {
    it.each([
      ['fail a renewal for 30 days', 'renew', 30, 'validity_exceeds_root'],
      ['fail a rotation for 30 days', 'rotate', 30, 'validity_exceeds_root'],
      ['ok a renewal for 5 days', 'renew', 5, 'ok'],
      ['ok a rotation for 5 days', 'rotate', 5, 'ok'],
    ] as const)('%s', async (_n, kind, validityDays, expected) => {
      const ca = newKeyid('ca');
      await admin.create(ada, session, { keyid: ca, type: 'CA', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 9, commonName: `CA ${ca}`, issuer: root, pathLen: 0 }, requestId());
      const id = requestId();
      expect(await codeOf(lifecycle[kind](ada, session, ca, { validityDays }, id))).toBe(expected);
      expect((await keys.getByKeyid(ca)).currentVersion).toBe(expected === 'ok' ? 2 : 1);
      if (expected !== 'ok') expect(await eventsOf(id)).toEqual([[kind === 'renew' ? 'key.renew' : 'key.rotate', 'DENIED', expected]]);
    });
  });

  describe('a key signs only while the external chain above its ROOT is valid (usableKey: sign orders, firmware CMS, device certificates)', () => {
    let fw: string;
    let ca: string;
    beforeAll(async () => {
      // Rows as keys certified before this check may hold them: their own certificates outlive the intermediate.
      ca = await seedKey(db, { type: 'CA', prefix: 'ca', parentKeyid: root, certificate: { pem: '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n', serialHex: randomBytes(8).toString('hex'), notBefore: whole(now - DAY), notAfter: whole(now + 300 * DAY) } });
      fw = await seedKey(db, { type: 'FW', prefix: 'fw', parentKeyid: ca, certificate: { pem: '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n', serialHex: randomBytes(8).toString('hex'), notBefore: whole(now - DAY), notAfter: whole(now + 300 * DAY) } });
    });
    it.each([
      ['ok an FW key two levels below, now', 'fw', () => now, 'ok'],
      ['ok an FW key 1 ms before the intermediate ends', 'fw', () => intermediateEnd.getTime() - 1, 'ok'],
      ['fail an FW key at the instant the intermediate ends (notAfter is exclusive for signing)', 'fw', () => intermediateEnd.getTime(), 'key_not_usable'],
      ['fail an FW key a day after the intermediate ended', 'fw', () => intermediateEnd.getTime() + DAY, 'key_not_usable'],
      ['fail a CA key (device certificates) at the instant the intermediate ends', 'ca', () => intermediateEnd.getTime(), 'key_not_usable'],
      ['ok a CA key 1 ms before the intermediate ends', 'ca', () => intermediateEnd.getTime() - 1, 'ok'],
    ] as const)('%s', async (_n, which, at, expected) => {
      const keyid = which === 'fw' ? fw : ca;
      expect(await codeOf(usableKey(keys, keyid, which === 'fw' ? 'FW' : 'CA', 'signatures', at()))).toBe(expected);
    });
  });

  describe('the TSA signs only with a key whose external chain is valid (it picks among its keys with the same check)', () => {
    const placeholder = '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n';
    const tsa = (keyid: string) => {
      const config = mediumConfig({ TSA_KEYID: keyid });
      return new TsaService(keys, new TimestampRepository(db), hsm.signer, config, new EdgeServices(config, audit, pino({ level: 'silent' })), new KeyLifecycleRepository(db));
    };

    it('fail a TSA key below a ROOT whose external chain has expired: no TSA available (the firmware route goes without a token, the public route answers tsa_not_available)', async () => {
      const lapsedKey = await hsm.signer.generateKey({ algorithm: 'EC-P256', label: `ext-lapsed-${randomBytes(3).toString('hex')}` });
      const lapsed = await createRootCertificate(hsm.signer, lapsedKey, { subject: { commonName: 'Lapsed intermediate' }, notBefore: whole(now - 20 * DAY), notAfter: whole(now - DAY) });
      const expiredRoot = await seedKey(db, { type: 'ROOT', prefix: 'root', certificate: { pem: placeholder, serialHex: randomBytes(8).toString('hex'), notBefore: whole(now - 20 * DAY), notAfter: whole(now + 300 * DAY) } });
      await db.prisma.key.update({ where: { keyid: expiredRoot }, data: { issuerChainPem: lapsed.certificatePem } });
      const stale = await seedKey(db, { type: 'TSA', prefix: 'tsa', parentKeyid: expiredRoot, certificate: { pem: placeholder, serialHex: randomBytes(8).toString('hex'), notBefore: whole(now - DAY), notAfter: whole(now + 300 * DAY) } });
      expect(await tsa(stale).forSignature()).toBeUndefined();
      expect(await tsa(stale).forAuditCheckpoint()).toBeUndefined();
    });

    it('ok a TSA key below the ROOT while its external chain is valid', async () => {
      const keyid = newKeyid('tsa');
      await admin.create(ada, session, { keyid, type: 'TSA', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 9, commonName: `TSA ${keyid}`, issuer: root }, requestId());
      expect((await tsa(keyid).forAuditCheckpoint())?.key.keyid).toBe(keyid);
    });
  });
});
