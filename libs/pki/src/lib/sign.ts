import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { webcrypto } from 'node:crypto';
import { HashName, HsmKeyInfo, HsmSigner, defaultHashFor, isEc, isRsa } from './hsm-signer';
import { HASHES, OID, curveSize, decodeDigestInfo, digest, encodeDigestInfo, p1363ToDer } from './der';
import { PkiError } from './pki-error';
import { MAX_SIGN_MESSAGE_BYTES } from '@keyserver/api-contract/limits';

let engineSet = false;
/** pkijs verifies with Node's webcrypto; signing never goes through pkijs engines (the HSM signs TBS bytes). */
export function ensurePkijsEngine(): void {
  if (engineSet) return;
  pkijs.setEngine('node', new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as Crypto }));
  engineSet = true;
}

/** Input of {@link signDigest}, mirroring an API sign order. */
export interface SignDigestRequest {
  /** A bare digest (`none`, `pss`) or a DER DigestInfo (`digestinfo`). */
  input: Uint8Array;
  /** `digestinfo`: RSA PKCS#1 v1.5 over the given DigestInfo; `none`: PKCS#1 v1.5 (RSA) or ECDSA over a bare digest; `pss`: RSA-PSS over a bare digest. */
  inputPadding: 'digestinfo' | 'none' | 'pss';
  /** ECDSA output encoding; RSA signatures are PKCS#1 only (`asn1`; `p1363` is refused). Default `asn1`. */
  signatureFormat?: 'asn1' | 'p1363';
  /** Hash the key signs with; defaults to {@link defaultHashFor} the key's algorithm. */
  hash?: HashName;
}

/**
 * Checks that a digest order's form is one `algorithm` honestly produces, without signing (the sign order service runs
 * it before a usage is reserved; {@link signDigest} runs it again): RSA signs `none` (the server wraps the digest in
 * its DigestInfo), `digestinfo` (DER naming the key's hash) or `pss`, and has one output, PKCS#1's (`asn1`; `p1363` is
 * an ECDSA encoding: `signature_format_not_supported_for_key`); ECDSA signs only a bare digest (`none`, else
 * `padding_not_supported_for_key`) in `asn1` or `p1363`; a digest is exactly the hash's length; Ed25519 signs messages
 * (`message_required`).
 */
export function checkDigestOrder(algorithm: HsmKeyInfo['algorithm'], req: SignDigestRequest): void {
  const hash = req.hash ?? defaultHashFor(algorithm);
  if (!HASHES[hash]) throw new PkiError('hash_not_supported');
  const format = req.signatureFormat ?? 'asn1';
  if (isRsa(algorithm)) {
    if (format !== 'asn1') throw new PkiError('signature_format_not_supported_for_key', `${format} is an ECDSA encoding; ${algorithm} signatures are asn1 (PKCS#1)`);
    if (req.inputPadding === 'digestinfo') {
      const di = decodeDigestInfo(req.input);
      if (di.hash !== hash) throw new PkiError('digestinfo_hash_mismatch', `key signs with ${hash}, DigestInfo names ${di.hash}`);
      return;
    }
    checkDigestLength(hash, req.input);
    return;
  }
  if (isEc(algorithm)) {
    if (req.inputPadding !== 'none') throw new PkiError('padding_not_supported_for_key', `${req.inputPadding} with ${algorithm}`);
    checkDigestLength(hash, req.input);
    return;
  }
  throw new PkiError('message_required', `${algorithm} signs the message itself, not a digest`);
}

/**
 * Signs a client-supplied digest in the HSM after checking it fits the key ({@link checkDigestOrder}):
 * the digest length must match the hash, a DigestInfo must be DER naming that hash.
 * Ed25519 keys sign messages, not digests, and are refused (`message_required`; see {@link signMessage}).
 */
export async function signDigest(signer: HsmSigner, key: HsmKeyInfo, req: SignDigestRequest): Promise<Uint8Array> {
  checkDigestOrder(key.algorithm, req);
  const hash = req.hash ?? defaultHashFor(key.algorithm);
  if (isRsa(key.algorithm)) {
    if (req.inputPadding === 'digestinfo') return signer.sign(key.hsmKeyId, { kind: 'rsa-pkcs1' }, encodeDigestInfo(hash, decodeDigestInfo(req.input).digest));
    if (req.inputPadding === 'pss') return signer.sign(key.hsmKeyId, { kind: 'rsa-pss', hash }, req.input);
    return signer.sign(key.hsmKeyId, { kind: 'rsa-pkcs1' }, encodeDigestInfo(hash, req.input));
  }
  const raw = ecdsaOutput(key.algorithm, await signer.sign(key.hsmKeyId, { kind: 'ecdsa' }, req.input));
  return (req.signatureFormat ?? 'asn1') === 'p1363' ? raw : p1363ToDer(raw);
}

