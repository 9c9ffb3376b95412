import { X509Certificate, createHash, createPublicKey, randomBytes, verify as nodeVerify } from 'node:crypto';
import * as asn1js from 'asn1js';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import {
  HsmKeyInfo,
  IssuedCertificate,
  KeyAlgorithm,
  PkiError,
  createCaCertificate,
  createCmsSignature,
  createCrl,
  createFirmwareSigningCertificate,
  createRootCertificate,
  digestStream,
  isStrictDer,
} from '@keyserver/pki';
import { createTempToken } from '../testing/temp-token';
import { Scratch, run } from '../testing/tools';
import { Pkcs11Signer, createPkcs11Signer } from './pkcs11-signer';

const DAY = 86_400_000;

describe('key hierarchy, CMS and CRL signed in the HSM', () => {
  let signer: Pkcs11Signer;
  const scratch = new Scratch();
  const now = new Date();
  const rootValidity = { notBefore: new Date(+now - DAY), notAfter: new Date(+now + 20 * 365 * DAY) };

  interface Hierarchy {
    rootKey: HsmKeyInfo;
    caKey: HsmKeyInfo;
    fwKey: HsmKeyInfo;
    root: IssuedCertificate;
    ca: IssuedCertificate;
    fw: IssuedCertificate;
    files: { root: string; ca: string; fw: string };
  }
  const hierarchies = new Map<string, Hierarchy>();

  async function buildHierarchy(name: string, algs: [KeyAlgorithm, KeyAlgorithm, KeyAlgorithm]): Promise<Hierarchy> {
    const [rootKey, caKey, fwKey] = await Promise.all(algs.map((algorithm, i) => signer.generateKey({ algorithm, label: `${name}-${i}` })));
    const root = await createRootCertificate(signer, rootKey, { subject: { commonName: `${name} Root`, organization: 'Keyserver Test', country: 'DE' }, ...rootValidity });
    const ca = await createCaCertificate(signer, { key: rootKey, certificate: root.certificatePem }, caKey, {
      subject: { commonName: `${name} Issuing CA`, organization: 'Keyserver Test' },
      notBefore: now,
      notAfter: new Date(+now + 10 * 365 * DAY),
      crlDistributionPointUrl: 'http://crl.keyserver.test/ca.crl',
    });
    const fw = await createFirmwareSigningCertificate(signer, { key: caKey, certificate: ca.certificateDer }, fwKey, {
      subject: { commonName: `${name} Firmware Signing`, organization: 'Keyserver Test' },
      notBefore: now,
      notAfter: new Date(+now + 2 * 365 * DAY),
    });
    const files = {
      root: scratch.write(`${name}-root.pem`, root.certificatePem),
      ca: scratch.write(`${name}-ca.pem`, ca.certificatePem),
      fw: scratch.write(`${name}-fw.pem`, fw.certificatePem),
    };
    return { rootKey, caKey, fwKey, root, ca, fw, files };
  }

  beforeAll(async () => {
    const token = createTempToken('pki');
    signer = await createPkcs11Signer({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 4 });
    hierarchies.set('ec-rsa', await buildHierarchy('ec-rsa', ['EC-P384', 'RSA-3072', 'EC-P256']));
    hierarchies.set('rsa-ec', await buildHierarchy('rsa-ec', ['RSA-4096', 'EC-P521', 'RSA-2048']));
    hierarchies.set('ed25519', await buildHierarchy('ed25519', ['Ed25519', 'Ed25519', 'Ed25519']));
  });
  afterAll(async () => {
    await signer.close();
    scratch.remove();
  });

  const names = ['ec-rsa', 'rsa-ec', 'ed25519'];
  const h = (name: string) => hierarchies.get(name) as Hierarchy;

  it.each(names)('ok %s chain passes openssl verify -x509_strict', (name) => {
    const { files } = h(name);
    const r = run('openssl', ['verify', '-x509_strict', '-CAfile', files.root, '-untrusted', files.ca, files.fw]);
    expect(r.stdout.trim()).toBe(`${files.fw}: OK`);
    expect(run('openssl', ['verify', '-x509_strict', '-CAfile', files.root, files.ca]).stdout.trim()).toBe(`${files.ca}: OK`);
    // The FW certificate alone does not chain to the root without the CA.
    expect(run('openssl', ['verify', '-x509_strict', '-CAfile', files.root, files.fw]).status).not.toBe(0);
  });

  it.each(names)('ok %s chain passes certtool --verify-chain', (name) => {
    const { root, ca, fw } = h(name);
    const chain = scratch.write(`${name}-chain.pem`, fw.certificatePem + ca.certificatePem + root.certificatePem);
    const r = run('certtool', ['--verify-chain', '--infile', chain]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/Chain verification output: Verified/);
  });

  it('puts the profile extensions on root, CA and firmware certificates', () => {
    const { files, root, ca, fw } = h('ec-rsa');
    const text = (f: string) => run('openssl', ['x509', '-noout', '-text', '-in', f]).stdout;
    const rootText = text(files.root);
    expect(rootText).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE\n/);
    expect(rootText).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign\n/);
    expect(rootText).toMatch(/X509v3 Subject Key Identifier/);
    expect(rootText).not.toMatch(/Extended Key Usage/);
    // One attribute per RDN: no multi-valued '+' RDNs.
    expect(run('openssl', ['x509', '-noout', '-subject', '-in', files.root]).stdout.trim()).toBe('subject=C = DE, O = Keyserver Test, CN = ec-rsa Root');
    const caText = text(files.ca);
    expect(caText).toMatch(/CA:TRUE, pathlen:0/);
    expect(caText).toMatch(/X509v3 Authority Key Identifier/);
    expect(caText).toMatch(/URI:http:\/\/crl.keyserver.test\/ca.crl/);
    const fwText = text(files.fw);
    expect(fwText).toMatch(/CA:FALSE/);
    expect(fwText).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    expect(fwText).toMatch(/X509v3 Extended Key Usage:\s+Code Signing\n/);
    const x = new X509Certificate(fw.certificatePem);
    expect(x.ca).toBe(false);
    expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.3']);
    expect(x.verify(new X509Certificate(ca.certificatePem).publicKey)).toBe(true);
    expect(new X509Certificate(ca.certificatePem).checkIssued(new X509Certificate(root.certificatePem))).toBe(true);
  });

  it('uses positive 128-bit random serials', () => {
    for (const { root, ca, fw } of hierarchies.values()) {
      for (const c of [root, ca, fw]) {
        const serial = new X509Certificate(c.certificatePem).serialNumber;
        expect(BigInt(`0x${serial}`)).toBeGreaterThan(0n);
        expect(BigInt(`0x${serial}`) < 1n << 127n).toBe(true);
        expect(BigInt(`0x${c.serialHex}`)).toBe(BigInt(`0x${serial}`));
      }
    }
  });

  it.each([
    ['fail notAfter beyond the issuer', { notBefore: now, notAfter: new Date(+now + 30 * 365 * DAY) }, 'validity_exceeds_issuer'],
    ['fail notBefore before the issuer', { notBefore: new Date(+now - 2 * DAY), notAfter: new Date(+now + DAY) }, 'validity_exceeds_issuer'],
    ['fail notAfter before notBefore', { notBefore: now, notAfter: new Date(+now - DAY) }, 'invalid_validity'],
  ] as const)('%s', async (_n, validity, code) => {
    const { rootKey, root, caKey } = h('ec-rsa');
    const spy = jest.spyOn(signer, 'sign');
    const err = await createCaCertificate(signer, { key: rootKey, certificate: root.certificatePem }, caKey, { subject: { commonName: 'x' }, ...validity }).catch((e) => e);
    const calls = spy.mock.calls.length;
    spy.mockRestore();
    expect(calls).toBe(0);
    expect(err).toBeInstanceOf(PkiError);
    expect(err.code).toBe(code);
  });

  it('refuses to issue from a firmware (non-CA) certificate', async () => {
    const { fwKey, fw, caKey } = h('ec-rsa');
    await expect(
      createFirmwareSigningCertificate(signer, { key: fwKey, certificate: fw.certificatePem }, caKey, { subject: { commonName: 'x' }, notBefore: now, notAfter: new Date(+now + DAY) }),
    ).rejects.toMatchObject({ code: 'issuer_not_ca' });
  });

  it('refuses a sub-CA under a CA whose path length is 0', async () => {
    const { caKey, ca, fwKey } = h('ec-rsa');
    await expect(
      createCaCertificate(signer, { key: caKey, certificate: ca.certificatePem }, fwKey, { subject: { commonName: 'x' }, notBefore: now, notAfter: new Date(+now + DAY) }),
    ).rejects.toMatchObject({ code: 'issuer_not_ca' });
  });

  it('refuses an issuer certificate that is not for the issuer key', async () => {
    const { caKey, root, fwKey } = h('ec-rsa');
    await expect(
      createCaCertificate(signer, { key: caKey, certificate: root.certificatePem }, fwKey, { subject: { commonName: 'x' }, notBefore: now, notAfter: new Date(+now + DAY) }),
    ).rejects.toMatchObject({ code: 'invalid_certificate' });
  });

  it.each([
    ['fail control character in the common name', { commonName: 'bad\u0007name' }],
    ['fail common name over 64 characters', { commonName: 'x'.repeat(65) }],
    ['fail three-letter country', { commonName: 'x', country: 'DEU' }],
  ])('%s', async (_n, subject) => {
    const { rootKey } = h('ec-rsa');
    await expect(createRootCertificate(signer, rootKey, { subject, ...rootValidity })).rejects.toMatchObject({ code: 'invalid_name' });
  });

  describe('CMS', () => {
    it.each(names)('ok %s detached CMS over a streamed 8 MiB file verifies with openssl cms, a tampered file does not', async (name) => {
      const { fwKey, fw, ca, files } = h(name);
      const content = scratch.write(`${name}-fw.bin`, randomBytes(8 * 1024 * 1024));
      const hash = fwKey.algorithm === 'Ed25519' ? 'SHA-512' : fwKey.algorithm === 'EC-P521' ? 'SHA-512' : 'SHA-256';
      const digest = await digestStream(createReadStream(content, { highWaterMark: 64 * 1024 }), hash);
      const cms = await createCmsSignature(signer, fwKey, [fw.certificatePem, ca.certificatePem], { digest, hash });
      const sig = scratch.write(`${name}-fw.p7s`, cms);
      // OpenSSL 3.0 cannot verify Ed25519 CMS (no EdDSA support in its CMS code); GnuTLS can.
      const verify =
        fwKey.algorithm === 'Ed25519'
          ? (file: string) => run('certtool', ['--p7-verify', '--inder', '--infile', sig, '--load-data', file, '--load-ca-certificate', files.root])
          : (file: string) =>
              run('openssl', ['cms', '-verify', '-binary', '-content', file, '-inform', 'DER', '-in', sig, '-CAfile', files.root, '-purpose', 'any', '-out', '/dev/null']);
      const ok = verify(content);
      expect(ok.status).toBe(0);
      expect(ok.stdout + ok.stderr).toMatch(fwKey.algorithm === 'Ed25519' ? /Signature status: ok/ : /CMS Verification successful/);
      const tampered = scratch.write(`${name}-tampered.bin`, Buffer.concat([Buffer.from([1]), randomBytes(100)]));
      const bad = verify(tampered);
      expect(bad.status).not.toBe(0);
      expect(bad.stdout + bad.stderr).toMatch(/Verification failure|Signature status: verification failed|Public key signature verification has failed/);
      const printed = run('openssl', ['cms', '-cmsout', '-print', '-inform', 'DER', '-in', sig]).stdout;
      for (const attr of ['contentType', 'signingTime', 'messageDigest', 'id-smime-aa-signingCertificateV2', '1.2.840.113549.1.9.52']) {
        expect(printed).toContain(attr);
      }
      expect(printed).toMatch(/eContent: <ABSENT>/);
    });

    // What a bootloader author's strict parser meets, read independently of pkijs (asn1js trees, Node crypto verifying
    // the signature over the signed attributes): one canonical DER form, versions and choices of RFC 5652, and the
    // parameter encodings of RFC 4055 (NULL for RSA PKCS#1 v1.5), RFC 5758 (absent for ECDSA) and RFC 8419 (absent, SHA-512).
    it.each(names)('ok %s CMS is canonical DER and each field is the RFC 5652 choice for its signer; Node verifies the signed attributes', async (name) => {
      const { fwKey, fw, ca, root } = h(name);
      const hash = fwKey.algorithm === 'Ed25519' || fwKey.algorithm === 'EC-P521' ? 'SHA-512' : fwKey.algorithm === 'EC-P384' ? 'SHA-384' : 'SHA-256';
      const node = hash.replace('-', '').toLowerCase();
      const image = randomBytes(3000);
      const digest = new Uint8Array(createHash(node).update(image).digest());
      const before = Math.floor(Date.now() / 1000) * 1000;
      // The chain as the firmware service passes it: the signer's certificate first, up to the root.
      const cms = await createCmsSignature(signer, fwKey, [fw.certificatePem, ca.certificatePem, root.certificatePem], { digest, hash });
      expect(isStrictDer(cms)).toBe(true);
      const der = (v: asn1js.AsnType) => Buffer.from(v.toBER(false));
      const kids = (v: asn1js.AsnType) => (v as asn1js.Constructed).valueBlock.value;
      const oid = (v: asn1js.AsnType) => (v as asn1js.ObjectIdentifier).valueBlock.toString();
      const sortedSet = (els: asn1js.AsnType[]) => els.map(der).every((e, i, all) => i === 0 || Buffer.compare(all[i - 1], e) <= 0);
      const top = asn1js.fromBER(new Uint8Array(cms).buffer).result;
      expect(oid(kids(top)[0])).toBe('1.2.840.113549.1.7.2');
      const [version, digestAlgorithms, encap, certificates, signerInfos, ...rest] = kids(kids(kids(top)[1])[0]);
      expect(rest).toEqual([]);
      // RFC 5652 5.1: id-data content, no attribute certificates, only version-1 SignerInfos: version 1.
      expect((version as asn1js.Integer).valueBlock.valueDec).toBe(1);
      // Detached: eContentType id-data, no eContent.
      expect(kids(encap).map(oid)).toEqual(['1.2.840.113549.1.7.1']);
      // The chain as documented: the signer's certificate up to the root, each byte for byte, SET OF in DER order.
      expect(certificates.idBlock).toMatchObject({ tagClass: 3, tagNumber: 0 });
      const embedded = kids(certificates).map(der);
      expect([...embedded].sort(Buffer.compare)).toEqual([fw, ca, root].map((c) => Buffer.from(c.certificateDer)).sort(Buffer.compare));
      expect(sortedSet(kids(certificates))).toBe(true);
      const [info, ...others] = kids(signerInfos);
      expect(others).toEqual([]);
      const [siVersion, sid, digestAlg, signedAttrs, sigAlg, signature, ...unsigned] = kids(info);
      expect(unsigned).toEqual([]);
      // Version 1 goes with IssuerAndSerialNumber, naming the embedded signer certificate.
      expect((siVersion as asn1js.Integer).valueBlock.valueDec).toBe(1);
      const tbs = kids(kids(asn1js.fromBER(new Uint8Array(fw.certificateDer).buffer).result)[0]);
      expect(kids(sid)).toHaveLength(2);
      expect(der(kids(sid)[0])).toEqual(der(tbs[3]));
      expect(der(kids(sid)[1])).toEqual(der(tbs[1]));
      // digestAlgorithms is exactly the signer's digest algorithm, parameters absent (RFC 5754 2).
      const hashOid = { 'SHA-256': '2.16.840.1.101.3.4.2.1', 'SHA-384': '2.16.840.1.101.3.4.2.2', 'SHA-512': '2.16.840.1.101.3.4.2.3' }[hash];
      expect(kids(digestAlgorithms).map(der)).toEqual([der(digestAlg)]);
      expect(kids(digestAlg).map(oid)).toEqual([hashOid]);
      // Signed attributes: [0] IMPLICIT SET OF in DER order, one value each, content-type id-data, the digest, a UTCTime now.
      expect(signedAttrs.idBlock).toMatchObject({ tagClass: 3, tagNumber: 0 });
      expect(sortedSet(kids(signedAttrs))).toBe(true);
      const attrs = new Map(kids(signedAttrs).map((a) => [oid(kids(a)[0]), kids(kids(a)[1])] as const));
      expect(attrs.size).toBe(kids(signedAttrs).length);
      for (const values of attrs.values()) expect(values).toHaveLength(1);
      expect(oid(attrs.get('1.2.840.113549.1.9.3')?.[0] as asn1js.AsnType)).toBe('1.2.840.113549.1.7.1');
      expect(Buffer.from((attrs.get('1.2.840.113549.1.9.4')?.[0] as asn1js.OctetString).valueBlock.valueHexView)).toEqual(Buffer.from(digest));
      const signingTime = attrs.get('1.2.840.113549.1.9.5')?.[0] as asn1js.UTCTime;
      expect(signingTime).toBeInstanceOf(asn1js.UTCTime);
      expect(+signingTime.toDate()).toBeGreaterThanOrEqual(before);
      expect(+signingTime.toDate()).toBeLessThanOrEqual(Date.now());
      // The signature algorithm and its parameters for the signer's key type.
      const sigAlgParts = kids(sigAlg);
      const rsa = fwKey.algorithm.startsWith('RSA-');
      if (fwKey.algorithm === 'Ed25519') expect(sigAlgParts.map(oid)).toEqual(['1.3.101.112']);
      else if (rsa) {
        expect(oid(sigAlgParts[0])).toBe({ 'SHA-256': '1.2.840.113549.1.1.11', 'SHA-384': '1.2.840.113549.1.1.12', 'SHA-512': '1.2.840.113549.1.1.13' }[hash]);
        expect(sigAlgParts.slice(1).map(der)).toEqual([Buffer.from([5, 0])]);
      } else expect(sigAlgParts.map(oid)).toEqual([{ 'SHA-256': '1.2.840.10045.4.3.2', 'SHA-384': '1.2.840.10045.4.3.3', 'SHA-512': '1.2.840.10045.4.3.4' }[hash]]);
      // A second implementation: Node verifies the signature over the attributes as an explicit SET OF (0x31).
      const tbsAttrs = der(signedAttrs);
      tbsAttrs[0] = 0x31;
      const sig = Buffer.from((signature as asn1js.OctetString).valueBlock.valueHexView);
      if (!rsa && fwKey.algorithm !== 'Ed25519') expect(isStrictDer(sig)).toBe(true);
      expect(nodeVerify(fwKey.algorithm === 'Ed25519' ? null : node, tbsAttrs, { key: createPublicKey({ key: Buffer.from(fwKey.spki), format: 'der', type: 'spki' }), dsaEncoding: 'der' }, sig)).toBe(true);
    });

    it('refuses a digest of the wrong length and a certificate of another key', async () => {
      const { fwKey, fw, ca } = h('ec-rsa');
      await expect(createCmsSignature(signer, fwKey, [fw.certificatePem], { digest: new Uint8Array(20) })).rejects.toMatchObject({ code: 'digest_length_mismatch' });
      await expect(createCmsSignature(signer, fwKey, [ca.certificatePem], { digest: new Uint8Array(32) })).rejects.toMatchObject({ code: 'invalid_certificate' });
    });

    it('refuses an Ed25519 CMS digested with anything but SHA-512 (RFC 8419 3.1): hash_not_supported', async () => {
      const { fwKey, fw } = h('ed25519');
      for (const hash of ['SHA-256', 'SHA-384'] as const) {
        const digest = new Uint8Array(createHash(hash.replace('-', '').toLowerCase()).update('image').digest());
        await expect(createCmsSignature(signer, fwKey, [fw.certificatePem], { digest, hash })).rejects.toMatchObject({ code: 'hash_not_supported' });
      }
    });

    it('hashes a stream in constant memory', async () => {
      const chunk = Buffer.alloc(1024 * 1024, 7);
      let n = 0;
      const stream = new Readable({
        read() {
          this.push(n++ < 256 ? chunk : null);
        },
      });
      const expected = createHash('sha256');
      for (let i = 0; i < 256; i++) expected.update(chunk);
      const before = process.memoryUsage().rss;
      const d = await digestStream(stream, 'SHA-256');
      expect(Buffer.from(d).toString('hex')).toBe(expected.digest('hex'));
      expect(process.memoryUsage().rss - before).toBeLessThan(128 * 1024 * 1024);
    });
  });

  describe('CRL', () => {
    it.each(names)('ok %s CRL verifies with openssl crl -verify and revokes the firmware certificate', async (name) => {
      const { caKey, ca, fw, files } = h(name);
      const other = '7f' + randomBytes(15).toString('hex');
      const crl = await createCrl(
        signer,
        caKey,
        ca.certificatePem,
        [
          { serialHex: fw.serialHex, revocationDate: now, reason: 'keyCompromise' },
          { serialHex: other, revocationDate: now },
        ],
        42n,
        now,
        new Date(+now + 7 * DAY),
      );
      const crlFile = scratch.write(`${name}.crl.pem`, crl.crlPem);
      const caBundle = scratch.write(`${name}-bundle.pem`, ca.certificatePem + h(name).root.certificatePem);
      const r = run('openssl', ['crl', '-in', crlFile, '-CAfile', caBundle, '-verify', '-noout']);
      expect(r.status).toBe(0);
      expect(r.stderr).toMatch(/verify OK/);
      const text = run('openssl', ['crl', '-in', crlFile, '-noout', '-text']).stdout;
      // openssl prints the serial's magnitude: without the 00 that keeps a serial with its top bit set positive in DER.
      expect(text).toContain(`Serial Number: ${fw.serialHex.replace(/^(00)+(?=..)/, '').toUpperCase()}`);
      expect(text).toContain(`Serial Number: ${other.toUpperCase()}`);
      expect(text).toMatch(/X509v3 CRL Number:\s+42/);
      expect(text).toMatch(/Key Compromise/);
      const revoked = run('openssl', ['verify', '-crl_check', '-CRLfile', crlFile, '-CAfile', files.root, '-untrusted', files.ca, files.fw]);
      expect(revoked.status).not.toBe(0);
      expect(revoked.stdout + revoked.stderr).toMatch(/certificate revoked/);
    });

    it('ok an empty CRL verifies', async () => {
      const { caKey, ca, root } = h('ec-rsa');
      const crl = await createCrl(signer, caKey, ca.certificateDer, [], 1, now, new Date(+now + DAY));
      const r = run('openssl', ['crl', '-in', scratch.write('empty.crl', crl.crlPem), '-CAfile', scratch.write('b.pem', ca.certificatePem + root.certificatePem), '-verify', '-noout']);
      expect(r.stderr).toMatch(/verify OK/);
    });

    it.each([
      ['fail negative serial', [{ serialHex: 'ff01', revocationDate: now }], 'invalid_crl_input'],
      ['fail zero serial', [{ serialHex: '00', revocationDate: now }], 'invalid_crl_input'],
      ['fail serial over 20 bytes', [{ serialHex: '01'.repeat(21), revocationDate: now }], 'invalid_crl_input'],
      ['fail duplicate serial', [{ serialHex: '01', revocationDate: now }, { serialHex: '01', revocationDate: now }], 'invalid_crl_input'],
    ] as const)('%s', async (_n, revoked, code) => {
      const { caKey, ca } = h('ec-rsa');
      await expect(createCrl(signer, caKey, ca.certificatePem, [...revoked], 2, now, new Date(+now + DAY))).rejects.toMatchObject({ code });
    });
  });
});
