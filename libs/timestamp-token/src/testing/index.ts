import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, sign, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { TIMESTAMP_TOKEN_OID } from '../lib/timestamp-token';

// Test helpers: TSAs that are not the Keyserver. Certificates made by openssl, tokens by pkijs and Node's crypto,
// each part of a token settable, so the verifier is tested against good tokens and each kind of bad one.

const ab = (b: Uint8Array) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

/** Extensions of a self-made CA, and of a TSA certificate as RFC 3161 2.3 wants it. */
export const CA_EXTENSIONS = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign';
export const TSA_EXTENSIONS = 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping';

/** Certificates with EC P-256 keys made by openssl in `dir`: `<name>.pem`, `<name>.key`. */
export class OpensslPki {
  constructor(readonly dir: string) {}

  private openssl(...args: string[]): string {
    return execFileSync('openssl', args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  }

  /** A certificate CN=`name` with the extensions `ext`, issued by `issuer` (self-signed when undefined). */
  cert(name: string, issuer: string | undefined, ext: string, days = 30): void {
    this.openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
    writeFileSync(join(this.dir, `${name}.ext`), `${ext}\n`);
    this.openssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`);
    const by = issuer ? ['-CA', `${issuer}.pem`, '-CAkey', `${issuer}.key`, '-CAcreateserial'] : ['-signkey', `${name}.key`];
    this.openssl('x509', '-req', '-in', `${name}.csr`, ...by, '-days', String(days), '-extfile', `${name}.ext`, '-out', `${name}.pem`);
  }

  pem(name: string): X509Certificate {
    return new X509Certificate(readFileSync(join(this.dir, `${name}.pem`)));
  }

  key(name: string): string {
    return readFileSync(join(this.dir, `${name}.key`), 'utf8');
  }
}

/**
 * The TSAs specs use, in `dir`: roots `root` and `other-root`; under `root` the TSA certificates `tsa` and `tsa2`,
 * `tsa-noncritical` (timeStamping not critical), `tsa-and-code` (codeSigning too) and `fw` (codeSigning only);
 * `foreign-tsa` under `other-root`.
 */
export function testTsas(dir: string): OpensslPki {
  const pki = new OpensslPki(dir);
  pki.cert('root', undefined, CA_EXTENSIONS, 365);
  pki.cert('other-root', undefined, CA_EXTENSIONS, 365);
  for (const name of ['tsa', 'tsa2']) pki.cert(name, 'root', TSA_EXTENSIONS);
  const endEntity = 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=';
  pki.cert('tsa-noncritical', 'root', `${endEntity}timeStamping`);
  pki.cert('tsa-and-code', 'root', `${endEntity}critical,timeStamping,codeSigning`);
  pki.cert('fw', 'root', `${endEntity}codeSigning`);
  pki.cert('foreign-tsa', 'other-root', TSA_EXTENSIONS);
  return pki;
}

/** A signed attribute (type, DER of its one value). */
export interface RawAttribute {
  type: string;
  value: Uint8Array;
}

const der = (tag: number, ...parts: Uint8Array[]): Uint8Array => {
  const body = Buffer.concat(parts);
  const n = body.length;
  return new Uint8Array(Buffer.concat([Buffer.from([tag, ...(n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff])]), body]));
};

/** The issuer Name (DER as the certificate encodes it) and the serial INTEGER element of a certificate. */
export function issuerAndSerialOf(cert: X509Certificate): { issuer: Uint8Array; serial: Uint8Array } {
  const tbs = (asn1js.fromBER(ab(new Uint8Array(cert.raw))).result as asn1js.Sequence).valueBlock.value[0] as asn1js.Sequence;
  const [, serial, , issuer] = tbs.valueBlock.value;
  return { issuer: new Uint8Array((issuer as asn1js.BaseBlock).valueBeforeDecodeView), serial: new Uint8Array((serial as asn1js.BaseBlock).valueBeforeDecodeView) };
}

/** GeneralName directoryName [4] and uniformResourceIdentifier [6]. */
export const directoryName = (name: Uint8Array) => der(0xa4, name);
export const uriName = (uri: string) => der(0x86, new Uint8Array(Buffer.from(uri)));
/** IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber INTEGER } (the serial as a whole INTEGER element). */
export const issuerSerial = (names: Uint8Array[], serialElement: Uint8Array) => der(0x30, der(0x30, ...names), serialElement);

/**
 * An ESS signing-certificate-v2 attribute (RFC 5035) naming `cert` by its SHA-256 (or `hashOid`'s hash when given,
 * then named), with an issuerSerial when given; `v1` makes the SHA-1 signing-certificate attribute of RFC 2634.
 */
export function essAttribute(cert: X509Certificate, opts: { issuerSerial?: Uint8Array; v1?: boolean; hashOid?: string; hash?: string } = {}): RawAttribute {
  const hash = opts.v1 ? 'sha1' : (opts.hash ?? 'sha256');
  const alg = opts.hashOid ? [der(0x30, new Uint8Array(new asn1js.ObjectIdentifier({ value: opts.hashOid }).toBER(false)))] : [];
  const id = der(0x30, ...alg, der(0x04, new Uint8Array(createHash(hash).update(cert.raw).digest())), ...(opts.issuerSerial ? [opts.issuerSerial] : []));
  return { type: opts.v1 ? TIMESTAMP_TOKEN_OID.signingCertificate : TIMESTAMP_TOKEN_OID.signingCertificateV2, value: der(0x30, der(0x30, id)) };
}

export interface TokenSpec {
  /** The TSA: its certificate and its private key (PEM), EC or RSA; it signs with SHA-256. */
  signer: { cert: X509Certificate; key: string };
  /** What the imprint is over (SHA-256). */
  over: Uint8Array;
  genTime?: Date;
  /** The genTime element's content as written, instead of `genTime` (a hostile TSA's spelling). */
  genTimeText?: string;
  version?: number;
  /** The TSTInfo policy (default 1.2.3.4). */
  policy?: string;
  /** The nonce INTEGER the token echoes, if any. */
  nonce?: number;
  /** ESS attributes among the signed ones (default: one signing-certificate-v2 naming the signer). */
  ess?: RawAttribute[];
  /** Certificates the token carries (default: the signer's). */
  certificates?: X509Certificate[];
}

/** A TimeStampToken (ContentInfo DER): TSTInfo serial 4242, policy 1.2.3.4, accuracy 1 s; signed as `spec` says. */
export function timestampToken(spec: TokenSpec): Uint8Array {
  const tst = new pkijs.TSTInfo({
    version: spec.version ?? 1,
    policy: spec.policy ?? '1.2.3.4',
    messageImprint: new pkijs.MessageImprint({
      hashAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: '2.16.840.1.101.3.4.2.1' }),
      hashedMessage: new asn1js.OctetString({ valueHex: ab(new Uint8Array(createHash('sha256').update(spec.over).digest())) }),
    }),
    serialNumber: new asn1js.Integer({ value: 4242 }),
    genTime: spec.genTime ?? new Date(Math.floor(Date.now() / 1000) * 1000),
    accuracy: new pkijs.Accuracy({ seconds: 1 }),
    ...(spec.nonce !== undefined ? { nonce: new asn1js.Integer({ value: spec.nonce }) } : {}),
  });
  const tstSchema = tst.toSchema() as asn1js.Sequence;
  if (spec.genTimeText !== undefined) {
    tstSchema.valueBlock.value[4] = new asn1js.Primitive({ idBlock: { tagClass: 1, tagNumber: 24 }, valueHex: ab(new Uint8Array(Buffer.from(spec.genTimeText, 'latin1'))) });
  }
  const tstDer = new Uint8Array(tstSchema.toBER(false));
  const attribute = (a: RawAttribute) => new pkijs.Attribute({ type: a.type, values: [asn1js.fromBER(ab(a.value)).result] });
  const signedAttrs = new pkijs.SignedAndUnsignedAttributes({
    type: 0,
    attributes: [
      new pkijs.Attribute({ type: TIMESTAMP_TOKEN_OID.contentType, values: [new asn1js.ObjectIdentifier({ value: TIMESTAMP_TOKEN_OID.tstInfo })] }),
      new pkijs.Attribute({ type: TIMESTAMP_TOKEN_OID.messageDigest, values: [new asn1js.OctetString({ valueHex: ab(new Uint8Array(createHash('sha256').update(tstDer).digest())) })] }),
      ...(spec.ess ?? [essAttribute(spec.signer.cert)]).map(attribute),
    ],
  });
  // The signature is over the attributes as a SET OF, as they will be written.
  const toBeSigned = new Uint8Array(signedAttrs.toSchema().toBER(false));
  toBeSigned[0] = 0x31;
  const key = createPrivateKey(spec.signer.key);
  const signer = pkijs.Certificate.fromBER(ab(new Uint8Array(spec.signer.cert.raw)));
  const sd = new pkijs.SignedData({
    version: 3,
    digestAlgorithms: [new pkijs.AlgorithmIdentifier({ algorithmId: '2.16.840.1.101.3.4.2.1' })],
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: TIMESTAMP_TOKEN_OID.tstInfo, eContent: new asn1js.OctetString({ valueHex: ab(tstDer) }) }),
    certificates: (spec.certificates ?? [spec.signer.cert]).map((c) => pkijs.Certificate.fromBER(ab(new Uint8Array(c.raw)))),
    signerInfos: [
      new pkijs.SignerInfo({
        version: 1,
        sid: new pkijs.IssuerAndSerialNumber({ issuer: signer.issuer, serialNumber: signer.serialNumber }),
        digestAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: '2.16.840.1.101.3.4.2.1' }),
        signedAttrs,
        // ecdsa-with-SHA256 or sha256WithRSAEncryption, NULL parameters for RSA.
        signatureAlgorithm:
          key.asymmetricKeyType === 'ec'
            ? new pkijs.AlgorithmIdentifier({ algorithmId: '1.2.840.10045.4.3.2' })
            : new pkijs.AlgorithmIdentifier({ algorithmId: '1.2.840.113549.1.1.11', algorithmParams: new asn1js.Null() }),
        signature: new asn1js.OctetString({ valueHex: ab(new Uint8Array(sign('sha256', toBeSigned, key))) }),
      }),
    ],
  });
  return new Uint8Array(new pkijs.ContentInfo({ contentType: TIMESTAMP_TOKEN_OID.signedData, content: sd.toSchema(true) }).toSchema().toBER(false));
}
