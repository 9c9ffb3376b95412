// Medium tier: certificate issuance with its real repositories on a real PostgreSQL and a real PKCS#11 signer on a
// throwaway SoftHSM token (ROOT -> CA generated in it), wired by constructor exactly as the composition root wires it.
import { createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { AuditRepository, OperationRepository, type Db } from '@keyserver/data-access';
import { derTlv, OID, type HsmKeyInfo } from '@keyserver/pki';
import { extensionDer } from '@keyserver/pki/testing';
import { codeOf, deviceCsr, mediumCertificates, mediumIssuer, mediumDatabase, mediumSigner, seedCaChain } from '../testing/medium';
import { HOSTILE_IDEMPOTENCY_KEYS } from '../testing/idempotency-keys';
import { CertificatesService } from './certificates.service';

describe(`${CertificatesService.name} (medium: real PostgreSQL, SoftHSM)`, () => {
  const pg = mediumDatabase('ks_api_medium_certs');
  const hsm = mediumSigner('medium-certs');
  let db: Db;
  let operations: OperationRepository;
  let audit: AuditRepository;
  let service: CertificatesService;
  let caKeyid: string;
  let caKey: HsmKeyInfo;
  let caCertificatePem: string;

  beforeAll(async () => {
    db = pg.db;
    operations = new OperationRepository(db);
    audit = new AuditRepository(db);
    service = mediumCertificates(db, hsm.signer).certificates;
    ({ caKeyid, caKey, caCertificatePem } = await seedCaChain(db, hsm.signer));
  });

  const issuingSetup = () => mediumIssuer(db, caKeyid);

  const usagesUsed = async (operationId: string) => (await operations.get(operationId)).keys.map((k) => k.usagesUsed);
  const requestId = () => `req-${randomBytes(4).toString('hex')}`;

  it('issues a certificate for a CSR: Node parses it, it verifies against the CA key in the HSM, one usage is spent', async () => {
    const { provisioner, operationId } = await issuingSetup();
    const rid = requestId();
    const res = await service.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr('device-0001') }, rid);
    const cert = new X509Certificate(res.certificate);
    expect(cert.subject).toBe('CN=device-0001');
    expect(cert.verify(createPublicKey({ key: Buffer.from(caKey.spki), format: 'der', type: 'spki' }))).toBe(true);
    expect(cert.checkIssued(new X509Certificate(res.chain[0]))).toBe(true);
    expect(cert.serialNumber.toLowerCase().replace(/^0+/, '')).toBe(res.serial.replace(/^0+/, ''));
    expect(await usagesUsed(operationId)).toEqual([1]);
    const events = (await audit.list({ action: 'certificate.issue', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, e.keyid, e.operationId])).toEqual([['SUCCESS', caKeyid, operationId]]);
  });

  it.each([
    ['fail a CSR not signed by its own key (no proof of possession)', 'forged', 'csr_signature_invalid'],
    ['fail a CSR to a CA the provisioner holds no ISSUE grant on', 'other-ca', 'key_not_permitted'],
    ['fail a valid CSR when the operation has no usage left', 'exhausted', 'usage_exhausted'],
    ['fail a forged CSR when the operation has no usage left: the proof of possession is refused first', 'forged-exhausted', 'csr_signature_invalid'],
    ['fail a forged CSR that asks to be a CA: the proof of possession is refused first', 'forged-ca', 'csr_signature_invalid'],
    ['fail a valid CSR that asks to be a CA', 'ca', 'csr_ca_requested'],
  ] as const)('%s: refused with its code, no usage spent, one DENIED event', async (_n, kind, code) => {
    const { provisioner, operationId } = await issuingSetup();
    if (kind === 'exhausted' || kind === 'forged-exhausted') await service.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr('device-0001') }, requestId());
    const before = await usagesUsed(operationId);
    // Every stored key certificate is parsed (the names no device may take): the other CA is a real one too.
    const keyid = kind === 'other-ca' ? (await seedCaChain(db, hsm.signer)).caKeyid : caKeyid;
    const rid = requestId();
    expect(await codeOf(service.issue(provisioner, { operationid: operationId, keyid, csr: deviceCsr('device-0002', kind.startsWith('forged'), { caRequested: kind.endsWith('ca') }) }, rid))).toBe(code);
    expect(await usagesUsed(operationId)).toEqual(before);
    const events = (await audit.list({ action: 'certificate.issue', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, e.errorCode, e.keyid])).toEqual([['DENIED', code, keyid]]);
  });

  it('fail a CSR whose CN is the CA name with an invisible soft hyphen: csr_subject_invalid, no usage spent, one DENIED event', async () => {
    const { provisioner, operationId } = await issuingSetup();
    // Drawn exactly as the CA's name, but NFKC keeps U+00AD, so the reserved-name comparison saw another name.
    const caName = new X509Certificate(caCertificatePem).subject.replace(/^CN=/, '');
    const lookAlike = caName.replace(' ', '\u00ad ');
    const rid = requestId();
    expect(await codeOf(service.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr(lookAlike) }, rid))).toBe('csr_subject_invalid');
    expect(await usagesUsed(operationId)).toEqual([0]);
    const events = (await audit.list({ action: 'certificate.issue', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, e.errorCode, e.keyid])).toEqual([['DENIED', 'csr_subject_invalid', caKeyid]]);
  });

  it('fail a CSR whose CN is the CA name with a Cyrillic е (mixed scripts): csr_subject_invalid, no usage spent, one DENIED event', async () => {
    const { provisioner, operationId } = await issuingSetup();
    const caName = new X509Certificate(caCertificatePem).subject.replace(/^CN=/, '');
    expect(caName).toMatch(/e/);
    const lookAlike = caName.replace('e', '\u0435');
    const rid = requestId();
    expect(await codeOf(service.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr(lookAlike) }, rid))).toBe('csr_subject_invalid');
    expect(await usagesUsed(operationId)).toEqual([0]);
    const events = (await audit.list({ action: 'certificate.issue', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, e.errorCode, e.keyid])).toEqual([['DENIED', 'csr_subject_invalid', caKeyid]]);
  });

  // extKeyUsage { serverAuth }: a purpose device certificates never carry (they carry clientAuth only).
  const serverAuth = derTlv(0x30, derTlv(0x06, new Uint8Array([0x2b, 6, 1, 5, 5, 7, 3, 1])));

  it('fail a CSR with a critical extension the profile does not honour: csr_extension_unsupported, no usage spent, one DENIED event', async () => {
    const { provisioner, operationId } = await issuingSetup();
    const rid = requestId();
    const csr = deviceCsr('device-crit', false, { extensions: [extensionDer(OID.extKeyUsage, serverAuth, true)] });
    expect(await codeOf(service.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr }, rid))).toBe('csr_extension_unsupported');
    expect(await usagesUsed(operationId)).toEqual([0]);
    const events = (await audit.list({ action: 'certificate.issue', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, e.errorCode, e.keyid])).toEqual([['DENIED', 'csr_extension_unsupported', caKeyid]]);
  });

  it('ok non-critical extensions the profile does not honour: issued without them, named in the answer and in the audit event', async () => {
    const { provisioner, operationId } = await issuingSetup();
    const rid = requestId();
    const csr = deviceCsr('device-ignored', false, { extensions: [extensionDer(OID.extKeyUsage, serverAuth), extensionDer('1.2.3.4', new Uint8Array([5, 0]))] });
    const res = await service.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr }, rid);
    expect(res.ignoredExtensions).toEqual([OID.extKeyUsage, '1.2.3.4']);
    const cert = new X509Certificate(res.certificate);
    expect(cert.verify(createPublicKey({ key: Buffer.from(caKey.spki), format: 'der', type: 'spki' }))).toBe(true);
    expect(cert.keyUsage).toEqual([OID.clientAuth]);
    expect(cert.toString()).not.toContain('1.2.3.4');
    const events = (await audit.list({ action: 'certificate.issue', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, (e.details as { ignoredExtensions?: string[] }).ignoredExtensions])).toEqual([['SUCCESS', [OID.extKeyUsage, '1.2.3.4']]]);
  });

  it('ok a CSR whose extensions are all honoured: an empty ignoredExtensions, none in the audit event', async () => {
    const { provisioner, operationId } = await issuingSetup();
    const rid = requestId();
    const res = await service.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr('device-plain') }, rid);
    expect(res.ignoredExtensions).toEqual([]);
    const events = (await audit.list({ action: 'certificate.issue', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, 'ignoredExtensions' in (e.details as object)])).toEqual([['SUCCESS', false]]);
  });

  it('never names a certificate the caller may not see in a cursor, even after scanning thousands of them', async () => {
    // Certificates of another CA, newer than any of the caller's: the whole scan of one request sees none of his.
    const { provisioner } = await issuingSetup();
    const other = (await seedCaChain(db, hsm.signer)).caKeyid;
    await db.pool.query(
      `INSERT INTO "certificate" ("id", "issuerKeyId", "issuerVersion", "serialHex", "subjectDn", "sans", "notBefore", "notAfter", "pem", "createdAt")
       SELECT gen_random_uuid(), k."id", 1, 'feed' || n, 'CN=hidden-' || n, '{}', now(), now() + interval '1 day', 'not a certificate', now() + interval '1 hour' + n * interval '1 ms'
       FROM generate_series(1, 2100) AS n, "key" k WHERE k."keyid" = $1`,
      [other],
    );
    const page = await service.list(provisioner, { limit: 50 });
    expect(page.items.map((c) => c.issuer).filter((k) => k !== caKeyid)).toEqual([]);
    const hidden = await db.pool.query(`SELECT 1 FROM "certificate" c JOIN "key" k ON k."id" = c."issuerKeyId" WHERE c."id"::text = $1 AND k."keyid" = $2`, [page.nextCursor ?? '', other]);
    expect(hidden.rowCount).toBe(0);
  });

  it('issues for exactly the valid CSRs of a burst mixed with forged ones: usages only for those, the forged refused', async () => {
    const { provisioner, operationId } = await mediumIssuer(db, caKeyid, 8);
    // Started together, so their reservations share batches while their signatures are still being checked.
    const csrs = Array.from({ length: 12 }, (_, i) => deviceCsr(`device-burst-${i}`, i % 3 === 0));
    const outcomes = await Promise.all(csrs.map((csr) => codeOf(service.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr }, requestId()))));
    expect(outcomes).toEqual(csrs.map((_, i) => (i % 3 === 0 ? 'csr_signature_invalid' : 'ok')));
    expect(await usagesUsed(operationId)).toEqual([8]);
  });
  // ADR 0012 addendum "idempotency, session 25": a factory line retrying POST /api/v1/certificates after a network glitch.
  describe('Idempotency-Key', () => {
    it('ok a retry with the same key is the identical answer (certificate DER, serial, chain, ignored extensions): one usage, one certificate.replayed event naming the first', async () => {
      const { provisioner, operationId } = await mediumIssuer(db, caKeyid, 2);
      const csr = deviceCsr('device-retry', false, { extensions: [extensionDer('1.2.3.4', new Uint8Array([5, 0]))] });
      const [r1, r2] = [requestId(), requestId()];
      const first = await service.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr }, r1, 'line-7:unit-0001');
      const retry = await service.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr }, r2, 'line-7:unit-0001');
      expect(JSON.stringify(retry)).toBe(JSON.stringify(first));
      expect(new X509Certificate(retry.certificate).raw.equals(new X509Certificate(first.certificate).raw)).toBe(true);
      expect(first.ignoredExtensions).toEqual(['1.2.3.4']);
      expect(await usagesUsed(operationId)).toEqual([1]);
      const issued = (await audit.list({ action: 'certificate.issue', operationId })).items;
      const replayed = (await audit.list({ action: 'certificate.replayed', operationId })).items;
      expect(issued.map((e) => [e.outcome, e.requestId])).toEqual([['SUCCESS', r1]]);
      expect(replayed.map((e) => ({ outcome: e.outcome, requestId: e.requestId, keyid: e.keyid, actor: e.actorSubjectId, of: e.details['certificateId'], serial: e.details['serialHex'], first: e.details['firstRequestId'] }))).toEqual([
        { outcome: 'SUCCESS', requestId: r2, keyid: caKeyid, actor: provisioner.subjectId, of: first.id, serial: first.serial, first: r1 },
      ]);
    });

    it('fail the same key with another CSR: 422 idempotency_key_reused, no usage spent, audited DENIED', async () => {
      const { provisioner, operationId } = await mediumIssuer(db, caKeyid, 2);
      await service.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr('device-a') }, requestId(), 'reused-key');
      const rid = requestId();
      expect(await codeOf(service.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr('device-b') }, rid, 'reused-key'))).toBe('idempotency_key_reused');
      expect(await usagesUsed(operationId)).toEqual([1]);
      const events = (await audit.list({ action: 'certificate.issue', requestId: rid })).items;
      expect(events.map((e) => [e.outcome, e.errorCode])).toEqual([['DENIED', 'idempotency_key_reused']]);
    });

    it('ok another caller\'s equal key is its own: its own certificate and usage; each retry replays its own', async () => {
      const { provisioner, operationId } = await mediumIssuer(db, caKeyid, 2);
      const other = (await mediumIssuer(db, caKeyid)).provisioner;
      const dto = { operationid: operationId, keyid: caKeyid, csr: deviceCsr('device-shared') };
      const mine = await service.issue(provisioner, dto, requestId(), 'shared-key');
      const theirs = await service.issue(other, dto, requestId(), 'shared-key');
      expect(theirs.serial).not.toBe(mine.serial);
      expect(await usagesUsed(operationId)).toEqual([2]);
      expect((await service.issue(other, dto, requestId(), 'shared-key')).serial).toBe(theirs.serial);
      expect((await service.issue(provisioner, dto, requestId(), 'shared-key')).serial).toBe(mine.serial);
    });

    it.each(HOSTILE_IDEMPOTENCY_KEYS)('%s: 400 idempotency_key_invalid, no usage spent, audited DENIED', async (_n, key) => {
      const { provisioner, operationId } = await issuingSetup();
      const rid = requestId();
      expect(await codeOf(service.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr('device-hostile') }, rid, key))).toBe('idempotency_key_invalid');
      expect(await usagesUsed(operationId)).toEqual([0]);
      const events = (await audit.list({ action: 'certificate.issue', requestId: rid })).items;
      expect(events.map((e) => [e.outcome, e.errorCode])).toEqual([['DENIED', 'idempotency_key_invalid']]);
      expect(JSON.stringify(events[0]).includes(key.length > 0 ? key : '\u0000never')).toBe(false);
    });
  });
});
