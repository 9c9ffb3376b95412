import * as fc from 'fast-check';
import { X509Certificate } from 'node:crypto';
import { buildCsr, extensionRequest, generalName, generateTestKey, nameDer, sanExtension, type NameEntry, type TestKey } from '../testing/csr-builder';
import { createTestCa, type TestCa } from '../testing/test-ca';
import { parseCsr, prepareDeviceCertificate, signDeviceCertificate, verifyCsrPossession, type DeviceCertificateProfile } from './csr';
import { subjectAltNameTexts, subjectText } from './certificate-fields';
import { OID } from './der';
import { PkiError } from './pki-error';

/**
 * The certificate table's subject, SANs and validity printed from the DER we wrote (certificate-fields.ts) against
 * what Node's X509Certificate prints for the issued certificate, which the API stored before: the same text, for
 * every request the CA accepts. FUZZ_RUNS / FUZZ_SEED as in csr.fuzz.spec.ts.
 */
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 60);
const SEED = Number(process.env['FUZZ_SEED'] ?? 2036);

describe('certificate fields: printed from our DER as Node prints the certificate', () => {
  let t: TestCa;
  let profile: DeviceCertificateProfile;
  let key: TestKey;

  beforeAll(async () => {
    t = await createTestCa();
    profile = { ...t.profile, allowedSanTypes: ['dns', 'uri', 'email', 'ip'], allowedSubjectAttributes: ['CN', 'O', 'OU', 'C', 'serialNumber', 'L', 'ST'] };
    key = generateTestKey('EC-P256');
  });

  const csrOf = (subject: NameEntry[], sans: Uint8Array[]) =>
    buildCsr({ subject: nameDer(subject), spki: key.spki, attributes: sans.length ? [extensionRequest(sanExtension(...sans))] : [], signatureAlgorithm: key.signatureAlgorithm, sign: key.sign });

  /** Both texts for an accepted request, or undefined when the CA refuses it. */
  async function both(csr: Uint8Array) {
    let prepared;
    try {
      prepared = prepareDeviceCertificate(t.issuer, verifyCsrPossession(parseCsr(csr)), profile);
    } catch (e) {
      if (e instanceof PkiError) return undefined;
      throw e;
    }
    const x = new X509Certificate((await signDeviceCertificate(t.signer, prepared)).certificatePem);
    const node = { subjectDn: x.subject.split('\n').join(', '), sans: x.subjectAltName ? x.subjectAltName.split(', ') : [], notBefore: new Date(x.validFrom), notAfter: new Date(x.validTo) };
    return { ours: prepared.fields, node };
  }

  it.each<[string, NameEntry[], Uint8Array[]]>([
    ['ok a plain device', [[OID.commonName, 'dev-0001'], [OID.organization, 'Acme GmbH'], [OID.country, 'DE', 0x13]], [generalName(2, 'dev-0001.devices.example')]],
    ['ok RFC 2253 specials in a CN', [[OID.commonName, 'a,b+c"d\\e<f>g;h=i']], []],
    ['ok a leading # and inner spaces', [[OID.commonName, '#1 device  two']], []],
    ['ok non-ASCII, astral and combined (NFC) text', [[OID.commonName, 'Gerät ✓ 🔒 ñ 中文'], [OID.organizationalUnit, 'Ünit'], [OID.organizationalUnit, 'two']], []],
    ['ok printable serialNumber and locality', [[OID.commonName, 'x'], [OID.serialNumber, "SN-(1)+2/3:4=5?'", 0x13], [OID.locality, 'Köln'], [OID.state, 'NRW']], []],
    ['ok every SAN type, IPv6 and names Node quotes', [[OID.commonName, 'x']], [
      generalName(2, 'a.example'),
      generalName(1, "o'brien@a.example"),
      generalName(6, 'https://a.example/p?x=1,2'),
      generalName(6, "urn:x:it's"),
      generalName(7, new Uint8Array([192, 0, 2, 1])),
      generalName(7, new Uint8Array([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd])),
    ]],
  ])('%s', async (_name, subject, sans) => {
    const r = await both(csrOf(subject, sans));
    expect(r).toBeDefined();
    expect(r?.ours).toBeDefined();
    expect(r?.ours).toEqual(r?.node);
  });

  const text = fc.oneof(
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }),
    fc.string({ unit: fc.constantFrom(...'ab ,+"\\<>;#=\'äé🔒'), minLength: 1, maxLength: 12 }),
    fc.constantFrom('#x', 'x#', 'a  b', '=', 'é', '\u00a0x'),
  );
  const subjectArb = fc.tuple(
    text,
    fc.array(fc.tuple(fc.constantFrom(OID.organization, OID.organizationalUnit, OID.locality, OID.state), text), { maxLength: 3 }),
    fc.option(fc.constantFrom('DE', 'US')),
  );
  const sanArb = fc.array(
    fc.oneof(
      fc.domain().map((d) => generalName(2, d)),
      fc.emailAddress().map((e) => generalName(1, e)),
      fc.webUrl({ withQueryParameters: true, withFragments: true }).map((u) => generalName(6, u)),
      fc.ipV4().map((ip) => generalName(7, new Uint8Array(ip.split('.').map(Number)))),
      fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => generalName(7, b)),
    ),
    { maxLength: 4 },
  );

  it('any request the CA accepts: the same subject, SANs and validity as Node prints', async () => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(subjectArb, sanArb, async ([cn, more, c], sans) => {
        const subject: NameEntry[] = [[OID.commonName, cn], ...more.map(([oid, v]): NameEntry => [oid, v]), ...(c ? [[OID.country, c, 0x13] as NameEntry] : [])];
        const r = await both(csrOf(subject, sans));
        if (!r) return;
        accepted++;
        expect(r.ours).toEqual(r.node);
      }),
      { numRuns: RUNS, seed: SEED },
    );
    expect(accepted).toBeGreaterThan(RUNS / 4);
  });

  it.each<[string, Uint8Array]>([
    ['fail a multi-valued RDN', new Uint8Array([0x30, 0x14, 0x31, 0x12, 0x30, 0x07, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x00, 0x30, 0x07, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x00])],
    ['fail an attribute outside the profile (email)', nameDer([['1.2.840.113549.1.9.1', 'a@b', 0x16]])],
    ['fail a BMPString', new Uint8Array([0x30, 0x0d, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x03, 0x1e, 0x02, 0x00, 0x61])],
    ['fail trailing bytes', new Uint8Array([...nameDer([[OID.commonName, 'x']]), 0])],
  ])('%s: not printed here (Node prints it)', (_name, der) => {
    expect(subjectText(der)).toBeUndefined();
  });

  it('fail a SAN type outside the four (Node prints it)', () => {
    expect(subjectAltNameTexts(new Uint8Array([0x30, 0x04, 0x88, 0x02, 0x2a, 0x03]))).toBeUndefined();
  });
});
