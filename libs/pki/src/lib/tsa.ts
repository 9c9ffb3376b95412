import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { randomBytes, verify as nodeVerify, X509Certificate } from 'node:crypto';
import { errorClass } from '@keyserver/errors';
import {
  certificateNames,
  checkTsaCertificateProfile,
  readTimeStampToken as readToken,
  TIMESTAMP_TOKEN_OID,
  TimestampTokenError,
  TimestampTokenErrorCode,
  type TimeStampTokenInfo,
  verifyTimeStampToken,
  objectIdentifierText,
} from '@keyserver/timestamp-token';
import { HashName, HsmKeyInfo, HsmSigner } from './hsm-signer';
import { HASHES, OID, bytesEqual, derTlv, digest, hashByOid, hex, isStrictDer, pemBlocks, randomSerial, toAb } from './der';
import { PkiError } from './pki-error';
import { SIG_ALGS } from './csr-legacy';
import { IssuedCertificate, IssuerRef, NameSpec, ValiditySpec, createSigningEndEntityCertificate } from './certificates';
import { CmsSigner, signSignedData } from './cms';

// RFC 3161 time-stamping: the TSA certificate, the query parser, TSTInfo tokens signed in the HSM and the
// TimeStampResp, plus what a client of an external TSA needs (query, reply checks). docs/adr/0024.

export const TSA_OID = {
  timeStamping: TIMESTAMP_TOKEN_OID.timeStamping,
  tstInfo: TIMESTAMP_TOKEN_OID.tstInfo,
  timeStampToken: TIMESTAMP_TOKEN_OID.timeStampToken,
  /** ESS signing-certificate (RFC 2634, SHA-1 ESSCertID) and signing-certificate-v2 (RFC 5035). */
  signingCertificate: TIMESTAMP_TOKEN_OID.signingCertificate,
  signingCertificateV2: TIMESTAMP_TOKEN_OID.signingCertificateV2,
} as const;

/** How far an external TSA's genTime may be from our clock, beyond its declared accuracy (CMS_TSA_MAX_SKEW_MS). */
export const DEFAULT_TSA_MAX_SKEW_MS = 5 * 60_000;

/** Largest query the TSA reads: a SHA-512 query with a 64-byte nonce and a policy is under 200 bytes. */
export const MAX_TIMESTAMP_QUERY_BYTES = 1024;
/** Largest nonce echoed, in bytes of magnitude (openssl sends 8 bytes; RFC 3161 sets no bound, we do). */
const MAX_NONCE_BYTES = 64;

export enum TsaErrorCode {
  QueryTooLarge = 'query_too_large',
  QueryNotDer = 'query_not_der',
  QueryMalformed = 'query_malformed',
  VersionNotSupported = 'version_not_supported',
  HashNotAccepted = 'hash_not_accepted',
  ImprintLengthMismatch = 'imprint_length_mismatch',
  PolicyNotAccepted = 'policy_not_accepted',
  ExtensionNotAccepted = 'extension_not_accepted',
  /** No usable TSA key (none created, revoked, certificate outside its validity). */
  TsaNotAvailable = 'tsa_not_available',
  /** The configured external TSA did not answer in time or at all. */
  TimestampUnavailable = 'timestamp_unavailable',
  /** The external TSA answered with a rejection or with a token that does not match the request. */
  TimestampReplyInvalid = 'timestamp_reply_invalid',
  /** The external TSA's token is signed by a certificate the configuration does not trust (CMS_TSA_CA_CERT, CMS_TSA_CERT_SHA256). */
  TimestampTsaUntrusted = 'timestamp_tsa_untrusted',
  /** The external TSA's genTime is further from our clock than its accuracy plus CMS_TSA_MAX_SKEW_MS. */
  TimestampClockSkew = 'timestamp_clock_skew',
  /** The external TSA's certificate (or a CA certificate of its path) is listed on a configured CRL (CMS_TSA_CRL). */
  TimestampTsaRevoked = 'timestamp_tsa_revoked',
  /** The configured CRL that must vouch for the external TSA's certificate is past its nextUpdate (CMS_TSA_CRL). */
  TimestampTsaCrlStale = 'timestamp_tsa_crl_stale',
}

