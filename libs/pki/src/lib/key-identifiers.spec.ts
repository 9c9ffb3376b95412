import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { SoftwareSigner } from '../testing/software-signer';
import { basicConstraintsExtension, createCaCertificate, createFirmwareSigningCertificate, ext, keyUsageExtension, nameOf, signCertificate } from './certificates';
import { createCrl } from './crl';
import { OID, certDer, keyIdentifier, toAb } from './der';
import type { HsmKeyInfo } from './hsm-signer';
import { parseCsr, prepareDeviceCertificate, prepareIssuer, signDeviceCertificate, verifyCsrPossession } from './csr';
import { buildCsr, csrPem, generateTestKey, nameDer } from '../testing';

const DAY = 86_400_000;

/** The keyIdentifier bytes of an extension: SKI (OCTET STRING) or AKI ([0] of the SEQUENCE). */
function keyIdOf(der: Uint8Array, extnID: string, crl = false): string | undefined {
  const exts = crl ? pkijs.CertificateRevocationList.fromBER(toAb(der)).crlExtensions?.extensions : pkijs.Certificate.fromBER(toAb(der)).extensions;
  const e = exts?.find((x) => x.extnID === extnID);
  if (!e) return undefined;
  const v = asn1js.fromBER(e.extnValue.valueBlock.valueHexView).result;
  if (extnID === OID.subjectKeyIdentifier) return Buffer.from((v as asn1js.OctetString).valueBlock.valueHexView).toString('hex');
  const first = (v as asn1js.Sequence).valueBlock.value[0];
  return Buffer.from((first as asn1js.Primitive).valueBlock.valueHexView).toString('hex');
}

