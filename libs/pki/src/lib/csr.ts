import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { KeyObject, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { HsmKeyInfo, HsmSigner } from './hsm-signer';
import { OID, isStrictDer, pemBlocks, toAb, toPem } from './der';
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

export type SubjectAttribute = 'CN' | 'O' | 'OU' | 'C' | 'L' | 'ST' | 'serialNumber';
export type SanType = 'dns' | 'uri' | 'email' | 'ip';

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
  /** Clock for notBefore; defaults to now. */
  now?: Date;
}

export type CsrKeyType = 'RSA' | 'EC-P256' | 'EC-P384' | 'EC-P521' | 'Ed25519';

/** Output of the parse stage. */
export interface ParsedCsr {
  der: Uint8Array;
  csr: pkijs.CertificationRequest;
  spki: Uint8Array;
}

/** Output of the PoP stage: the verified key. */
export interface VerifiedCsr extends ParsedCsr {
  key: KeyObject;
  keyType: CsrKeyType;
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

const ATTR_OIDS: Record<SubjectAttribute, string> = {
  CN: OID.commonName,
  O: OID.organization,
  OU: OID.organizationalUnit,
  C: OID.country,
  L: OID.locality,
  ST: OID.state,
  serialNumber: OID.serialNumber,
};

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

// Matching control characters is the point: they are refused in names.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

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
  const spki = new Uint8Array(csr.subjectPublicKeyInfo.toSchema().toBER(false));
  return { der, csr, spki };
}

function classifyKey(spki: pkijs.PublicKeyInfo): CsrKeyType {
  const alg = spki.algorithm.algorithmId;
  if (alg === OID.rsaEncryption) return 'RSA';
  if (alg === OID.ed25519) {
    if (spki.algorithm.algorithmParams) throw new PkiError('csr_public_key_invalid', 'Ed25519 takes no parameters');
    return 'Ed25519';
  }
  if (alg === OID.ecPublicKey) {
    const params = spki.algorithm.algorithmParams;
    if (!(params instanceof asn1js.ObjectIdentifier)) throw new PkiError('csr_explicit_ec_parameters');
    const curve = params.valueBlock.toString();
    const type = ({ [OID.p256]: 'EC-P256', [OID.p384]: 'EC-P384', [OID.p521]: 'EC-P521' } as Record<string, CsrKeyType>)[curve];
    if (!type) throw new PkiError('csr_key_not_allowed', `curve ${curve}`);
    return type;
  }
  throw new PkiError('csr_key_not_allowed', `key algorithm ${alg}`);
}

/** Stage 2: proof of possession, the CSR signature verified with the key it carries. */
export function verifyCsrPossession(p: ParsedCsr): VerifiedCsr {
  const keyType = classifyKey(p.csr.subjectPublicKeyInfo);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(p.spki), format: 'der', type: 'spki' });
  } catch (e) {
    throw new PkiError('csr_public_key_invalid', undefined, { cause: e });
  }
  const sigOid = p.csr.signatureAlgorithm.algorithmId;
  const alg = SIG_ALGS[sigOid];
  if (!alg) throw new PkiError('csr_signature_algorithm_not_allowed', sigOid);
  const family = keyType === 'RSA' ? 'rsa' : keyType === 'Ed25519' ? 'ed25519' : 'ec';
  if (alg.family !== family) throw new PkiError('csr_signature_invalid', 'signature algorithm does not match the key');
  const params = p.csr.signatureAlgorithm.algorithmParams;
  if (family !== 'rsa' && params !== undefined) throw new PkiError('csr_signature_invalid', 'unexpected parameters');
  if (family === 'rsa' && params !== undefined && !(params instanceof asn1js.Null)) throw new PkiError('csr_signature_invalid', 'unexpected parameters');
  let ok = false;
  try {
    ok = nodeVerify(
      alg.hash,
      p.csr.tbsView,
      family === 'ec' ? { key, dsaEncoding: 'der' } : key,
      new Uint8Array(p.csr.signatureValue.valueBlock.valueHexView),
    );
  } catch {
    ok = false;
  }
  if (!ok) throw new PkiError('csr_signature_invalid');
  return { ...p, key, keyType, signatureAlgorithm: sigOid };
}

function stringValue(v: unknown): string | undefined {
  if (
    v instanceof asn1js.Utf8String ||
    v instanceof asn1js.PrintableString ||
    v instanceof asn1js.IA5String ||
    v instanceof asn1js.TeletexString ||
    v instanceof asn1js.BmpString ||
    v instanceof asn1js.UniversalString
  ) {
    return v.valueBlock.value;
  }
  return undefined;
}