/** PKIFailureInfo bit (RFC 3161 2.4.2) each refusal is answered with. */
const FAIL_INFO_BIT: Record<TsaErrorCode, number> = {
  [TsaErrorCode.QueryTooLarge]: 5, // badDataFormat
  [TsaErrorCode.QueryNotDer]: 5,
  [TsaErrorCode.QueryMalformed]: 5,
  [TsaErrorCode.VersionNotSupported]: 2, // badRequest
  [TsaErrorCode.HashNotAccepted]: 0, // badAlg
  [TsaErrorCode.ImprintLengthMismatch]: 5,
  [TsaErrorCode.PolicyNotAccepted]: 15, // unacceptedPolicy
  [TsaErrorCode.ExtensionNotAccepted]: 16, // unacceptedExtension
  [TsaErrorCode.TsaNotAvailable]: 14, // timeNotAvailable
  [TsaErrorCode.TimestampUnavailable]: 25, // systemFailure
  [TsaErrorCode.TimestampReplyInvalid]: 25,
  [TsaErrorCode.TimestampTsaUntrusted]: 25,
  [TsaErrorCode.TimestampClockSkew]: 25,
  [TsaErrorCode.TimestampTsaRevoked]: 25,
  [TsaErrorCode.TimestampTsaCrlStale]: 25,
};

const STATUS: Record<TsaErrorCode, number> = {
  [TsaErrorCode.QueryTooLarge]: 413,
  [TsaErrorCode.QueryNotDer]: 400,
  [TsaErrorCode.QueryMalformed]: 400,
  [TsaErrorCode.VersionNotSupported]: 400,
  [TsaErrorCode.HashNotAccepted]: 400,
  [TsaErrorCode.ImprintLengthMismatch]: 400,
  [TsaErrorCode.PolicyNotAccepted]: 400,
  [TsaErrorCode.ExtensionNotAccepted]: 400,
  [TsaErrorCode.TsaNotAvailable]: 503,
  [TsaErrorCode.TimestampUnavailable]: 503,
  [TsaErrorCode.TimestampReplyInvalid]: 502,
  [TsaErrorCode.TimestampTsaUntrusted]: 502,
  [TsaErrorCode.TimestampClockSkew]: 502,
  [TsaErrorCode.TimestampTsaRevoked]: 502,
  [TsaErrorCode.TimestampTsaCrlStale]: 502,
};

/**
 * Refusals of time-stamping. On the TSA route they become a TimeStampResp with PKIStatus rejection (the
 * protocol's error form, {@link rejectionResponse}); in a firmware signature they are problem+json.
 */
export class TsaError extends errorClass(STATUS) {
  get failInfoBit(): number {
    return FAIL_INFO_BIT[this.code];
  }
}

/**
 * The API's code for each refusal of the one token verifier (@keyserver/timestamp-token): a token that does not
 * verify is an invalid reply; a signer whose certificate is no TSA certificate is not trusted.
 */
const TOKEN_REFUSAL: Record<TimestampTokenErrorCode, TsaErrorCode> = {
  ...(Object.fromEntries(Object.values(TimestampTokenErrorCode).map((code) => [code, TsaErrorCode.TimestampReplyInvalid])) as Record<TimestampTokenErrorCode, TsaErrorCode>),
  [TimestampTokenErrorCode.NotTimestamping]: TsaErrorCode.TimestampTsaUntrusted,
};

/** Runs a check of the token verifier with its refusals as {@link TsaError}s ({@link TOKEN_REFUSAL}). */
function asTsaError<T>(check: () => T): T {
  try {
    return check();
  } catch (e) {
    if (e instanceof TimestampTokenError) throw new TsaError(TOKEN_REFUSAL[e.code], e.detail, { cause: e });
    throw e;
  }
}

/** A parsed, accepted TimeStampReq (RFC 3161 2.4.1). */
export interface TimeStampQuery {
  hash: HashName;
  /** The request's MessageImprint, DER, echoed byte for byte into TSTInfo. */
  messageImprintDer: Uint8Array;
  hashedMessage: Uint8Array;
  /** The request's nonce INTEGER element, DER, echoed byte for byte. */
  nonceDer?: Uint8Array;
  certReq: boolean;
  reqPolicy?: string;
}

const bytesOf = (b: asn1js.AsnType): Uint8Array => new Uint8Array((b as asn1js.BaseBlock).valueBeforeDecodeView);
const isUniversal = (b: asn1js.AsnType, tag: number): boolean => b.idBlock.tagClass === 1 && b.idBlock.tagNumber === tag;

