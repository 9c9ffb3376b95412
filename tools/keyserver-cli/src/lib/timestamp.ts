import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { createHash, verify as nodeVerify, X509Certificate } from 'node:crypto';
import type { DigestHash } from './digest-signatures';
import { CliError, Exit } from './errors';
import { verifyChain } from './verify';

// RFC 3161 signature timestamps (the unsigned attribute id-aa-timeStampToken of a CMS SignerInfo), checked
// offline: the imprint is the hash of that SignerInfo's signature value, the token's CMS signature verifies with
// a TSA certificate whose only extended key usage is timeStamping (critical), that certificate is the one the
// ESS signing-certificate attribute names, and its chain leads to --ca at the time the token states.

export const TIMESTAMP_OID = {
  attribute: '1.2.840.113549.1.9.16.2.14',
  tstInfo: '1.2.840.113549.1.9.16.1.4',
  timeStamping: '1.3.6.1.5.5.7.3.8',
  extKeyUsage: '2.5.29.37',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingCertificate: '1.2.840.113549.1.9.16.2.12',
  signingCertificateV2: '1.2.840.113549.1.9.16.2.47',
  signedData: '1.2.840.113549.1.7.2',
};

const HASH_OIDS: Record<string, DigestHash> = {
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

/** Signature algorithms of a token: the hash Node verifies with (undefined: the digest algorithm's; null: none). */
const SIGNATURE_OIDS: Record<string, DigestHash | null | undefined> = {
  '1.2.840.113549.1.1.1': undefined,
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.2.1': undefined,
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.3.101.112': null,
};

/** A verified signature timestamp. */
export interface VerifiedTimestamp {
  /** The time the TSA states (TSTInfo genTime), ISO 8601. */
  time: string;
  serial: string;
  policy: string;
  /** Stated accuracy in milliseconds, when the token states one. */
  accuracyMs?: number;
  tsa: X509Certificate;
  chain: X509Certificate[];
}

function invalid(message: string, code = 'timestamp_invalid'): CliError {
  return new CliError(`signature timestamp: ${message}`, Exit.Invalid, code);
}

function ab(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** The raw token of a SignerInfo's id-aa-timeStampToken attribute, or undefined; more than one is refused. */
export function timestampTokenOf(si: pkijs.SignerInfo): Buffer | undefined {
  const found = si.unsignedAttrs?.attributes.filter((a) => a.type === TIMESTAMP_OID.attribute) ?? [];
  if (found.length === 0) return undefined;
  if (found.length > 1 || found[0].values.length !== 1) throw invalid('the signature carries more than one timestamp token');
  return Buffer.from((found[0].values[0] as asn1js.BaseBlock).valueBeforeDecodeView);
}

/** Only extended key usage timeStamping, marked critical (RFC 3161 2.3). */
function checkTsaCertificate(cert: X509Certificate): void {
  const parsed = pkijs.Certificate.fromBER(ab(cert.raw));
  const eku = parsed.extensions?.find((e) => e.extnID === TIMESTAMP_OID.extKeyUsage);
  const usages = cert.keyUsage ?? [];
  if (!eku || !eku.critical || usages.length !== 1 || usages[0] !== TIMESTAMP_OID.timeStamping) {
    throw invalid(`${cert.subject.replace(/\n/g, ', ')} is not a TSA certificate (extendedKeyUsage must be timeStamping only, critical)`, 'not_timestamping');
  }
}

/** The ESS signing-certificate(-v2) attribute must name `cert` by its hash (RFC 3161 2.4.2, RFC 5816). */
function checkEssCertId(si: pkijs.SignerInfo, cert: X509Certificate): void {
  const v2 = si.signedAttrs?.attributes.find((a) => a.type === TIMESTAMP_OID.signingCertificateV2);
  const v1 = si.signedAttrs?.attributes.find((a) => a.type === TIMESTAMP_OID.signingCertificate);
  const attr = v2 ?? v1;
  if (!attr) throw invalid('the token has no signing-certificate attribute');
  const certs = (attr.values[0] as asn1js.Sequence)?.valueBlock.value[0] as asn1js.Sequence | undefined;
  const first = certs?.valueBlock.value[0] as asn1js.Sequence | undefined;
  if (!first) throw invalid('the signing-certificate attribute is empty');
  const parts = first.valueBlock.value;
  let hash = v2 ? 'sha256' : 'sha1';
  let idx = 0;
  if (v2 && parts[0] instanceof asn1js.Sequence) {
    const oid = (parts[0].valueBlock.value[0] as asn1js.ObjectIdentifier).valueBlock.toString();
    hash = HASH_OIDS[oid] ?? '';
    if (!hash) throw invalid(`the signing-certificate attribute uses an unsupported hash ${oid}`);
    idx = 1;
  }
  const certHash = parts[idx];
  if (!(certHash instanceof asn1js.OctetString) || !Buffer.from(certHash.valueBlock.valueHexView).equals(createHash(hash).update(cert.raw).digest())) {
    throw invalid('the signing-certificate attribute names another certificate');
  }
  const issuerSerial = parts[idx + 1];
  if (parts.length > idx + 2 || (issuerSerial && !issuerSerialNames(issuerSerial, cert))) {
    throw invalid('the issuerSerial of the signing-certificate attribute names another certificate');
  }
}

/**
 * The optional issuerSerial of an ESSCertID(v2) names `cert` exactly: one directoryName whose DER is the issuer
 * Name as the certificate encodes it, and its serial number as an integer (RFC 5035 5.4.1.1; ADR 0046 addendum).
 */
function issuerSerialNames(el: asn1js.AsnType, cert: X509Certificate): boolean {
  if (!(el instanceof asn1js.Sequence)) return false;
  const [names, serial, ...rest] = el.valueBlock.value;
  if (rest.length || !(names instanceof asn1js.Sequence) || !(serial instanceof asn1js.Integer) || names.valueBlock.value.length !== 1) return false;
  const dirName = names.valueBlock.value[0];
  if (dirName.idBlock.tagClass !== 3 || dirName.idBlock.tagNumber !== 4 || !(dirName instanceof asn1js.Constructed) || dirName.valueBlock.value.length !== 1) return false;
  const tbs = (asn1js.fromBER(ab(cert.raw)).result as asn1js.Sequence).valueBlock.value[0] as asn1js.Sequence;
  const fields = tbs.valueBlock.value;
  // TBSCertificate: [0] version (absent in v1), serialNumber, signature, issuer, ...
  const at = fields[0].idBlock.tagClass === 3 && fields[0].idBlock.tagNumber === 0 ? 1 : 0;
  const issuer = Buffer.from((fields[at + 2] as asn1js.BaseBlock).valueBeforeDecodeView);
  return Buffer.from((dirName.valueBlock.value[0] as asn1js.BaseBlock).valueBeforeDecodeView).equals(issuer) && serial.toBigInt() === (fields[at] as asn1js.Integer).toBigInt();
}

/**
 * Verifies a signature timestamp token over `signatureValue` (the SignerInfo's signature) and its TSA chain to
 * one of `anchors` at the time the token states; the TSA certificate may come from the token or from `pool`.
 * `at` is the verification time: a token stating a later time (beyond its accuracy and 5 minutes) is refused.
 */
export function verifySignatureTimestamp(token: Buffer, signatureValue: Buffer, anchors: X509Certificate[], pool: X509Certificate[], at = new Date()): VerifiedTimestamp {
  let sd: pkijs.SignedData;
  try {
    const ci = pkijs.ContentInfo.fromBER(ab(token));
    if (ci.contentType !== TIMESTAMP_OID.signedData) throw new Error('not SignedData');
    sd = new pkijs.SignedData({ schema: ci.content });
  } catch (err) {
    throw invalid(`the token is not a CMS SignedData (${(err as Error).message})`);
  }
  const eContent = sd.encapContentInfo.eContent;
  if (sd.encapContentInfo.eContentType !== TIMESTAMP_OID.tstInfo || !eContent) throw invalid('the token does not hold a TSTInfo');
  const tstDer = Buffer.from(eContent.getValue());
  let tst: pkijs.TSTInfo;
  try {
    tst = pkijs.TSTInfo.fromBER(ab(tstDer));
  } catch {
    throw invalid('the TSTInfo does not parse');
  }
  if (tst.version !== 1) throw invalid(`TSTInfo version ${tst.version}`);
  const imprintHash = HASH_OIDS[tst.messageImprint.hashAlgorithm.algorithmId];
  if (!imprintHash) throw invalid(`the imprint uses an unsupported hash ${tst.messageImprint.hashAlgorithm.algorithmId}`);
  const expected = createHash(imprintHash).update(signatureValue).digest();
  if (!Buffer.from(tst.messageImprint.hashedMessage.valueBlock.valueHexView).equals(expected)) {
    throw invalid('the token is not over this signature (imprint mismatch)', 'timestamp_imprint_mismatch');
  }
  if (sd.signerInfos.length !== 1) throw invalid('a token has exactly one signer');
  const si = sd.signerInfos[0];
  if (!si.signedAttrs) throw invalid('the token has no signed attributes');
  const attr = (type: string) => si.signedAttrs?.attributes.find((a) => a.type === type)?.values[0] as asn1js.AsnType | undefined;
  const ct = attr(TIMESTAMP_OID.contentType);
  if (!(ct instanceof asn1js.ObjectIdentifier) || ct.valueBlock.toString() !== TIMESTAMP_OID.tstInfo) throw invalid('the content-type attribute is not id-ct-TSTInfo');
  const digestHash = HASH_OIDS[si.digestAlgorithm.algorithmId];
  if (!digestHash) throw invalid(`unsupported digest algorithm ${si.digestAlgorithm.algorithmId}`);
  const md = attr(TIMESTAMP_OID.messageDigest);
  if (!(md instanceof asn1js.OctetString) || !Buffer.from(md.valueBlock.valueHexView).equals(createHash(digestHash).update(tstDer).digest())) {
    throw invalid('the message-digest attribute is not the digest of the TSTInfo');
  }
  if (!(si.signatureAlgorithm.algorithmId in SIGNATURE_OIDS)) throw invalid(`unsupported signature algorithm ${si.signatureAlgorithm.algorithmId}`);
  if (!(si.sid instanceof pkijs.IssuerAndSerialNumber)) throw invalid('the TSA is not named by issuer and serial number');
  const sid = si.sid;
  const carried = (sd.certificates ?? []).filter((c): c is pkijs.Certificate => c instanceof pkijs.Certificate).map((c) => new X509Certificate(Buffer.from(c.toSchema().toBER(false))));
  const candidates = [...carried, ...pool];
  const tsa = candidates.find((c) => {
    const p = pkijs.Certificate.fromBER(ab(c.raw));
    return p.issuer.isEqual(sid.issuer) && p.serialNumber.isEqual(sid.serialNumber);
  });
  if (!tsa) throw invalid("the TSA's certificate is neither in the token nor in --chain");
  const signed = Buffer.from(si.signedAttrs.encodedValue);
  signed[0] = 0x31;
  const sigHash = SIGNATURE_OIDS[si.signatureAlgorithm.algorithmId];
  let ok: boolean;
  try {
    ok = nodeVerify(sigHash === null ? null : (sigHash ?? digestHash), signed, tsa.publicKey, Buffer.from(si.signature.valueBlock.valueHexView));
  } catch {
    ok = false;
  }
  if (!ok) throw invalid(`the token signature does not verify with the key of ${tsa.subject.replace(/\n/g, ', ')}`);
  checkEssCertId(si, tsa);
  checkTsaCertificate(tsa);
  const genTime = tst.genTime;
  const accuracyMs = tst.accuracy ? (tst.accuracy.seconds ?? 0) * 1000 + (tst.accuracy.millis ?? 0) + Math.ceil((tst.accuracy.micros ?? 0) / 1000) : undefined;
  if (genTime.getTime() - (accuracyMs ?? 0) > at.getTime() + 5 * 60_000) throw invalid(`the token states ${genTime.toISOString()}, after the verification time`);
  // The TSA's chain as it stood when it stamped (its certificate may have expired since, like the signer's).
  const chain = verifyChain(tsa, [...carried, ...pool], anchors, { at: genTime });
  return {
    time: genTime.toISOString(),
    serial: Buffer.from(tst.serialNumber.valueBlock.valueHexView).toString('hex'),
    policy: tst.policy,
    ...(accuracyMs !== undefined ? { accuracyMs } : {}),
    tsa,
    chain,
  };
}
