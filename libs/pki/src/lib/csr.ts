import { subjectAltNameTexts, subjectText, type CertificateFields } from './certificate-fields';
import * as pkijs from 'pkijs';
import { KeyObject, verify as nodeVerify } from 'node:crypto';
import { HsmKeyInfo, HsmSigner } from './hsm-signer';
import { OID, derTlv, isStrictDer, keyIdentifier, pemBlocks, toPem } from './der';
import { DerShapeError, bytesOf, children, contentsOf, hasAsn1jsHazard, oidString, readTlv, type Tlv } from './der-reader';
import { canonicalPublicKey, checkRsaStrength, ed25519SignatureProblem, type CsrKeyType } from './public-key';
import { deviceSanDer, deviceSubjectDer, isReservedSubject, type RawAttribute, type SanType, type SubjectAttribute } from './device-names';
import { PkiError } from './pki-error';
import { judgeRequestedExtension } from './requested-extensions';
import {
  CertificateParts,
  IssuerRef,
  ParsedIssuer,
  PreparedCertificate,
  akiExtension,
  algorithmDer,
  basicConstraintsExtension,
  checkValidity,
  crlDistributionPointExtension,
  extKeyUsageExtension,
  extensionDer,
  ext,
  keyUsageExtension,
  nameDer,
  parseIssuer,
  signPreparedCertificate,
  skiExtension,
  writeTbs,
} from './certificates';
import { SIG_ALGS, legacyCheckPolicy, legacyParseCsr, legacyVerifyPossession, sanPolicy, type LegacyParsedCsr } from './csr-legacy';

export const MAX_CSR_BYTES = 64 * 1024;

export type { SanType, SubjectAttribute } from './device-names';
export { DEFAULT_MAX_SAN_COUNT, DEFAULT_URI_SCHEMES } from './csr-legacy';

/** The CA's device-certificate profile: it, not the CSR, decides every extension. */
export interface DeviceCertificateProfile {
  validityDays: number;
  /** Adds keyAgreement to keyUsage for EC keys. */
  keyAgreementForEc?: boolean;
  crlDistributionPointUrl?: string;
  /** Subject attributes copied from the CSR; anything else is refused. Default CN, O, OU, C, serialNumber. */
  allowedSubjectAttributes?: SubjectAttribute[];
  /** SAN entry types copied from the CSR's extensionRequest; anything else is refused. Default dns, uri. */
  allowedSanTypes?: SanType[];
  /** At most this many SAN entries (default {@link DEFAULT_MAX_SAN_COUNT}). */
  maxSanCount?: number;
  /** When non-empty: every dNSName, the domain of every rfc822Name and the host of every URI equals one of these or is below it. */
  dnsDomains?: string[];
  /** Schemes a URI SAN may have (lower case; default {@link DEFAULT_URI_SCHEMES}). */
  uriSchemes?: string[];
  /** Names (see {@link reservedNames}) a device certificate may never carry: the DNs and CNs of the Keyserver's own keys. */
  reservedNames?: ReadonlySet<string>;
  /** Clock for notBefore; defaults to now. */
  now?: Date;
}

export type { CsrKeyType } from './public-key';

/** An Extension of the request's extensionRequest as the reader found it (only the types the policy looks at). */
interface RawExtension {
  id: string;
  critical: boolean;
  value: Uint8Array;
  /** basicConstraints: its cA flag. */
  ca?: boolean;
  /** keyUsage: the named bits (the BIT STRING's contents after the unused-bits byte). */
  keyUsage?: Uint8Array;
}

/** What the DER reader found in a request of the exact shape it knows (ADR 0033). */
interface CsrView {
  subject: RawAttribute[];
  subjectLength: number;
  attributes: { type: string; values: number; extensions?: RawExtension[] }[];
  signatureAlgorithm: string;
  /** The AlgorithmIdentifier's parameters element, when present. */
  signatureParams?: Uint8Array;
  unusedBits: number;
  signature: Uint8Array;
}

