import { X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { HsmKeyInfo, HsmSigner } from './hsm-signer';
import { OID, bytesEqual, certDer, derTlv, hex, isStrictDer, keyIdentifier, randomSerial, toAb, toPem } from './der';
import { PkiError } from './pki-error';
import { signData, signatureAlgorithm } from './sign';

/** Subject of a certificate the Keyserver creates; attributes are emitted in C, O, OU, CN, serialNumber order. */
export interface NameSpec {
  commonName: string;
  organization?: string;
  organizationalUnit?: string;
  country?: string;
  serialNumber?: string;
}

export interface ValiditySpec {
  notBefore: Date;
  notAfter: Date;
}

/** An issuing key with its certificate (PEM or DER). */
export interface IssuerRef {
  key: HsmKeyInfo;
  certificate: string | Uint8Array;
}

export interface IssuedCertificate {
  certificatePem: string;
  certificateDer: Uint8Array;
  /** Serial number, lower-case hex of the DER INTEGER content. */
  serialHex: string;
}

// Matching control characters is the point: they are refused in names.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Builds a DN from a {@link NameSpec}; refuses empty, oversize or control-character values (`invalid_name`). */
export function buildName(spec: NameSpec): pkijs.RelativeDistinguishedNames {
  const rdns: pkijs.AttributeTypeAndValue[] = [];
  const add = (type: string, value: string | undefined, max: number, printable = false) => {
    if (value === undefined) return;
    if (value.length === 0 || value.length > max || CONTROL.test(value)) {
      throw new PkiError('invalid_name', `bad value for ${type}`);
    }
    if (printable && !/^[A-Za-z0-9 '()+,\-./:=?]+$/.test(value)) throw new PkiError('invalid_name', `${type} must be printable`);
    rdns.push(
      new pkijs.AttributeTypeAndValue({
        type,
        value: printable ? new asn1js.PrintableString({ value }) : new asn1js.Utf8String({ value }),
      }),
    );
  };
  if (spec.country !== undefined && !/^[A-Z]{2}$/.test(spec.country)) throw new PkiError('invalid_name', 'country must be 2 letters');
  add(OID.country, spec.country, 2, true);
  add(OID.organization, spec.organization, 64);
  add(OID.organizationalUnit, spec.organizationalUnit, 64);
  if (!spec.commonName) throw new PkiError('invalid_name', 'commonName is required');
  add(OID.commonName, spec.commonName, 64);
  add(OID.serialNumber, spec.serialNumber, 64, true);
  return nameOf(rdns);
}

/** A Name with one attribute per RDN (pkijs would put them all in a single multi-valued RDN). */
export function nameOf(atvs: pkijs.AttributeTypeAndValue[]): pkijs.RelativeDistinguishedNames {
  const der = new asn1js.Sequence({ value: atvs.map((a) => new asn1js.Set({ value: [a.toSchema()] })) }).toBER(false);
  return pkijs.RelativeDistinguishedNames.fromBER(der);
}

/**
 * RFC 5280 4.1.2.5: UTCTime for 1950 through 2049, GeneralizedTime before and after (a UTCTime's two-digit year
 * 49 reads as 2049, so 1949 written as UTCTime would be read a century late); years 0001-9999 only.
 */
export function isUtcTimeYear(year: number): boolean {
  return year >= 1950 && year <= 2049;
}

function assertTimeYear(d: Date): number {
  const year = d.getUTCFullYear();
  if (!(year >= 1 && year <= 9999)) throw new PkiError('invalid_validity');
  return year;
}

/** UTCTime for 1950-2049, GeneralizedTime otherwise (RFC 5280 4.1.2.5); whole seconds only, always Z. */
export function x509Time(d: Date): pkijs.Time {
  const value = new Date(Math.floor(d.getTime() / 1000) * 1000);
  return new pkijs.Time({ type: isUtcTimeYear(assertTimeYear(value)) ? 0 : 1, value });
}

/** KeyUsage bits as a DER named-bit BIT STRING (trailing zero bits dropped). */
export function keyUsageExtension(bits: ('digitalSignature' | 'keyAgreement' | 'keyCertSign' | 'cRLSign')[]): pkijs.Extension {
  const pos = { digitalSignature: 0, keyAgreement: 4, keyCertSign: 5, cRLSign: 6 };
  let v = 0;
  let last = 0;
  for (const b of bits) {
    v |= 0x80 >> pos[b];
    last = Math.max(last, pos[b]);
  }
  return ext(OID.keyUsage, true, new asn1js.BitString({ valueHex: new Uint8Array([v]).buffer, unusedBits: 7 - last }));
}

export function basicConstraintsExtension(ca: boolean, pathLen?: number): pkijs.Extension {
  const value: asn1js.AsnType[] = [];
  if (ca) value.push(new asn1js.Boolean({ value: true }));
  if (ca && pathLen !== undefined) value.push(new asn1js.Integer({ value: pathLen }));
  return ext(OID.basicConstraints, true, new asn1js.Sequence({ value }));
}

export function extKeyUsageExtension(oids: string[], critical = false): pkijs.Extension {
  return ext(OID.extKeyUsage, critical, new asn1js.Sequence({ value: oids.map((value) => new asn1js.ObjectIdentifier({ value })) }));
}

export function skiExtension(spki: Uint8Array): pkijs.Extension {
  return ext(OID.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: toAb(keyIdentifier(spki)) }));
}

/** AKI naming the issuer key; pass `issuerKeyId` when it is already known (a parsed issuer carries it). */
export function akiExtension(issuerSpki: Uint8Array, issuerKeyId = keyIdentifier(issuerSpki)): pkijs.Extension {
  return ext(
    OID.authorityKeyIdentifier,
    false,
    new asn1js.Sequence({
      value: [new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 0 }, valueHex: toAb(issuerKeyId) })],
    }),
  );
}

