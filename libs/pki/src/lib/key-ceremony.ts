import { createHash, X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { buildName, nameDer, parseIssuer, type NameSpec } from './certificates';
import { OID, bytesEqual, certDer, derTlv, hex, isStrictDer, pemBlocks, toAb, toPem } from './der';
import type { HsmKeyInfo, HsmSigner } from './hsm-signer';
import { PkiError } from './pki-error';
import { signData, signatureAlgorithm } from './sign';

/** SHA-256 of a SubjectPublicKeyInfo (DER), lower-case hex: the fingerprint a ceremony records and admins compare. */
export function spkiSha256(spki: Uint8Array): string {
  return createHash('sha256').update(spki).digest('hex');
}

/**
 * A PKCS#10 request for an HSM key, signed in the HSM (proof of possession): subject from `subject`, an
 * extensionRequest asking for CA:true and keyCertSign+cRLSign. The external CA decides what it certifies.
 */
export async function createKeyCsr(signer: HsmSigner, key: HsmKeyInfo, subject: NameSpec): Promise<{ csrPem: string; csrDer: Uint8Array }> {
  const name = buildName(subject);
  const bc = new asn1js.Sequence({ value: [new asn1js.Boolean({ value: true })] }).toBER(false);
  const ku = new asn1js.BitString({ valueHex: new Uint8Array([0x06]).buffer, unusedBits: 1 }).toBER(false);
  const exts = new asn1js.Sequence({
    value: [
      new pkijs.Extension({ extnID: OID.basicConstraints, critical: true, extnValue: bc }).toSchema(),
      new pkijs.Extension({ extnID: OID.keyUsage, critical: true, extnValue: ku }).toSchema(),
    ],
  });
  // Attribute extensionRequest (PKCS#9): SEQUENCE { OID, SET { Extensions } }, inside [0] IMPLICIT SET OF Attribute.
  const attr = new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: '1.2.840.113549.1.9.14' }), new asn1js.Set({ value: [exts] })] });
  const info = derTlv(
    0x30,
    new Uint8Array([0x02, 0x01, 0x00]),
    new Uint8Array(name.toSchema().toBER(false)),
    key.spki,
    derTlv(0xa0, new Uint8Array(attr.toBER(false))),
  );
  const sig = await signData(signer, key, info);
  const der = derTlv(0x30, info, new Uint8Array(signatureAlgorithm(key).toSchema().toBER(false)), derTlv(0x03, new Uint8Array([0]), sig));
  if (!isStrictDer(der)) throw new Error('internal: CSR is not DER');
  return { csrDer: der, csrPem: toPem('CERTIFICATE REQUEST', der) };
}

/** What an imported CA certificate says, once verified. */
export interface VerifiedCaCertificate {
  certificatePem: string;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  /**
   * How many CA levels may follow below it (undefined: no limit): the tightest of its own pathLenConstraint and of
   * what each chain certificate's constraint leaves below the certificate (a relying party enforces all of them).
   */
  pathLen?: number;
  /** The chain above it as PEM, issuer first, the self-signed anchor last. */
  chainPem: string;
}

function parse(pem: string, what: string): { x: X509Certificate; cert: pkijs.Certificate; der: Uint8Array } {
  try {
    const der = certDer(pem);
    return { x: new X509Certificate(Buffer.from(der)), cert: pkijs.Certificate.fromBER(toAb(der)), der };
  } catch (e) {
    throw new PkiError('invalid_certificate', `${what} does not parse as one X.509 certificate`, { cause: e });
  }
}

function caFacts(cert: pkijs.Certificate): { ca: boolean; pathLen?: number; keyCertSign: boolean } {
  const bc = cert.extensions?.find((e) => e.extnID === OID.basicConstraints)?.parsedValue as pkijs.BasicConstraints | undefined;
  const kuExt = cert.extensions?.find((e) => e.extnID === OID.keyUsage);
  const ku = kuExt ? new Uint8Array((kuExt.parsedValue as asn1js.BitString).valueBlock.valueHexView) : undefined;
  return { ca: !!bc?.cA, pathLen: bc?.pathLenConstraint === undefined ? undefined : Number(bc.pathLenConstraint), keyCertSign: !!ku && (ku[0] & 0x04) !== 0 };
}

/** Splits concatenated PEM certificates (a chain file) into one PEM per certificate. */
export function splitPemCertificates(text: string): string[] {
  return pemBlocks(text).map((b) => text.slice(b.start, b.end));
}

/**
 * Verifies the certificate an external CA issued for an HSM key before the key may become ACTIVE: it is for that
 * key (same SubjectPublicKeyInfo), a CA certificate (CA:true, keyCertSign), valid at `now`, and it chains through
 * `chain` (issuer first) to a self-signed anchor: every signature, issuer name, CA flag, keyCertSign bit, validity
 * period and pathLenConstraint along the way. Nothing here trusts the anchor: the administrators chose it.
 */