/** Output of the parse stage. */
export interface ParsedCsr {
  der: Uint8Array;
  /** The CertificationRequestInfo exactly as sent: what the request's signature covers. */
  info: Uint8Array;
  /** The SubjectPublicKeyInfo bytes exactly as the request carries them. */
  spki: Uint8Array;
  /** Set by the DER reader; otherwise `legacy` holds the pkijs reading of a request of another shape. */
  view?: CsrView;
  legacy?: LegacyParsedCsr;
}

/** Output of the PoP stage: the verified key. */
export interface VerifiedCsr extends ParsedCsr {
  /** Our canonical re-encoding of the request's key ({@link canonicalPublicKey}); the only key bytes a certificate gets. */
  spki: Uint8Array;
  key: KeyObject;
  keyType: CsrKeyType;
  rsa?: { n: bigint; e: bigint };
  signatureAlgorithm: string;
}

/** Values the policy stage accepted from the CSR, each already DER. */
export interface AcceptedCsrValues {
  spki: Uint8Array;
  keyType: CsrKeyType;
  /** The subject as the certificate carries it (checked and re-encoded). */
  subject: Uint8Array;
  /** The SAN entries checked and re-encoded, as GeneralNames DER (absent: no SAN extension). */
  san?: Uint8Array;
  /** OIDs of the requested non-critical extensions the certificate does not honour, in request order. */
  ignoredExtensions: string[];
}

export interface DeviceCertificateResult {
  certificatePem: string;
  /** Issuer certificate first, then the issuer's own chain up to (and including) the root. */
  chainPems: string[];
  serialHex: string;
}

/** Stage 1: exactly one PKCS#10 in PEM or DER, strict DER, no trailing bytes, at most 64 KiB. */
export function parseCsr(input: string | Uint8Array): ParsedCsr {
  if (typeof input !== 'string' && !(input instanceof Uint8Array)) throw new PkiError('csr_malformed');
  const size = typeof input === 'string' ? Buffer.byteLength(input) : input.length;
  if (size === 0) throw new PkiError('csr_malformed', 'empty');
  if (size > MAX_CSR_BYTES) throw new PkiError('csr_too_large');
  let der: Uint8Array;
  const text = typeof input === 'string' ? input : Buffer.from(input.subarray(0, 11)).toString('latin1') === '-----BEGIN ' ? Buffer.from(input).toString('latin1') : undefined;
  if (text !== undefined) {
    const blocks = pemBlocks(text);
    if (blocks.length > 1) throw new PkiError('csr_multiple_pem_blocks');
    if (blocks.length === 0) throw new PkiError('csr_pem_invalid', 'no PEM block');
    const [b] = blocks;
    if (b.label !== 'CERTIFICATE REQUEST') throw new PkiError('csr_wrong_pem_label', b.label);
    if (text.slice(0, b.start).trim() !== '' || text.slice(b.end).trim() !== '') throw new PkiError('csr_pem_invalid', 'text outside the PEM block');
    const body = b.body.replace(/[\r\n\t ]+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) throw new PkiError('csr_pem_invalid', 'bad base64');
    der = new Uint8Array(Buffer.from(body, 'base64'));
    if (Buffer.from(der).toString('base64') !== body) throw new PkiError('csr_pem_invalid', 'bad base64');
  } else {
    der = typeof input === 'string' ? new Uint8Array() : input;
  }
  // The DER reader takes strict DER of the one shape it knows; everything else (refusals included) is decided by
  // the pkijs reading exactly as before ADR 0033, so every refusal keeps its code.
  const view = isStrictDer(der) && !hasAsn1jsHazard(der) ? readCsr(der) : undefined;
  if (view) return { der, ...view };
  const legacy = legacyParseCsr(der);
  return { der, info: legacy.csr.tbsView, spki: legacy.spki, legacy };
}

/** String types the reader hands to the policy: UTF8String, PrintableString, IA5String. */
const READER_STRINGS = new Set([0x0c, 0x13, 0x16]);