function sh(cmd: string, args: string[]) {
  const r = spawnSync(cmd, args, { encoding: 'latin1', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/**
 * RFC 5280 4.2.1.1: the AKI keyIdentifier of everything a key issues is the issuer certificate's SKI. A certificate
 * the Keyserver did not make (an external root's, imported in the ROOT ceremony) may have computed its SKI another
 * way (method 2, a SHA-256 truncation, a database id): the child must carry that value, or openssl and GnuTLS
 * do not take the issuer as the child's issuer.
 */
describe('key identifiers (AKI of a child = SKI of its issuer)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ks-akid-'));
  const file = (name: string, data: string | Uint8Array) => {
    const p = join(dir, name);
    writeFileSync(p, data);
    return p;
  };
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const signer = new SoftwareSigner();
  const now = Date.now();
  const validity = { notBefore: new Date(now - DAY), notAfter: new Date(now + 365 * DAY) };

  /** A self-signed CA certificate as an external root might make it: `ski` as its SKI (none when null), a PrintableString CN. */
  async function externalRoot(key: HsmKeyInfo, ski: Uint8Array | null) {
    const name = nameOf([
      new pkijs.AttributeTypeAndValue({ type: OID.country, value: new asn1js.PrintableString({ value: 'DE' }) }),
      new pkijs.AttributeTypeAndValue({ type: OID.commonName, value: new asn1js.PrintableString({ value: 'Offline Root' }) }),
    ]);
    const extensions = [basicConstraintsExtension(true), keyUsageExtension(['keyCertSign', 'cRLSign'])];
    if (ski) extensions.push(ext(OID.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: toAb(ski) })));
    return signCertificate(signer, key, { issuerName: name, subject: name, spki: key.spki, validity, extensions });
  }

  const cases: [string, (spki: Uint8Array) => Uint8Array | null][] = [
    // RFC 5280 4.2.1.2 method 2: 0100 and the low 60 bits of the SHA-1.
    ['ok method 2 SKI', (spki) => { const k = keyIdentifier(spki).slice(12); k[0] = (k[0] & 0x0f) | 0x40; return k; }],
    ['ok arbitrary 20-byte SKI', () => new Uint8Array(20).fill(0x5a)],
    ['ok method 1 SKI', (spki) => keyIdentifier(spki)],
  ];

  it.each(cases)('%s: CA, FW, device certificate and CRL name the issuer by its SKI; openssl and certtool verify', async (label, skiOf) => {
    const rootKey = await signer.generateKey({ algorithm: 'RSA-2048', label: 'ext-root' });
    const caKey = await signer.generateKey({ algorithm: 'RSA-2048', label: 'ca' });
    const fwKey = await signer.generateKey({ algorithm: 'RSA-2048', label: 'fw' });
    const ski = skiOf(rootKey.spki) as Uint8Array;
    const root = await externalRoot(rootKey, ski);
    const ca = await createCaCertificate(signer, { key: rootKey, certificate: root.certificatePem }, caKey, { subject: { commonName: 'Device CA' }, ...validity });
    const fw = await createFirmwareSigningCertificate(signer, { key: rootKey, certificate: root.certificatePem }, fwKey, { subject: { commonName: 'FW' }, ...validity });
    const crl = await createCrl(signer, rootKey, root.certificatePem, [{ serialHex: ca.serialHex, revocationDate: new Date(now), reason: 'superseded' }], 7, new Date(now), new Date(now + DAY));
    const device = generateTestKey('EC-P256');
    const issuer = prepareIssuer({ key: caKey, certificate: ca.certificatePem, chain: [root.certificatePem] });
    const dev = await signDeviceCertificate(signer, prepareDeviceCertificate(issuer, verifyCsrPossession(parseCsr(csrPem(buildCsr({ ...device, subject: nameDer([[OID.commonName, 'dev-1']]) })))), { validityDays: 30, reservedNames: new Set<string>() }));

    const rootSki = Buffer.from(ski).toString('hex');
    expect(keyIdOf(ca.certificateDer, OID.authorityKeyIdentifier)).toBe(rootSki);
    expect(keyIdOf(fw.certificateDer, OID.authorityKeyIdentifier)).toBe(rootSki);
    expect(keyIdOf(crl.crlDer, OID.authorityKeyIdentifier, true)).toBe(rootSki);
    expect(keyIdOf(certDer(dev.certificatePem), OID.authorityKeyIdentifier)).toBe(keyIdOf(ca.certificateDer, OID.subjectKeyIdentifier));
    // The issuer Name is the root's subject byte for byte (PrintableString kept).
    const rootCert = pkijs.Certificate.fromBER(toAb(root.certificateDer));
    const caCert = pkijs.Certificate.fromBER(toAb(ca.certificateDer));
    expect(Buffer.from(caCert.issuer.toSchema().toBER(false)).equals(Buffer.from(rootCert.subject.valueBeforeDecode))).toBe(true);

    const rootFile = file(`${label}-root.pem`, root.certificatePem);
    const caFile = file(`${label}-ca.pem`, ca.certificatePem);
    expect(sh('openssl', ['verify', '-x509_strict', '-CAfile', rootFile, caFile]).out.trim()).toBe(`${caFile}: OK`);
    expect(sh('openssl', ['verify', '-x509_strict', '-CAfile', rootFile, file(`${label}-fw.pem`, fw.certificatePem)]).status).toBe(0);
    expect(sh('openssl', ['verify', '-x509_strict', '-CAfile', rootFile, '-untrusted', caFile, file(`${label}-dev.pem`, dev.certificatePem)]).status).toBe(0);
    expect(sh('openssl', ['crl', '-noout', '-CAfile', rootFile, '-in', file(`${label}.crl`, crl.crlPem)]).out).toMatch(/verify OK/);
    const chain = sh('certtool', ['--verify-chain', '--infile', file(`${label}-chain.pem`, dev.certificatePem + ca.certificatePem + root.certificatePem)]);
    expect(chain.out).toMatch(/Chain verification output: Verified/);
  });

  it('ok an issuer certificate without SKI: children name it by the method 1 key identifier', async () => {
    const rootKey = await signer.generateKey({ algorithm: 'RSA-2048', label: 'ext-root-noski' });
    const caKey = await signer.generateKey({ algorithm: 'RSA-2048', label: 'ca2' });
    const root = await externalRoot(rootKey, null);
    const ca = await createCaCertificate(signer, { key: rootKey, certificate: root.certificatePem }, caKey, { subject: { commonName: 'Device CA 2' }, ...validity });
    expect(keyIdOf(ca.certificateDer, OID.authorityKeyIdentifier)).toBe(Buffer.from(keyIdentifier(rootKey.spki)).toString('hex'));
    expect(sh('openssl', ['verify', '-CAfile', file('noski-root.pem', root.certificatePem), file('noski-ca.pem', ca.certificatePem)]).status).toBe(0);
  });
});