export function crlDistributionPointExtension(url: string): pkijs.Extension {
  if (!/^https?:\/\/[\x21-\x7e]+$/.test(url)) throw new PkiError('invalid_name', 'CRL distribution point must be an http(s) URL');
  const dp = new pkijs.CRLDistributionPoints({
    distributionPoints: [new pkijs.DistributionPoint({ distributionPoint: [new pkijs.GeneralName({ type: 6, value: url })] })],
  });
  return ext(OID.crlDistributionPoints, false, dp.toSchema());
}

export function ext(extnID: string, critical: boolean, value: asn1js.AsnType): pkijs.Extension {
  return new pkijs.Extension({ extnID, critical, extnValue: value.toBER(false) });
}

/** Parsed view of an issuer certificate plus the checks every issuance needs. */
export interface ParsedIssuer {
  cert: pkijs.Certificate;
  der: Uint8Array;
  spki: Uint8Array;
  /** Key identifier of the issuer: its certificate's SKI (method 1 when it has none); the AKI of everything it issues. */
  keyIdentifier: Uint8Array;
  pathLen?: number;
  /**
   * The issuer's validity as OpenSSL reads it (Node's `validFromDate`/`validToDate`). Not pkijs' `Time.value`: asn1js
   * builds it with `Date.UTC`, which takes a GeneralizedTime year 0-99 for 1900-1999; nor `new Date(x.validTo)`,
   * which reads Node's "... 0049 GMT" as 2049.
   */
  notBefore: Date;
  notAfter: Date;
}

