import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { KeyObject, verify as nodeVerify } from 'node:crypto';
import { HsmKeyInfo, HsmSigner } from './hsm-signer';
import { OID, isStrictDer, pemBlocks, toAb, toPem } from './der';
import { canonicalPublicKey, checkRsaStrength, ed25519SignatureProblem, type CsrKeyType } from './public-key';
import { deviceSans, deviceSubject, normalizedName, type SanType, type SubjectAttribute } from './device-names';
import { PkiError } from './pki-error';
import {
  CertificateParts,
  IssuerRef,
  ParsedIssuer,
  PreparedCertificate,
  akiExtension,
  basicConstraintsExtension,
  checkValidity,
  crlDistributionPointExtension,
  ext,
  extKeyUsageExtension,
  keyUsageExtension,
  nameOf,
  parseIssuer,
  prepareCertificate,
  signPreparedCertificate,
  skiExtension,
} from './certificates';

export const MAX_CSR_BYTES = 64 * 1024;

export type { SanType, SubjectAttribute } from './device-names';

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
  /** Normalised DNs (see {@link reservedNames}) a device certificate may never carry: those of the Keyserver's own keys. */
  reservedNames?: ReadonlySet<string>;
  /** Clock for notBefore; defaults to now. */
  now?: Date;
}

export type { CsrKeyType } from './public-key';

export const DEFAULT_MAX_SAN_COUNT = 8;
export const DEFAULT_URI_SCHEMES: readonly string[] = ['https', 'urn'];

/** Output of the parse stage. */
export interface ParsedCsr {
  der: Uint8Array;
  csr: pkijs.CertificationRequest;
  /** The SubjectPublicKeyInfo bytes exactly as the request carries them. */
  spki: Uint8Array;
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

/** Values the policy stage accepted from the CSR. */
export interface AcceptedCsrValues {
  spki: Uint8Array;
  keyType: CsrKeyType;
  subject: pkijs.RelativeDistinguishedNames;
  sans: pkijs.GeneralName[];
}

export interface DeviceCertificateResult {
  certificatePem: string;
  /** Issuer certificate first, then the issuer's own chain up to (and including) the root. */
  chainPems: string[];
  serialHex: string;
}

const SIG_ALGS: Record<string, { hash: string | null; family: 'rsa' | 'ec' | 'ed25519'; weak: boolean }> = {
  [OID.sha256WithRSA]: { hash: 'sha256', family: 'rsa', weak: false },
  [OID.sha384WithRSA]: { hash: 'sha384', family: 'rsa', weak: false },
  [OID.sha512WithRSA]: { hash: 'sha512', family: 'rsa', weak: false },
  [OID.sha1WithRSA]: { hash: 'sha1', family: 'rsa', weak: true },
  [OID.md5WithRSA]: { hash: 'md5', family: 'rsa', weak: true },
  [OID.ecdsaSha256]: { hash: 'sha256', family: 'ec', weak: false },
  [OID.ecdsaSha384]: { hash: 'sha384', family: 'ec', weak: false },
  [OID.ecdsaSha512]: { hash: 'sha512', family: 'ec', weak: false },
  [OID.ecdsaSha1]: { hash: 'sha1', family: 'ec', weak: true },
  [OID.ed25519]: { hash: null, family: 'ed25519', weak: false },
};

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
  let parsed: ReturnType<typeof asn1js.fromBER>;
  try {
    // asn1js throws (rather than reporting) on some malformed contents, e.g. a GeneralizedTime it cannot read.
    parsed = asn1js.fromBER(toAb(der));
  } catch (e) {
    throw new PkiError('csr_malformed', undefined, { cause: e });
  }
  if (parsed.offset === -1 || parsed.result.error) throw new PkiError('csr_malformed');
  if (parsed.offset !== der.length) throw new PkiError('csr_trailing_data');
  if (!isStrictDer(der)) throw new PkiError('csr_not_der');
  let csr: pkijs.CertificationRequest;
  try {
    csr = new pkijs.CertificationRequest({ schema: parsed.result });
  } catch (e) {
    throw new PkiError('csr_malformed', undefined, { cause: e });
  }
  if (csr.version !== 0) throw new PkiError('csr_malformed', 'version must be 0');
  // The key bytes as sent (pkijs would re-encode a parsed key): the PoP stage parses and re-encodes them itself.
  const info = (parsed.result as asn1js.Sequence).valueBlock.value[0] as asn1js.Sequence;
  const spki = new Uint8Array(info.valueBlock.value[2].valueBeforeDecodeView);
  return { der, csr, spki };
}