function malformed(detail: string): TsaError {
  return new TsaError(TsaErrorCode.QueryMalformed, detail);
}

/** Hashes a TSA accepts in a query; SHA-1 and MD5 imprints are refused as `badAlg`. */
const ACCEPTED_HASHES: HashName[] = ['SHA-256', 'SHA-384', 'SHA-512'];

/** Parses a MessageImprint element: the hash (accepted ones only), parameters absent or NULL, the digest length. */
function readImprint(el: asn1js.AsnType): { hash: HashName; hashedMessage: Uint8Array } {
  if (!isUniversal(el, 16)) throw malformed('messageImprint is not a SEQUENCE');
  const [alg, hashed, ...rest] = (el as asn1js.Sequence).valueBlock.value;
  if (!alg || !hashed || rest.length || !isUniversal(alg, 16) || !isUniversal(hashed, 4)) throw malformed('messageImprint is not { AlgorithmIdentifier, OCTET STRING }');
  const [oid, params, ...more] = (alg as asn1js.Sequence).valueBlock.value;
  if (!oid || !isUniversal(oid, 6) || more.length) throw malformed('hashAlgorithm is not an AlgorithmIdentifier');
  const oidText = (oid as asn1js.ObjectIdentifier).valueBlock.toString();
  const hash = hashByOid(oidText);
  if (!hash || !ACCEPTED_HASHES.includes(hash)) throw new TsaError(TsaErrorCode.HashNotAccepted, `hash algorithm ${oidText.slice(0, 64)} is not accepted (SHA-256, SHA-384, SHA-512)`);
  if (params && !isUniversal(params, 5)) throw new TsaError(TsaErrorCode.HashNotAccepted, 'hash algorithm parameters must be absent or NULL');
  const hashedMessage = new Uint8Array((hashed as asn1js.OctetString).valueBlock.valueHexView);
  if (hashedMessage.length !== HASHES[hash].length) {
    throw new TsaError(TsaErrorCode.ImprintLengthMismatch, `a ${hash} imprint is ${HASHES[hash].length} bytes, got ${hashedMessage.length}`);
  }
  return { hash, hashedMessage };
}

/**
 * Parses a TimeStampReq strictly: at most {@link MAX_TIMESTAMP_QUERY_BYTES}, exactly one DER element (checked
 * before any parser sees it), version 1, an accepted hash with a digest of its length, a policy only if it is
 * ours, a nonce of at most 64 bytes of magnitude (any sign, zero too: echoed byte for byte), certReq only when TRUE
 * (its DEFAULT FALSE written out is not DER), no extensions (we support none). Anything else is a {@link TsaError}.
 */
export function parseTimeStampQuery(der: Uint8Array, opts: { policy: string }): TimeStampQuery {
  if (der.length > MAX_TIMESTAMP_QUERY_BYTES) throw new TsaError(TsaErrorCode.QueryTooLarge, `queries are at most ${MAX_TIMESTAMP_QUERY_BYTES} bytes`);
  if (!isStrictDer(der)) throw new TsaError(TsaErrorCode.QueryNotDer, 'the query is not one DER element');
  const asn = asn1js.fromBER(toAb(der));
  if (asn.offset === -1 || !isUniversal(asn.result, 16)) throw malformed('the query is not a SEQUENCE');
  const fields = (asn.result as asn1js.Sequence).valueBlock.value;
  let i = 0;
  const version = fields[i++];
  if (!version || !isUniversal(version, 2)) throw malformed('version is missing');
  if ((version as asn1js.Integer).valueBlock.valueDec !== 1) throw new TsaError(TsaErrorCode.VersionNotSupported, 'only version 1 queries');
  const imprintEl = fields[i++];
  if (!imprintEl) throw malformed('messageImprint is missing');
  const { hash, hashedMessage } = readImprint(imprintEl);
  const q: TimeStampQuery = { hash, hashedMessage, messageImprintDer: bytesOf(imprintEl), certReq: false };
  if (fields[i] && isUniversal(fields[i], 6)) {
    q.reqPolicy = objectIdentifierText(fields[i++] as asn1js.ObjectIdentifier);
    if (q.reqPolicy !== opts.policy) throw new TsaError(TsaErrorCode.PolicyNotAccepted, `this TSA issues under policy ${opts.policy} only`);
  }
  if (fields[i] && isUniversal(fields[i], 2)) {
    const nonce = fields[i++];
    // The magnitude counts: a 512-bit nonce may take a sign byte more (00, or ff for a negative one; DER writes one
    // only when needed). Any sign is echoed as sent.
    const content = (nonce as asn1js.Integer).valueBlock.valueHexView;
    const signByte = content.length > 1 && (content[0] === 0 || content[0] === 0xff) ? 1 : 0;
    if (content.length - signByte > MAX_NONCE_BYTES) throw malformed(`the nonce is longer than ${MAX_NONCE_BYTES} bytes`);
    q.nonceDer = bytesOf(nonce);
  }
  if (fields[i] && isUniversal(fields[i], 1)) {
    q.certReq = (fields[i++] as asn1js.Boolean).valueBlock.value;
    // certReq BOOLEAN DEFAULT FALSE: DER leaves the default out (X.690 11.5), so only TRUE may be written.
    if (!q.certReq) throw new TsaError(TsaErrorCode.QueryNotDer, 'certReq FALSE is the default and is left out in DER');
  }
  if (fields[i] && fields[i].idBlock.tagClass === 3 && fields[i].idBlock.tagNumber === 0) {
    throw new TsaError(TsaErrorCode.ExtensionNotAccepted, 'this TSA supports no request extensions');
  }
  if (i !== fields.length) throw malformed('unexpected fields in the query');
  return q;
}

