import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { verify as nodeVerify } from 'node:crypto';
import { OID, isStrictDer, toAb } from './der';
import { canonicalPublicKey, checkRsaStrength, ed25519SignatureProblem, type CanonicalPublicKey } from './public-key';
import { deviceSans, deviceSubject, directoryString, isReservedSubject, normalizedName, type SanPolicy } from './device-names';
import { PkiError } from './pki-error';
import { judgeRequestedExtension } from './requested-extensions';
import {
  akiExtension,
  basicConstraintsExtension,
  checkValidity,
  crlDistributionPointExtension,
  ext,
  extKeyUsageExtension,
  keyUsageExtension,
  nameOf,
  skiExtension,
  type CertificateParts,
  type ParsedIssuer,
} from './certificates';
import type { DeviceCertificateProfile } from './csr';

/**
 * The asn1js/pkijs reading of a CSR that @keyserver/pki used before ADR 0033, kept verbatim in behaviour. The
 * fast reader (csr.ts) hands it every request whose shape it does not know exactly, so such a request gets the
 * outcome (refusal code or accepted values) it always got; the differential tests use it as their oracle.
 */

export const SIG_ALGS: Record<string, { hash: string | null; family: 'rsa' | 'ec' | 'ed25519'; weak: boolean }> = {
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

export interface LegacyParsedCsr {
  der: Uint8Array;
  csr: pkijs.CertificationRequest;
  /** The SubjectPublicKeyInfo bytes exactly as the request carries them. */
  spki: Uint8Array;
}

/** Strict DER, no trailing bytes, the PKCS#10 schema, version 0 (after the PEM/size checks of parseCsr). */
export function legacyParseCsr(der: Uint8Array): LegacyParsedCsr {
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

/** The key re-encoded canonically, then the request's signature verified with it; returns the signature OID. */
export function legacyVerifyPossession(p: LegacyParsedCsr): CanonicalPublicKey & { signatureAlgorithm: string } {
  const canonical = canonicalPublicKey(p.spki);
  const { keyType, key } = canonical;
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
  return { ...canonical, signatureAlgorithm: sigOid };
}

/** The CA policy over the pkijs objects: subject (re-encoded), reserved names, attributes and extensions, SANs. */
export function legacyCheckPolicy(
  p: LegacyParsedCsr,
  v: CanonicalPublicKey & { signatureAlgorithm: string },
  profile: DeviceCertificateProfile,
): { subject: pkijs.RelativeDistinguishedNames; sans: pkijs.GeneralName[]; ignoredExtensions: string[] } {
  if (SIG_ALGS[v.signatureAlgorithm].weak) throw new PkiError('csr_signature_algorithm_not_allowed', 'MD5 and SHA-1 are refused');
  if (v.keyType === 'RSA') {
    if (!v.rsa) throw new PkiError('csr_public_key_invalid');
    checkRsaStrength(v.rsa);
  }
  const rdns = deviceSubject(p.csr.subject, profile.allowedSubjectAttributes ?? ['CN', 'O', 'OU', 'C', 'serialNumber']);
  const subject = nameOf(rdns);
  const commonName = directoryString(rdns.find((atv) => atv.type === OID.commonName)?.value) ?? '';
  if (isReservedSubject(profile.reservedNames, normalizedName(subject), commonName)) throw new PkiError('csr_subject_reserved', 'the subject or its CN is the name of a Keyserver key');

  let sans: pkijs.GeneralName[] = [];
  const ignoredExtensions: string[] = [];
  const granted = { spki: v.spki, keyAgreement: v.keyType.startsWith('EC-') && !!profile.keyAgreementForEc };
  const attributes = p.csr.attributes ?? [];
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
      let keyUsage: Uint8Array | undefined;
      switch (x.extnID) {
        case OID.basicConstraints: {
          if ((x.parsedValue as pkijs.BasicConstraints | undefined)?.cA) throw new PkiError('csr_ca_requested');
          break;
        }
        case OID.keyUsage: {
          const bits = new Uint8Array((x.parsedValue as asn1js.BitString | undefined)?.valueBlock.valueHexView ?? value);
          if (bits[0] & 0x06) throw new PkiError('csr_key_cert_sign_requested');
          keyUsage = bits;
          break;
        }
        case OID.subjectAltName:
          sans = deviceSans(value, sanPolicy(profile));
          break;
      }
      judgeRequestedExtension({ id: x.extnID, critical: !!x.critical, value, keyUsage }, granted, ignoredExtensions);
    }
  }
  return { subject, sans, ignoredExtensions };
}

export const DEFAULT_MAX_SAN_COUNT = 8;
export const DEFAULT_URI_SCHEMES: readonly string[] = ['https', 'urn'];

export function sanPolicy(profile: DeviceCertificateProfile): SanPolicy {
  return {
    allowedSanTypes: profile.allowedSanTypes ?? ['dns', 'uri'],
    maxSanCount: profile.maxSanCount ?? DEFAULT_MAX_SAN_COUNT,
    dnsDomains: profile.dnsDomains,
    uriSchemes: profile.uriSchemes ?? DEFAULT_URI_SCHEMES,
  };
}

/** Stage 4 as pkijs objects (the previous TBS parts; the differential tests' oracle for the DER writer). */
export function legacyApplyDeviceProfile(
  values: { spki: Uint8Array; keyType: string; subject: pkijs.RelativeDistinguishedNames; sans: pkijs.GeneralName[] },
  issuer: ParsedIssuer,
  profile: DeviceCertificateProfile,
): CertificateParts {
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
