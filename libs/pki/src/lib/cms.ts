import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { HashName, HsmKeyInfo, HsmSigner, defaultHashFor } from './hsm-signer';
import { HASHES, OID, bytesEqual, certDer, toAb } from './der';
import { PkiError } from './pki-error';
import { x509Time } from './certificates';
import { ensurePkijsEngine, signData, signatureAlgorithm } from './sign';

export interface CmsSignatureOptions {
  /** Digest of the detached content, computed server-side (see {@link digestStream}). */
  digest: Uint8Array;
  /** Digest algorithm; defaults to the key's hash (SHA-512 for Ed25519 as RFC 8419 requires). */
  hash?: HashName;
  signingTime?: Date;
  /**
   * Called with the signature value once the HSM made it; a returned RFC 3161 TimeStampToken (ContentInfo DER)
   * becomes the unsigned attribute id-aa-timeStampToken (RFC 3161 appendix A) of the SignerInfo.
   */
  timestamp?: (signatureValue: Uint8Array) => Promise<Uint8Array | undefined>;
}

/** id-aa-timeStampToken (RFC 3161 appendix A): the unsigned attribute holding a signature timestamp token. */
export const TIMESTAMP_TOKEN_ATTRIBUTE = '1.2.840.113549.1.9.16.2.14';

/** EncapsulatedContentInfo with the content as one primitive OCTET STRING (DER; pkijs would cut it into a constructed one). */
function encapsulated(eContentType: string, content?: Uint8Array): pkijs.EncapsulatedContentInfo {
  const info = new pkijs.EncapsulatedContentInfo({ eContentType });
  if (content) info.eContent = new asn1js.OctetString({ valueHex: toAb(content) });
  return info;
}

/** A DER token as an ASN.1 value that re-encodes to exactly its bytes (its signature covers them). */
function parseToken(token: Uint8Array): asn1js.AsnType {
  const asn = asn1js.fromBER(toAb(token));
  if (asn.offset !== token.length || !bytesEqual(new Uint8Array(asn.result.toBER(false)), token)) throw new PkiError('invalid_certificate', 'the timestamp token is not DER');
  return asn.result;
}

/** Hashes a stream of any size in constant memory. */
export async function digestStream(stream: Readable | AsyncIterable<Uint8Array | string>, hash: HashName = 'SHA-256'): Promise<Uint8Array> {
  if (!HASHES[hash]) throw new PkiError('hash_not_supported');
  const h = createHash(HASHES[hash].node);
  for await (const chunk of stream) h.update(chunk);
  return new Uint8Array(h.digest());
}

function attr(type: string, value: asn1js.AsnType): pkijs.Attribute {
  return new pkijs.Attribute({ type, values: [value] });
}

/** DER SET OF sorts its elements by their encodings. */
function sortForSetOf(attrs: pkijs.Attribute[]): pkijs.Attribute[] {
  const enc = attrs.map((a) => ({ a, der: Buffer.from(a.toSchema().toBER(false)) }));
  enc.sort((x, y) => Buffer.compare(x.der, y.der));
  return enc.map((e) => e.a);
}

/** A signing key with its certificate chain parsed for CMS, reusable for any number of signatures. */
export interface CmsSigner {
  key: HsmKeyInfo;
  /** `certs[0]` is the signer's certificate; all are embedded (in {@link sortedCerts} order). */
  certs: pkijs.Certificate[];
  /** SHA-256 of the signer certificate's DER (ESS signing-certificate-v2). */
  signerCertSha256: Uint8Array;
  /** `certs` in DER SET OF order (by their encodings), as SignedData.certificates carries them. */
  sortedCerts: pkijs.Certificate[];
}

/** Parses the chain once and checks that `chain[0]` certifies `key` (see {@link signCms}). */
export function prepareCmsSigner(key: HsmKeyInfo, chain: (string | Uint8Array)[]): CmsSigner {
  if (chain.length === 0) throw new PkiError('invalid_certificate', 'the signer certificate is required');
  const ders = chain.map(certDer);
  const certs = ders.map((der) => {
    try {
      return pkijs.Certificate.fromBER(toAb(der));
    } catch (e) {
      throw new PkiError('invalid_certificate', undefined, { cause: e });
    }
  });
  if (!bytesEqual(new Uint8Array(certs[0].subjectPublicKeyInfo.toSchema().toBER(false)), key.spki)) {
    throw new PkiError('invalid_certificate', 'signer certificate is not for this key');
  }
  const sortedCerts = certs.map((c, i) => ({ c, der: Buffer.from(ders[i]) })).sort((x, y) => Buffer.compare(x.der, y.der)).map((e) => e.c);
  return { key, certs, signerCertSha256: new Uint8Array(createHash('sha256').update(ders[0]).digest()), sortedCerts };
}

/**
 * Detached CMS SignedData (RFC 5652) over a content digest, signed in the HSM. Signed attributes:
 * content-type, message-digest, signing-time, ESS signing-certificate-v2 (RFC 5035) and
 * CMS algorithm protection (RFC 6211). `chain[0]` is the signer's certificate; all of `chain` is embedded.
 * Returns the ContentInfo DER.
 */
export async function createCmsSignature(
  signer: HsmSigner,
  key: HsmKeyInfo,
  chain: (string | Uint8Array)[],
  opts: CmsSignatureOptions,
): Promise<Uint8Array> {
  return signCms(signer, prepareCmsSigner(key, chain), opts);
}

/** {@link createCmsSignature} with a chain parsed beforehand by {@link prepareCmsSigner}. */
export async function signCms(signer: HsmSigner, cms: CmsSigner, opts: CmsSignatureOptions): Promise<Uint8Array> {
  return signSignedData(signer, cms, { ...opts, contentType: OID.data });
}

