import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { createHash, verify as nodeVerify, X509Certificate } from 'node:crypto';
import { TimestampTokenError, TimestampTokenErrorCode as Code } from './timestamp-token-error';

// The one verifier of RFC 3161 time-stamp tokens: the API checks an external TSA's reply with it, ksctl a
// signature timestamp. What a token says and whether its signature, its ESS signing-certificate attribute and its
// signer's certificate profile hold is decided here once; whom to trust and when is each caller's policy.

export const TIMESTAMP_TOKEN_OID = {
  /** id-aa-timeStampToken, the unsigned attribute of a SignerInfo that carries a signature timestamp. */
  timeStampToken: '1.2.840.113549.1.9.16.2.14',
  tstInfo: '1.2.840.113549.1.9.16.1.4',
  timeStamping: '1.3.6.1.5.5.7.3.8',
  extKeyUsage: '2.5.29.37',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  /** ESS signing-certificate (RFC 2634, SHA-1 ESSCertID) and signing-certificate-v2 (RFC 5035). */
  signingCertificate: '1.2.840.113549.1.9.16.2.12',
  signingCertificateV2: '1.2.840.113549.1.9.16.2.47',
  signedData: '1.2.840.113549.1.7.2',
} as const;
const OID = TIMESTAMP_TOKEN_OID;