function parseSans(extnValue: Uint8Array, allowed: SanType[]): pkijs.GeneralName[] {
  let names: pkijs.GeneralNames;
  try {
    names = pkijs.GeneralNames.fromBER(toAb(extnValue));
  } catch (e) {
    throw new PkiError('csr_san_invalid', undefined, { cause: e });
  }
  const byType: Record<number, SanType> = { 1: 'email', 2: 'dns', 6: 'uri', 7: 'ip' };
  return names.names.map((n) => {
    const t = byType[n.type];
    if (!t || !allowed.includes(t)) throw new PkiError('csr_san_not_allowed', `GeneralName type ${n.type}`);
    if (t === 'ip') {
      const raw = new Uint8Array((n.value as asn1js.OctetString).valueBlock.valueHexView);
      if (raw.length !== 4 && raw.length !== 16) throw new PkiError('csr_san_invalid');
      return new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: toAb(raw) }) });
    }
    const s = n.value as string;
    if (typeof s !== 'string' || s.length === 0 || s.length > 253 || CONTROL.test(s) || !/^[\x21-\x7e]+$/.test(s)) throw new PkiError('csr_san_invalid');
    if (t === 'dns' && !/^(?:\*\.)?(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(s)) {
      throw new PkiError('csr_san_invalid', 'bad DNS name');
    }
    if (t === 'email' && !/^[^@\s]+@[^@\s]+$/.test(s)) throw new PkiError('csr_san_invalid', 'bad email');
    return new pkijs.GeneralName({ type: n.type as 1 | 2 | 6, value: s });
  });
}

/** Stage 3: the CA policy. Requested extensions are only inspected, never copied. */
export function checkCsrPolicy(v: VerifiedCsr, profile: DeviceCertificateProfile): AcceptedCsrValues {
  if (SIG_ALGS[v.signatureAlgorithm].weak) throw new PkiError('csr_signature_algorithm_not_allowed', 'MD5 and SHA-1 are refused');
  if (v.keyType === 'RSA') {
    const bits = v.key.asymmetricKeyDetails?.modulusLength ?? 0;
    const e = v.key.asymmetricKeyDetails?.publicExponent ?? 0n;
    if (bits < 2048 || bits > 8192) throw new PkiError('csr_key_not_allowed', `RSA-${bits}`);
    if (e < 3n || e % 2n === 0n) throw new PkiError('csr_public_key_invalid', 'bad RSA exponent');
  }
  const allowedAttrs = profile.allowedSubjectAttributes ?? ['CN', 'O', 'OU', 'C', 'serialNumber'];
  const subjectDer = v.csr.subject.toSchema().toBER(false);
  if (subjectDer.byteLength > 1024) throw new PkiError('csr_subject_too_long');
  const rdns: pkijs.AttributeTypeAndValue[] = [];
  for (const atv of v.csr.subject.typesAndValues) {
    const name = (Object.keys(ATTR_OIDS) as SubjectAttribute[]).find((k) => ATTR_OIDS[k] === atv.type);
    if (!name || !allowedAttrs.includes(name)) throw new PkiError('csr_subject_attribute_not_allowed', atv.type);
    const s = stringValue(atv.value);
    if (s === undefined || s.length === 0 || CONTROL.test(s) || /[\u2028\u2029\ufeff]/.test(s)) throw new PkiError('csr_subject_invalid', name);
    if (s.length > 64 || (name === 'C' && !/^[A-Z]{2}$/.test(s))) throw new PkiError(name === 'C' ? 'csr_subject_invalid' : 'csr_subject_too_long', name);
    const printable = name === 'C' || name === 'serialNumber';
    if (printable && !/^[A-Za-z0-9 '()+,\-./:=?]+$/.test(s)) throw new PkiError('csr_subject_invalid', name);
    rdns.push(new pkijs.AttributeTypeAndValue({ type: atv.type, value: printable ? new asn1js.PrintableString({ value: s }) : new asn1js.Utf8String({ value: s }) }));
  }
  if (!rdns.some((r) => r.type === OID.commonName)) throw new PkiError('csr_subject_invalid', 'commonName is required');

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
          sans = parseSans(value, profile.allowedSanTypes ?? ['dns', 'uri']);
          break;
        case OID.extKeyUsage:
        case OID.subjectKeyIdentifier:
          break;
        default:
          if (x.critical) throw new PkiError('csr_unknown_critical_extension', x.extnID);
      }
    }
  }
  return { spki: v.spki, keyType: v.keyType, subject: nameOf(rdns), sans };
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
