import { execFileSync } from 'node:child_process';
import { createHash, webcrypto, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { expectInvalid } from '../testing/expect-cli-error';
import { TIMESTAMP_OID, verifySignatureTimestamp } from './timestamp';

// Tokens made here with pkijs and certificates made by openssl, so ksctl's timestamp checks are tested against
// TSAs that are not the Keyserver: a good one (openssl ts -verify agrees), and each kind of bad one.

let dir: string;
const f = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const ab = (b: Uint8Array) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

function cert(name: string, issuer: string | undefined, ext: string, days = 30): void {
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
  writeFileSync(f(`${name}.ext`), `${ext}\n`);
  openssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`);
  const signer = issuer ? ['-CA', `${issuer}.pem`, '-CAkey', `${issuer}.key`, '-CAcreateserial'] : ['-signkey', `${name}.key`];
  openssl('x509', '-req', '-in', `${name}.csr`, ...signer, '-days', String(days), '-extfile', `${name}.ext`, '-out', `${name}.pem`);
}
const pem = (name: string) => new X509Certificate(readFileSync(f(`${name}.pem`)));
const CA = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign';
const TSA = 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping';

interface TokenSpec {
  signer: string;
  /** What the imprint is over. */
  over: Buffer;
  genTime?: Date;
  /** The certificate the ESS signing-certificate-v2 attribute names (default: the signer's). */
  essCert?: string;
  embed?: boolean;
  /** The ESSCertIDv2's optional issuerSerial: absent, the signer's own, or a hostile one. */
  issuerSerial?: IssuerSerialTwist;
}
type IssuerSerialTwist = 'own' | 'other-serial' | 'other-issuer' | 'reencoded-issuer' | 'two-names' | 'uri-name';

const tlv = (tag: number, ...parts: Buffer[]) => {
  const body = Buffer.concat(parts);
  const n = body.length;
  return Buffer.concat([Buffer.from([tag, ...(n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff])]), body]);
};
/** IssuerSerial { GeneralNames, serialNumber } for `name`'s certificate, changed by `twist`. */
function issuerSerialOf(name: string, twist: IssuerSerialTwist): Buffer {
  const tbs = (asn1js.fromBER(ab(pem(name).raw)).result as asn1js.Sequence).valueBlock.value[0] as asn1js.Sequence;
  const [, serialEl, , issuerEl] = tbs.valueBlock.value;
  let issuer = Buffer.from((issuerEl as asn1js.BaseBlock).valueBeforeDecodeView);
  let serial = Buffer.from((serialEl as asn1js.BaseBlock).valueBeforeDecodeView);
  if (twist === 'other-serial') serial = Buffer.from(new asn1js.Integer({ value: 7 }).toBER(false));
  if (twist === 'other-issuer') issuer = Buffer.from(pkijs.Certificate.fromBER(ab(pem('foreign-tsa').raw)).issuer.toSchema().toBER(false));
  if (twist === 'reencoded-issuer') {
    // CN=root as a PrintableString instead of openssl's UTF8String: the same text, another DER.
    issuer = Buffer.from(issuer);
    const at = issuer.indexOf(Buffer.from([0x06, 0x03, 0x55, 0x04, 0x03])) + 5;
    issuer[at] = issuer[at] === 0x0c ? 0x13 : 0x0c;
  }
  const uri = tlv(0x86, Buffer.from('https://tsa.example/'));
  const names = twist === 'uri-name' ? [uri] : twist === 'two-names' ? [tlv(0xa4, issuer), uri] : [tlv(0xa4, issuer)];
  return tlv(0x30, tlv(0x30, ...names), serial);
}

/** A TimeStampToken signed with `signer`'s key (pkijs + webcrypto), ESSCertIDv2 naming `essCert`. */
async function token(t: TokenSpec): Promise<Buffer> {
  const signerCert = pkijs.Certificate.fromBER(ab(pem(t.signer).raw));
  const tst = new pkijs.TSTInfo({
    version: 1,
    policy: '1.2.3.4',
    messageImprint: new pkijs.MessageImprint({
      hashAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: '2.16.840.1.101.3.4.2.1' }),
      hashedMessage: new asn1js.OctetString({ valueHex: ab(createHash('sha256').update(t.over).digest()) }),
    }),
    serialNumber: new asn1js.Integer({ value: 4242 }),
    genTime: t.genTime ?? new Date(Math.floor(Date.now() / 1000) * 1000),
    accuracy: new pkijs.Accuracy({ seconds: 1 }),
  });
  const tstDer = Buffer.from(tst.toSchema().toBER(false));
  const essHash = createHash('sha256').update(pem(t.essCert ?? t.signer).raw).digest();
  const attrs = [
    new pkijs.Attribute({ type: TIMESTAMP_OID.contentType, values: [new asn1js.ObjectIdentifier({ value: TIMESTAMP_OID.tstInfo })] }),
    new pkijs.Attribute({ type: TIMESTAMP_OID.messageDigest, values: [new asn1js.OctetString({ valueHex: ab(createHash('sha256').update(tstDer).digest()) })] }),
    new pkijs.Attribute({
      type: TIMESTAMP_OID.signingCertificateV2,
      values: [
        new asn1js.Sequence({
          value: [
            new asn1js.Sequence({
              value: [new asn1js.Sequence({ value: [new asn1js.OctetString({ valueHex: ab(essHash) }), ...(t.issuerSerial ? [asn1js.fromBER(ab(issuerSerialOf(t.signer, t.issuerSerial))).result] : [])] })],
            }),
          ],
        }),
      ],
    }),
  ];
  const sd = new pkijs.SignedData({
    version: 3,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: TIMESTAMP_OID.tstInfo }),
    signerInfos: [
      new pkijs.SignerInfo({
        version: 1,
        sid: new pkijs.IssuerAndSerialNumber({ issuer: signerCert.issuer, serialNumber: signerCert.serialNumber }),
        signedAttrs: new pkijs.SignedAndUnsignedAttributes({ type: 0, attributes: attrs }),
      }),
    ],
    ...(t.embed === false ? {} : { certificates: [signerCert] }),
  });
  sd.encapContentInfo.eContent = new asn1js.OctetString({ valueHex: ab(tstDer) });
  const pkcs8 = readFileSync(f(`${t.signer}.key`), 'utf8').replace(/-----[^-]+-----|\s/g, '');
  const key = await webcrypto.subtle.importKey('pkcs8', Buffer.from(pkcs8, 'base64'), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  await sd.sign(key as unknown as CryptoKey, 0, 'SHA-256');
  return Buffer.from(new pkijs.ContentInfo({ contentType: TIMESTAMP_OID.signedData, content: sd.toSchema(true) }).toSchema().toBER(false));
}


beforeAll(() => {
  pkijs.setEngine('node', new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as Crypto }));
  dir = mkdtempSync(join(tmpdir(), 'ksctl-ts-'));
  cert('root', undefined, CA, 365);
  cert('other-root', undefined, CA, 365);
  cert('tsa', 'root', TSA);
  cert('tsa2', 'root', TSA);
  cert('tsa-noncritical', 'root', 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=timeStamping');
  cert('tsa-and-code', 'root', 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping,codeSigning');
  cert('fw', 'root', 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning');
  cert('foreign-tsa', 'other-root', TSA);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe(verifySignatureTimestamp.name, () => {
  const signature = Buffer.from('the signature value of a SignerInfo');
  const anchors = () => [pem('root')];

  it('ok a token of another TSA (pkijs-made, openssl ts -verify agrees): time, serial, policy, accuracy and the TSA chain', async () => {
    const t = await token({ signer: 'tsa', over: signature });
    writeFileSync(f('t.der'), t);
    writeFileSync(f('sig.bin'), signature);
    expect(openssl('ts', '-verify', '-token_in', '-in', 't.der', '-data', 'sig.bin', '-CAfile', 'root.pem')).toContain('Verification: OK');
    const v = verifySignatureTimestamp(t, signature, anchors(), []);
    expect(v).toMatchObject({ serial: '1092', policy: '1.2.3.4', accuracyMs: 1000 });
    expect(v.chain.map((c) => c.subject)).toEqual(['CN=tsa', 'CN=root']);
  });

  it('ok a token without its certificate when --chain holds it', async () => {
    const t = await token({ signer: 'tsa', over: signature, embed: false });
    expectInvalid(() => verifySignatureTimestamp(t, signature, anchors(), []), 'timestamp_invalid');
    expect(verifySignatureTimestamp(t, signature, anchors(), [pem('tsa')]).tsa.subject).toBe('CN=tsa');
  });

  it.each([
    ['fail a token over another signature', { signer: 'tsa', over: Buffer.from('another signature') }, 'timestamp_imprint_mismatch'],
    ['fail a timeStamping usage that is not critical', { signer: 'tsa-noncritical', over: signature }, 'not_timestamping'],
    ['fail a TSA certificate with codeSigning too', { signer: 'tsa-and-code', over: signature }, 'not_timestamping'],
    ['fail a code-signing certificate as TSA', { signer: 'fw', over: signature }, 'not_timestamping'],
    ['fail an ESS certificate id naming another TSA certificate', { signer: 'tsa', over: signature, essCert: 'tsa2' }, 'timestamp_invalid'],
    ['fail a TSA under another root', { signer: 'foreign-tsa', over: signature }, 'chain_invalid'],
    ['fail a time before the TSA certificate', { signer: 'tsa', over: signature, genTime: new Date(Date.now() - 40 * 86_400_000) }, 'certificate_not_yet_valid'],
    ['fail a time after the verification time', { signer: 'tsa', over: signature, genTime: new Date(Date.now() + 3_600_000) }, 'timestamp_invalid'],
  ] as const)('%s', async (_n, spec, code) => {
    const t = await token(spec);
    expectInvalid(() => verifySignatureTimestamp(t, signature, anchors(), []), code);
  });

  it('ok an ESS certificate id whose issuerSerial names the TSA certificate (openssl ts -verify agrees)', async () => {
    const t = await token({ signer: 'tsa', over: signature, issuerSerial: 'own' });
    writeFileSync(f('t-is.der'), t);
    writeFileSync(f('sig.bin'), signature);
    expect(openssl('ts', '-verify', '-token_in', '-in', 't-is.der', '-data', 'sig.bin', '-CAfile', 'root.pem')).toContain('Verification: OK');
    expect(verifySignatureTimestamp(t, signature, anchors(), []).tsa.subject).toBe('CN=tsa');
  });

  it.each<[string, IssuerSerialTwist, boolean]>([
    ['fail an issuerSerial with another serial number (openssl ts -verify refuses it too)', 'other-serial', true],
    ['fail an issuerSerial naming another issuer (openssl ts -verify refuses it too)', 'other-issuer', true],
    ['fail an issuerSerial whose issuer is the same name encoded differently (DER compared)', 'reencoded-issuer', false],
    ['fail an issuerSerial with a second GeneralName (openssl ts -verify refuses it too)', 'two-names', true],
    ['fail an issuerSerial whose issuer is not a directoryName (openssl ts -verify refuses it too)', 'uri-name', true],
  ])('%s', async (_n, twist, opensslRefuses) => {
    const t = await token({ signer: 'tsa', over: signature, issuerSerial: twist });
    writeFileSync(f(`t-${twist}.der`), t);
    writeFileSync(f('sig.bin'), signature);
    if (opensslRefuses) expect(() => openssl('ts', '-verify', '-token_in', '-in', `t-${twist}.der`, '-data', 'sig.bin', '-CAfile', 'root.pem')).toThrow();
    expectInvalid(() => verifySignatureTimestamp(t, signature, anchors(), []), 'timestamp_invalid');
  });

  it.each([
    ['fail bytes that are not a CMS', Buffer.from('not a token')],
    ['fail a token whose TSTInfo was changed after signing', 'flip'],
  ])('%s', async (_n, what) => {
    let t: Buffer;
    if (what === 'flip') {
      t = await token({ signer: 'tsa', over: signature });
      const at = t.indexOf(Buffer.from([0x02, 0x02, 0x10, 0x92])); // serialNumber 4242 inside the TSTInfo
      t[at + 3] ^= 1;
    } else t = what as Buffer;
    expectInvalid(() => verifySignatureTimestamp(t, signature, anchors(), []), 'timestamp_invalid');
  });
});