/** The TSA: its key and certificate chain (parsed once), policy and stated accuracy. */
export interface TimeStampAuthority {
  cms: CmsSigner;
  /** Hash the TSA key signs with (the token's digest algorithm). */
  hash: HashName;
  policy: string;
  /** Accuracy stated in every token (RFC 3161 Accuracy), in milliseconds. */
  accuracyMs: number;
}

/** A signed token and what the register keeps of it. */
export interface IssuedTimeStamp {
  /** TimeStampToken: a ContentInfo with SignedData over TSTInfo, DER. */
  token: Uint8Array;
  serialHex: string;
  genTime: Date;
}

const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));
const oidDer = (oid: string): Uint8Array => new Uint8Array(new asn1js.ObjectIdentifier({ value: oid }).toBER(false));
const intDer = (n: number): Uint8Array => new Uint8Array(new asn1js.Integer({ value: n }).toBER(false));

/** GeneralizedTime YYYYMMDDHHMMSS[.fff without trailing zeros]Z (DER, RFC 3161 2.4.2). */
function generalizedTime(d: Date): Uint8Array {
  const ms = d.getUTCMilliseconds();
  const fraction = ms ? `.${String(ms).padStart(3, '0').replace(/0+$/, '')}` : '';
  return derTlv(0x18, utf8(`${d.toISOString().slice(0, 19).replace(/[-T:]/g, '')}${fraction}Z`));
}

/**
 * The genTime a token states: whole seconds when the stated accuracy covers the dropped milliseconds (at least
 * 1 s), else the milliseconds too; a token never claims a time farther from its signing than its accuracy.
 */
function tokenGenTime(now: Date, accuracyMs: number): Date {
  return accuracyMs >= 1000 ? new Date(Math.floor(now.getTime() / 1000) * 1000) : new Date(now.getTime());
}

/** Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis [0] INTEGER (1..999) OPTIONAL }. */
function accuracyDer(ms: number): Uint8Array {
  const seconds = Math.floor(ms / 1000);
  const millis = ms % 1000;
  const parts: Uint8Array[] = [];
  if (seconds > 0) parts.push(intDer(seconds));
  if (millis > 0) parts.push(derTlv(0x80, intDer(millis).subarray(2)));
  return derTlv(0x30, ...parts);
}

/** TSTInfo (RFC 3161 2.4.2) DER: imprint and nonce echoed, a fresh random serial, genTime as given ({@link tokenGenTime}), tsa = our subject. */
export function buildTstInfo(tsa: TimeStampAuthority, q: Pick<TimeStampQuery, 'messageImprintDer' | 'nonceDer'>, genTime: Date): { der: Uint8Array; serialHex: string } {
  const serial = randomSerial();
  const subject = new Uint8Array(tsa.cms.certs[0].subject.toSchema().toBER(false));
  const fields = [
    intDer(1),
    oidDer(tsa.policy),
    q.messageImprintDer,
    derTlv(0x02, serial),
    generalizedTime(genTime),
    accuracyDer(tsa.accuracyMs),
    // ordering: DEFAULT FALSE, left out (DER)
    ...(q.nonceDer ? [q.nonceDer] : []),
    // tsa [0] GeneralName: directoryName [4] Name (both explicit: CHOICE types)
    derTlv(0xa0, derTlv(0xa4, subject)),
  ];
  const der = derTlv(0x30, ...fields);
  if (!isStrictDer(der)) throw new Error('internal: TSTInfo is not DER');
  return { der, serialHex: hex(serial) };
}