/** Hashes of imprints, message digests and ESSCertIDv2 certHashes (Node's names). */
const HASHES: Record<string, string> = {
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

/** Signature algorithms a token may use: the hash Node verifies with (undefined: the digest algorithm's; null: none). */
const SIGNATURES: Record<string, string | null | undefined> = {
  '1.2.840.113549.1.1.1': undefined, // rsaEncryption
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.2.1': undefined, // ecPublicKey
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.3.101.112': null, // Ed25519
};

/**
 * The dotted decimal form of OBJECT IDENTIFIER content octets (the one OID decoder: libs/pki's DER reader calls
 * it). Arcs of any size, as BigInt: asn1js's own `valueBlock.toString()` writes an arc beyond 2^53 as `{hex}`, so an
 * X.667 UUID OID (2.25.<128 bits>), the usual private policy, would never equal its configured text. The caller has
 * checked the contents are DER (minimal arcs, the last byte ends an arc).
 */
export function oidText(contents: Uint8Array): string {
  const arcs: string[] = [];
  // Numbers while exact (below 2^52 after the next shift), BigInt beyond: CSRs on the issuance path carry a dozen OIDs.
  let v = 0;
  let big: bigint | undefined;
  for (const byte of contents) {
    const x = byte & 0x7f;
    if (big !== undefined || v >= 2 ** 45) big = (big ?? BigInt(v)) * 128n + BigInt(x);
    else v = v * 128 + x;
    if (byte & 0x80) continue;
    if (big === undefined) {
      if (arcs.length === 0) {
        const first = v < 40 ? 0 : v < 80 ? 1 : 2;
        arcs.push(String(first), String(v - first * 40));
      } else arcs.push(String(v));
    } else {
      if (arcs.length === 0) arcs.push('2', String(big - 80n));
      else arcs.push(String(big));
    }
    v = 0;
    big = undefined;
  }
  return arcs.join('.');
}

/** {@link oidText} of an asn1js OBJECT IDENTIFIER (read from its own DER). */
export function objectIdentifierText(oid: asn1js.ObjectIdentifier): string {
  const der = new Uint8Array(oid.toBER(false));
  let at = 1;
  let length = der[at++];
  if (length & 0x80) {
    const n = length & 0x7f;
    length = 0;
    for (let k = 0; k < n; k++) length = length * 256 + der[at++];
  }
  return oidText(der.subarray(at, at + length));
}

/** What a TimeStampToken says of itself. */
export interface TimeStampTokenInfo {
  tstInfoDer: Uint8Array;
  policy: string;
  messageImprintDer: Uint8Array;
  serialHex: string;
  genTime: Date;
  /** The accuracy the TSA declares (seconds, millis, micros rounded up), when it declares one. */
  accuracyMs?: number;
  nonceDer?: Uint8Array;
}

/** What a token must match besides its own consistency. */
export interface TokenExpectations {
  /** The imprint is a SHA-256/384/512 hash of these bytes (a signature value, RFC 3161 appendix A). */
  imprintOver?: Uint8Array;
  /** The imprint is this MessageImprint byte for byte (the one our query sent). */
  imprintDer?: Uint8Array;
  /** The token echoes this nonce INTEGER byte for byte. */
  nonceDer?: Uint8Array;
  /** Certificates besides the token's own among which its signer's may be found. */
  pool?: X509Certificate[];
}

/** A token whose signature verifies with `signer`, a TSA certificate the ESS attribute names; not yet trusted. */
export interface VerifiedTimeStampToken {
  info: TimeStampTokenInfo;
  signer: X509Certificate;
  /** Every certificate the token carries that Node reads (links of the signer's chain, maybe). */
  carried: X509Certificate[];
}

const fail = (code: Code, detail: string) => new TimestampTokenError(code, detail);
const ab = (b: Uint8Array): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
const bytesOf = (b: asn1js.AsnType): Uint8Array => new Uint8Array((b as asn1js.BaseBlock).valueBeforeDecodeView);
const isUniversal = (b: asn1js.AsnType | undefined, tag: number): boolean => !!b && b.idBlock.tagClass === 1 && b.idBlock.tagNumber === tag;
const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.from(a).equals(Buffer.from(b));
const subjectOf = (c: X509Certificate) => c.subject.replace(/\n/g, ', ');

/** The SignedData and the TSTInfo of a token, both parsed (pkijs checks the TSTInfo's schema), no signature checked. */
function parseToken(token: Uint8Array): { sd: pkijs.SignedData; tst: pkijs.TSTInfo; info: TimeStampTokenInfo } {
  let sd: pkijs.SignedData;
  try {
    const ci = pkijs.ContentInfo.fromBER(ab(token));
    if (ci.contentType !== OID.signedData) throw new Error('not SignedData');
    sd = new pkijs.SignedData({ schema: ci.content });
  } catch (e) {
    throw fail(Code.Malformed, `the token is not a CMS SignedData (${(e as Error).message})`);
  }
  const eContent = sd.encapContentInfo.eContent;
  if (sd.encapContentInfo.eContentType !== OID.tstInfo || !eContent) throw fail(Code.Malformed, 'the token does not hold a TSTInfo');
  const tstInfoDer = new Uint8Array(eContent.getValue());
  let tst: pkijs.TSTInfo;
  try {
    tst = pkijs.TSTInfo.fromBER(ab(tstInfoDer));
  } catch {
    throw fail(Code.Malformed, 'the TSTInfo does not parse');
  }
  if (tst.version !== 1) throw fail(Code.Malformed, `TSTInfo version ${tst.version}`);
  // The bytes as the TSA wrote them: the imprint and nonce are compared as DER, never re-encoded.
  const f = (asn1js.fromBER(ab(tstInfoDer)).result as asn1js.Sequence).valueBlock.value;
  if (f.length < 5 || !isUniversal(f[1], 6) || !isUniversal(f[3], 2) || !isUniversal(f[4], 24)) throw fail(Code.Malformed, 'the TSTInfo does not parse');
  const nonce = f.slice(5).find((b) => isUniversal(b, 2));
  const accuracyMs = isUniversal(f[5], 16) ? readAccuracy(f[5] as asn1js.Sequence) : undefined;
  const info: TimeStampTokenInfo = {
    tstInfoDer,
    policy: objectIdentifierText(f[1] as asn1js.ObjectIdentifier),
    messageImprintDer: bytesOf(f[2]),
    serialHex: Buffer.from((f[3] as asn1js.Integer).valueBlock.valueHexView).toString('hex'),
    genTime: genTimeOf(f[4]),
    ...(accuracyMs !== undefined ? { accuracyMs } : {}),
    ...(nonce ? { nonceDer: bytesOf(nonce) } : {}),
  };
  return { sd, tst, info };
}

/** GeneralizedTime as RFC 3161 2.4.2 and DER write it: YYYYMMDDhhmmss, a fraction without trailing zeros, Z. */
const GEN_TIME = /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(?:\.(\d*[1-9]))?Z$/;

/**
 * The genTime of a TSTInfo, read from its bytes: anything but {@link GEN_TIME} with a real calendar time is malformed
 * (asn1js would read a time without Z in the reader's time zone, and roll month 13 or second 60 over). A fraction
 * finer than milliseconds is cut to the millisecond.
 */
function genTimeOf(el: asn1js.AsnType): Date {
  const text = Buffer.from((el as asn1js.BaseBlock & { valueBlock: { valueHexView: Uint8Array } }).valueBlock.valueHexView).toString('latin1');
  const m = GEN_TIME.exec(text);
  const bad = () => fail(Code.Malformed, `the TSTInfo genTime ${JSON.stringify(text.slice(0, 40))} is not YYYYMMDDhhmmss[.fraction]Z`);
  if (!m) throw bad();
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, Number((m[7] ?? '').padEnd(3, '0').slice(0, 3)));
  if (d.getUTCFullYear() !== year || d.getUTCMonth() !== month - 1 || d.getUTCDate() !== day || d.getUTCHours() !== hour || d.getUTCMinutes() !== minute || d.getUTCSeconds() !== second) throw bad();
  return d;
}

/** Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis [0] INTEGER OPTIONAL, micros [1] INTEGER OPTIONAL }, in ms (micros rounded up). */
function readAccuracy(seq: asn1js.Sequence): number {
  const unsigned = (b: asn1js.AsnType) => new Uint8Array((b as asn1js.BaseBlock & { valueBlock: { valueHexView: Uint8Array } }).valueBlock.valueHexView).reduce((n, byte) => n * 256 + byte, 0);
  let ms = 0;
  for (const part of seq.valueBlock.value) {
    if (isUniversal(part, 2)) ms += unsigned(part) * 1000;
    else if (part.idBlock.tagClass === 3 && part.idBlock.tagNumber === 0) ms += unsigned(part);
    else if (part.idBlock.tagClass === 3 && part.idBlock.tagNumber === 1) ms += Math.ceil(unsigned(part) / 1000);
  }
  return ms;
}

/** Reads the TSTInfo out of a TimeStampToken (no signature check: see {@link verifyTimeStampToken}). */
export function readTimeStampToken(token: Uint8Array): TimeStampTokenInfo {
  return parseToken(token).info;
}

/**
 * Verifies a TimeStampToken (RFC 3161 2.4.2, RFC 5816) as far as the token itself can tell: a CMS SignedData over a
 * TSTInfo of version 1; its imprint (and nonce) the expected ones; one signer, named by issuer and serial number,
 * whose certificate the token or `pool` holds; signed attributes content-type id-ct-TSTInfo and message-digest of
 * the TSTInfo; the signature over them with that certificate's key; the ESS signing-certificate(-v2) attribute
 * naming that certificate ({@link checkEssSigningCertificate}); the certificate a TSA certificate
 * ({@link checkTsaCertificateProfile}). Whether the signer is trusted, and at what time, is the caller's decision.
 * Anything else is a {@link TimestampTokenError}.
 */