export function verifyImportedCaCertificate(key: HsmKeyInfo, certificatePem: string, chain: string[], now = new Date(), opts: { notBeforeSkewMs?: number } = {}): VerifiedCaCertificate {
  // A notBefore this far ahead of `now` is taken as the issuing machine's clock running ahead (default: none).
  const skew = opts.notBeforeSkewMs ?? 0;
  const leaf = parse(certificatePem, 'the certificate');
  const leafSpki = new Uint8Array(leaf.cert.subjectPublicKeyInfo.toSchema().toBER(false));
  if (!bytesEqual(leafSpki, key.spki)) throw new PkiError('certificate_key_mismatch', 'the certificate is not for this key (its public key differs from the HSM key)');
  const facts = caFacts(leaf.cert);
  if (!facts.ca || !facts.keyCertSign) throw new PkiError('issuer_not_ca', 'the certificate does not make this key a CA (CA:true and keyCertSign are required)');
  // What issuance will read from it (its SKI becomes the AKI of all it issues): refused now, not at every issuance.
  parseIssuer({ key, certificate: leaf.der });
  if (chain.length === 0 || chain.length > 8) throw new PkiError('chain_invalid', 'give the chain above the certificate, issuer first, up to the self-signed root (1-8 certificates)');
  const path = [leaf, ...chain.map((p, i) => parse(p, `chain certificate ${i + 1}`))];
  let pathLen = facts.pathLen;
  for (let i = 0; i < path.length; i++) {
    const c = path[i];
    if (c.x.validFromDate.getTime() > now.getTime() + skew || c.x.validToDate.getTime() < now.getTime()) throw new PkiError('chain_invalid', `${i === 0 ? 'the certificate' : `chain certificate ${i}`} is not valid now`);
    const issuer = path[i + 1] ?? c;
    if (i === path.length - 1 && !(c.x.checkIssued(c.x) && c.x.verify(c.x.publicKey))) throw new PkiError('chain_invalid', 'the last chain certificate is not a self-signed root');
    if (!c.x.checkIssued(issuer.x) || !c.x.verify(issuer.x.publicKey)) throw new PkiError('chain_invalid', `${i === 0 ? 'the certificate' : `chain certificate ${i}`} is not signed by the next certificate of the chain`);
    if (i > 0) {
      const f = caFacts(c.cert);
      if (!f.ca || !f.keyCertSign) throw new PkiError('chain_invalid', `chain certificate ${i} is not a CA certificate`);
      // The i certificates below this one are all CAs (the imported one too: it will issue), so pathLen >= i.
      if (f.pathLen !== undefined && i > f.pathLen) throw new PkiError('chain_invalid', `chain certificate ${i} allows ${f.pathLen} CA certificate(s) below it, this chain puts ${i} there`);
      // What it leaves below the imported certificate, whose own constraint may be looser or absent.
      if (f.pathLen !== undefined) pathLen = Math.min(pathLen ?? Infinity, f.pathLen - i);
    }
  }
  const serial = new Uint8Array(leaf.cert.serialNumber.valueBlock.valueHexView);
  return {
    certificatePem: toPem('CERTIFICATE', leaf.der),
    serialHex: hex(serial),
    // validFromDate, not new Date(validFrom): Date reads Node's "... 0049 GMT" as 2049.
    notBefore: leaf.x.validFromDate,
    notAfter: leaf.x.validToDate,
    pathLen,
    chainPem: path.slice(1).map((c) => toPem('CERTIFICATE', c.der)).join(''),
  };
}

/**
 * What names a certificate's key for path building (RFC 5280 6.1.1 (d): a trust anchor is a name and a public key):
 * its subject Name exactly as encoded (string types kept: the keys it certified carry these bytes as their issuer,
 * and path builders compare them) and its SubjectPublicKeyInfo, both DER. `invalid_certificate` if it does not parse.
 */
export function subjectAndKeyOf(certificatePem: string): { subject: Uint8Array; spki: Uint8Array } {
  const { cert } = parse(certificatePem, 'the certificate');
  // The Name as decoded: valueBeforeDecode holds its bytes as they were in the certificate (not re-encoded).
  return { subject: nameDer(cert.subject), spki: new Uint8Array(cert.subjectPublicKeyInfo.toSchema().toBER(false)) };
}

/** The subject of a certificate as a {@link NameSpec} (C, O, OU, CN, serialNumber), to certify the same name again. */
export function nameSpecOf(certificatePem: string): NameSpec {
  const cert = parse(certificatePem, 'the certificate').cert;
  const get = (oid: string): string | undefined => {
    const v = cert.subject.typesAndValues.find((t) => t.type === oid)?.value as { valueBlock?: { value?: string } } | undefined;
    return v?.valueBlock?.value;
  };
  const commonName = get(OID.commonName);
  if (!commonName) throw new PkiError('invalid_name', 'the certificate has no commonName');
  const spec: NameSpec = { commonName };
  const o = get(OID.organization);
  const ou = get(OID.organizationalUnit);
  const c = get(OID.country);
  const sn = get(OID.serialNumber);
  if (o !== undefined) spec.organization = o;
  if (ou !== undefined) spec.organizationalUnit = ou;
  if (c !== undefined) spec.country = c;
  if (sn !== undefined) spec.serialNumber = sn;
  return spec;
}