/**
 * Signs a TimeStampToken in the HSM: SignedData (version 3) over the TSTInfo, signed attributes content-type
 * id-ct-TSTInfo, message-digest, ESS signing-certificate-v2 (RFC 5816) and CMS algorithm protection; the TSA
 * certificate is embedded when the query asked (certReq), as RFC 3161 2.4.1 requires; relying parties hold the root.
 */
export async function createTimeStampToken(signer: HsmSigner, tsa: TimeStampAuthority, q: Pick<TimeStampQuery, 'messageImprintDer' | 'nonceDer' | 'certReq'>, now = new Date()): Promise<IssuedTimeStamp> {
  const genTime = tokenGenTime(now, tsa.accuracyMs);
  const tst = buildTstInfo(tsa, q, genTime);
  const token = await signSignedData(signer, tsa.cms, {
    contentType: TSA_OID.tstInfo,
    content: tst.der,
    digest: digest(tsa.hash, tst.der),
    hash: tsa.hash,
    omitSigningTime: true,
    certificates: q.certReq ? 'signer' : 'none',
  });
  return { token, serialHex: tst.serialHex, genTime };
}

/** PKIStatusInfo: status, an optional free-text line, an optional PKIFailureInfo bit. */
function statusInfo(status: number, text?: string, failBit?: number): Uint8Array {
  const parts = [intDer(status)];
  if (text) parts.push(derTlv(0x30, derTlv(0x0c, utf8(text.slice(0, 200)))));
  if (failBit !== undefined) {
    const bytes = new Uint8Array((failBit >> 3) + 1);
    bytes[failBit >> 3] = 0x80 >> (failBit & 7);
    parts.push(derTlv(0x03, new Uint8Array([7 - (failBit & 7)]), bytes));
  }
  return derTlv(0x30, ...parts);
}

/** TimeStampResp with PKIStatus granted (0) and the token. */
export function grantedResponse(token: Uint8Array): Uint8Array {
  return derTlv(0x30, statusInfo(0), token);
}

/** TimeStampResp with PKIStatus rejection (2), the refusal code as statusString and its PKIFailureInfo bit. */
export function rejectionResponse(err: TsaError): Uint8Array {
  return derTlv(0x30, statusInfo(2, err.detail ? `${err.code}: ${err.detail}` : err.code, err.failInfoBit));
}

/** A MessageImprint over `data` (parameters absent, as RFC 5754 recommends for SHA-2). */
export function messageImprintOf(hash: HashName, data: Uint8Array): Uint8Array {
  return derTlv(0x30, derTlv(0x30, oidDer(HASHES[hash].oid)), derTlv(0x04, digest(hash, data)));
}

/** A TimeStampReq for `data` with a fresh 8-byte nonce and certReq true (what a client of an external TSA sends). */
export function buildTimeStampQuery(hash: HashName, data: Uint8Array): { der: Uint8Array; messageImprintDer: Uint8Array; nonceDer: Uint8Array } {
  const nonce = new Uint8Array(randomBytes(8));
  nonce[0] = (nonce[0] & 0x7f) | 0x01; // positive, minimal (no leading zero byte)
  const messageImprintDer = messageImprintOf(hash, data);
  const nonceDer = derTlv(0x02, nonce);
  return { der: derTlv(0x30, intDer(1), messageImprintDer, nonceDer, new Uint8Array([0x01, 0x01, 0xff])), messageImprintDer, nonceDer };
}

export type { TimeStampTokenInfo };

/** Reads the TSTInfo out of a TimeStampToken (no signature check: {@link checkTimeStampReply} does that). */
export function readTimeStampToken(token: Uint8Array): TimeStampTokenInfo {
  return asTsaError(() => readToken(token));
}

/**
 * Refuses a genTime further from `now` than `maxSkewMs` plus the TSA's declared accuracy; the accuracy counts up
 * to `maxSkewMs` only, so a TSA cannot switch the check off by declaring a wide one (ADR 0046).
 */
