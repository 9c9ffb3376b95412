// Medium tier: the CRLs of a CA with their real repositories on a real PostgreSQL and a real PKCS#11 signer on a
// throwaway SoftHSM token (ROOT -> CA generated in it), wired by constructor exactly as the composition root wires
// it; device certificates are issued and revoked through the real CertificatesService. No HTTP, no processes.
import { randomBytes } from 'node:crypto';
import type { Db } from '@keyserver/data-access';
import type { CertificatesService } from '../certificates/certificates.service';
import { codeOf, deviceCsr, mediumCertificates, mediumDatabase, mediumIssuer, mediumOpenssl, mediumSigner, seedCaChain } from '../testing/medium';
import { CrlService } from './crl.service';

describe(`${CrlService.name} (medium: real PostgreSQL, SoftHSM)`, () => {
  const pg = mediumDatabase('ks_api_medium_crl');
  const hsm = mediumSigner('medium-crl');
  const openssl = mediumOpenssl('medium-crl');
  let db: Db;
  let service: CrlService;
  let certificates: CertificatesService;
  let caKeyid: string;
  let caFile: string;

  beforeAll(async () => {
    db = pg.db;
    ({ crls: service, certificates } = mediumCertificates(db, hsm.signer));
    const chain = await seedCaChain(db, hsm.signer);
    caKeyid = chain.caKeyid;
    caFile = openssl.write('ca.pem', chain.caCertificatePem);
  });

  const requestId = () => `req-${randomBytes(4).toString('hex')}`;
  /** A CRL's serials as `openssl crl -text` prints them: upper-case hex without leading zeros. */
  /** A serial as `openssl crl -text` prints it: whole bytes, no leading 00 byte (so 0C... keeps its 0). */
  const printed = (serialHex: string) => {
    const h = serialHex.toUpperCase().replace(/^(00)+(?=.)/, '');
    return `SerialNumber:${h.length % 2 ? `0${h}` : h}`;
  };

  /** openssl's verdict on a DER CRL against the CA certificate, and its text without whitespace. */
  function inspect(der: Buffer, name: string): { verify: string; text: string } {
    const file = openssl.write(name, der);
    const verify = openssl.run('crl', '-inform', 'DER', '-in', file, '-CAfile', caFile, '-noout', '-verify').out;
    const text = openssl.run('crl', '-inform', 'DER', '-in', file, '-noout', '-text').out.replace(/\s/g, '');
    return { verify, text };
  }

  it("signs the CA's CRL in the HSM: openssl crl -verify accepts it against the CA certificate, a revoked device certificate's serial is listed and a valid one's is not", async () => {
    const { provisioner, operationId } = await mediumIssuer(db, caKeyid, 2);
    const revoked = await certificates.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr('device-revoked') }, requestId());
    const valid = await certificates.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr('device-valid') }, requestId());
    const before = inspect(await service.current(caKeyid), 'before.crl');
    expect(before.verify).toContain('verify OK');
    expect(before.text).not.toContain(printed(revoked.serial));

    await certificates.revoke(provisioner, revoked.id, { reason: 'keyCompromise' }, requestId());
    const after = inspect(await service.current(caKeyid), 'after.crl');
    expect(after.verify).toContain('verify OK');
    expect(after.text).toContain(`${printed(revoked.serial)}RevocationDate`);
    expect(after.text).toContain('KeyCompromise');
    expect(after.text).not.toContain(printed(valid.serial));
    expect(after.text).not.toBe(before.text);
  });

  it('serves the stored CRL again while it is fresh and its revoked set is unchanged (no new signature)', async () => {
    const first = await service.current(caKeyid);
    expect((await service.current(caKeyid)).equals(first)).toBe(true);
    expect((await service.ofVersion(caKeyid, '1')).equals(first)).toBe(true);
  });

  it.each([
    ['fail a key that does not exist', 'ca-nonexistent', null, 'key_not_found'],
    ['fail a version that is not a whole number', 'ca', 'v1', 'crl_version_invalid'],
    ['fail a version the CA does not have', 'ca', '7', 'key_version_not_found'],
    ['ok the version that signed the CA certificates', 'ca', '1', 'ok'],
  ] as const)('%s', async (_n, which, version, code) => {
    const keyid = which === 'ca' ? caKeyid : which;
    // ofVersion refuses a malformed version before any await: the call itself throws.
    expect(await codeOf((async () => (version === null ? service.current(keyid) : service.ofVersion(keyid, version)))())).toBe(code);
  });
});
