import type { HashAlgorithm, KeyAlgorithm } from '@keyserver/data-access';
import type { HashName, KeyAlgorithm as PkiAlgorithm } from '@keyserver/pki';

// The database spells algorithms as enum identifiers, the PKI library as their usual names.
const TO_PKI: Record<KeyAlgorithm, PkiAlgorithm> = {
  RSA_2048: 'RSA-2048',
  RSA_3072: 'RSA-3072',
  RSA_4096: 'RSA-4096',
  EC_P256: 'EC-P256',
  EC_P384: 'EC-P384',
  EC_P521: 'EC-P521',
  ED25519: 'Ed25519',
};

export const toPkiAlgorithm = (a: KeyAlgorithm): PkiAlgorithm => TO_PKI[a];

export function fromPkiAlgorithm(a: PkiAlgorithm): KeyAlgorithm {
  const found = (Object.keys(TO_PKI) as KeyAlgorithm[]).find((k) => TO_PKI[k] === a);
  if (!found) throw new RangeError(`unknown algorithm ${a}`);
  return found;
}

const HASH_NAME: Record<HashAlgorithm, HashName> = { SHA256: 'SHA-256', SHA384: 'SHA-384', SHA512: 'SHA-512' };
export const toHashName = (h: HashAlgorithm): HashName => HASH_NAME[h];

/**
 * The digest of a CMS signature (firmware, timestamps) by this key: SHA-512 for Ed25519 whatever the key declares, as
 * RFC 8419 3.1 requires (keys created before that rule was enforced may declare another hash), else the key's hash.
 */
export const cmsHashOf = (k: { algorithm: KeyAlgorithm; hash: HashAlgorithm }): HashName => (k.algorithm === 'ED25519' ? 'SHA-512' : HASH_NAME[k.hash]);

/** The hash a key signs with unless configured otherwise: matches the key's strength. */
export function hashForAlgorithm(a: KeyAlgorithm): HashAlgorithm {
  if (a === 'EC_P384') return 'SHA384';
  if (a === 'EC_P521' || a === 'ED25519') return 'SHA512';
  return 'SHA256';
}

/** The `keyinfo` text of GET /api/keys. */
export function keyInfo(k: { type: string; algorithm: KeyAlgorithm; hash: HashAlgorithm; requiredApprovers: number }): string {
  return `${k.type} ${TO_PKI[k.algorithm]} ${HASH_NAME[k.hash]}, ${k.requiredApprovers} approver(s)`;
}