export function checkGenTime(genTime: Date, accuracyMs: number | undefined, now: Date, maxSkewMs: number): void {
  const tolerance = maxSkewMs + Math.min(accuracyMs ?? 0, maxSkewMs);
  const off = genTime.getTime() - now.getTime();
  if (!(Math.abs(off) <= tolerance)) {
    throw new TsaError(TsaErrorCode.TimestampClockSkew, `the TSA states ${genTime.toISOString()}, ${Math.round(off / 1000)} s from our clock (tolerance ${Math.round(tolerance / 1000)} s)`);
  }
}

/**
 * Whom this Keyserver trusts to stamp its firmware signatures when the TSA is external (ADR 0043): the token's
 * signer must chain to one of `anchors` (any root or intermediate CA, or the TSA certificate itself) and, when
 * `pins` are given, be one of those certificates (SHA-256 of its DER). Both empty trusts nobody.
 */
export interface TsaTrust {
  anchors: X509Certificate[];
  pins: Uint8Array[];
  /**
   * CRLs of anchors (CMS_TSA_CRL, ADR 0046 addendum), each verified with its anchor ({@link readTsaCrls}). When
   * given, every certificate of the path below the anchor must be covered by the CRL of its issuer, not listed on it,
   * and that CRL must be before its nextUpdate. Undefined: revocation is not checked.
   */
  crls?: TsaCrl[];
}

/** A CRL issued by a configured TSA trust anchor, verified with it. */
export interface TsaCrl {
  /** The anchor that signed it. */
  issuer: X509Certificate;
  thisUpdate: Date;
  nextUpdate: Date;
  /** Revoked serial numbers (as integers, decimal). */
  revoked: ReadonlySet<string>;
}


/**
 * Reads the CRL file of CMS_TSA_CRL (PEM `X509 CRL` blocks, or one DER CRL) and verifies each CRL with the anchor
 * that issued it: DER, the issuer Name byte for byte an anchor's subject whose key verifies the signature (and
 * whose keyUsage, if any, has cRLSign), a nextUpdate, no critical extension on the CRL or an entry (a delta CRL,
 * an issuing distribution point or an indirect CRL may not list every revoked certificate of its issuer). Of
 * several CRLs of one anchor the latest (thisUpdate) counts. Anything else is a {@link PkiError} `invalid_crl_input`.
 */
export function readTsaCrls(file: Uint8Array, anchors: X509Certificate[]): TsaCrl[] {
  const bad = (detail: string) => new PkiError('invalid_crl_input', detail);
  const text = Buffer.from(file).toString('latin1');
  const blocks = pemBlocks(text);
  const ders = blocks.length
    ? blocks.filter((b) => b.label === 'X509 CRL').map((b) => new Uint8Array(Buffer.from(b.body.replace(/\s+/g, ''), 'base64')))
    : [new Uint8Array(file)];
  if (!ders.length) throw bad('the file holds no CRL (PEM "X509 CRL" blocks or one DER CRL)');
  const latest = new Map<X509Certificate, TsaCrl>();
  ders.forEach((der, i) => {
    const which = `CRL ${i + 1} of the file`;
    if (!isStrictDer(der)) throw bad(`${which} is not DER`);
    let crl: pkijs.CertificateRevocationList;
    try {
      crl = pkijs.CertificateRevocationList.fromBER(toAb(der));
    } catch {
      throw bad(`${which} does not parse as a CRL`);
    }
    const alg = crl.signatureAlgorithm.algorithmId;
    // The CSR pipeline's table of signature algorithms; its weak ones (MD5, SHA-1) are refused here too.
    const sigAlg = SIG_ALGS[alg];
    if (!sigAlg || sigAlg.weak || crl.signature.algorithmId !== alg) throw bad(`${which} uses an unsupported signature algorithm ${alg}`);
    const issuerDer = new Uint8Array(crl.issuer.toSchema().toBER(false));
    const tbs = new Uint8Array(crl.tbsView);
    const signature = Buffer.from(crl.signatureValue.valueBlock.valueHexView);
    const issuer = anchors.find((a) => {
      if (!bytesEqual(certificateNames(a).subject, issuerDer)) return false;
      try {
        return nodeVerify(sigAlg.hash, tbs, a.publicKey, signature);
      } catch {
        return false;
      }
    });
    if (!issuer) throw bad(`${which} is not signed by a certificate of CMS_TSA_CA_CERT`);
    const ku = (pkijs.Certificate.fromBER(toAb(new Uint8Array(issuer.raw))).extensions ?? []).find((e) => e.extnID === OID.keyUsage);
    if (ku && !(new Uint8Array((ku.parsedValue as asn1js.BitString).valueBlock.valueHexView)[0] & 0x02)) throw bad(`${which}: its issuer's keyUsage lacks cRLSign`);
    if (!crl.nextUpdate) throw bad(`${which} has no nextUpdate`);
    if ((crl.crlExtensions?.extensions ?? []).some((e) => e.critical)) throw bad(`${which} has a critical extension (delta CRLs and partitioned CRLs are not supported)`);
    const revoked = new Set<string>();
    for (const entry of crl.revokedCertificates ?? []) {
      if ((entry.crlEntryExtensions?.extensions ?? []).some((e) => e.critical)) throw bad(`${which} has an entry with a critical extension (indirect CRLs are not supported)`);
      revoked.add(entry.userCertificate.toBigInt().toString());
    }
    const read: TsaCrl = { issuer, thisUpdate: crl.thisUpdate.value, nextUpdate: crl.nextUpdate.value, revoked };
    const before = latest.get(issuer);
    if (!before || before.thisUpdate < read.thisUpdate) latest.set(issuer, read);
  });
  return [...latest.values()];
}

