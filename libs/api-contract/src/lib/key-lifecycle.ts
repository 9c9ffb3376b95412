import { z } from 'zod';
import { SubjectRef } from './admin-sessions';
import { HashAlgorithm, KEY_HASH_RULE, KeyAlgorithm, keyHashFits, KeyState } from './contract';
import { CertificateNameText, NewKeyId } from './key-admin';

const Pem = z.string().min(64).max(64 * 1024);

/** The subject DN of a certificate the Keyserver makes or asks for. */
export const CertificateSubject = z.strictObject({
  commonName: CertificateNameText,
  organization: CertificateNameText.optional(),
  organizationalUnit: CertificateNameText.optional(),
  country: z.string().regex(/^[A-Z]{2}$/).optional(),
});

/** `POST /api/v1/keys/root-ceremony` (ACTIVE admin session with at least two administrators). */
export const RootCeremonyRequest = z.strictObject({
  keyid: NewKeyId,
  algorithm: KeyAlgorithm,
  hash: HashAlgorithm.optional(),
  subject: CertificateSubject,
  validityDays: z.number().int().min(1).max(36_500),
  pathLen: z.number().int().min(0).max(8).optional().describe('CA levels allowed below the ROOT (default: no constraint)'),
  requiredApprovers: z.number().int().min(0).max(10).default(2),
  mode: z
    .enum(['self-signed', 'external'])
    .describe('self-signed: the ROOT certifies itself and is ACTIVE at once; external: a CSR for an existing offline root, ACTIVE after POST .../certificate'),
}).refine(keyHashFits, KEY_HASH_RULE);
export type RootCeremonyRequest = z.infer<typeof RootCeremonyRequest>;

export const RootCeremonyResult = z.object({
  keyid: z.string(),
  state: z.enum(['ACTIVE', 'AWAITING_CERTIFICATE']),
  algorithm: KeyAlgorithm,
  spkiSha256: z.string().describe('SHA-256 of the public key (SubjectPublicKeyInfo DER), hex: compare it out of band'),
  certificate: z.string().nullable().describe('The self-signed certificate (PEM); null while awaiting the external one'),
  csr: z.string().nullable().describe('PKCS#10 request signed in the HSM (external mode)'),
  administrators: z.array(SubjectRef).describe('The administrators of the session the ceremony ran in'),
  adminSessionId: z.string(),
});
export type RootCeremonyResult = z.infer<typeof RootCeremonyResult>;

/** A version of a key awaiting its external certificate (1: the ceremony's key; higher: a pending rotation), when the caller names it. */
const PendingVersionNumber = z.number().int().min(1).max(999_999).optional();

/** `POST /api/v1/keys/{keyid}/certificate`: the certificate an external CA issued for a key awaiting it. */
export const ImportCertificateRequest = z.strictObject({
  version: PendingVersionNumber.describe('The pending version this certificate is for (a rotation of an externally certified key); must match when given'),
  certificate: Pem,
  chain: z.array(Pem).min(1).max(8).describe('The certificates above it, issuer first, ending with the self-signed root'),
});
export type ImportCertificateRequest = z.infer<typeof ImportCertificateRequest>;

/**
 * `POST /api/v1/keys/{keyid}/external-chain`: the external CA above an imported ROOT renewed its own certificate (the
 * offline intermediate, same key pair) and/or re-issued the ROOT's certificate (same key pair, same subject): the new
 * chain, and the re-issued certificate if there is one, replace what is stored (ADR 0020 addendum).
 */
export const ExternalChainRequest = z.strictObject({
  certificate: Pem.optional().describe("The ROOT's certificate re-issued by the external CA (same public key and subject); omitted: the current one stays"),
  chain: z.array(Pem).min(1).max(8).describe('The certificates above it, issuer first, ending with the self-signed root the ROOT was imported under'),
});
export type ExternalChainRequest = z.infer<typeof ExternalChainRequest>;

/** `GET /api/v1/keys/{keyid}/csr`. */
export const PendingKeyView = z.object({
  keyid: z.string(),
  version: z.number().int().describe('1 for a key awaiting its first certificate; the pending version of a rotation otherwise'),
  algorithm: KeyAlgorithm,
  csr: z.string(),
  spkiSha256: z.string(),
  createdAt: z.string(),
});

/** `POST /api/v1/keys/{keyid}/csr/cancellation`: ends what waits for an external certificate (ADR 0042). */
export const CancelPendingRequest = z.strictObject({
  version: PendingVersionNumber.describe('What is cancelled: 1 for a key awaiting its first certificate, the pending version of a rotation otherwise; must match when given'),
});
export type CancelPendingRequest = z.infer<typeof CancelPendingRequest>;

export const PendingCancellation = z.object({
  keyid: z.string(),
  version: z.number().int().describe('1: the external ceremony was cancelled (the keyid is free again); higher: the pending rotation (the key keeps its current version)'),
  spkiSha256: z.string().nullable().describe('SHA-256 of the cancelled public key, hex (null when the HSM no longer held the key pair)'),
  administrators: z.array(SubjectRef).describe('The administrators of the session the cancellation ran in'),
  adminSessionId: z.string(),
  keyPairDestroyed: z
    .boolean()
    .describe('Whether the HSM objects were destroyed now; false: the cancellation stands (nothing pending, nothing importable) and the recorded key pair is destroyed by a later pass (ADR 0042)'),
});
export type PendingCancellation = z.infer<typeof PendingCancellation>;

/** `POST /api/v1/keys/{keyid}/renewal` and `/rotation`. */
export const NewKeyVersionRequest = z.strictObject({
  validityDays: z.number().int().min(1).max(36_500),
});
export type NewKeyVersionRequest = z.infer<typeof NewKeyVersionRequest>;

/** `POST /api/v1/keys/{keyid}/retirement` and `/destruction`: no body (an empty object at most). */
export const NoBodyRequest = z.strictObject({});

export const KeyVersionView = z.object({
  version: z.number().int(),
  state: KeyState,
  current: z.boolean().describe('New sign orders and issuance use this version'),
  certificate: z.string().describe('PEM; published until it expires, whatever the state'),
  serial: z.string(),
  notBefore: z.string(),
  notAfter: z.string(),
  spkiSha256: z.string(),
  issuerKeyid: z.string().nullable(),
  issuerVersion: z.number().int().nullable(),
  createdAt: z.string(),
  retiredAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
  revocationReason: z.string().nullable(),
  destroyedAt: z.string().nullable(),
});
export type KeyVersionView = z.infer<typeof KeyVersionView>;

/** `GET /api/v1/keys/{keyid}/versions`: the verification material of every version, oldest first. */
export const KeyVersionList = z.object({
  keyid: z.string(),
  state: KeyState,
  currentVersion: z.number().int(),
  pendingVersion: z.number().int().nullable().describe('A rotation waiting for the external root\'s certificate (GET .../csr, POST .../certificate); never used before'),
  destroyedAt: z.string().nullable(),
  items: z.array(KeyVersionView),
});
export type KeyVersionList = z.infer<typeof KeyVersionList>;