/**
 * The CertificationRequest of strict DER `b` in exactly the shape openssl, Go, Java and our tests write: version
 * 02 01 00; a Name of non-empty SETs of (OID, string) pairs; an SPKI SEQUENCE { SEQUENCE { OID [, params] },
 * BIT STRING }; [0] attributes of (OID, non-empty SET); an extensionRequest of (OID [, BOOLEAN], OCTET STRING)
 * extensions; AlgorithmIdentifier { OID [, params] }; BIT STRING. Anything else: undefined (the pkijs reading
 * decides), never a guess.
 */
function readCsr(b: Uint8Array): (Omit<ParsedCsr, 'der'> & { view: CsrView }) | undefined {
  try {
    const top = readTlv(b, 0);
    const parts = top.tag === 0x30 ? children(b, top) : [];
    if (parts.length !== 3) return undefined;
    const [info, alg, sig] = parts;
    if (info.tag !== 0x30 || alg.tag !== 0x30 || sig.tag !== 0x03) return undefined;
    const fields = children(b, info);
    if (fields.length !== 4) return undefined;
    const [version, name, spki, attrs] = fields;
    if (version.end - version.start !== 3 || b[version.start] !== 0x02 || b[version.body] !== 0) return undefined;
    if (name.tag !== 0x30 || spki.tag !== 0x30 || attrs.tag !== 0xa0) return undefined;

    const subject: RawAttribute[] = [];
    for (const rdn of children(b, name)) {
      const atvs = rdn.tag === 0x31 ? children(b, rdn) : [];
      if (atvs.length === 0) return undefined;
      for (const atv of atvs) {
        const tv = atv.tag === 0x30 ? children(b, atv) : [];
        if (tv.length !== 2 || tv[0].tag !== 0x06 || !READER_STRINGS.has(tv[1].tag)) return undefined;
        subject.push({ type: oidString(b, tv[0]), typeDer: bytesOf(b, tv[0]), tag: tv[1].tag, value: contentsOf(b, tv[1]) });
      }
    }

    const key = children(b, spki);
    if (key.length !== 2 || key[0].tag !== 0x30 || key[1].tag !== 0x03) return undefined;
    const keyAlg = children(b, key[0]);
    if (keyAlg.length < 1 || keyAlg.length > 2 || keyAlg[0].tag !== 0x06) return undefined;

    const attributes: CsrView['attributes'] = [];
    for (const a of children(b, attrs)) {
      const av = a.tag === 0x30 ? children(b, a) : [];
      if (av.length !== 2 || av[0].tag !== 0x06 || av[1].tag !== 0x31) return undefined;
      const values = children(b, av[1]);
      if (values.length === 0) return undefined;
      const type = oidString(b, av[0]);
      let extensions: RawExtension[] | undefined;
      if (type === OID.extensionRequest && values.length === 1) {
        extensions = readExtensions(b, values[0]);
        if (!extensions) return undefined;
      }
      attributes.push({ type, values: values.length, extensions });
    }

    const sigAlg = children(b, alg);
    if (sigAlg.length < 1 || sigAlg.length > 2 || sigAlg[0].tag !== 0x06) return undefined;
    const bits = contentsOf(b, sig);
    return {
      info: bytesOf(b, info),
      spki: bytesOf(b, spki),
      view: {
        subject,
        subjectLength: name.end - name.start,
        attributes,
        signatureAlgorithm: oidString(b, sigAlg[0]),
        signatureParams: sigAlg[1] ? bytesOf(b, sigAlg[1]) : undefined,
        unusedBits: bits[0],
        signature: bits.subarray(1),
      },
    };
  } catch (e) {
    if (e instanceof DerShapeError) return undefined;
    throw e;
  }
}