export function verifyTimeStampToken(token: Uint8Array, want: TokenExpectations = {}): VerifiedTimeStampToken {
  const { sd, tst, info } = parseToken(token);
  if (want.imprintOver) {
    const hash = HASHES[tst.messageImprint.hashAlgorithm.algorithmId];
    if (!hash) throw fail(Code.UnsupportedAlgorithm, `the imprint uses an unsupported hash ${tst.messageImprint.hashAlgorithm.algorithmId}`);
    const over = new Uint8Array(createHash(hash).update(want.imprintOver).digest());
    if (!same(new Uint8Array(tst.messageImprint.hashedMessage.valueBlock.valueHexView), over)) throw fail(Code.ImprintMismatch, 'the token is not over this signature (imprint mismatch)');
  }
  if (want.imprintDer && !same(info.messageImprintDer, want.imprintDer)) throw fail(Code.ImprintMismatch, 'the token is for another imprint');
  if (want.nonceDer && !(info.nonceDer && same(info.nonceDer, want.nonceDer))) throw fail(Code.NonceMismatch, 'the token does not echo our nonce');
  const si = sd.signerInfos[0];
  if (sd.signerInfos.length !== 1 || !si.signedAttrs) throw fail(Code.Malformed, 'a token has exactly one signer with signed attributes');
  const attr = (type: string) => si.signedAttrs?.attributes.find((a) => a.type === type)?.values[0] as asn1js.AsnType | undefined;
  const ct = attr(OID.contentType);
  if (!(ct instanceof asn1js.ObjectIdentifier) || ct.valueBlock.toString() !== OID.tstInfo) throw fail(Code.SignatureInvalid, 'the content-type attribute is not id-ct-TSTInfo');
  const digestHash = HASHES[si.digestAlgorithm.algorithmId];
  if (!digestHash) throw fail(Code.UnsupportedAlgorithm, `unsupported digest algorithm ${si.digestAlgorithm.algorithmId}`);
  const md = attr(OID.messageDigest);
  if (!(md instanceof asn1js.OctetString) || !same(new Uint8Array(md.valueBlock.valueHexView), new Uint8Array(createHash(digestHash).update(info.tstInfoDer).digest()))) {
    throw fail(Code.SignatureInvalid, 'the message-digest attribute is not the digest of the TSTInfo');
  }
  const sigAlg = si.signatureAlgorithm.algorithmId;
  if (!(sigAlg in SIGNATURES)) throw fail(Code.UnsupportedAlgorithm, `unsupported signature algorithm ${sigAlg}`);
  const sid = si.sid;
  if (!(sid instanceof pkijs.IssuerAndSerialNumber)) throw fail(Code.SignerNotFound, 'the TSA is not named by issuer and serial number');
  const carried: X509Certificate[] = [];
  for (const c of sd.certificates ?? []) {
    try {
      if (c instanceof pkijs.Certificate) carried.push(new X509Certificate(Buffer.from(c.toSchema().toBER(false))));
    } catch {
      // A certificate Node cannot read is no link of any chain.
    }
  }
  const signer = [...carried, ...(want.pool ?? [])].find((c) => {
    try {
      const p = pkijs.Certificate.fromBER(ab(new Uint8Array(c.raw)));
      return p.issuer.isEqual(sid.issuer) && p.serialNumber.isEqual(sid.serialNumber);
    } catch {
      return false;
    }
  });
  if (!signer) throw fail(Code.SignerNotFound, "the TSA's certificate is neither in the token nor among the given certificates");
  const signed = Buffer.from(si.signedAttrs.encodedValue);
  signed[0] = 0x31; // the signature is over the attributes as a SET, not as the [0] they are stored in
  const sigHash = SIGNATURES[sigAlg];
  let ok: boolean;
  try {
    ok = nodeVerify(sigHash === null ? null : (sigHash ?? digestHash), signed, signer.publicKey, Buffer.from(si.signature.valueBlock.valueHexView));
  } catch {
    ok = false;
  }
  if (!ok) throw fail(Code.SignatureInvalid, `the token signature does not verify with the key of ${subjectOf(signer)}`);
  checkEssSigningCertificate(si, signer);
  checkTsaCertificateProfile(signer);
  return { info, signer, carried };
}

/**
 * The token must carry an ESS signing-certificate(-v2) attribute whose first ESSCertID is the hash of the
 * certificate that verified the signature (RFC 3161 2.4.1, RFC 5816): it binds the signer's certificate into the
 * signature. Every such attribute present must name it, and so must an optional issuerSerial ({@link issuerSerialNames}).
 */
