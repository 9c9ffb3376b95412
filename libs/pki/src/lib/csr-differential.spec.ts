import * as fc from 'fast-check';
import { X509Certificate } from 'node:crypto';
import {
  SIGNATURE_ALGORITHMS,
  algorithmDer,
  buildCsr,
  extensionDer,
  extensionRequest,
  generalName,
  generateTestKey,
  nameDer,
  sanExtension,
  type NameEntry,
  type TestKey,
  type TestKeyType,
} from '../testing/csr-builder';
import { createTestCa, type TestCa } from '../testing/test-ca';
import { prepareCertificate, timeDer, x509Time } from './certificates';
import type { HsmSigner } from './hsm-signer';
import { signData } from './sign';
import { parseCsr, prepareDeviceCertificate, signDeviceCertificate, verifyCsrPossession, type DeviceCertificateProfile } from './csr';
import { legacyApplyDeviceProfile, legacyCheckPolicy, legacyParseCsr, legacyVerifyPossession } from './csr-legacy';
import { OID, derTlv, derToP1363, p1363ToDer, toPem } from './der';
import { PkiError } from './pki-error';

/**
 * The DER reader and writer (ADR 0033) against the pkijs path they replaced, kept in csr-legacy.ts as the oracle:
 * for any request, both end in the same refusal code or in the same TBSCertificate bytes (same serial and clock).
 * FUZZ_RUNS / FUZZ_SEED as in csr.fuzz.spec.ts.
 */
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 40);
const SEED = Number(process.env['FUZZ_SEED'] ?? 2033);
const TYPES: TestKeyType[] = ['RSA-2048', 'EC-P256', 'EC-P384', 'EC-P521', 'Ed25519'];
const SERIAL = new Uint8Array([0x3a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]);

type Outcome = { code: string } | { tbs: string; ignored: string[] };