export function parseIssuer(issuer: IssuerRef): ParsedIssuer {
  const der = certDer(issuer.certificate);
  let cert: pkijs.Certificate;
  try {
    cert = pkijs.Certificate.fromBER(toAb(der));
  } catch (e) {
    throw new PkiError('invalid_certificate', 'issuer certificate does not parse', { cause: e });
  }
  const spki = new Uint8Array(cert.subjectPublicKeyInfo.toSchema().toBER(false));
  if (!bytesEqual(spki, issuer.key.spki)) throw new PkiError('invalid_certificate', 'issuer certificate is not for the issuer key');
  const bcExt = cert.extensions?.find((e) => e.extnID === OID.basicConstraints);
  const bc = bcExt?.parsedValue as pkijs.BasicConstraints | undefined;
  const kuExt = cert.extensions?.find((e) => e.extnID === OID.keyUsage);
  const ku = kuExt ? new Uint8Array((kuExt.parsedValue as asn1js.BitString).valueBlock.valueHexView) : undefined;
  if (!bc?.cA || !ku || !(ku[0] & 0x04)) throw new PkiError('issuer_not_ca');
  const pathLen = bc.pathLenConstraint === undefined ? undefined : Number(bc.pathLenConstraint);
  // RFC 5280 4.2.1.1: children name the issuer by its certificate's SKI, whatever method made it (an external
  // root's may be method 2 or its own); only an issuer certificate without SKI falls back to method 1.
  const skiExt = cert.extensions?.find((e) => e.extnID === OID.subjectKeyIdentifier);
  const ski = skiExt ? (asn1js.fromBER(skiExt.extnValue.valueBlock.valueHexView).result as asn1js.OctetString) : undefined;
  if (skiExt && (!(ski instanceof asn1js.OctetString) || ski.valueBlock.valueHexView.byteLength === 0)) throw new PkiError('invalid_certificate', 'issuer SKI is not a non-empty OCTET STRING');
  const x = new X509Certificate(der);
  return { cert, der, spki, keyIdentifier: ski ? new Uint8Array(ski.valueBlock.valueHexView) : keyIdentifier(spki), pathLen, notBefore: x.validFromDate, notAfter: x.validToDate };
}

export function checkValidity(v: ValiditySpec, issuer?: ParsedIssuer): void {
  if (!(v.notBefore instanceof Date) || !(v.notAfter instanceof Date) || isNaN(+v.notBefore) || isNaN(+v.notAfter) || v.notAfter <= v.notBefore) {
    throw new PkiError('invalid_validity');
  }
  if (issuer) {
    const nb = issuer.notBefore;
    const na = issuer.notAfter;
    if (Math.floor(+v.notBefore / 1000) < Math.floor(+nb / 1000) || Math.floor(+v.notAfter / 1000) > Math.floor(+na / 1000)) {
      throw new PkiError('validity_exceeds_issuer');
    }
  }
}

/** What a certificate is made of; the issuer's signature is the only part left out. */
export interface CertificateParts {
  issuerName: pkijs.RelativeDistinguishedNames;
  subject: pkijs.RelativeDistinguishedNames;
  spki: Uint8Array;
  validity: ValiditySpec;
  extensions: pkijs.Extension[];
}

/** A complete TBSCertificate (DER) and its signature algorithm, waiting only for the HSM signature. */
export interface PreparedCertificate {
  issuerKey: HsmKeyInfo;
  tbs: Uint8Array;
  /** AlgorithmIdentifier (DER) of the signature the issuer key makes. */
  signatureAlgorithm: Uint8Array;
  /** Serial number, lower-case hex of the DER INTEGER content (a fresh CSPRNG value). */
  serialHex: string;
}

const VERSION_3 = new Uint8Array([0xa0, 0x03, 0x02, 0x01, 0x02]);
const ALGORITHMS = new Map<string, Uint8Array>();

/** AlgorithmIdentifier DER of the signatures `key` makes (a handful of constants, memoized). */
export function algorithmDer(key: HsmKeyInfo): Uint8Array {
  let der = ALGORITHMS.get(key.algorithm);
  if (!der) ALGORITHMS.set(key.algorithm, (der = new Uint8Array(signatureAlgorithm(key).toSchema().toBER(false))));
  return der;
}

/** A Name's DER: the bytes it was parsed from when it was parsed (pkijs would re-parse them to re-encode). */
export function nameDer(name: pkijs.RelativeDistinguishedNames): Uint8Array {
  return name.valueBeforeDecode.byteLength ? new Uint8Array(name.valueBeforeDecode) : new Uint8Array(name.toSchema().toBER(false));
}

/** An Extension's DER as pkijs encodes it: SEQUENCE { extnID, critical only when TRUE, OCTET STRING extnValue }. */
export function extensionDer(e: pkijs.Extension): Uint8Array {
  return new Uint8Array(e.toSchema().toBER(false));
}