export function checkEssSigningCertificate(si: pkijs.SignerInfo, signer: X509Certificate): void {
  const malformed = () => fail(Code.Malformed, 'the ESS signing-certificate attribute is malformed');
  const found = (si.signedAttrs?.attributes ?? []).filter((a) => a.type === OID.signingCertificateV2 || a.type === OID.signingCertificate);
  if (found.length === 0) throw fail(Code.SigningCertificateMismatch, 'the token has no ESS signing-certificate attribute');
  for (const a of found) {
    const v2 = a.type === OID.signingCertificateV2;
    const certs = a.values.length === 1 && isUniversal(a.values[0], 16) ? (a.values[0] as asn1js.Sequence).valueBlock.value[0] : undefined;
    const first = isUniversal(certs, 16) ? (certs as asn1js.Sequence).valueBlock.value[0] : undefined;
    if (!isUniversal(first, 16)) throw malformed();
    const parts = (first as asn1js.Sequence).valueBlock.value;
    let hash = v2 ? 'sha256' : 'sha1';
    let at = 0;
    if (v2 && isUniversal(parts[0], 16)) {
      const oid = (parts[0] as asn1js.Sequence).valueBlock.value[0];
      // ESSCertIDv2's hash: SHA-256 unless named (RFC 5035); v1's is SHA-1 by definition (RFC 2634).
      hash = isUniversal(oid, 6) ? (HASHES[(oid as asn1js.ObjectIdentifier).valueBlock.toString()] ?? '') : '';
      if (!hash) throw fail(Code.UnsupportedAlgorithm, 'the ESS signing-certificate-v2 attribute uses an unsupported hash');
      at = 1;
    }
    const certHash = parts[at];
    if (!isUniversal(certHash, 4) || !same(new Uint8Array((certHash as asn1js.OctetString).valueBlock.valueHexView), new Uint8Array(createHash(hash).update(signer.raw).digest()))) {
      throw fail(Code.SigningCertificateMismatch, 'the ESS signing-certificate attribute names another certificate than the signer');
    }
    if (parts.length > at + 2) throw malformed();
    if (parts[at + 1] && !issuerSerialNames(parts[at + 1], signer)) {
      throw fail(Code.SigningCertificateMismatch, 'the issuerSerial of the ESS signing-certificate attribute names another certificate than the signer');
    }
  }
}

/**
 * An ESSCertID(v2)'s optional issuerSerial (RFC 2634 5.4.1, RFC 5035 5.4.1.1), when present, must name `cert`
 * exactly: one GeneralName, a directoryName whose DER is the issuer Name as the certificate encodes it (no
 * re-encoding forgiven), and the certificate's serial number as an integer (ADR 0046 addendum).
 */
export function issuerSerialNames(el: asn1js.AsnType, cert: X509Certificate): boolean {
  if (!isUniversal(el, 16)) return false;
  const [names, serial, ...rest] = (el as asn1js.Sequence).valueBlock.value;
  if (rest.length || !isUniversal(names, 16) || !isUniversal(serial, 2)) return false;
  const generalNames = (names as asn1js.Sequence).valueBlock.value;
  const only = generalNames[0];
  if (generalNames.length !== 1 || only.idBlock.tagClass !== 3 || only.idBlock.tagNumber !== 4 || !only.idBlock.isConstructed) return false;
  const inner = (only as asn1js.Constructed).valueBlock.value;
  const own = certificateNames(cert);
  if (inner.length !== 1 || !same(bytesOf(inner[0]), own.issuer)) return false;
  return (serial as asn1js.Integer).toBigInt() === own.serial;
}

/** A certificate's serial number and its issuer and subject Names (DER as encoded in the certificate). */
export function certificateNames(cert: X509Certificate): { serial: bigint; issuer: Uint8Array; subject: Uint8Array } {
  const tbs = (asn1js.fromBER(ab(new Uint8Array(cert.raw))).result as asn1js.Sequence).valueBlock.value[0] as asn1js.Sequence;
  const fields = tbs.valueBlock.value;
  // TBSCertificate: [0] version (absent in v1), serialNumber, signature, issuer, validity, subject, ...
  const at = fields[0].idBlock.tagClass === 3 && fields[0].idBlock.tagNumber === 0 ? 1 : 0;
  return { serial: (fields[at] as asn1js.Integer).toBigInt(), issuer: bytesOf(fields[at + 2]), subject: bytesOf(fields[at + 4]) };
}

/** A TSA certificate (RFC 3161 2.3): one extendedKeyUsage extension, critical, whose only purpose is timeStamping. */
export function checkTsaCertificateProfile(cert: X509Certificate): void {
  let ekus: pkijs.Extension[] = [];
  try {
    ekus = (pkijs.Certificate.fromBER(ab(new Uint8Array(cert.raw))).extensions ?? []).filter((e) => e.extnID === OID.extKeyUsage);
  } catch {
    // Node reads it, pkijs does not: no usage we could confirm.
  }
  const purposes = ekus.length === 1 ? ((ekus[0].parsedValue as pkijs.ExtKeyUsage | undefined)?.keyPurposes ?? []) : [];
  if (!ekus[0]?.critical || purposes.length !== 1 || purposes[0] !== OID.timeStamping) {
    throw fail(Code.NotTimestamping, `${subjectOf(cert)} is not a TSA certificate (extendedKeyUsage must be timeStamping only, critical)`);
  }
}
