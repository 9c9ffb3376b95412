import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SoftwareSigner } from '../testing/software-signer';
import { createCaCertificate, createRootCertificate, prepareCertificate, type IssuedCertificate } from './certificates';
import {
  applyDeviceProfile,
  checkCsrPolicy,
  issueFromVerifiedCsr,
  parseCsr,
  prepareDeviceCertificate,
  prepareIssuer,
  signDeviceCertificate,
  verifyCsrPossession,
  type DeviceCertificateIssuer,
} from './csr';
import { derTlv, toAb } from './der';
import type { HsmKeyInfo } from './hsm-signer';

const DAY = 86_400_000;
const openssl = (args: string[], input?: string) => execFileSync('openssl', args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
const deviceCsr = (extra: string[] = []) =>
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', '/dev/null', '-subj', '/CN=device-7/O=Acme', ...extra]);

describe(issueFromVerifiedCsr.name, () => {
  const signer = new SoftwareSigner();
  const profile = { validityDays: 365, crlDistributionPointUrl: 'http://crl.keyserver.test/ca.crl' };
  let work: string;
  let root: IssuedCertificate;
  let ca: IssuedCertificate;
  let caKey: HsmKeyInfo;
  let issuer: DeviceCertificateIssuer;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'pki-csr-'));
    const rootKey = await signer.generateKey({ algorithm: 'RSA-2048', label: 'root' });
    caKey = await signer.generateKey({ algorithm: 'RSA-2048', label: 'ca' });
    const now = Date.now();
    root = await createRootCertificate(signer, rootKey, { subject: { commonName: 'Root', organization: 'Acme' }, notBefore: new Date(now - DAY), notAfter: new Date(now + 30 * 365 * DAY) });
    ca = await createCaCertificate(signer, { key: rootKey, certificate: root.certificatePem }, caKey, {
      subject: { commonName: 'Device CA', organization: 'Acme' },
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 10 * 365 * DAY),
    });
    issuer = prepareIssuer({ key: caKey, certificate: ca.certificatePem, chain: [root.certificatePem] });
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('issues from a CSR parsed and verified once; openssl verifies the chain', async () => {
    const csr = verifyCsrPossession(parseCsr(deviceCsr(['-addext', 'subjectAltName=DNS:device-7.example'])));
    const issued = await issueFromVerifiedCsr(signer, issuer, csr, profile);
    expect(issued.chainPems).toEqual([ca.certificatePem, root.certificatePem]);
    writeFileSync(join(work, 'root.pem'), root.certificatePem);
    writeFileSync(join(work, 'ca.pem'), ca.certificatePem);
    writeFileSync(join(work, 'device.pem'), issued.certificatePem);
    expect(openssl(['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', join(work, 'root.pem'), '-untrusted', join(work, 'ca.pem'), join(work, 'device.pem')]).trim()).toBe(
      `${join(work, 'device.pem')}: OK`,
    );
    const x = new X509Certificate(issued.certificatePem);
    expect(x.subject).toBe('CN=device-7\nO=Acme');
    expect(x.subjectAltName).toBe('DNS:device-7.example');
    expect(x.serialNumber.toLowerCase().replace(/^0+/, '')).toBe(issued.serialHex.replace(/^0+/, ''));
  });

  it('builds the whole TBS before the HSM is asked; signing only wraps the signature around it', async () => {
    const before = signer.signCalls;
    const prepared = prepareDeviceCertificate(issuer, verifyCsrPossession(parseCsr(deviceCsr())), profile);
    expect(signer.signCalls).toBe(before);
    const issued = await signDeviceCertificate(signer, prepared);
    expect(signer.signCalls).toBe(before + 1);
    const cert = pkijs.Certificate.fromBER(toAb(new Uint8Array(Buffer.from(issued.certificatePem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64'))));
    expect(Buffer.from(cert.tbsView).equals(Buffer.from(prepared.tbs))).toBe(true);
    expect(issued.serialHex).toBe(prepared.serialHex);
    expect(new X509Certificate(issued.certificatePem).verify(new X509Certificate(ca.certificatePem).publicKey)).toBe(true);
  });

  it('gives every prepared certificate its own serial', () => {
    const csr = verifyCsrPossession(parseCsr(deviceCsr()));
    const serials = new Set(Array.from({ length: 20 }, () => prepareDeviceCertificate(issuer, csr, profile).serialHex));
    expect(serials.size).toBe(20);
  });

  it.each([
    ['fail CA:true requested', ['-addext', 'basicConstraints=critical,CA:TRUE'], 'csr_ca_requested'],
    ['fail keyCertSign requested', ['-addext', 'keyUsage=critical,keyCertSign'], 'csr_key_cert_sign_requested'],
    ['fail SAN type outside the profile', ['-addext', 'subjectAltName=email:a@b.example'], 'csr_san_not_allowed'],
  ])('%s is refused while preparing, before any signature', (_n, extra, code) => {
    const before = signer.signCalls;
    const csr = verifyCsrPossession(parseCsr(deviceCsr(extra)));
    expect(() => prepareDeviceCertificate(issuer, csr, profile)).toThrow(expect.objectContaining({ code }));
    expect(signer.signCalls).toBe(before);
  });

  it('writes the same TBS bytes as pkijs encodeTBS, UTCTime and GeneralizedTime alike', () => {
    const values = checkCsrPolicy(verifyCsrPossession(parseCsr(deviceCsr(['-addext', 'subjectAltName=DNS:x.example']))), profile);
    const parts = applyDeviceProfile(values, issuer.parsed, profile);
    for (const notAfter of [parts.validity.notAfter, new Date(Date.UTC(2061, 0, 2, 3, 4, 5))]) {
      const prepared = prepareCertificate(caKey, { ...parts, validity: { ...parts.validity, notAfter } });
      const cert = new pkijs.Certificate();
      cert.version = 2;
      cert.serialNumber = new asn1js.Integer({ valueHex: toAb(new Uint8Array(Buffer.from(prepared.serialHex, 'hex'))) });
      cert.signature = new pkijs.AlgorithmIdentifier({ algorithmId: '1.2.840.113549.1.1.11', algorithmParams: new asn1js.Null() });
      cert.issuer = parts.issuerName;
      cert.subject = parts.subject;
      cert.notBefore = new pkijs.Time({ type: 0, value: parts.validity.notBefore });
      cert.notAfter = new pkijs.Time({ type: notAfter.getUTCFullYear() >= 2050 ? 1 : 0, value: notAfter });
      cert.subjectPublicKeyInfo = pkijs.PublicKeyInfo.fromBER(toAb(parts.spki));
      cert.extensions = parts.extensions;
      expect(Buffer.from(prepared.tbs).toString('hex')).toBe(Buffer.from(cert.encodeTBS().toBER(false)).toString('hex'));
    }
  });

  describe('requested extensions the profile does not honour', () => {
    // The extensions a certificate carries, by OID, in order (what a verifier sees, whatever was requested).
    const extensionIds = (pem: string) =>
      (pkijs.Certificate.fromBER(toAb(new Uint8Array(Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64')))).extensions ?? []).map((x) => `${x.extnID}${x.critical ? '!' : ''}`);
    const FIXED = ['2.5.29.19!', '2.5.29.15!', '2.5.29.37', '2.5.29.14', '2.5.29.35'];

    it.each([
      ['fail a critical extKeyUsage asking for serverAuth (we issue clientAuth only)', ['-addext', 'extendedKeyUsage=critical,serverAuth,clientAuth'], 'csr_extension_unsupported'],
      ['fail a critical keyUsage asking for keyEncipherment (we issue digitalSignature)', ['-addext', 'keyUsage=critical,digitalSignature,keyEncipherment'], 'csr_extension_unsupported'],
      ['fail a critical keyUsage asking for keyAgreement when the profile does not add it', ['-addext', 'keyUsage=critical,keyAgreement'], 'csr_extension_unsupported'],
      ['fail a critical subjectKeyIdentifier of another value than our key identifier', ['-addext', 'subjectKeyIdentifier=critical,0102030405'], 'csr_extension_unsupported'],
      ['fail a critical extension we do not know (unchanged code)', ['-addext', '1.2.3.4=critical,DER:0500'], 'csr_unknown_critical_extension'],
    ])('%s: refused before any signature', (_n, extra, code) => {
      const before = signer.signCalls;
      const csr = verifyCsrPossession(parseCsr(deviceCsr(extra)));
      expect(() => prepareDeviceCertificate(issuer, csr, profile)).toThrow(expect.objectContaining({ code, status: 400 }));
      expect(signer.signCalls).toBe(before);
    });

    it.each([
      ['ok nothing ignored when every request is honoured (critical CA:false, digitalSignature, clientAuth, SAN, our SKI)', ['-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=critical,digitalSignature', '-addext', 'extendedKeyUsage=critical,clientAuth', '-addext', 'subjectAltName=DNS:d.example', '-addext', 'subjectKeyIdentifier=hash'], {}, [], true],
      ['ok keyAgreement honoured for an EC key when the profile adds it', ['-addext', 'keyUsage=critical,digitalSignature,keyAgreement'], { keyAgreementForEc: true }, [], false],
      ['ok a non-critical extKeyUsage asking for serverAuth: issued without it, reported', ['-addext', 'extendedKeyUsage=serverAuth,clientAuth'], {}, ['2.5.29.37'], false],
      ['ok a non-critical keyUsage asking for nonRepudiation: issued without it, reported', ['-addext', 'keyUsage=digitalSignature,nonRepudiation'], {}, ['2.5.29.15'], false],
      ['ok a non-critical subjectKeyIdentifier of another value: ours, reported', ['-addext', 'subjectKeyIdentifier=0102030405'], {}, ['2.5.29.14'], false],
      ['ok non-critical extensions we do not know: issued without them, reported in request order', ['-addext', '1.2.3.4=DER:0500', '-addext', 'certificatePolicies=1.2.3.5', '-addext', 'nsComment=hello'], {}, ['1.2.3.4', '2.5.29.32', '2.16.840.1.113730.1.13'], false],
    ] as [string, string[], { keyAgreementForEc?: boolean }, string[], boolean][])('%s', async (_n, extra, more, ignored, san) => {
      const prepared = prepareDeviceCertificate(issuer, verifyCsrPossession(parseCsr(deviceCsr(extra))), { ...profile, ...more });
      expect(prepared.ignoredExtensions).toEqual(ignored);
      const issued = await signDeviceCertificate(signer, prepared);
      const x = new X509Certificate(issued.certificatePem);
      expect(x.verify(new X509Certificate(ca.certificatePem).publicKey)).toBe(true);
      // Node's keyUsage is the extKeyUsage purposes: clientAuth only, whatever was asked.
      expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
      expect(extensionIds(issued.certificatePem)).toEqual([...FIXED, ...(san ? ['2.5.29.17'] : []), '2.5.29.31']);
      const text = openssl(['x509', '-noout', '-ext', 'keyUsage'], issued.certificatePem);
      expect(text).toContain(more.keyAgreementForEc ? 'Digital Signature, Key Agreement' : 'Digital Signature');
      expect(text).not.toMatch(/Non Repudiation|Key Encipherment/);
    });
  });

  it('refuses a CSR whose contents asn1js cannot read as csr_malformed (a 400, not a crash)', () => {
    const good = parseCsr(deviceCsr()).der;
    const unreadable = derTlv(0x30, good, derTlv(0x18, new Uint8Array(Buffer.from('20500101000000z', 'latin1'))));
    expect(() => parseCsr(unreadable)).toThrow(expect.objectContaining({ code: 'csr_malformed', status: 400 }));
  });
});