function readExtensions(b: Uint8Array, list: Tlv): RawExtension[] | undefined {
  const items = list.tag === 0x30 ? children(b, list) : [];
  if (items.length === 0) return undefined;
  const out: RawExtension[] = [];
  for (const item of items) {
    const xs = item.tag === 0x30 ? children(b, item) : [];
    let id: Tlv;
    let value: Tlv;
    let critical = false;
    if (xs.length === 2) [id, value] = xs;
    else if (xs.length === 3 && xs[1].tag === 0x01) {
      [id, , value] = xs;
      critical = b[xs[1].body] === 0xff;
    } else return undefined;
    if (id.tag !== 0x06 || value.tag !== 0x04) return undefined;
    const x: RawExtension = { id: oidString(b, id), critical, value: contentsOf(b, value) };
    if (x.id === OID.basicConstraints) {
      x.ca = basicConstraintsCa(x.value);
      if (x.ca === undefined) return undefined;
    } else if (x.id === OID.keyUsage) {
      x.keyUsage = keyUsageBits(x.value);
      if (!x.keyUsage) return undefined;
    }
    out.push(x);
  }
  return out;
}

/** The cA flag of a basicConstraints value that is strict DER SEQUENCE { [BOOLEAN] [INTEGER] }; else undefined. */
function basicConstraintsCa(v: Uint8Array): boolean | undefined {
  if (!isStrictDer(v) || hasAsn1jsHazard(v)) return undefined;
  const t = readTlv(v, 0);
  if (t.tag !== 0x30) return undefined;
  const cs = children(v, t);
  const tags = cs.map((c) => c.tag).join(',');
  if (tags === '' || tags === '2') return false;
  if (tags === '1' || tags === '1,2') return v[cs[0].body] === 0xff;
  return undefined;
}

/** The named bits of a keyUsage value that is a strict DER BIT STRING; else undefined. */
function keyUsageBits(v: Uint8Array): Uint8Array | undefined {
  if (!isStrictDer(v) || v[0] !== 0x03) return undefined;
  return contentsOf(v, readTlv(v, 0)).subarray(1);
}

/**
 * Stage 2: the request's key parsed and re-encoded canonically ({@link canonicalPublicKey}: strict RSA, EC points
 * on the curve and uncompressed, Ed25519 canonical and of prime order), then proof of possession: the CSR
 * signature verified with that key by Node's crypto over the CertificationRequestInfo bytes as sent, Ed25519
 * signatures first checked strictly (RFC 8032 5.1.7: R canonical and not of small order, S < L).
 */
