/** Key algorithms the Keyserver can create inside the HSM. */
export type KeyAlgorithm =
  | 'RSA-2048'
  | 'RSA-3072'
  | 'RSA-4096'
  | 'EC-P256'
  | 'EC-P384'
  | 'EC-P521'
  | 'Ed25519';

export const KEY_ALGORITHMS: readonly KeyAlgorithm[] = [
  'RSA-2048',
  'RSA-3072',
  'RSA-4096',
  'EC-P256',
  'EC-P384',
  'EC-P521',
  'Ed25519',
];

export type HashName = 'SHA-256' | 'SHA-384' | 'SHA-512';

/** What to generate: the algorithm and a human label (CKA_LABEL); the CKA_ID is chosen by the signer. */
export interface KeySpec {
  algorithm: KeyAlgorithm;
  label: string;
}

/** Public description of an HSM key; the private half never leaves the token. */
export interface HsmKeyInfo {
  /** CKA_ID of the key pair, lower-case hex. Stable identifier to store in the database. */
  hsmKeyId: string;
  label: string;
  algorithm: KeyAlgorithm;
  /** SubjectPublicKeyInfo, DER. */
  spki: Uint8Array;
}

/**
 * Raw token mechanisms. The caller prepares the input:
 * - `rsa-pkcs1`: a DER DigestInfo (CKM_RSA_PKCS adds the PKCS#1 v1.5 padding);
 * - `rsa-pss`: a digest of `hash` (CKM_RSA_PKCS_PSS, MGF1 with the same hash, salt = hash length);
 * - `ecdsa`: a digest (CKM_ECDSA); the token returns r||s (IEEE P1363);
 * - `eddsa`: the whole message (CKM_EDDSA, pure Ed25519).
 */
export type SignMechanism =
  | { kind: 'rsa-pkcs1' }
  | { kind: 'rsa-pss'; hash: HashName }
  | { kind: 'ecdsa' }
  | { kind: 'eddsa' };

/** The only view of the HSM that domain code gets. Implemented by @keyserver/pkcs11-signer. */
export interface HsmSigner {
  generateKey(spec: KeySpec): Promise<HsmKeyInfo>;
  getKey(hsmKeyId: string): Promise<HsmKeyInfo>;
  sign(hsmKeyId: string, mechanism: SignMechanism, data: Uint8Array): Promise<Uint8Array>;
  /** Resolves when the token answers; rejects with an `hsm_unavailable` error otherwise. */
  health(): Promise<void>;
  close(): Promise<void>;
}

export function isRsa(alg: KeyAlgorithm): boolean {
  return alg.startsWith('RSA-');
}

export function isEc(alg: KeyAlgorithm): boolean {
  return alg.startsWith('EC-');
}

/** Hash a key signs with by default: SHA-256 for RSA and P-256, the curve's size otherwise. */
export function defaultHashFor(alg: KeyAlgorithm): HashName {
  switch (alg) {
    case 'EC-P384':
      return 'SHA-384';
    case 'EC-P521':
    case 'Ed25519':
      return 'SHA-512';
    default:
      return 'SHA-256';
  }
}
