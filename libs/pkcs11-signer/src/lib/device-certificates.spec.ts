import * as asn1js from 'asn1js';
import { X509Certificate, createPublicKey, generateKeyPairSync, KeyObject } from 'node:crypto';
import {
  DeviceCertificateProfile,
  HsmKeyInfo,
  IssuedCertificate,
  PkiError,
  createCaCertificate,
  createRootCertificate,
  issueDeviceCertificate,
} from '@keyserver/pki';
import { buildCsr, extension, extensionRequest, name, oid, pem } from '../testing/csr-builder';
import { createTempToken } from '../testing/temp-token';
import { Scratch, run } from '../testing/tools';
import { Pkcs11Signer, createPkcs11Signer } from './pkcs11-signer';

const DAY = 86_400_000;
const CN = '2.5.4.3';
const O = '2.5.4.10';
const OU = '2.5.4.11';
const C = '2.5.4.6';
const SHA256_RSA = '1.2.840.113549.1.1.11';
const ECDSA_SHA256 = '1.2.840.10045.4.3.2';

describe(issueDeviceCertificate.name, () => {
  let signer: Pkcs11Signer;
  const scratch = new Scratch();
  let rootKey: HsmKeyInfo;
  let caKey: HsmKeyInfo;
  let root: IssuedCertificate;
  let ca: IssuedCertificate;
  const profile: DeviceCertificateProfile = { validityDays: 365, crlDistributionPointUrl: 'http://crl.keyserver.test/devices.crl' };

  beforeAll(async () => {
    const token = createTempToken('devices');
    signer = await createPkcs11Signer({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 2 });
    rootKey = await signer.generateKey({ algorithm: 'EC-P384', label: 'root' });
    caKey = await signer.generateKey({ algorithm: 'EC-P256', label: 'devices-ca' });
    const now = Date.now();
    root = await createRootCertificate(signer, rootKey, { subject: { commonName: 'Device Root', organization: 'Acme' }, notBefore: new Date(now - DAY), notAfter: new Date(now + 20 * 365 * DAY) });
    ca = await createCaCertificate(signer, { key: rootKey, certificate: root.certificatePem }, caKey, {
      subject: { commonName: 'Device CA', organization: 'Acme' },
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 10 * 365 * DAY),
    });
  });
  afterAll(async () => {
    await signer.close();
    scratch.remove();
  });

  const issuer = () => ({ key: caKey, certificate: ca.certificatePem, chain: [root.certificatePem] });

  function opensslCsr(keyArgs: string[], extra: string[] = [], subj = '/CN=device-001/O=Acme/serialNumber=SN-0001'): string {
    const keyFile = scratch.path(`k-${Math.random().toString(36).slice(2)}.pem`);
    const r = run('openssl', ['req', '-new', ...keyArgs, '-nodes', '-keyout', keyFile, '-subj', subj, ...extra]);
    if (r.status !== 0) throw new Error(r.stderr);
    return r.stdout;
  }

  describe('ok', () => {
    it.each([
      ['RSA-2048', ['-newkey', 'rsa:2048']],
      ['RSA-3072', ['-newkey', 'rsa:3072']],
      ['P-256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']],
      ['P-384', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-sha384']],
      ['P-521', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521', '-sha512']],
      ['Ed25519', ['-newkey', 'ed25519']],
    ])('ok issues a client certificate for an openssl %s CSR that openssl, certtool and Node verify', async (_alg, keyArgs) => {
      const csr = opensslCsr(keyArgs, ['-addext', 'subjectAltName=DNS:device-001.iot.example', '-addext', 'extendedKeyUsage=serverAuth,codeSigning']);
      const result = await issueDeviceCertificate(signer, issuer(), csr, profile);
      expect(result.chainPems).toEqual([ca.certificatePem, root.certificatePem]);
      expect(result.serialHex).toMatch(/^[0-9a-f]+$/);
      const certFile = scratch.write('device.pem', result.certificatePem);
      const rootFile = scratch.write('root.pem', root.certificatePem);
      const caFile = scratch.write('ca.pem', ca.certificatePem);
      const v = run('openssl', ['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', rootFile, '-untrusted', caFile, certFile]);
      expect(v.stdout.trim()).toBe(`${certFile}: OK`);
      // A server must not accept it: EKU is clientAuth only, whatever the CSR asked for.
      expect(run('openssl', ['verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', rootFile, '-untrusted', caFile, certFile]).status).not.toBe(0);
      const chain = scratch.write('chain.pem', result.certificatePem + result.chainPems.join(''));
      const ct = run('certtool', ['--verify-chain', '--infile', chain]);
      expect(ct.stdout).toMatch(/Chain verification output: Verified/);
      expect(run('openssl', ['req', '-verify', '-noout', '-in', scratch.write('csr.pem', csr)]).stderr + '').toMatch(/verify OK|Certificate request self-signature verify OK/);

      const x = new X509Certificate(result.certificatePem);
      expect(x.verify(new X509Certificate(ca.certificatePem).publicKey)).toBe(true);
      expect(x.checkIssued(new X509Certificate(ca.certificatePem))).toBe(true);
      expect(x.ca).toBe(false);
      expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
      expect(x.subject).toBe('CN=device-001\nO=Acme\nserialNumber=SN-0001');
      expect(x.subjectAltName).toBe('DNS:device-001.iot.example');
      const csrKey = createPublicKey(run('openssl', ['req', '-noout', '-pubkey', '-in', scratch.path('csr.pem')]).stdout);
      expect(x.publicKey.export({ type: 'spki', format: 'der' }).equals(csrKey.export({ type: 'spki', format: 'der' }))).toBe(true);
      const text = run('openssl', ['x509', '-noout', '-text', '-in', certFile]).stdout;
      expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
      expect(text).toMatch(/X509v3 Extended Key Usage:\s+TLS Web Client Authentication\n/);
      expect(text).toMatch(/URI:http:\/\/crl.keyserver.test\/devices.crl/);
      expect(text).toMatch(/X509v3 Authority Key Identifier/);
      expect(text).toMatch(/X509v3 Subject Key Identifier/);
    });

    it('ok adds keyAgreement for EC keys when the profile says so', async () => {
      const csr = opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']);
      const result = await issueDeviceCertificate(signer, issuer(), csr, { ...profile, keyAgreementForEc: true });
      const text = run('openssl', ['x509', '-noout', '-text', '-in', scratch.write('ka.pem', result.certificatePem)]).stdout;
      expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Key Agreement\n/);
    });

    it('ok accepts a DER CSR', async () => {
      const csr = opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']);
      const der = new Uint8Array(Buffer.from(csr.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64'));
      const result = await issueDeviceCertificate(signer, issuer(), der, profile);
      expect(new X509Certificate(result.certificatePem).subject).toContain('CN=device-001');
    });

    it('fail refuses a validity beyond the CA certificate', async () => {
      const csr = opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']);
      await expect(issueDeviceCertificate(signer, issuer(), csr, { ...profile, validityDays: 11 * 365 })).rejects.toMatchObject({ code: 'validity_exceeds_issuer' });
    });
  });

  describe('hostile CSR corpus', () => {
    const corpus: [string, () => string | Uint8Array, string][] = [];
    let rsa: { publicKey: KeyObject; privateKey: KeyObject };
    let rsaOther: { publicKey: KeyObject; privateKey: KeyObject };
    let ec: { publicKey: KeyObject; privateKey: KeyObject };
    const spkiOf = (k: KeyObject) => new Uint8Array(k.export({ type: 'spki', format: 'der' }));
    const goodSubject = () => name([[CN, 'device-1'], [O, 'Acme']]);
    const rsaCsr = (over: Partial<Parameters<typeof buildCsr>[0]> = {}) =>
      buildCsr({ spki: spkiOf(rsa.publicKey), subject: goodSubject(), signKey: rsa.privateKey, hash: 'sha256', sigOid: SHA256_RSA, nullParams: true, ...over });
    const ecCsr = (over: Partial<Parameters<typeof buildCsr>[0]> = {}) =>
      buildCsr({ spki: spkiOf(ec.publicKey), subject: goodSubject(), signKey: ec.privateKey, hash: 'sha256', sigOid: ECDSA_SHA256, ...over });
    const withExt = (...exts: asn1js.Sequence[]) => rsaCsr({ attributes: [extensionRequest(exts)] });
    const san = (names: asn1js.AsnType[]) => new Uint8Array(new asn1js.Sequence({ value: names }).toBER(false));
    const ctx = (tag: number, text: string) => new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: tag }, valueHex: new Uint8Array(Buffer.from(text)).buffer });

    beforeAll(() => {
      rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
      rsaOther = generateKeyPairSync('rsa', { modulusLength: 2048 });
      ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    });

    const add = (n: string, make: () => string | Uint8Array, code: string) => corpus.push([n, make, code]);
    add('fail signature bytes altered', () => {
      const good = rsaCsr();
      good[good.length - 1] ^= 0x01;
      return good;
    }, 'csr_signature_invalid');
    add('fail signed by another key', () => rsaCsr({ signKey: rsaOther.privateKey }), 'csr_signature_invalid');
    add('fail ECDSA signature algorithm on an RSA key', () => rsaCsr({ sigOid: ECDSA_SHA256, nullParams: false }), 'csr_signature_invalid');
    add('fail truncated DER', () => rsaCsr().subarray(0, 300), 'csr_malformed');
    add('fail trailing garbage after the DER', () => Buffer.concat([rsaCsr(), Buffer.from([0, 0])]), 'csr_trailing_data');
    add('fail text after the PEM block', () => pem('CERTIFICATE REQUEST', rsaCsr()) + 'garbage\n', 'csr_pem_invalid');
    add('fail wrong PEM label', () => pem('CERTIFICATE', rsaCsr()), 'csr_wrong_pem_label');
    add('fail several PEM blocks', () => pem('CERTIFICATE REQUEST', rsaCsr()) + pem('CERTIFICATE REQUEST', ecCsr()), 'csr_multiple_pem_blocks');
    add('fail invalid base64 in PEM', () => '-----BEGIN CERTIFICATE REQUEST-----\nMIIB*AAA\n-----END CERTIFICATE REQUEST-----\n', 'csr_pem_invalid');
    add('fail empty input', () => '', 'csr_malformed');
    add('fail not ASN.1', () => new Uint8Array(Buffer.from('hello world, not a CSR')), 'csr_malformed');
    add('fail input over 64 KiB', () => pem('CERTIFICATE REQUEST', new Uint8Array(50 * 1024)), 'csr_too_large');
    add('fail BER long-form length where short form fits', () => {
      const der = Buffer.from(rsaCsr());
      // 30 82 LL LL -> 30 83 00 LL LL: same value, non-minimal length encoding.
      return Buffer.concat([Buffer.from([0x30, 0x83, 0x00]), der.subarray(2)]);
    }, 'csr_not_der');
    add('fail BER indefinite length', () => {
      const der = Buffer.from(rsaCsr());
      return Buffer.concat([Buffer.from([0x30, 0x80]), der.subarray(4), Buffer.from([0, 0])]);
    }, 'csr_not_der');
    add('fail version 1', () => rsaCsr({ version: 1 }), 'csr_malformed');
    add('fail weak RSA-1024 key', () => {
      const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
      return rsaCsr({ spki: spkiOf(weak.publicKey), signKey: weak.privateKey });
    }, 'csr_key_not_allowed');
    add('fail SHA-1 signature', () => rsaCsr({ hash: 'sha1', sigOid: '1.2.840.113549.1.1.5' }), 'csr_signature_algorithm_not_allowed');
    add('fail MD5 signature', () => rsaCsr({ hash: 'md5', sigOid: '1.2.840.113549.1.1.4' }), 'csr_signature_algorithm_not_allowed');
    add('fail ECDSA with SHA-1', () => ecCsr({ hash: 'sha1', sigOid: '1.2.840.10045.4.1' }), 'csr_signature_algorithm_not_allowed');
    add('fail unknown signature algorithm', () => rsaCsr({ sigOid: '1.2.3.4.5' }), 'csr_signature_algorithm_not_allowed');
    add('fail RSA-PSS signed CSR', () => opensslCsr(['-newkey', 'rsa:2048', '-sigopt', 'rsa_padding_mode:pss']), 'csr_signature_algorithm_not_allowed');
    add('fail explicit EC parameters', () => {
      const k = scratch.path('explicit.pem');
      run('openssl', ['ecparam', '-name', 'prime256v1', '-param_enc', 'explicit', '-genkey', '-noout', '-out', k]);
      return run('openssl', ['req', '-new', '-key', k, '-subj', '/CN=device-1']).stdout;
    }, 'csr_explicit_ec_parameters');
    add('fail DSA key', () => {
      const dsa = generateKeyPairSync('dsa', { modulusLength: 2048, divisorLength: 256 });
      return buildCsr({ spki: spkiOf(dsa.publicKey), subject: goodSubject(), signKey: dsa.privateKey, hash: 'sha256', sigOid: '2.16.840.1.101.3.4.3.2' });
    }, 'csr_key_not_allowed');
    add('fail secp256k1 key', () => {
      const k = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
      return ecCsr({ spki: spkiOf(k.publicKey), signKey: k.privateKey });
    }, 'csr_key_not_allowed');
    add('fail Ed448 key', () => {
      const k = generateKeyPairSync('ed448');
      return buildCsr({ spki: spkiOf(k.publicKey), subject: goodSubject(), signKey: k.privateKey, hash: null, sigOid: '1.3.101.113' });
    }, 'csr_key_not_allowed');
    add('fail EC point off the curve', () => {
      const spki = spkiOf(ec.publicKey);
      spki[spki.length - 1] ^= 0x01;
      return ecCsr({ spki });
    }, 'csr_public_key_invalid');
    add('fail CA:true requested', () => opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['-addext', 'basicConstraints=critical,CA:TRUE']), 'csr_ca_requested');
    add('fail keyCertSign requested', () => opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['-addext', 'keyUsage=critical,keyCertSign']), 'csr_key_cert_sign_requested');
    add('fail cRLSign requested', () => opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['-addext', 'keyUsage=digitalSignature,cRLSign']), 'csr_key_cert_sign_requested');
    add('fail unknown critical extension', () => opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['-addext', '1.2.3.4.5=critical,DER:0500']), 'csr_unknown_critical_extension');
    add('fail duplicate extension', () => withExt(extension('2.5.29.15', false, new asn1js.BitString({ valueHex: new Uint8Array([0x80]).buffer, unusedBits: 7 }).toBER(false)), extension('2.5.29.15', false, new asn1js.BitString({ valueHex: new Uint8Array([0x80]).buffer, unusedBits: 7 }).toBER(false))), 'csr_duplicate_extension');
    add('fail challengePassword attribute', () => rsaCsr({ attributes: [new asn1js.Sequence({ value: [oid('1.2.840.113549.1.9.7'), new asn1js.Set({ value: [new asn1js.Utf8String({ value: 'secret' })] })] })] }), 'csr_attribute_not_allowed');
    add('fail control character in the subject', () => rsaCsr({ subject: name([[CN, 'dev\u0001ice']]) }), 'csr_subject_invalid');
    add('fail newline in the subject', () => rsaCsr({ subject: name([[CN, 'device\nCN=admin']]) }), 'csr_subject_invalid');
    add('fail common name over 64 characters', () => rsaCsr({ subject: name([[CN, 'x'.repeat(65)]]) }), 'csr_subject_too_long');
    add('fail subject over 1 KiB', () => rsaCsr({ subject: name([[CN, 'd'], ...Array.from({ length: 20 }, () => [OU, 'u'.repeat(60)] as [string, string])]) }), 'csr_subject_too_long');
    add('fail subject without a common name', () => rsaCsr({ subject: name([[O, 'Acme']]) }), 'csr_subject_invalid');
    add('fail three-letter country', () => rsaCsr({ subject: name([[CN, 'd'], [C, new asn1js.PrintableString({ value: 'DEU' })]]) }), 'csr_subject_invalid');
    add('fail subject attribute outside the profile (emailAddress)', () => rsaCsr({ subject: name([[CN, 'd'], ['1.2.840.113549.1.9.1', new asn1js.IA5String({ value: 'a@b.c' })]]) }), 'csr_subject_attribute_not_allowed');
    add('fail SAN type outside the profile (email)', () => withExt(extension('2.5.29.17', false, san([ctx(1, 'dev@example.com')]))), 'csr_san_not_allowed');
    add('fail SAN type outside the profile (IP address)', () => withExt(extension('2.5.29.17', false, san([new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 7 }, valueHex: new Uint8Array([10, 0, 0, 1]).buffer })]))), 'csr_san_not_allowed');
    add('fail DNS SAN with a space', () => withExt(extension('2.5.29.17', false, san([ctx(2, 'bad name.example')]))), 'csr_san_invalid');
    add('fail DNS SAN with a control character', () => withExt(extension('2.5.29.17', false, san([ctx(2, 'dev\u0000.example')]))), 'csr_san_invalid');

    it('holds at least 30 hostile CSRs', () => {
      expect(corpus.length).toBeGreaterThanOrEqual(30);
    });

    it.each(corpus.map(([n, make, code]) => [n, make, code] as const))('%s', async (_n, make, code) => {
      const input = make();
      const spy = jest.spyOn(signer, 'sign');
      const err = await issueDeviceCertificate(signer, issuer(), input, profile).catch((e) => e);
      const calls = spy.mock.calls.length;
      spy.mockRestore();
      expect(calls).toBe(0);
      expect(err).toBeInstanceOf(PkiError);
      expect(err.code).toBe(code);
      expect(err.status).toBeGreaterThanOrEqual(400);
      expect(err.status).toBeLessThan(500);
    });
  });
});