/**
 * A token's CKM_ECDSA answer checked and put in its one form: r || s, each exactly the curve's size. An answer that
 * is empty, odd, or whose r or s (leading zeros aside) exceeds the curve is a faulty token: never handed out.
 */
function ecdsaOutput(algorithm: HsmKeyInfo['algorithm'], raw: Uint8Array): Uint8Array {
  const size = curveSize(algorithm);
  const half = raw.length / 2;
  if (raw.length === 0 || raw.length % 2 !== 0) throw new Error('bad ECDSA signature');
  const out = new Uint8Array(2 * size);
  for (const [from, to] of [[0, 0], [half, size]]) {
    let i = from;
    while (i < from + half - 1 && raw[i] === 0) i++;
    const len = from + half - i;
    if (len > size) throw new Error('bad ECDSA signature');
    out.set(raw.subarray(i, from + half), to + size - len);
  }
  return out;
}

// The cap is the API's (one vocabulary): PureEdDSA needs the whole message in one HSM call.
export { MAX_SIGN_MESSAGE_BYTES };

/**
 * Checks that `key` signs whole messages (Ed25519) and that `message` fits, before anything is reserved or signed:
 * `message_not_supported_for_key` for RSA/ECDSA keys (they sign digests), `message_too_large` beyond
 * {@link MAX_SIGN_MESSAGE_BYTES}.
 */
export function checkMessage(algorithm: HsmKeyInfo['algorithm'], message: Uint8Array): void {
  if (algorithm !== 'Ed25519') throw new PkiError('message_not_supported_for_key', `${algorithm} keys sign digests (inputdata), not messages`);
  if (message.length > MAX_SIGN_MESSAGE_BYTES) throw new PkiError('message_too_large', `messages are at most ${MAX_SIGN_MESSAGE_BYTES} bytes, got ${message.length}`);
}

/** Signs a whole message with an Ed25519 key in the HSM (CKM_EDDSA, PureEdDSA): the 64-byte R || S of RFC 8032. */
export async function signMessage(signer: HsmSigner, key: HsmKeyInfo, message: Uint8Array): Promise<Uint8Array> {
  checkMessage(key.algorithm, message);
  const sig = await signer.sign(key.hsmKeyId, { kind: 'eddsa' }, message);
  // A token answering anything but 64 bytes is faulty: never hand it out as a signature.
  if (sig.length !== 64) throw new Error(`the HSM returned a ${sig.length}-byte Ed25519 signature`);
  return sig;
}

function checkDigestLength(hash: HashName, d: Uint8Array): void {
  if (d.length !== HASHES[hash].length) {
    throw new PkiError('digest_length_mismatch', `${hash} digests are ${HASHES[hash].length} bytes, got ${d.length}`);
  }
}

/** The X.509/CMS signature algorithm an issuer key produces. */
export function signatureAlgorithm(key: HsmKeyInfo, hash = defaultHashFor(key.algorithm)): pkijs.AlgorithmIdentifier {
  if (key.algorithm === 'Ed25519') return new pkijs.AlgorithmIdentifier({ algorithmId: OID.ed25519 });
  if (isRsa(key.algorithm)) {
    const oid = { 'SHA-256': OID.sha256WithRSA, 'SHA-384': OID.sha384WithRSA, 'SHA-512': OID.sha512WithRSA }[hash];
    return new pkijs.AlgorithmIdentifier({ algorithmId: oid, algorithmParams: new asn1js.Null() });
  }
  const oid = { 'SHA-256': OID.ecdsaSha256, 'SHA-384': OID.ecdsaSha384, 'SHA-512': OID.ecdsaSha512 }[hash];
  return new pkijs.AlgorithmIdentifier({ algorithmId: oid });
}

/** Signs `data` (TBS bytes, signed attributes) in the HSM the way {@link signatureAlgorithm} says; ECDSA as DER. */
export async function signData(
  signer: HsmSigner,
  key: HsmKeyInfo,
  data: Uint8Array,
  hash = defaultHashFor(key.algorithm),
): Promise<Uint8Array> {
  if (key.algorithm === 'Ed25519') return signer.sign(key.hsmKeyId, { kind: 'eddsa' }, data);
  const d = digest(hash, data);
  if (isRsa(key.algorithm)) return signer.sign(key.hsmKeyId, { kind: 'rsa-pkcs1' }, encodeDigestInfo(hash, d));
  // The token's output is checked before it is wrapped (r and s, leading zeros aside, fit the curve's size).
  return p1363ToDer(ecdsaOutput(key.algorithm, await signer.sign(key.hsmKeyId, { kind: 'ecdsa' }, d)));
}