/**
 * The revocation check of a TSA path (ADR 0046 addendum): each certificate below the anchor is checked on the CRL
 * of its issuer, which must be a configured anchor with a CRL (a carried intermediate has none we could verify
 * beforehand: name it in CMS_TSA_CA_CERT with its CRL). Listed: `timestamp_tsa_revoked` (whatever the reason and
 * date: the token is being made now); the CRL past its nextUpdate: `timestamp_tsa_crl_stale`.
 */
function checkRevocation(path: X509Certificate[], crls: TsaCrl[], now: Date): void {
  const name = (c: X509Certificate) => c.subject.replace(/\n/g, ', ');
  for (let i = 0; i + 1 < path.length; i++) {
    const [cert, issuer] = [path[i], path[i + 1]];
    const crl = crls.find((c) => c.issuer.raw.equals(issuer.raw));
    if (!crl) throw new TsaError(TsaErrorCode.TimestampTsaUntrusted, `no configured CRL (CMS_TSA_CRL) of ${name(issuer)} covers ${name(cert)}`);
    if (crl.revoked.has(certificateNames(cert).serial.toString())) {
      throw new TsaError(TsaErrorCode.TimestampTsaRevoked, `${name(cert)} (serial ${cert.serialNumber}) is revoked on the CRL of ${name(issuer)}`);
    }
    if (now.getTime() > crl.nextUpdate.getTime()) {
      throw new TsaError(TsaErrorCode.TimestampTsaCrlStale, `the CRL of ${name(issuer)} was due for renewal at ${crl.nextUpdate.toISOString()} (CMS_TSA_CRL)`);
    }
  }
}

/** Longest chain from a TSA certificate to its anchor. */
const MAX_TSA_CHAIN = 8;

/**
 * Checks that `signer` may stamp for us: extendedKeyUsage timeStamping only and critical (RFC 3161 2.3), one of the
 * pinned certificates when pins are configured, a chain through the token's certificates to an anchor when
 * anchors are configured (each issuer a CA whose signature verifies), every certificate of it valid at `times`,
 * and, when CRLs are configured, none of it below the anchor revoked on a fresh CRL ({@link checkRevocation}).
 */