describe('device certificates: DER reader and writer vs the pkijs path', () => {
  let t: TestCa;
  let profile: DeviceCertificateProfile;
  const keys = new Map<TestKeyType, TestKey>();
  const paths = { reader: 0, pkijs: 0 };

  beforeAll(async () => {
    t = await createTestCa();
    profile = {
      ...t.profile,
      now: new Date(Date.UTC(2027, 0, 2, 3, 4, 5, 678)),
      crlDistributionPointUrl: 'https://keyserver.example/api/v1/crl/demo-ca',
      allowedSanTypes: ['dns', 'uri', 'email', 'ip'],
      allowedSubjectAttributes: ['CN', 'O', 'OU', 'C', 'serialNumber', 'L'],
      keyAgreementForEc: true,
    };
    for (const type of TYPES) keys.set(type, generateTestKey(type));
  });
  afterAll(() => {
    if (process.env['FUZZ_REPORT']) console.log(paths);
  });

  const outcome = (run: () => { tbs: Uint8Array; ignored: string[] }): Outcome => {
    try {
      const { tbs, ignored } = run();
      return { tbs: Buffer.from(tbs).toString('hex'), ignored };
    } catch (e) {
      if (e instanceof PkiError) return { code: e.code };
      throw e;
    }
  };
  /** Today's path: DER reader, node:crypto PoP, DER writer. */
  const ours = (csr: Uint8Array | string): Outcome =>
    outcome(() => {
      const parsed = parseCsr(csr);
      paths[parsed.view ? 'reader' : 'pkijs']++;
      const prepared = prepareDeviceCertificate(t.issuer, verifyCsrPossession(parsed), profile, SERIAL);
      return { tbs: prepared.tbs, ignored: prepared.ignoredExtensions };
    });
  /** The previous path, end to end: asn1js/pkijs objects, pkijs extension builders, prepareCertificate. */
  const oracle = (csr: Uint8Array): Outcome =>
    outcome(() => {
      if (csr.length > 64 * 1024) throw new PkiError('csr_too_large');
      const parsed = legacyParseCsr(csr);
      const v = legacyVerifyPossession(parsed);
      const accepted = legacyCheckPolicy(parsed, v, profile);
      const parts = legacyApplyDeviceProfile({ spki: v.spki, keyType: v.keyType, ...accepted }, t.issuer.parsed, profile);
      return { tbs: prepareCertificate(t.issuer.key, parts, SERIAL).tbs, ignored: accepted.ignoredExtensions };
    });
  const same = (csr: Uint8Array) => expect(ours(csr)).toEqual(oracle(csr));

  const csrOf = (type: TestKeyType, o: { subject?: Uint8Array; attributes?: Uint8Array[]; sigAlg?: Uint8Array; spki?: Uint8Array; info?: (info: Uint8Array) => Uint8Array } = {}) => {
    const key = keys.get(type) as TestKey;
    return buildCsr({
      subject: o.subject ?? nameDer([[OID.commonName, `device-${type.toLowerCase()}`], [OID.organization, 'Acme']]),
      spki: o.spki ?? key.spki,
      attributes: o.attributes ?? [extensionRequest(sanExtension(generalName(2, 'd.devices.example')))],
      signatureAlgorithm: o.sigAlg ?? key.signatureAlgorithm,
      sign: (info) => key.sign(o.info ? o.info(info) : info),
    });
  };

  it('ok the common shapes go through the DER reader and give the same TBS bytes, which Node and openssl read', async () => {
    for (const type of TYPES) {
      const csr = csrOf(type);
      expect(parseCsr(csr).view).toBeDefined();
      same(csr);
      const issued = await signDeviceCertificate(t.signer, prepareDeviceCertificate(t.issuer, verifyCsrPossession(parseCsr(toPem('CERTIFICATE REQUEST', csr))), profile));
      expect(new X509Certificate(issued.certificatePem).verify(new X509Certificate(t.ca.certificatePem).publicKey)).toBe(true);
    }
  });

  const deep = (n: number): Uint8Array => (n === 0 ? new Uint8Array([0x05, 0x00]) : derTlv(0x30, deep(n - 1)));
  const ext = (oid: string, value: Uint8Array, critical = false) => extensionRequest(extensionDer(oid, value, critical));
  const cn = (v: string, tag?: number): NameEntry => [OID.commonName, v, tag];

  it.each<[string, () => Uint8Array]>([
    ['fail truncated', () => csrOf('EC-P256').subarray(0, 40)],
    ['fail trailing bytes', () => new Uint8Array([...csrOf('EC-P256'), 0x00])],
    ['fail indefinite length', () => { const c = csrOf('EC-P256'); return new Uint8Array([0x30, 0x80, ...c.subarray(c[1] & 0x80 ? 2 + (c[1] & 0x7f) : 2), 0x00, 0x00]); }],
    ['fail non-minimal length (BER, not DER)', () => { const c = csrOf('EC-P256'); return c[1] === 0x81 ? new Uint8Array([0x30, 0x82, 0x00, ...c.subarray(2)]) : new Uint8Array([0x30, 0x81, ...c.subarray(1)]); }],
    ['fail BOOLEAN 0x01 (BER, not DER) in an extension', () => csrOf('EC-P256', { attributes: [extensionRequest(derTlv(0x30, derTlv(0x06, new Uint8Array([0x2a, 0x03])), new Uint8Array([0x01, 0x01, 0x01]), derTlv(0x04, new Uint8Array([5, 0]))))] })],
    ['fail nested 70 deep in an attribute', () => csrOf('EC-P256', { attributes: [derTlv(0x30, derTlv(0x06, new Uint8Array([0x2a, 0x03])), derTlv(0x31, deep(70)))] })],
    ['fail over 64 KiB', () => csrOf('EC-P256', { attributes: [derTlv(0x30, derTlv(0x06, new Uint8Array([0x2a, 0x03])), derTlv(0x31, derTlv(0x04, new Uint8Array(70_000))))] })],
    ['fail signed by another key', () => buildCsr({ subject: nameDer([cn('x')]), spki: (keys.get('EC-P256') as TestKey).spki, attributes: [], signatureAlgorithm: SIGNATURE_ALGORITHMS.ecdsaSha256, sign: (keys.get('EC-P384') as TestKey).sign })],
    ['fail wrong signature OID', () => csrOf('EC-P256', { sigAlg: algorithmDer('1.2.840.10045.4.3.9') })],
    ['fail ECDSA with NULL parameters', () => csrOf('EC-P256', { sigAlg: algorithmDer(OID.ecdsaSha256, new Uint8Array([5, 0])) })],
    ['fail RSA with other parameters', () => csrOf('RSA-2048', { sigAlg: algorithmDer(OID.sha256WithRSA, derTlv(0x30)) })],
    ['fail SHA-1', () => csrOf('RSA-2048', { sigAlg: algorithmDer(OID.sha1WithRSA, new Uint8Array([5, 0])) })],
    ['fail GeneralizedTime asn1js cannot read in the subject', () => csrOf('EC-P256', { subject: derTlv(0x30, derTlv(0x31, derTlv(0x30, derTlv(0x06, new Uint8Array([0x55, 0x04, 0x03])), derTlv(0x18, new Uint8Array(Buffer.from('20500101000000.5Z')))))) })],
    ['fail BMPString of odd length', () => csrOf('EC-P256', { subject: nameDer([cn('abc', 0x1e)]) })],
    ['ok BMPString subject (pkijs reading)', () => csrOf('EC-P256', { subject: derTlv(0x30, derTlv(0x31, derTlv(0x30, derTlv(0x06, new Uint8Array([0x55, 0x04, 0x03])), derTlv(0x1e, new Uint8Array([0, 0x61, 0, 0x62]))))) })],
    ['fail TeletexString subject', () => csrOf('EC-P256', { subject: nameDer([cn('abc', 0x14)]) })],
    ['fail empty RDN SET', () => csrOf('EC-P256', { subject: derTlv(0x30, derTlv(0x31)) })],
    ['fail empty subject', () => csrOf('EC-P256', { subject: derTlv(0x30) })],
    ['ok two attributes in one RDN', () => csrOf('EC-P256', { subject: derTlv(0x30, derTlv(0x31, derTlv(0x30, derTlv(0x06, new Uint8Array([0x55, 0x04, 0x03])), derTlv(0x0c, new Uint8Array([0x61]))), derTlv(0x30, derTlv(0x06, new Uint8Array([0x55, 0x04, 0x0a])), derTlv(0x0c, new Uint8Array([0x62]))))) })],
    ['ok attribute with a third element (pkijs ignores it)', () => csrOf('EC-P256', { subject: derTlv(0x30, derTlv(0x31, derTlv(0x30, derTlv(0x06, new Uint8Array([0x55, 0x04, 0x03])), derTlv(0x0c, new Uint8Array([0x61])), new Uint8Array([5, 0])))) })],
    ['fail subject over 1024 bytes', () => csrOf('EC-P256', { subject: nameDer([cn('a'), ...Array.from({ length: 30 }, () => [OID.organizationalUnit, 'x'.repeat(40)] as NameEntry)]) })],
    ['fail invalid UTF-8 in CN', () => csrOf('EC-P256', { subject: derTlv(0x30, derTlv(0x31, derTlv(0x30, derTlv(0x06, new Uint8Array([0x55, 0x04, 0x03])), derTlv(0x0c, new Uint8Array([0xc3, 0x28]))))) })],
    ['fail reserved name', () => csrOf('EC-P256', { subject: nameDer([cn('test device ca'), [OID.organization, 'ACME']]) })],
    ['ok no attributes at all ([0] absent)', () => { const key = keys.get('EC-P256') as TestKey; const info = derTlv(0x30, new Uint8Array([2, 1, 0]), nameDer([cn('d')]), key.spki); return derTlv(0x30, info, key.signatureAlgorithm, derTlv(0x03, new Uint8Array([0]), key.sign(info))); }],
    ['fail version 1', () => { const key = keys.get('EC-P256') as TestKey; const info = derTlv(0x30, new Uint8Array([2, 1, 1]), nameDer([cn('d')]), key.spki, derTlv(0xa0)); return derTlv(0x30, info, key.signatureAlgorithm, derTlv(0x03, new Uint8Array([0]), key.sign(info))); }],
    ['same for a version INTEGER of 8 bytes', () => { const key = keys.get('EC-P256') as TestKey; const info = derTlv(0x30, derTlv(0x02, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0])), nameDer([cn('d')]), key.spki, derTlv(0xa0)); return derTlv(0x30, info, key.signatureAlgorithm, derTlv(0x03, new Uint8Array([0]), key.sign(info))); }],
    ['fail a challengePassword attribute', () => csrOf('EC-P256', { attributes: [derTlv(0x30, derTlv(0x06, new Uint8Array([0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x07])), derTlv(0x31, derTlv(0x0c, new Uint8Array([0x61]))))] })],
    ['fail two extensionRequests', () => csrOf('EC-P256', { attributes: [extensionRequest(), extensionRequest()] })],
    ['fail an empty extensionRequest list', () => csrOf('EC-P256', { attributes: [extensionRequest()] })],
    ['fail a duplicate extension', () => csrOf('EC-P256', { attributes: [extensionRequest(extensionDer(OID.extKeyUsage, derTlv(0x30)), extensionDer(OID.extKeyUsage, derTlv(0x30)))] })],
    ['fail CA:true', () => csrOf('EC-P256', { attributes: [ext(OID.basicConstraints, derTlv(0x30, new Uint8Array([1, 1, 0xff])), true)] })],
    ['ok basicConstraints with only a pathLen', () => csrOf('EC-P256', { attributes: [ext(OID.basicConstraints, derTlv(0x30, new Uint8Array([2, 1, 3])))] })],
    ['fail basicConstraints whose BER BOOLEAN 01 reads as CA:true', () => csrOf('EC-P256', { attributes: [ext(OID.basicConstraints, derTlv(0x30, new Uint8Array([1, 1, 1])))] })],
    ['fail basicConstraints CA:true followed by trailing bytes', () => csrOf('EC-P256', { attributes: [ext(OID.basicConstraints, new Uint8Array([0x30, 0x03, 1, 1, 0xff, 0]))] })],
    ['fail keyCertSign', () => csrOf('EC-P256', { attributes: [ext(OID.keyUsage, new Uint8Array([3, 2, 1, 6]), true)] })],
    ['same keyUsage that is an INTEGER', () => csrOf('EC-P256', { attributes: [ext(OID.keyUsage, new Uint8Array([2, 1, 6]))] })],
    ['same keyUsage that is not DER at all', () => csrOf('EC-P256', { attributes: [ext(OID.keyUsage, new Uint8Array([0x06]))] })],
    ['fail unknown critical extension', () => csrOf('EC-P256', { attributes: [ext('1.2.3.4', new Uint8Array([5, 0]), true)] })],
    ['ok unknown non-critical extension', () => csrOf('EC-P256', { attributes: [ext('1.2.3.4', new Uint8Array([5, 0]))] })],
    ['fail critical extKeyUsage serverAuth (known, not granted)', () => csrOf('EC-P256', { attributes: [ext(OID.extKeyUsage, derTlv(0x30, derTlv(0x06, new Uint8Array([0x2b, 6, 1, 5, 5, 7, 3, 1]))), true)] })],
    ['fail critical extKeyUsage that is not DER', () => csrOf('EC-P256', { attributes: [ext(OID.extKeyUsage, new Uint8Array([0x30, 0x81, 0x02, 0x05, 0x00]), true)] })],
    ['ok non-critical extKeyUsage that is not a SEQUENCE of OIDs (ignored)', () => csrOf('EC-P256', { attributes: [ext(OID.extKeyUsage, derTlv(0x30, new Uint8Array([5, 0])))] })],
    ['fail critical keyUsage keyEncipherment', () => csrOf('EC-P256', { attributes: [ext(OID.keyUsage, new Uint8Array([3, 2, 5, 0x20]), true)] })],
    ['ok extension with a fourth element (pkijs ignores it)', () => csrOf('EC-P256', { attributes: [extensionRequest(derTlv(0x30, derTlv(0x06, new Uint8Array([0x2a, 0x03])), derTlv(0x04, new Uint8Array([5, 0])), new Uint8Array([5, 0])))] })],
    ['fail SAN otherName', () => csrOf('EC-P256', { attributes: [extensionRequest(sanExtension(derTlv(0xa0, derTlv(0x06, new Uint8Array([0x2a, 0x03])), derTlv(0xa0, new Uint8Array([5, 0])))))] })],
    ['fail SAN primitive [0]', () => csrOf('EC-P256', { attributes: [extensionRequest(sanExtension(generalName(0, 'x')))] })],
    ['fail SAN directoryName', () => csrOf('EC-P256', { attributes: [extensionRequest(sanExtension(derTlv(0xa4, nameDer([cn('x')]))))] })],
    ['fail SAN registeredID', () => csrOf('EC-P256', { attributes: [extensionRequest(sanExtension(derTlv(0x88, new Uint8Array([0x2a, 0x03]))))] })],
    ['fail SAN empty', () => csrOf('EC-P256', { attributes: [extensionRequest(sanExtension())] })],
    ['fail SAN of nine entries', () => csrOf('EC-P256', { attributes: [extensionRequest(sanExtension(...Array.from({ length: 9 }, (_, i) => generalName(2, `d${i}.example`))))] })],
    ['fail SAN wildcard', () => csrOf('EC-P256', { attributes: [extensionRequest(sanExtension(generalName(2, '*.example')))] })],
    ['fail SAN duplicate after lower-casing', () => csrOf('EC-P256', { attributes: [extensionRequest(sanExtension(generalName(2, 'A.example'), generalName(2, 'a.example')))] })],
    ['fail SAN latin-1 byte', () => csrOf('EC-P256', { attributes: [extensionRequest(sanExtension(generalName(2, new Uint8Array([0x61, 0xe9]))))] })],
    ['fail SAN iPAddress of 5 bytes', () => csrOf('EC-P256', { attributes: [extensionRequest(sanExtension(generalName(7, new Uint8Array(5))))] })],
    ['ok SAN of every type', () => csrOf('EC-P256', { attributes: [extensionRequest(sanExtension(generalName(2, 'Dev.Example'), generalName(1, 'ops@Dev.Example'), generalName(6, 'urn:dev:1'), generalName(6, 'https://dev.example/x'), generalName(7, new Uint8Array([192, 0, 2, 1]))))] })],
    ['fail SAN that is not DER', () => csrOf('EC-P256', { attributes: [extensionRequest(sanExtension().length ? extensionDer(OID.subjectAltName, new Uint8Array([0x30, 0x81, 0x03, 0x82, 0x01, 0x61])) : new Uint8Array())] })],
    ['fail compressed-point sign flipped (another key)', () => { const k = keys.get('EC-P256') as TestKey; const bits = k.spki.subarray(k.spki.length - 65); const x = bits.subarray(1, 33); const odd = bits[64] & 1; return csrOf('EC-P256', { spki: derTlv(0x30, k.spki.subarray(2, 2 + 2 + k.spki[3]), derTlv(0x03, new Uint8Array([0, 3 - odd, ...x]))) }); }],
    ['ok compressed point (expanded)', () => { const k = keys.get('EC-P256') as TestKey; const bits = k.spki.subarray(k.spki.length - 65); const x = bits.subarray(1, 33); const odd = bits[64] & 1; return csrOf('EC-P256', { spki: derTlv(0x30, k.spki.subarray(2, 2 + 2 + k.spki[3]), derTlv(0x03, new Uint8Array([0, 2 + odd, ...x]))) }); }],
    ['fail explicit EC parameters', () => { const k = keys.get('EC-P256') as TestKey; return csrOf('EC-P256', { spki: derTlv(0x30, algorithmDer(OID.ecPublicKey, derTlv(0x30, new Uint8Array([2, 1, 1]))), k.spki.subarray(k.spki.length - 68)) }); }],
  ])('%s: the same outcome as the pkijs path', (name, make) => {
    const csr = make();
    same(csr);
    if (name.startsWith('fail')) expect(ours(csr)).toHaveProperty('code');
    if (name.startsWith('ok')) expect(ours(csr)).toHaveProperty('tbs');
  });

  const typeArb = fc.constantFrom(...TYPES);
  const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 40 }), fc.constantFrom('device', 'Test Device CA', 'a\u202eb', '', ' d', 'DE', 'de'));
  const subjectArb = fc.array(
    fc.tuple(fc.constantFrom(OID.commonName, OID.commonName, OID.organization, OID.organizationalUnit, OID.country, OID.serialNumber, OID.locality, OID.state, '1.2.840.113549.1.9.1'), text, fc.constantFrom(0x0c, 0x0c, 0x13, 0x16, 0x14, 0x1e, 0x1c, 0x04)),
    { minLength: 0, maxLength: 5 },
  );
  const sanArb = fc.array(
    fc.tuple(fc.integer({ min: 0, max: 9 }), fc.oneof(fc.string({ unit: 'binary', maxLength: 30 }), fc.webUrl(), fc.domain(), fc.emailAddress(), fc.ipV4(), fc.constantFrom('*.a.example', 'urn:x:y', 'https://u:p@a.example/', '0102030405060708'))),
    { minLength: 0, maxLength: 10 },
  );
  const extArb = fc.constantFrom<Uint8Array[]>(
    [],
    [extensionDer(OID.basicConstraints, derTlv(0x30, new Uint8Array([1, 1, 0xff])), true)],
    [extensionDer(OID.basicConstraints, derTlv(0x30, new Uint8Array([1, 1, 0x00])))],
    [extensionDer(OID.basicConstraints, derTlv(0x30))],
    [extensionDer(OID.keyUsage, new Uint8Array([3, 2, 7, 0x80]), true)],
    [extensionDer(OID.keyUsage, new Uint8Array([3, 2, 1, 6]))],
    [extensionDer(OID.keyUsage, new Uint8Array([3, 1, 0]))],
    [extensionDer('1.2.3.4', new Uint8Array([5, 0]), true)],
    [extensionDer(OID.subjectKeyIdentifier, derTlv(0x04, new Uint8Array(20)))],
    [extensionDer(OID.subjectKeyIdentifier, derTlv(0x04, new Uint8Array(20)), true)],
    [extensionDer(OID.extKeyUsage, derTlv(0x30, derTlv(0x06, new Uint8Array([0x2b, 6, 1, 5, 5, 7, 3, 1]))))],
    [extensionDer(OID.extKeyUsage, derTlv(0x30, derTlv(0x06, new Uint8Array([0x2b, 6, 1, 5, 5, 7, 3, 2]))), true)],
    [extensionDer(OID.extKeyUsage, derTlv(0x30, derTlv(0x06, new Uint8Array([0x2b, 6, 1, 5, 5, 7, 3, 1]))), true)],
    [extensionDer(OID.keyUsage, new Uint8Array([3, 2, 5, 0x20]), true)],
    [extensionDer(OID.keyUsage, new Uint8Array([3, 2, 3, 0x08]))],
    [extensionDer('1.2.3.4', new Uint8Array([5, 0])), extensionDer('2.5.29.32', derTlv(0x30))],
  );

  it('re-signed requests with arbitrary subjects, SANs, extensions and algorithms: same code or same TBS bytes', () => {
    fc.assert(
      fc.property(typeArb, subjectArb, fc.option(sanArb), extArb, fc.option(fc.constantFrom(...Object.values(SIGNATURE_ALGORITHMS), algorithmDer(OID.sha384WithRSA, new Uint8Array([5, 0])))), (type, subject, sans, extensions, sigAlg) => {
        const exts = [...(sans ? [sanExtension(...sans.map(([tag, v]) => generalName(tag, new Uint8Array(Buffer.from(v, tag === 7 && /^[0-9a-f]+$/.test(v) ? 'hex' : 'utf8')))))] : []), ...extensions];
        same(
          csrOf(type, {
            subject: nameDer(subject.map(([oid, v, tag]) => [oid, v, tag] as NameEntry)),
            attributes: exts.length ? [extensionRequest(...exts)] : [],
            sigAlg: sigAlg ?? undefined,
          }),
        );
      }),
      { seed: SEED, numRuns: RUNS * 10 },
    );
  });

  it('byte mutations of valid requests (flips, truncation, insertion, deletion, length bytes): same code or same TBS bytes', () => {
    const mutation = fc.record({ kind: fc.constantFrom('flip', 'truncate', 'insert', 'delete', 'set'), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) });
    fc.assert(
      fc.property(typeArb, fc.array(mutation, { minLength: 1, maxLength: 3 }), fc.boolean(), (type, mutations, resign) => {
        const key = keys.get(type) as TestKey;
        let csr = csrOf(type);
        const apply = (bytes: Uint8Array) => {
          const c = Array.from(bytes);
          for (const m of mutations) {
            if (c.length === 0) break;
            const at = m.at % c.length;
            if (m.kind === 'flip') c[at] ^= 1 << (m.byte & 7);
            if (m.kind === 'truncate') c.length = at;
            if (m.kind === 'insert') c.splice(at, 0, m.byte);
            if (m.kind === 'delete') c.splice(at, 1);
            if (m.kind === 'set') c[at] = [0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0xff][m.byte % 7];
          }
          return new Uint8Array(c);
        };
        // Mutated inside the signed bytes and re-signed (the signature stays valid), or mutated anywhere.
        if (resign) {
          const info = apply(derTlv(0x30, new Uint8Array([2, 1, 0]), nameDer([[OID.commonName, 'm']]), key.spki, derTlv(0xa0, extensionRequest(sanExtension(generalName(2, 'm.example'))))));
          csr = derTlv(0x30, info, key.signatureAlgorithm, derTlv(0x03, new Uint8Array([0]), key.sign(info)));
        } else csr = apply(csr);
        if (csr.length) same(csr);
      }),
      { seed: SEED, numRuns: RUNS * 10 },
    );
  });

  it('writes validity times as pkijs does (UTCTime through 2049, GeneralizedTime from 2050), for any second of 1950-9999', () => {
    fc.assert(
      fc.property(fc.date({ min: new Date(Date.UTC(1950, 0, 1)), max: new Date(Date.UTC(9999, 11, 31, 23, 59, 59)), noInvalidDate: true }), (d) => {
        expect(Buffer.from(timeDer(d)).toString('hex')).toBe(Buffer.from(x509Time(d).toSchema().toBER(false)).toString('hex'));
      }),
      { seed: SEED, numRuns: RUNS * 25 },
    );
  });

  it('accepts exactly the ECDSA outputs the derToP1363 round trip accepted, and assembles them the same', async () => {
    const ecKey = { hsmKeyId: 'ec', label: 'ec', algorithm: 'EC-P256' as const, spki: (keys.get('EC-P256') as TestKey).spki };
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), fc.uint8Array({ minLength: 64, maxLength: 64 }), async (zr, pad, body) => {
        // r and s of 32 bytes with leading zero bytes, padded to a longer even length, or one byte too long.
        const half = 32 + pad - (pad === 3 ? 2 : 0);
        const raw = new Uint8Array(2 * half);
        raw.set(body.subarray(0, Math.min(32, half)).fill(0, 0, zr), half - Math.min(32, half));
        raw.set(body.subarray(32, 32 + Math.min(32, half)), 2 * half - Math.min(32, half));
        if (pad === 2) raw[0] = 1; // r of 33 significant bytes: too long for P-256
        const signer = { sign: async () => raw } as unknown as HsmSigner;
        const before = (() => {
          try {
            derToP1363(p1363ToDer(raw), 32);
            return Buffer.from(p1363ToDer(raw)).toString('hex');
          } catch {
            return 'refused';
          }
        })();
        const now = await signData(signer, ecKey, new Uint8Array([1])).then((x) => Buffer.from(x).toString('hex'), () => 'refused');
        expect(now).toBe(before);
      }),
      { seed: SEED, numRuns: RUNS * 5 },
    );
  });

  it('ok most generated requests take the DER reader (the property tests test the new path, not only the fallback)', () => {
    expect(paths.reader).toBeGreaterThan(paths.pkijs);
  });
});
