import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { constants, verify as nodeVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import {
  ecCurveOf,
  HASH_LENGTH,
  verifyEcdsaDigest,
  verifyRsaPkcs1Digest,
  verifyRsaPssDigest,
  type DigestHash,
} from './digest-signatures';
import { CliError, Exit } from './errors';
import { timestampTokenOf } from './timestamp';

// Offline verification of what the Keyserver signs: a raw signature over a digest, or a detached CMS
// SignedData, each against a certificate chain that must lead to a trust anchor the caller names (--ca).

const OID = {
  codeSigning: '1.3.6.1.5.5.7.3.3',
  keyUsage: '2.5.29.15',
  signedData: '1.2.840.113549.1.7.2',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
};

const DIGEST_OIDS: Record<string, DigestHash> = {
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

/** CMS signature algorithms: the hash Node should use (undefined: the digest algorithm's) and the padding. */
const SIGNATURE_OIDS: Record<string, { hash?: DigestHash | null; pss?: boolean }> = {
  '1.2.840.113549.1.1.1': {}, // rsaEncryption: PKCS#1 v1.5 with the digest algorithm
  '1.2.840.113549.1.1.11': { hash: 'sha256' },
  '1.2.840.113549.1.1.12': { hash: 'sha384' },
  '1.2.840.113549.1.1.13': { hash: 'sha512' },
  '1.2.840.113549.1.1.10': { pss: true }, // RSASSA-PSS, MGF1 with the digest algorithm
  '1.2.840.10045.2.1': {}, // ecPublicKey: ECDSA with the digest algorithm
  '1.2.840.10045.4.3.2': { hash: 'sha256' },
  '1.2.840.10045.4.3.3': { hash: 'sha384' },
  '1.2.840.10045.4.3.4': { hash: 'sha512' },
  '1.3.101.112': { hash: null }, // Ed25519 signs the attributes themselves
};

/** KeyUsage bits (first octet of the BIT STRING). */
const KU_DIGITAL_SIGNATURE = 0x80;
const KU_KEY_CERT_SIGN = 0x04;

function invalid(message: string, code: string): CliError {
  return new CliError(message, Exit.Invalid, code);
}

function ab(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** Every CERTIFICATE block of a PEM file (a chain exported by `ksctl keys show --chain`, a root, a bundle). */
export function readPemCertificates(path: string, what: string): X509Certificate[] {
  if (!existsSync(path)) throw new CliError(`${what} not found: ${path}`, Exit.Usage);
  const blocks = readFileSync(path, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new CliError(`${what} ${path} holds no PEM certificate`, Exit.Usage);
  return blocks.map((pem) => {
    try {
      return new X509Certificate(pem);
    } catch (err) {
      throw new CliError(`${what} ${path}: a certificate does not parse (${(err as Error).message})`, Exit.Usage);
    }
  });
}

/** The KeyUsage bits of the first octet, or undefined when the certificate has no KeyUsage extension. */
export function keyUsage(cert: X509Certificate): number | undefined {
  const parsed = pkijs.Certificate.fromBER(ab(cert.raw));
  const ext = parsed.extensions?.find((e) => e.extnID === OID.keyUsage);
  if (!ext) return undefined;
  const inner = asn1js.fromBER(ext.extnValue.valueBlock.valueHexView);
  if (inner.offset === -1 || !(inner.result instanceof asn1js.BitString)) return 0;
  return inner.result.valueBlock.valueHexView[0] ?? 0;
}

function describe(cert: X509Certificate): string {
  return cert.subject.replace(/\n/g, ', ');
}

export interface ChainOptions {
  /** The time the certificates must be valid at (default: now). */
  at?: Date;
  /** The end-entity must carry the codeSigning extended key usage (firmware signing keys do). */
  codeSigning?: boolean;
}

/**
 * Builds and checks the path from `leaf` to one of `anchors` using the intermediates in `pool`: every
 * link's signature, issuer name, CA flag and keyCertSign usage, every certificate's validity at `at`,
 * and the end-entity's digitalSignature and (optionally) codeSigning usages. Returns leaf..anchor.
 * Revocation is checked separately, against CRLs, by checkRevocation (revocation.ts).
 */
export function verifyChain(leaf: X509Certificate, pool: X509Certificate[], anchors: X509Certificate[], o: ChainOptions = {}): X509Certificate[] {
  const at = o.at ?? new Date();
  const isAnchor = (c: X509Certificate): boolean => anchors.some((a) => a.raw.equals(c.raw));
  const path = [leaf];
  let current = leaf;
  while (!isAnchor(current)) {
    if (path.length > 10) throw invalid('certificate chain is too long', 'chain_invalid');
    const issuer = [...anchors, ...pool].find((c) => !c.raw.equals(current.raw) && current.checkIssued(c) && current.verify(c.publicKey));
    if (!issuer) {
      const selfSigned = current.checkIssued(current) && current.verify(current.publicKey);
      throw selfSigned
        ? invalid(`the chain ends at ${describe(current)}, which is not a root given with --ca`, 'untrusted_root')
        : invalid(`no certificate in the chain or --ca issued ${describe(current)}`, 'chain_invalid');
    }
    if (path.some((c) => c.raw.equals(issuer.raw))) throw invalid('certificate chain has a loop', 'chain_invalid');
    if (!issuer.ca) throw invalid(`${describe(issuer)} is not a CA certificate`, 'chain_invalid');
    const ku = keyUsage(issuer);
    if (ku !== undefined && !(ku & KU_KEY_CERT_SIGN)) throw invalid(`${describe(issuer)} may not sign certificates (keyUsage)`, 'chain_invalid');
    path.push(issuer);
    current = issuer;
  }
  for (const c of path) {
    // validFromDate/validToDate, not Date.parse: Date reads Node's "... 49 GMT" (the year 49) as 2049.
    if (at.getTime() < c.validFromDate.getTime()) throw invalid(`${describe(c)} is not valid before ${c.validFrom}`, 'certificate_not_yet_valid');
    if (at.getTime() > c.validToDate.getTime()) throw invalid(`${describe(c)} expired ${c.validTo}`, 'certificate_expired');
  }
  const ku = keyUsage(leaf);
  if (ku !== undefined && !(ku & KU_DIGITAL_SIGNATURE)) throw invalid(`${describe(leaf)} may not make signatures (keyUsage)`, 'not_signing_certificate');
  if (o.codeSigning && !(leaf.keyUsage ?? []).includes(OID.codeSigning)) {
    throw invalid(`${describe(leaf)} has no codeSigning extended key usage`, 'not_code_signing');
  }
  return path;
}

/** The hash a Keyserver key signs with by default: SHA-256 for RSA and P-256, the curve's size otherwise. */
export function defaultHashFor(key: KeyObject): DigestHash {
  const curve = key.asymmetricKeyType === 'ec' ? ecCurveOf(key) : undefined;
  return curve === 'P-384' ? 'sha384' : curve === 'P-521' ? 'sha512' : 'sha256';
}

export interface RawSignatureInput {
  signature: Buffer;
  /** The digest the signature covers (of the file, or given with --digest). */
  digest: Buffer;
  hash: DigestHash;
  /** As the sign order said: `none`/`digestinfo` (RSA PKCS#1 v1.5, or ECDSA) or `pss` (RSA-PSS). */
  padding: 'none' | 'digestinfo' | 'pss';
  /** ECDSA encoding: `asn1` (DER) or `p1363` (r‖s). */
  format: 'asn1' | 'p1363';
  publicKey: KeyObject;
}

/** Checks a raw Keyserver signature over a digest; throws `signature_invalid` (exit 6) when it does not verify. */
export function verifyRawSignature(i: RawSignatureInput): void {
  if (i.digest.length !== HASH_LENGTH[i.hash]) {
    throw new CliError(`a ${i.hash} digest is ${HASH_LENGTH[i.hash]} bytes, got ${i.digest.length}`, Exit.Usage);
  }
  let ok: boolean;
  switch (i.publicKey.asymmetricKeyType) {
    case 'rsa':
      ok = i.padding === 'pss' ? verifyRsaPssDigest(i.publicKey, i.hash, i.digest, i.signature) : verifyRsaPkcs1Digest(i.publicKey, i.hash, i.digest, i.signature);
      break;
    case 'ec':
      if (i.padding !== 'none') throw new CliError(`--padding ${i.padding} is for RSA keys; ECDSA signatures use none`, Exit.Usage);
      if (!ecCurveOf(i.publicKey)) throw new CliError('the certificate key is on an unsupported curve', Exit.Usage);
      ok = verifyEcdsaDigest(i.publicKey, i.digest, i.signature, i.format);
      break;
    default:
      throw new CliError(`${i.publicKey.asymmetricKeyType} keys do not make raw signatures over a digest (use CMS)`, Exit.Usage);
  }
  if (!ok) throw invalid('the signature does not verify with the certificate key over this digest', 'signature_invalid');
}

/**
 * Checks an Ed25519 (PureEdDSA) signature over the whole message, what a message sign order returns (ADR 0030);
 * throws `signature_invalid` (exit 6) when it does not verify, a usage error for a key that is not Ed25519.
 */
export function verifyMessageSignature(i: { signature: Buffer; message: Buffer; publicKey: KeyObject }): void {
  if (i.publicKey.asymmetricKeyType !== 'ed25519') {
    throw new CliError(`${i.publicKey.asymmetricKeyType} keys sign digests: use --file or --digest, not --message`, Exit.Usage);
  }
  if (!(i.signature.length === 64 && nodeVerify(null, i.message, i.publicKey, i.signature))) {
    throw invalid('the signature does not verify with the certificate key over this message', 'signature_invalid');
  }
}

/** What a CMS signature says about itself once verified. */
export interface CmsSigner {
  certificate: X509Certificate;
  hash: DigestHash;
  signingTime?: string;
  /** The SignerInfo's signature value: what a signature timestamp is over. */
  signatureValue: Buffer;
  /** The RFC 3161 signature timestamp token (unsigned attribute id-aa-timeStampToken), unverified. */
  timestampToken?: Buffer;
}

interface ParsedCms {
  signedData: pkijs.SignedData;
  /** The certificates the SignedData carries, with their original encodings. */
  certificates: X509Certificate[];
}

function parseCms(der: Buffer): ParsedCms {
  const asn = asn1js.fromBER(ab(der));
  if (asn.offset === -1) throw invalid('the signature file is not DER/BER', 'cms_invalid');
  let contentInfo: pkijs.ContentInfo;
  let signedData: pkijs.SignedData;
  try {
    contentInfo = new pkijs.ContentInfo({ schema: asn.result });
    if (contentInfo.contentType !== OID.signedData) throw new Error(`content type ${contentInfo.contentType}`);
    signedData = new pkijs.SignedData({ schema: contentInfo.content });
  } catch (err) {
    throw invalid(`not a CMS SignedData (${(err as Error).message})`, 'cms_invalid');
  }
  const sequence = contentInfo.content as asn1js.Sequence;
  const certSet = sequence.valueBlock.value.find((b) => b.idBlock.tagClass === 3 && b.idBlock.tagNumber === 0) as asn1js.Constructed | undefined;
  const certificates: X509Certificate[] = [];
  for (const block of certSet?.valueBlock.value ?? []) {
    // Only X.509 certificates (a plain SEQUENCE); other CertificateChoices are ignored.
    if (block.idBlock.tagClass !== 1) continue;
    try {
      certificates.push(new X509Certificate(Buffer.from(block.valueBeforeDecodeView)));
    } catch {
      throw invalid('a certificate inside the CMS does not parse', 'cms_invalid');
    }
  }
  return { signedData, certificates };
}

function attributeValue(si: pkijs.SignerInfo, type: string): asn1js.AsnType | undefined {
  const found = si.signedAttrs?.attributes.filter((a) => a.type === type) ?? [];
  if (found.length > 1 || (found[0] && found[0].values.length !== 1)) throw invalid(`signed attribute ${type} appears more than once`, 'cms_invalid');
  return found[0]?.values[0] as asn1js.AsnType | undefined;
}

/**
 * Verifies a detached CMS SignedData: for every signer, the message-digest attribute equals the digest of
 * the content (`digestOf(hash)`), the content-type attribute matches, and the signature over the signed
 * attributes verifies with the signer's certificate (found by issuer and serial number). Chain checks are
 * left to {@link verifyChain}; the certificates the CMS carries are returned for it.
 */
export async function verifyCms(
  der: Buffer,
  digestOf: (hash: DigestHash) => Promise<Buffer>,
  extraCertificates: X509Certificate[] = [],
): Promise<{ signers: CmsSigner[]; certificates: X509Certificate[] }> {
  const { signedData, certificates } = parseCms(der);
  if (signedData.encapContentInfo.eContent) throw invalid('the CMS carries its content: ksctl verifies detached signatures (.p7s) only', 'cms_invalid');
  if (signedData.signerInfos.length === 0) throw invalid('the CMS has no signer', 'cms_invalid');
  const candidates = [...certificates, ...extraCertificates];
  const signers: CmsSigner[] = [];
  for (const si of signedData.signerInfos) {
    const hash = DIGEST_OIDS[si.digestAlgorithm.algorithmId];
    if (!hash) throw invalid(`unsupported digest algorithm ${si.digestAlgorithm.algorithmId}`, 'cms_invalid');
    const sigAlg = SIGNATURE_OIDS[si.signatureAlgorithm.algorithmId];
    if (!sigAlg) throw invalid(`unsupported signature algorithm ${si.signatureAlgorithm.algorithmId}`, 'cms_invalid');
    if (!(si.sid instanceof pkijs.IssuerAndSerialNumber)) throw invalid('the signer is not named by issuer and serial number', 'cms_invalid');
    const sid = si.sid;
    const certificate = candidates.find((c) => {
      const p = pkijs.Certificate.fromBER(ab(c.raw));
      return p.issuer.isEqual(sid.issuer) && p.serialNumber.isEqual(sid.serialNumber);
    });
    if (!certificate) throw invalid("the signer's certificate is neither in the CMS nor in --chain", 'chain_invalid');
    if (!si.signedAttrs) throw invalid('the CMS has no signed attributes', 'cms_invalid');

    const contentType = attributeValue(si, OID.contentType);
    if (!(contentType instanceof asn1js.ObjectIdentifier) || contentType.valueBlock.toString() !== signedData.encapContentInfo.eContentType) {
      throw invalid('the content-type attribute does not match the content', 'cms_invalid');
    }
    const messageDigest = attributeValue(si, OID.messageDigest);
    if (!(messageDigest instanceof asn1js.OctetString)) throw invalid('the CMS has no message-digest attribute', 'cms_invalid');
    const digest = await digestOf(hash);
    if (!Buffer.from(messageDigest.valueBlock.valueHexView).equals(digest)) {
      throw invalid(`the file's ${hash} digest is not the one that was signed`, 'digest_mismatch');
    }
    // The signature covers the attributes as an explicit SET OF (0x31), not their [0] IMPLICIT encoding.
    const signedBytes = Buffer.from(si.signedAttrs.encodedValue);
    signedBytes[0] = 0x31;
    const signature = Buffer.from(si.signature.valueBlock.valueHexView);
    const key = certificate.publicKey;
    const nodeHash = sigAlg.hash === null ? null : (sigAlg.hash ?? hash);
    let ok: boolean;
    try {
      ok = sigAlg.pss
        ? nodeVerify(nodeHash, signedBytes, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, signature)
        : nodeVerify(nodeHash, signedBytes, key, signature);
    } catch {
      ok = false;
    }
    if (!ok) throw invalid(`the CMS signature does not verify with the key of ${describe(certificate)}`, 'signature_invalid');
    const signingTime = attributeValue(si, OID.signingTime);
    const timestampToken = timestampTokenOf(si);
    signers.push({
      certificate,
      hash,
      signatureValue: signature,
      ...(timestampToken ? { timestampToken } : {}),
      ...(signingTime instanceof asn1js.UTCTime || signingTime instanceof asn1js.GeneralizedTime ? { signingTime: signingTime.toDate().toISOString() } : {}),
    });
  }
  return { signers, certificates };
}