/** The DER of {@link x509Time}: UTCTime YYMMDDHHMMSSZ for 1950-2049, GeneralizedTime YYYYMMDDHHMMSSZ otherwise. */
export function timeDer(d: Date): Uint8Array {
  const year = assertTimeYear(d);
  const utc = isUtcTimeYear(year);
  // Digits written straight into the element (two per field; the year two or four), then 'Z'.
  const fields = [utc ? year % 100 : year, d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()];
  const out = new Uint8Array(utc ? 15 : 17);
  out[0] = utc ? 0x17 : 0x18;
  out[1] = out.length - 2;
  let at = 2;
  fields.forEach((v, i) => {
    for (let width = i === 0 && !utc ? 4 : 2, k = width - 1; k >= 0; k--, v = Math.floor(v / 10)) out[at + k] = 0x30 + (v % 10);
    at += i === 0 && !utc ? 4 : 2;
  });
  out[at] = 0x5a;
  return out;
}

/** The TBSCertificate's parts, each already DER; only the serial and the assembly are left. */
export interface TbsParts {
  signatureAlgorithm: Uint8Array;
  issuerName: Uint8Array;
  validity: ValiditySpec;
  subject: Uint8Array;
  spki: Uint8Array;
  extensions: Uint8Array[];
}

/**
 * The one TBSCertificate writer (v3, the serial given or a fresh CSPRNG one): DER straight from parts that are
 * DER already, so every certificate the Keyserver makes has exactly one encoding.
 */
export function writeTbs(issuerKey: HsmKeyInfo, parts: TbsParts, serial: Uint8Array = randomSerial()): PreparedCertificate {
  const fields = [
    VERSION_3,
    derTlv(0x02, serial),
    parts.signatureAlgorithm,
    parts.issuerName,
    derTlv(0x30, timeDer(parts.validity.notBefore), timeDer(parts.validity.notAfter)),
    parts.subject,
    parts.spki,
  ];
  if (parts.extensions.length) fields.push(derTlv(0xa3, derTlv(0x30, ...parts.extensions)));
  const tbs = derTlv(0x30, ...fields);
  if (!isStrictDer(tbs)) throw new Error('internal: TBSCertificate is not DER');
  return { issuerKey, tbs, signatureAlgorithm: parts.signatureAlgorithm, serialHex: hex(serial) };
}

/**
 * Builds the TBSCertificate of a v3 certificate with a random serial (or `serial`, for tests), DER straight from
 * its parts (the same bytes pkijs' encodeTBS produces, without re-parsing names and keys); no HSM involved.
 */
export function prepareCertificate(issuerKey: HsmKeyInfo, parts: CertificateParts, serial?: Uint8Array): PreparedCertificate {
  return writeTbs(
    issuerKey,
    {
      signatureAlgorithm: algorithmDer(issuerKey),
      issuerName: nameDer(parts.issuerName),
      validity: parts.validity,
      subject: nameDer(parts.subject),
      spki: parts.spki,
      extensions: parts.extensions.map(extensionDer),
    },
    serial,
  );
}

/** Signs prepared TBS bytes in the HSM and assembles `SEQUENCE { tbs, algorithm, BIT STRING signature }`. */
export async function signPreparedCertificate(signer: HsmSigner, prepared: PreparedCertificate): Promise<IssuedCertificate> {
  const sig = await signData(signer, prepared.issuerKey, prepared.tbs);
  const der = derTlv(0x30, prepared.tbs, prepared.signatureAlgorithm, derTlv(0x03, new Uint8Array([0]), sig));
  if (!isStrictDer(der)) throw new Error('internal: certificate is not DER');
  return { certificateDer: der, certificatePem: toPem('CERTIFICATE', der), serialHex: prepared.serialHex };
}

/** Assembles a v3 certificate, signs its TBS bytes in the HSM and returns it as DER/PEM. */
export async function signCertificate(signer: HsmSigner, issuerKey: HsmKeyInfo, parts: CertificateParts): Promise<IssuedCertificate> {
  return signPreparedCertificate(signer, prepareCertificate(issuerKey, parts));
}

