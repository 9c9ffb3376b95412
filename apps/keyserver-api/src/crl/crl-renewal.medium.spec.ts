// Medium tier: the CRLs of a CA renewed once (version 2: the same name and key pair, a new certificate), on a real
// PostgreSQL and a real SoftHSM token, judged by the real `openssl` as a relying party that holds every CRL it fetched
// from that issuer (ADR 0029 addendum "one CRL issuer per key pair").
import { randomBytes, X509Certificate } from 'node:crypto';
import { KeyLifecycleRepository, KeyRepository, type Db } from '@keyserver/data-access';
import { createCaCertificate, nameSpecOf, toPem } from '@keyserver/pki';
import type { IssueCertificateResponse } from '@keyserver/api-contract';
import type { CertificatesService } from '../certificates/certificates.service';
import { deviceCsr, mediumCertificates, mediumDatabase, mediumIssuer, mediumOpenssl, mediumSigner, seedCaChain } from '../testing/medium';
import { CrlService } from './crl.service';

describe(`${CrlService.name} across the versions of a renewed CA (medium: real PostgreSQL, SoftHSM, openssl)`, () => {
  const pg = mediumDatabase('ks_api_medium_crl_renewal');
  const hsm = mediumSigner('medium-crl-renewal');
  const openssl = mediumOpenssl('medium-crl-renewal');
  let db: Db;
  let service: CrlService;
  let certificates: CertificatesService;
  let caKeyid: string;
  let chainFile: string;
  /** Device certificates the CA's version 1 signed (their distribution point: version 1's CRL). */
  const underV1: IssueCertificateResponse[] = [];
  let v2CertificatePem: string;

  const requestId = () => `req-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    db = pg.db;
    ({ crls: service, certificates } = mediumCertificates(db, hsm.signer));
    const chain = await seedCaChain(db, hsm.signer);
    caKeyid = chain.caKeyid;
    chainFile = openssl.write('chain.pem', `${chain.rootCertificatePem}${chain.caCertificatePem}`);
    const { provisioner, operationId } = await mediumIssuer(db, caKeyid, 5);
    for (const cn of ['device-a', 'device-b', 'device-c', 'device-d', 'device-e']) underV1.push(await certificates.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr(cn) }, requestId()));
    // The renewal as the lifecycle service makes it: the ROOT certifies the same key pair again under the same name.
    const keys = new KeyRepository(db);
    const ca = await keys.findByKeyid(caKeyid);
    const root = ca?.parentKeyid ? await keys.findByKeyid(ca.parentKeyid) : null;
    if (!ca || !root) throw new Error('no chain');
    const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000 - 3_600_000);
    const notAfter = new Date(ca.notAfter.getTime() - 1000);
    const cert = await createCaCertificate(hsm.signer, { key: await hsm.signer.getKey(root.hsmKeyId), certificate: root.certificatePem }, chain.caKey, { subject: nameSpecOf(chain.caCertificatePem), notBefore, notAfter });
    v2CertificatePem = cert.certificatePem;
    await new KeyLifecycleRepository(db).addVersion(
      caKeyid,
      1,
      { hsmKeyId: chain.caKey.hsmKeyId, certificatePem: cert.certificatePem, certificateSerial: cert.serialHex, notBefore, notAfter, issuerKeyid: root.keyid, issuerVersion: 1 },
      { action: 'key.renew', outcome: 'SUCCESS', actorName: 'medium test' },
    );
  });

  /** What `openssl crl -text` prints of a CRL: issuer, AKI, number and thisUpdate. */
  function crlText(der: Buffer): string {
    return openssl.run('crl', '-inform', 'DER', '-in', openssl.write(`crl-${randomBytes(4).toString('hex')}.der`, der), '-noout', '-text').out;
  }
  const field = (text: string, re: RegExp) => re.exec(text)?.[1]?.trim();

  /**
   * `openssl verify -crl_check` of a device certificate with every CRL the relying party holds (one file, in the order
   * given), at `atSeconds`: openssl picks among CRLs of one issuer and key the one with the latest thisUpdate.
   */
  function verify(device: IssueCertificateResponse, crls: Buffer[], atSeconds: number): { status: number | null; out: string } {
    const leaf = openssl.write(`leaf-${device.serial}.pem`, device.certificate);
    const crlFile = openssl.write(`held-${randomBytes(4).toString('hex')}.pem`, crls.map((d) => toPem('X509 CRL', d)).join(''));
    return openssl.run('verify', '-attime', String(atSeconds), '-crl_check', '-CAfile', chainFile, '-CRLfile', crlFile, leaf);
  }

  it('ok the renewal is the same CRL issuer: both versions\' certificates carry one name and one key identifier, and so do their CRLs (openssl crl -text)', async () => {
    const [v1, v2] = [new X509Certificate((await new KeyLifecycleRepository(db).versions(caKeyid))[0].certificatePem), new X509Certificate(v2CertificatePem)];
    expect(v2.subject).toBe(v1.subject);
    expect(v2.publicKey.export({ format: 'der', type: 'spki' }).equals(v1.publicKey.export({ format: 'der', type: 'spki' }))).toBe(true);
    const [t1, t2] = [crlText(await service.ofVersion(caKeyid, '1')), crlText(await service.ofVersion(caKeyid, '2'))];
    expect(field(t2, /Issuer:(.*)/)).toBe(field(t1, /Issuer:(.*)/));
    expect(field(t2, /Authority Key Identifier:\s*(?:keyid:)?([0-9A-F:]+)/)).toBe(field(t1, /Authority Key Identifier:\s*(?:keyid:)?([0-9A-F:]+)/));
    expect(field(t1, /Authority Key Identifier:\s*(?:keyid:)?([0-9A-F:]+)/)).toMatch(/^[0-9A-F]{2}(:[0-9A-F]{2})+$/);
  });

  it('ok every URL of the issuer and key serves its one newest CRL: one DER (one ETag) at /versions/1, /versions/2 and the current route', async () => {
    const { provisioner } = await mediumIssuer(db, caKeyid, 1);
    await certificates.revoke(provisioner, underV1[0].id, { reason: 'keyCompromise' }, requestId());
    const [a, b, c] = [await service.versionCrl(caKeyid, '1'), await service.versionCrl(caKeyid, '2'), await service.currentCrl(caKeyid)];
    expect(b.der.equals(a.der) && c.der.equals(a.der)).toBe(true);
    expect(crlText(a.der).replace(/\s/g, '')).toContain(`SerialNumber:${underV1[0].serial.toUpperCase().replace(/^(00)+(?=.)/, '')}`);
  });

  it('ok two revocations in one second: the second CRL has the larger number and a later thisUpdate that is not ahead of the clock; openssl uses it and refuses the second device', async () => {
    const { provisioner } = await mediumIssuer(db, caKeyid, 1);
    // Start at the beginning of a second, so that both CRLs would be signed in it.
    await new Promise((res) => setTimeout(res, 1000 - (Date.now() % 1000) + 20));
    await certificates.revoke(provisioner, underV1[1].id, { reason: 'superseded' }, requestId());
    const first = await service.versionCrl(caKeyid, '1');
    await certificates.revoke(provisioner, underV1[2].id, { reason: 'superseded' }, requestId());
    const second = await service.versionCrl(caKeyid, '2');
    expect(second.crlNumber).toBeGreaterThan(first.crlNumber);
    expect(second.thisUpdate.getTime()).toBeGreaterThan(first.thisUpdate.getTime());
    expect(second.thisUpdate.getTime()).toBeLessThanOrEqual(Date.now());
    const at = Math.floor(Date.now() / 1000) + 1;
    for (const held of [[first.der, second.der], [second.der, first.der]]) {
      const r = verify(underV1[2], held, at);
      expect({ status: r.status, revoked: r.out.includes('certificate revoked') }).toEqual({ status: 2, revoked: true });
    }
  });

  // Last: the CRLs it makes are dated up to 6 s ahead of this clock (a replica whose clock is ahead signed first).
  it('ok a relying party that fetched version 1\'s CRL after a revocation on a replica 5 s ahead, then version 2\'s after another on a replica on time: the number goes up, thisUpdate too, and openssl verify -crl_check refuses the device revoked last whichever order it holds the CRLs in', async () => {
    const { provisioner } = await mediumIssuer(db, caKeyid, 2);
    const t = Math.floor(Date.now() / 1000) * 1000;
    const clock = jest.spyOn(Date, 'now');
    let held: { crlNumber: bigint; thisUpdate: Date; der: Buffer }[];
    try {
      clock.mockReturnValue(t + 5_000); // replica A, 5 s ahead: a revocation, then version 1's distribution point
      await certificates.revoke(provisioner, underV1[3].id, { reason: 'keyCompromise' }, requestId());
      const fromA = await service.versionCrl(caKeyid, '1');
      clock.mockReturnValue(t); // replica B, on time: another revocation, then version 2's distribution point
      await certificates.revoke(provisioner, underV1[4].id, { reason: 'keyCompromise' }, requestId());
      const fromB = await service.versionCrl(caKeyid, '2');
      held = [fromA, fromB];
    } finally {
      clock.mockRestore();
    }
    const [older, newer] = held;
    expect(newer.crlNumber).toBeGreaterThan(older.crlNumber);
    expect(newer.thisUpdate.getTime()).toBeGreaterThan(older.thisUpdate.getTime());
    const at = t / 1000 + 30;
    for (const order of [[older.der, newer.der], [newer.der, older.der]]) {
      const r = verify(underV1[4], order, at);
      expect({ status: r.status, revoked: r.out.includes('certificate revoked') }).toEqual({ status: 2, revoked: true });
    }
    // The device both CRLs list stays refused.
    expect(verify(underV1[3], [older.der, newer.der], at).out).toContain('certificate revoked');
  });
});