export function verifyCsrPossession(p: ParsedCsr): VerifiedCsr {
  if (!p.view) {
    const v = legacyVerifyPossession(p.legacy as LegacyParsedCsr);
    return { ...p, spki: v.spki, key: v.key, keyType: v.keyType, rsa: v.rsa, signatureAlgorithm: v.signatureAlgorithm };
  }
  const { keyType, spki, key, rsa } = canonicalPublicKey(p.spki);
  const sigOid = p.view.signatureAlgorithm;
  const alg = SIG_ALGS[sigOid];
  if (!alg) throw new PkiError('csr_signature_algorithm_not_allowed', sigOid);
  const family = keyType === 'RSA' ? 'rsa' : keyType === 'Ed25519' ? 'ed25519' : 'ec';
  if (alg.family !== family) throw new PkiError('csr_signature_invalid', 'signature algorithm does not match the key');
  const params = p.view.signatureParams;
  if (family !== 'rsa' && params !== undefined) throw new PkiError('csr_signature_invalid', 'unexpected parameters');
  if (family === 'rsa' && params !== undefined && !(params.length === 2 && params[0] === 0x05)) throw new PkiError('csr_signature_invalid', 'unexpected parameters');
  if (p.view.unusedBits !== 0) throw new PkiError('csr_signature_invalid', 'signature BIT STRING has unused bits');
  const signature = p.view.signature;
  if (family === 'ed25519') {
    const problem = ed25519SignatureProblem(signature);
    if (problem) throw new PkiError('csr_signature_invalid', problem);
  }
  let ok = false;
  try {
    ok = nodeVerify(alg.hash, p.info, family === 'ec' ? { key, dsaEncoding: 'der' } : key, signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new PkiError('csr_signature_invalid');
  return { ...p, spki, key, keyType, rsa, signatureAlgorithm: sigOid };
}

/**
 * Stage 3: the CA policy (docs/device-profile.md). The key's strength, the subject and the SANs are checked and
 * re-encoded by us; requested extensions are only inspected, never copied: one the certificate does not honour is
 * refused when critical and reported in `ignoredExtensions` otherwise ({@link judgeRequestedExtension}).
 */
export function checkCsrPolicy(v: VerifiedCsr, profile: DeviceCertificateProfile): AcceptedCsrValues {
  if (!v.view) {
    const accepted = legacyCheckPolicy(v.legacy as LegacyParsedCsr, v, profile);
    const san = accepted.sans.length ? new Uint8Array(new pkijs.GeneralNames({ names: accepted.sans }).toSchema().toBER(false)) : undefined;
    return { spki: v.spki, keyType: v.keyType, subject: nameDer(accepted.subject), san, ignoredExtensions: accepted.ignoredExtensions };
  }
  if (SIG_ALGS[v.signatureAlgorithm].weak) throw new PkiError('csr_signature_algorithm_not_allowed', 'MD5 and SHA-1 are refused');
  if (v.keyType === 'RSA') {
    if (!v.rsa) throw new PkiError('csr_public_key_invalid');
    checkRsaStrength(v.rsa);
  }
  const subject = deviceSubjectDer(v.view.subject, v.view.subjectLength, profile.allowedSubjectAttributes ?? ['CN', 'O', 'OU', 'C', 'serialNumber']);
  if (isReservedSubject(profile.reservedNames, subject.normalized, subject.commonName)) throw new PkiError('csr_subject_reserved', 'the subject or its CN is the name of a Keyserver key');

  let san: Uint8Array | undefined;
  const ignoredExtensions: string[] = [];
  const granted = grantedExtensions(v, profile);
  const attributes = v.view.attributes;
  if (attributes.some((a) => a.type !== OID.extensionRequest)) throw new PkiError('csr_attribute_not_allowed');
  if (attributes.length > 1 || attributes.some((a) => a.values !== 1)) throw new PkiError('csr_duplicate_extension', 'more than one extensionRequest');
  if (attributes.length === 1) {
    const seen = new Set<string>();
    for (const x of attributes[0].extensions ?? []) {
      if (seen.has(x.id)) throw new PkiError('csr_duplicate_extension', x.id);
      seen.add(x.id);
      switch (x.id) {
        case OID.basicConstraints:
          if (x.ca) throw new PkiError('csr_ca_requested');
          break;
        case OID.keyUsage:
          if ((x.keyUsage as Uint8Array)[0] & 0x06) throw new PkiError('csr_key_cert_sign_requested');
          break;
        case OID.subjectAltName:
          san = deviceSanDer(x.value, sanPolicy(profile));
          break;
      }
      judgeRequestedExtension(x, granted, ignoredExtensions);
    }
  }
  return { spki: v.spki, keyType: v.keyType, subject: subject.der, san, ignoredExtensions };
}

/** What a certificate for this key under this profile carries, for {@link judgeRequestedExtension}. */
export function grantedExtensions(v: Pick<VerifiedCsr, 'spki' | 'keyType'>, profile: DeviceCertificateProfile) {
  return { spki: v.spki, keyAgreement: v.keyType.startsWith('EC-') && !!profile.keyAgreementForEc };
}

/** An issuing CA parsed once for any number of device certificates (see {@link prepareIssuer}). */
export interface DeviceCertificateIssuer {
  key: HsmKeyInfo;
  parsed: ParsedIssuer;
  /** Issuer certificate first, then the issuer's own chain up to (and including) the root. */
  chainPems: string[];
  /** DER encoded once per issuer: the signature AlgorithmIdentifier, the issuer Name, the AKI extension. */
  der: { signatureAlgorithm: Uint8Array; issuerName: Uint8Array; aki: Uint8Array };
}

/** Output of stages 3 and 4: the device certificate's TBS, waiting only for the HSM signature. */
export interface PreparedDeviceCertificate extends PreparedCertificate {
  chainPems: string[];
  /** The certificate table's subject, SANs and validity as Node prints them; undefined for a shape only Node prints. */
  fields?: CertificateFields;
  /** OIDs of the requested non-critical extensions the certificate does not honour (the caller is told). */
  ignoredExtensions: string[];
}

/** Parses and checks the issuing CA (CA:true, keyCertSign, certificate of this key); the result is immutable. */
export function prepareIssuer(issuer: IssuerRef & { chain?: (string | Uint8Array)[] }): DeviceCertificateIssuer {
  const parsed = parseIssuer(issuer);
  const chainPems = [toPem('CERTIFICATE', parsed.der), ...(issuer.chain ?? []).map((c) => (typeof c === 'string' ? c : toPem('CERTIFICATE', c)))];
  const der = {
    signatureAlgorithm: algorithmDer(issuer.key),
    issuerName: nameDer(parsed.cert.subject),
    aki: extensionDer(akiExtension(parsed.spki, parsed.keyIdentifier)),
  };
  return { key: issuer.key, parsed, chainPems, der };
}

/** The profile's constant extensions, encoded by the pkijs builders once (so they are their bytes exactly). */
let constants: { basicConstraints: Uint8Array; keyUsage: Uint8Array; keyUsageAgreement: Uint8Array; extKeyUsage: Uint8Array } | undefined;
function constantExtensions(): NonNullable<typeof constants> {
  constants ??= {
    basicConstraints: extensionDer(basicConstraintsExtension(false)),
    keyUsage: extensionDer(keyUsageExtension(['digitalSignature'])),
    keyUsageAgreement: extensionDer(keyUsageExtension(['digitalSignature', 'keyAgreement'])),
    extKeyUsage: extensionDer(extKeyUsageExtension([OID.clientAuth])),
  };
  return constants;
}

// CRL distribution points per URL (one per CA key and public URL); only URLs that passed the check are kept.
const CDPS = new Map<string, Uint8Array>();
function cdpExtension(url: string): Uint8Array {
  let der = CDPS.get(url);
  if (!der) {
    der = extensionDer(crlDistributionPointExtension(url));
    if (CDPS.size >= 256) CDPS.delete(CDPS.keys().next().value as string);
    CDPS.set(url, der);
  }
  return der;
}

const SKI_PREFIX = new Uint8Array([0x06, 0x03, 0x55, 0x1d, 0x0e]);
const SAN_PREFIX = new Uint8Array([0x06, 0x03, 0x55, 0x1d, 0x11]);

/**
 * Stage 4: the profile decides validity and every extension (basicConstraints CA:false, keyUsage, EKU clientAuth,
 * SKI, AKI, SAN, CRL DP, in that order), written as the TBSCertificate's DER parts.
 */
function deviceTbsParts(values: AcceptedCsrValues, issuer: DeviceCertificateIssuer, profile: DeviceCertificateProfile) {
  if (!Number.isInteger(profile.validityDays) || profile.validityDays < 1) throw new PkiError('invalid_validity');
  const now = profile.now ?? new Date();
  const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const notAfter = new Date(notBefore.getTime() + profile.validityDays * 86_400_000);
  const validity = { notBefore, notAfter };
  checkValidity(validity, issuer.parsed);
  const c = constantExtensions();
  const extensions = [
    c.basicConstraints,
    values.keyType.startsWith('EC-') && profile.keyAgreementForEc ? c.keyUsageAgreement : c.keyUsage,
    c.extKeyUsage,
    derTlv(0x30, SKI_PREFIX, derTlv(0x04, derTlv(0x04, keyIdentifier(values.spki)))),
    issuer.der.aki,
  ];
  if (values.san) extensions.push(derTlv(0x30, SAN_PREFIX, derTlv(0x04, values.san)));
  if (profile.crlDistributionPointUrl) extensions.push(cdpExtension(profile.crlDistributionPointUrl));
  return { signatureAlgorithm: issuer.der.signatureAlgorithm, issuerName: issuer.der.issuerName, validity, subject: values.subject, spki: values.spki, extensions };
}

/** Stage 4 as pkijs objects (what {@link prepareCertificate} takes; used by tests that compare encoders). */
export function applyDeviceProfile(values: AcceptedCsrValues, issuer: ParsedIssuer, profile: DeviceCertificateProfile): CertificateParts {
  if (!Number.isInteger(profile.validityDays) || profile.validityDays < 1) throw new PkiError('invalid_validity');
  const now = profile.now ?? new Date();
  const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const notAfter = new Date(notBefore.getTime() + profile.validityDays * 86_400_000);
  const validity = { notBefore, notAfter };
  checkValidity(validity, issuer);
  const isEcKey = values.keyType.startsWith('EC-');
  const extensions = [
    basicConstraintsExtension(false),
    keyUsageExtension(isEcKey && profile.keyAgreementForEc ? ['digitalSignature', 'keyAgreement'] : ['digitalSignature']),
    extKeyUsageExtension([OID.clientAuth]),
    skiExtension(values.spki),
    akiExtension(issuer.spki, issuer.keyIdentifier),
  ];
  if (values.san) extensions.push(ext(OID.subjectAltName, false, pkijs.GeneralNames.fromBER(values.san.slice().buffer).toSchema()));
  if (profile.crlDistributionPointUrl) extensions.push(crlDistributionPointExtension(profile.crlDistributionPointUrl));
  return { issuerName: issuer.cert.subject, subject: pkijs.RelativeDistinguishedNames.fromBER(values.subject.slice().buffer), spki: values.spki, validity, extensions };
}

/**
 * Stages 3 and 4 for a CSR that passed parse and PoP: policy, then the profile, then the TBSCertificate (a fresh
 * CSPRNG serial; `serial` only for tests that compare encoders).
 */
export function prepareDeviceCertificate(issuer: DeviceCertificateIssuer, csr: VerifiedCsr, profile: DeviceCertificateProfile, serial?: Uint8Array): PreparedDeviceCertificate {
  const values = checkCsrPolicy(csr, profile);
  const parts = deviceTbsParts(values, issuer, profile);
  const subjectDn = subjectText(values.subject);
  const sans = values.san ? subjectAltNameTexts(values.san) : [];
  const fields = subjectDn !== undefined && sans !== undefined ? { subjectDn, sans, notBefore: parts.validity.notBefore, notAfter: parts.validity.notAfter } : undefined;
  return { ...writeTbs(issuer.key, parts, serial), chainPems: [...issuer.chainPems], fields, ignoredExtensions: values.ignoredExtensions };
}

/** Stage 5: the HSM signs the prepared TBS and the certificate is assembled around the signature. */
export async function signDeviceCertificate(signer: HsmSigner, prepared: PreparedDeviceCertificate): Promise<DeviceCertificateResult> {
  const issued = await signPreparedCertificate(signer, prepared);
  return { certificatePem: issued.certificatePem, chainPems: prepared.chainPems, serialHex: issued.serialHex };
}

/**
 * Issues a device certificate from a CSR that already passed parse and PoP (stages 1-2, done once by the caller):
 * policy -> profile -> sign (HSM). Every refusal is a {@link PkiError} raised before the HSM is asked to sign.
 */
export async function issueFromVerifiedCsr(
  signer: HsmSigner,
  issuer: DeviceCertificateIssuer,
  csr: VerifiedCsr,
  profile: DeviceCertificateProfile,
): Promise<DeviceCertificateResult> {
  return signDeviceCertificate(signer, prepareDeviceCertificate(issuer, csr, profile));
}

/**
 * Issues a device certificate from a CSR: parse -> verify PoP -> check policy -> apply profile -> sign (HSM).
 * Every refusal is a {@link PkiError} raised before the HSM is asked to sign anything.
 */
export async function issueDeviceCertificate(
  signer: HsmSigner,
  issuer: IssuerRef & { chain?: (string | Uint8Array)[] },
  csr: string | Uint8Array,
  profile: DeviceCertificateProfile,
): Promise<DeviceCertificateResult> {
  const prepared = prepareIssuer(issuer);
  return issueFromVerifiedCsr(signer, prepared, verifyCsrPossession(parseCsr(csr)), profile);
}