/** Self-signed root: CA:true (critical; pathLenConstraint when `pathLen` is given), keyCertSign+cRLSign (critical), SKI. */
export async function createRootCertificate(
  signer: HsmSigner,
  key: HsmKeyInfo,
  opts: { subject: NameSpec; pathLen?: number } & ValiditySpec,
): Promise<IssuedCertificate> {
  checkValidity(opts);
  const name = buildName(opts.subject);
  return signCertificate(signer, key, {
    issuerName: name,
    subject: name,
    spki: key.spki,
    validity: opts,
    extensions: [basicConstraintsExtension(true, opts.pathLen), keyUsageExtension(['keyCertSign', 'cRLSign']), skiExtension(key.spki)],
  });
}

/**
 * CA certified by a ROOT or another CA: CA:true with pathLenConstraint `pathLen` (default 0: it issues end
 * entities only), keyCertSign+cRLSign, SKI, AKI, optional CRL DP. The issuer's own constraint must leave room.
 */
export async function createCaCertificate(
  signer: HsmSigner,
  issuer: IssuerRef,
  subjectKey: HsmKeyInfo,
  opts: { subject: NameSpec; crlDistributionPointUrl?: string; pathLen?: number } & ValiditySpec,
): Promise<IssuedCertificate> {
  const parsed = parseIssuer(issuer);
  const pathLen = opts.pathLen ?? 0;
  if (!Number.isInteger(pathLen) || pathLen < 0) throw new PkiError('issuer_not_ca', 'pathLen must be an integer >= 0');
  if (parsed.pathLen !== undefined && parsed.pathLen < pathLen + 1) throw new PkiError('issuer_not_ca', `issuer path length ${parsed.pathLen} does not allow a sub-CA with path length ${pathLen}`);
  checkValidity(opts, parsed);
  const extensions = [
    basicConstraintsExtension(true, pathLen),
    keyUsageExtension(['keyCertSign', 'cRLSign']),
    skiExtension(subjectKey.spki),
    akiExtension(parsed.spki, parsed.keyIdentifier),
  ];
  if (opts.crlDistributionPointUrl) extensions.push(crlDistributionPointExtension(opts.crlDistributionPointUrl));
  return signCertificate(signer, issuer.key, {
    issuerName: parsed.cert.subject,
    subject: buildName(opts.subject),
    spki: subjectKey.spki,
    validity: opts,
    extensions,
  });
}

/**
 * A signing end entity: CA:false, keyUsage digitalSignature, the one extendedKeyUsage given (critical when the
 * profile demands it, e.g. RFC 3161's timeStamping), SKI, AKI, optional CRL distribution point.
 */
export async function createSigningEndEntityCertificate(
  signer: HsmSigner,
  issuer: IssuerRef,
  subjectKey: HsmKeyInfo,
  opts: { subject: NameSpec; crlDistributionPointUrl?: string } & ValiditySpec,
  eku: { oid: string; critical: boolean },
): Promise<IssuedCertificate> {
  const parsed = parseIssuer(issuer);
  checkValidity(opts, parsed);
  const extensions = [
    basicConstraintsExtension(false),
    keyUsageExtension(['digitalSignature']),
    extKeyUsageExtension([eku.oid], eku.critical),
    skiExtension(subjectKey.spki),
    akiExtension(parsed.spki, parsed.keyIdentifier),
  ];
  if (opts.crlDistributionPointUrl) extensions.push(crlDistributionPointExtension(opts.crlDistributionPointUrl));
  return signCertificate(signer, issuer.key, {
    issuerName: parsed.cert.subject,
    subject: buildName(opts.subject),
    spki: subjectKey.spki,
    validity: opts,
    extensions,
  });
}

/** Firmware-signing end entity: EKU codeSigning only (not critical). */
export async function createFirmwareSigningCertificate(
  signer: HsmSigner,
  issuer: IssuerRef,
  subjectKey: HsmKeyInfo,
  opts: { subject: NameSpec; crlDistributionPointUrl?: string } & ValiditySpec,
): Promise<IssuedCertificate> {
  return createSigningEndEntityCertificate(signer, issuer, subjectKey, opts, { oid: OID.codeSigning, critical: false });
}