/** What {@link signSignedData} signs: detached `id-data` (firmware) or encapsulated content of another type (TSTInfo). */
export interface SignedDataOptions extends CmsSignatureOptions {
  /** eContentType, also the content-type attribute. */
  contentType: string;
  /** Encapsulated content (DER); absent = detached. `digest` must be its digest. */
  content?: Uint8Array;
  /** Leave the signing-time attribute out (a timestamp token states its time in TSTInfo). */
  omitSigningTime?: boolean;
  /** Certificates embedded: the whole chain (default), the signer's alone, or none. */
  certificates?: 'chain' | 'signer' | 'none';
}

/**
 * CMS SignedData (RFC 5652) signed in the HSM. Signed attributes: content-type, message-digest, signing-time
 * (unless omitted), ESS signing-certificate-v2 (RFC 5035) and CMS algorithm protection (RFC 6211).
 * Returns the ContentInfo DER.
 */
export async function signSignedData(signer: HsmSigner, cms: CmsSigner, opts: SignedDataOptions): Promise<Uint8Array> {
  ensurePkijsEngine();
  const key = cms.key;
  const hash = opts.hash ?? defaultHashFor(key.algorithm);
  if (!HASHES[hash]) throw new PkiError('hash_not_supported');
  // RFC 8419 3.1: with signed attributes an Ed25519 SignerInfo digests with SHA-512 (MUST); a verifier that follows it
  // refuses another digest. The API maps keys declaring another hash with cmsHashOf; this holds for every caller.
  if (key.algorithm === 'Ed25519' && hash !== 'SHA-512') throw new PkiError('hash_not_supported', `Ed25519 CMS signatures digest with SHA-512, not ${hash}`);
  if (!(opts.digest instanceof Uint8Array) || opts.digest.length !== HASHES[hash].length) throw new PkiError('digest_length_mismatch');
  const certs = cms.certs;
  const signerCert = certs[0];
  const digestAlg = new pkijs.AlgorithmIdentifier({ algorithmId: HASHES[hash].oid });
  const sigAlg = signatureAlgorithm(key, hash);

  const essCertId = new asn1js.Sequence({
    value: [
      // hashAlgorithm omitted: DEFAULT id-sha256
      new asn1js.OctetString({ valueHex: toAb(cms.signerCertSha256) }),
      new asn1js.Sequence({
        value: [
          new asn1js.Sequence({
            value: [new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 4 }, value: [signerCert.issuer.toSchema()] })],
          }),
          signerCert.serialNumber,
        ],
      }),
    ],
  });
  const algProtection = new asn1js.Sequence({
    value: [
      digestAlg.toSchema(),
      new asn1js.Constructed({
        idBlock: { tagClass: 3, tagNumber: 1 },
        value: (sigAlg.toSchema() as asn1js.Sequence).valueBlock.value,
      }),
    ],
  });
  const attrs = sortForSetOf([
    attr(OID.contentType, new asn1js.ObjectIdentifier({ value: opts.contentType })),
    ...(opts.omitSigningTime ? [] : [attr(OID.signingTime, x509Time(opts.signingTime ?? new Date()).toSchema())]),
    attr(OID.messageDigest, new asn1js.OctetString({ valueHex: toAb(opts.digest) })),
    attr(OID.signingCertificateV2, new asn1js.Sequence({ value: [new asn1js.Sequence({ value: [essCertId] })] })),
    attr(OID.cmsAlgorithmProtection, algProtection),
  ]);
  // The signature covers the attributes encoded as an explicit SET OF (0x31), not the [0] IMPLICIT tag.
  const toBeSigned = new Uint8Array(new asn1js.Set({ value: attrs.map((a) => a.toSchema()) }).toBER(false));
  const signature = await signData(signer, key, toBeSigned, hash);
  const token = opts.timestamp ? await opts.timestamp(signature) : undefined;

  const signerInfo = new pkijs.SignerInfo({
    version: 1,
    sid: new pkijs.IssuerAndSerialNumber({ issuer: signerCert.issuer, serialNumber: signerCert.serialNumber }),
    digestAlgorithm: digestAlg,
    signedAttrs: new pkijs.SignedAndUnsignedAttributes({ type: 0, attributes: attrs }),
    signatureAlgorithm: sigAlg,
    signature: new asn1js.OctetString({ valueHex: toAb(signature) }),
    ...(token
      ? { unsignedAttrs: new pkijs.SignedAndUnsignedAttributes({ type: 1, attributes: [attr(TIMESTAMP_TOKEN_ATTRIBUTE, parseToken(token))] }) }
      : {}),
  });
  // certificates is a SET OF: DER (and OpenSSL, re-encoding any CMS) orders it by encoding, so the signer's certificate
  // need not come first; verifiers find it by the SignerInfo's sid (RFC 5652 5.3), never by position.
  const included = opts.certificates === 'none' ? [] : opts.certificates === 'signer' ? [signerCert] : cms.sortedCerts;
  const signedData = new pkijs.SignedData({
    // RFC 5652 5.1: version 3 when the content is not id-data.
    version: opts.contentType === OID.data ? 1 : 3,
    digestAlgorithms: [digestAlg],
    encapContentInfo: encapsulated(opts.contentType, opts.content),
    ...(included.length ? { certificates: included } : {}),
    signerInfos: [signerInfo],
  });
  const contentInfo = new pkijs.ContentInfo({ contentType: OID.signedData, content: signedData.toSchema(true) });
  return new Uint8Array(contentInfo.toSchema().toBER(false));
}