export function checkTsaTrust(signer: X509Certificate, carried: X509Certificate[], trust: TsaTrust, times: Date[], now = new Date()): void {
  const untrusted = (detail: string) => new TsaError(TsaErrorCode.TimestampTsaUntrusted, detail);
  const name = (c: X509Certificate) => c.subject.replace(/\n/g, ', ');
  if (trust.anchors.length === 0 && trust.pins.length === 0) throw untrusted('no external TSA is trusted (CMS_TSA_CA_CERT, CMS_TSA_CERT_SHA256)');
  asTsaError(() => checkTsaCertificateProfile(signer));
  const fingerprint = digest('SHA-256', new Uint8Array(signer.raw));
  if (trust.pins.length > 0 && !trust.pins.some((p) => bytesEqual(p, fingerprint))) {
    throw untrusted(`${name(signer)} (SHA-256 ${hex(fingerprint)}) is not a pinned TSA certificate`);
  }
  const path = [signer];
  if (trust.anchors.length > 0) {
    const isAnchor = (c: X509Certificate) => trust.anchors.some((a) => a.raw.equals(c.raw));
    for (let current = signer; !isAnchor(current); ) {
      const issuer = [...trust.anchors, ...carried].find((c) => !c.raw.equals(current.raw) && c.ca && current.checkIssued(c) && current.verify(c.publicKey));
      if (!issuer || path.length > MAX_TSA_CHAIN || path.some((c) => c.raw.equals(issuer.raw))) {
        throw untrusted(`${name(signer)} does not chain to a configured TSA trust anchor`);
      }
      path.push(issuer);
      current = issuer;
    }
  }
  for (const c of path) {
    for (const at of times) {
      if (at.getTime() < c.validFromDate.getTime() || at.getTime() > c.validToDate.getTime()) throw untrusted(`${name(c)} is not valid at ${at.toISOString()}`);
    }
  }
  // A pin alone names one certificate (its revocation is a change of the pin); a path to an anchor is checked on the anchors' CRLs.
  if (trust.crls && trust.anchors.length > 0) checkRevocation(path, trust.crls, now);
}

/**
 * Reads an external TSA's TimeStampResp for a query we sent: the status must be granted (0) or grantedWithMods
 * (1), the token DER; the one token verifier (@keyserver/timestamp-token) checks that its imprint and nonce are the
 * query's (a reply for another request is never embedded), that its signature verifies with the certificate it
 * carries, which its ESS signing-certificate attribute names and which is a TSA certificate; then the genTime must
 * be near `now` ({@link checkGenTime}) and that certificate trusted ({@link checkTsaTrust}, at the stated genTime
 * and now). Returns the token (ContentInfo DER).
 */
export async function checkTimeStampReply(
  reply: Uint8Array,
  sent: { messageImprintDer: Uint8Array; nonceDer: Uint8Array },
  trust: TsaTrust,
  opts: { now?: Date; maxSkewMs?: number } = {},
): Promise<{ token: Uint8Array; info: TimeStampTokenInfo }> {
  const now = opts.now ?? new Date();
  const bad = (detail: string) => new TsaError(TsaErrorCode.TimestampReplyInvalid, detail);
  const asn = asn1js.fromBER(toAb(reply));
  if (asn.offset === -1 || asn.offset !== reply.length || !isUniversal(asn.result, 16)) throw bad('the reply is not a TimeStampResp');
  const [status, tokenEl] = (asn.result as asn1js.Sequence).valueBlock.value;
  const code = status && isUniversal(status, 16) ? (status as asn1js.Sequence).valueBlock.value[0] : undefined;
  if (!code || !isUniversal(code, 2)) throw bad('the reply has no PKIStatus');
  const value = (code as asn1js.Integer).valueBlock.valueDec;
  if (value !== 0 && value !== 1) throw bad(`the TSA refused the request (PKIStatus ${value})`);
  if (!tokenEl) throw bad('the reply grants but carries no token');
  const token = bytesOf(tokenEl);
  // Embedded as it came: only DER survives the re-encoding of the SignerInfo byte for byte.
  if (!isStrictDer(token)) throw bad('the token is not DER');
  const { info, signer, carried } = asTsaError(() => verifyTimeStampToken(token, { imprintDer: sent.messageImprintDer, nonceDer: sent.nonceDer }));
  // The clock first: the trust is judged at genTime, which must be near now to mean anything.
  checkGenTime(info.genTime, info.accuracyMs, now, opts.maxSkewMs ?? DEFAULT_TSA_MAX_SKEW_MS);
  checkTsaTrust(signer, carried, trust, [info.genTime, now], now);
  return { token, info };
}

/**
 * A TSA certificate (RFC 3161 2.3): CA:false, keyUsage digitalSignature (critical), extendedKeyUsage
 * id-kp-timeStamping only and critical, SKI, AKI, optional CRL distribution point.
 */
export async function createTimestampingCertificate(
  signer: HsmSigner,
  issuer: IssuerRef,
  subjectKey: HsmKeyInfo,
  opts: { subject: NameSpec; crlDistributionPointUrl?: string } & ValiditySpec,
): Promise<IssuedCertificate> {
  return createSigningEndEntityCertificate(signer, issuer, subjectKey, opts, { oid: TSA_OID.timeStamping, critical: true });
}