/**
 * Stage 2: the request's key parsed and re-encoded canonically ({@link canonicalPublicKey}: strict RSA, EC points
 * on the curve and uncompressed, Ed25519 canonical and of prime order), then proof of possession: the CSR
 * signature verified with that key by Node's crypto, Ed25519 signatures first checked strictly (RFC 8032 5.1.7:
 * R canonical and not of small order, S < L).
 */
export function verifyCsrPossession(p: ParsedCsr): VerifiedCsr {
  const { keyType, spki, key, rsa } = canonicalPublicKey(p.spki);
  const sigOid = p.csr.signatureAlgorithm.algorithmId;
  const alg = SIG_ALGS[sigOid];
  if (!alg) throw new PkiError('csr_signature_algorithm_not_allowed', sigOid);
  const family = keyType === 'RSA' ? 'rsa' : keyType === 'Ed25519' ? 'ed25519' : 'ec';
  if (alg.family !== family) throw new PkiError('csr_signature_invalid', 'signature algorithm does not match the key');
  const params = p.csr.signatureAlgorithm.algorithmParams;
  if (family !== 'rsa' && params !== undefined) throw new PkiError('csr_signature_invalid', 'unexpected parameters');
  if (family === 'rsa' && params !== undefined && !(params instanceof asn1js.Null)) throw new PkiError('csr_signature_invalid', 'unexpected parameters');
  if (p.csr.signatureValue.valueBlock.unusedBits !== 0) throw new PkiError('csr_signature_invalid', 'signature BIT STRING has unused bits');
  const signature = new Uint8Array(p.csr.signatureValue.valueBlock.valueHexView);
  if (family === 'ed25519') {
    const problem = ed25519SignatureProblem(signature);
    if (problem) throw new PkiError('csr_signature_invalid', problem);
  }
  let ok = false;
  try {
    ok = nodeVerify(alg.hash, p.csr.tbsView, family === 'ec' ? { key, dsaEncoding: 'der' } : key, signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new PkiError('csr_signature_invalid');
  return { ...p, spki, key, keyType, rsa, signatureAlgorithm: sigOid };
}

/**
 * Stage 3: the CA policy (docs/device-profile.md). The key's strength, the subject and the SANs are checked and
 * re-encoded by us; requested extensions are only inspected, never copied.
 */
export function checkCsrPolicy(v: VerifiedCsr, profile: DeviceCertificateProfile): AcceptedCsrValues {
  if (SIG_ALGS[v.signatureAlgorithm].weak) throw new PkiError('csr_signature_algorithm_not_allowed', 'MD5 and SHA-1 are refused');
  if (v.keyType === 'RSA') {
    if (!v.rsa) throw new PkiError('csr_public_key_invalid');
    checkRsaStrength(v.rsa);
  }
  const rdns = deviceSubject(v.csr.subject, profile.allowedSubjectAttributes ?? ['CN', 'O', 'OU', 'C', 'serialNumber']);
  const subject = nameOf(rdns);
  if (profile.reservedNames?.has(normalizedName(subject))) throw new PkiError('csr_subject_reserved', 'the subject is the name of a Keyserver key');

  let sans: pkijs.GeneralName[] = [];
  const attributes = v.csr.attributes ?? [];
  if (attributes.some((a) => a.type !== OID.extensionRequest)) throw new PkiError('csr_attribute_not_allowed');
  if (attributes.length > 1 || attributes.some((a) => a.values.length !== 1)) throw new PkiError('csr_duplicate_extension', 'more than one extensionRequest');
  if (attributes.length === 1) {
    let exts: pkijs.Extensions;
    try {
      exts = new pkijs.Extensions({ schema: attributes[0].values[0] });
    } catch (e) {
      throw new PkiError('csr_malformed', 'bad extensionRequest', { cause: e });
    }
    const seen = new Set<string>();
    for (const x of exts.extensions) {
      if (seen.has(x.extnID)) throw new PkiError('csr_duplicate_extension', x.extnID);
      seen.add(x.extnID);
      const value = new Uint8Array(x.extnValue.valueBlock.valueHexView);
      switch (x.extnID) {
        case OID.basicConstraints: {
          if ((x.parsedValue as pkijs.BasicConstraints | undefined)?.cA) throw new PkiError('csr_ca_requested');
          break;
        }
        case OID.keyUsage: {
          const bits = new Uint8Array((x.parsedValue as asn1js.BitString | undefined)?.valueBlock.valueHexView ?? value);
          if (bits[0] & 0x06) throw new PkiError('csr_key_cert_sign_requested');
          break;
        }
        case OID.subjectAltName:
          sans = deviceSans(value, {
            allowedSanTypes: profile.allowedSanTypes ?? ['dns', 'uri'],
            maxSanCount: profile.maxSanCount ?? DEFAULT_MAX_SAN_COUNT,
            dnsDomains: profile.dnsDomains,
            uriSchemes: profile.uriSchemes ?? DEFAULT_URI_SCHEMES,
          });
          break;
        case OID.extKeyUsage:
        case OID.subjectKeyIdentifier:
          break;
        default:
          if (x.critical) throw new PkiError('csr_unknown_critical_extension', x.extnID);
      }
    }
  }
  return { spki: v.spki, keyType: v.keyType, subject, sans };
}

/** Stage 4: the profile decides validity and every extension of the device certificate. */
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
  if (values.sans.length) extensions.push(ext(OID.subjectAltName, false, new pkijs.GeneralNames({ names: values.sans }).toSchema()));
  if (profile.crlDistributionPointUrl) extensions.push(crlDistributionPointExtension(profile.crlDistributionPointUrl));
  return { issuerName: issuer.cert.subject, subject: values.subject, spki: values.spki, validity, extensions };
}

/** An issuing CA parsed once for any number of device certificates (see {@link prepareIssuer}). */
export interface DeviceCertificateIssuer {
  key: HsmKeyInfo;
  parsed: ParsedIssuer;
  /** Issuer certificate first, then the issuer's own chain up to (and including) the root. */
  chainPems: string[];
}

/** Output of stages 3 and 4: the device certificate's TBS, waiting only for the HSM signature. */
export interface PreparedDeviceCertificate extends PreparedCertificate {
  chainPems: string[];
}

/** Parses and checks the issuing CA (CA:true, keyCertSign, certificate of this key); the result is immutable. */
export function prepareIssuer(issuer: IssuerRef & { chain?: (string | Uint8Array)[] }): DeviceCertificateIssuer {
  const parsed = parseIssuer(issuer);
  const chainPems = [toPem('CERTIFICATE', parsed.der), ...(issuer.chain ?? []).map((c) => (typeof c === 'string' ? c : toPem('CERTIFICATE', c)))];
  return { key: issuer.key, parsed, chainPems };
}

/** Stages 3 and 4 for a CSR that passed parse and PoP: policy, then the profile, then the TBSCertificate. */
export function prepareDeviceCertificate(issuer: DeviceCertificateIssuer, csr: VerifiedCsr, profile: DeviceCertificateProfile): PreparedDeviceCertificate {
  const values = checkCsrPolicy(csr, profile);
  return { ...prepareCertificate(issuer.key, applyDeviceProfile(values, issuer.parsed, profile)), chainPems: [...issuer.chainPems] };
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
