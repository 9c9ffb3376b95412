import { z } from 'zod';
import { KeyIdRef } from './ids';
import { KeyLimitsView } from './key-limits';
import { MAX_SIGN_MESSAGE_BYTES } from './limits';

/**
 * The Keyserver REST contract: one zod schema per request and response body. The API validates with
 * these (strict: unknown fields are refused), the OpenAPI document is generated from them, and the
 * SPA and the CLI import the same types.
 */

const hex = /^(?:[0-9a-fA-F]{2})+$/;

export const Uuid = z.uuid();

/**
 * An RFC 3339 date-time with an offset whose UTC year is 0001-9999: the range JavaScript, ISO 8601 and PostgreSQL
 * timestamptz all read the same way (PostgreSQL has no year 0000, so it would fail deep inside a query). At most
 * millisecond precision (more digits only when they are zeros): JavaScript cuts further digits off, which would move a
 * window's start earlier than asked without a word (ADR 0017 addendum "time").
 */
export const IsoDateTime = z.iso
  .datetime({ offset: true })
  .refine((s) => {
    const year = new Date(s).getUTCFullYear();
    return year >= 1 && year <= 9999;
  }, 'the year must be between 0001 and 9999')
  .refine((s) => !/\.\d{3}\d*[1-9]/.test(s), 'at most millisecond precision (digits after the third fraction digit must be 0)');

export const KeyType = z.enum(['ROOT', 'CA', 'FW', 'TSA']);
export const KeyAlgorithm = z.enum(['RSA_2048', 'RSA_3072', 'RSA_4096', 'EC_P256', 'EC_P384', 'EC_P521', 'ED25519']);
export const HashAlgorithm = z.enum(['SHA256', 'SHA384', 'SHA512']);

/**
 * The hash a new key may declare for its algorithm: an ED25519 key's is SHA512 (or left to that default), since a CMS
 * signature with Ed25519 digests its content and signed attributes with SHA-512 (RFC 8419 3.1); a key declared with
 * another hash would sign firmware that conforming verifiers refuse.
 */
export const keyHashFits = (k: { algorithm: z.infer<typeof KeyAlgorithm>; hash?: z.infer<typeof HashAlgorithm> }): boolean =>
  k.algorithm !== 'ED25519' || k.hash === undefined || k.hash === 'SHA512';
export const KEY_HASH_RULE = { message: 'an ED25519 key hashes with SHA512 (RFC 8419)', path: ['hash'] };
export const KeyState = z.enum(['ACTIVE', 'RETIRED', 'REVOKED']);
export const InputFormat = z.enum(['hex', 'base64']);
export const InputPadding = z.enum(['none', 'digestinfo', 'pss']);
export const SignatureFormat = z.enum(['asn1', 'p1363']);
export const KeyUsage = z.enum(['sign', 'issue']);
export const OperationState = z.enum(['REQUESTED', 'APPROVED', 'EXHAUSTED', 'EXPIRED', 'REJECTED', 'CANCELLED']);

/** `GET /api/keys`: the shape existing Keyserver clients (the PKCS#11 module) read. */
export const LegacyKey = z.object({
  keyid: z.string(),
  keyinfo: z.string().describe('Human-readable summary that starts with the key type (ROOT, CA, FW or TSA), then algorithm, hash and approvers'),
  certificate: z.string().describe('X.509 certificate in PEM'),
});
export const LegacyKeyList = z.array(LegacyKey);

/** What `GET /api/v1/keys` and `GET /api/v1/keys/{keyid}` both say of a key. */
export const KeyFacts = z.object({
  keyid: z.string(),
  type: KeyType,
  algorithm: KeyAlgorithm,
  hash: HashAlgorithm,
  requiredApprovers: z.number().int().min(0),
  state: KeyState,
  product: z.string().nullable(),
  certificate: z.string().describe('X.509 certificate in PEM'),
  notBefore: z.string(),
  notAfter: z.string(),
});

export type KeyFacts = z.infer<typeof KeyFacts>;

export const KeyDetail = KeyFacts.extend({
  chain: z.array(z.string()).describe('PEM certificates from this key up to the ROOT, this key first'),
  usage: z.object({
    signOrders: z.number().int().describe('Sign orders and firmware signatures made with this key'),
    certificatesIssued: z.number().int().describe('Certificates this key issued'),
    lastUsedAt: z.string().nullable(),
  }),
  limits: KeyLimitsView.describe('What every operation on this key must stay within (PUT /api/v1/keys/{keyid}/limits)'),
});

/** `GET /api/v1/keys`: both filters are optional; without `state` keys of every state are listed. */
export const KeyListQuery = z.strictObject({
  state: KeyState.optional(),
  type: KeyType.optional(),
});
export type KeyListQuery = z.infer<typeof KeyListQuery>;

/** One entry of `GET /api/v1/keys`: the key's facts without its chain or usage (those are on the detail route). */
export const KeySummary = KeyFacts.extend({
  parentKeyid: z.string().nullable().describe('keyid of the issuing key; null for the ROOT'),
  revokedAt: z.string().nullable(),
  revocationReason: z.string().nullable(),
});
export type KeySummary = z.infer<typeof KeySummary>;

export const KeyList = z.object({ items: z.array(KeySummary).describe('Ordered by type (ROOT, CA, FW), then keyid') });
export type KeyList = z.infer<typeof KeyList>;


/** A sign order for an RSA or ECDSA key: the caller hashed the data and sends the digest (or a DigestInfo). */
export const SignDigestOrderRequest = z.strictObject({
  operationid: Uuid,
  keyid: KeyIdRef,
  inputdata: z.string().min(2).max(2048).describe('The digest (none, pss) or DER DigestInfo (digestinfo), in inputformat'),
  inputformat: InputFormat,
  inputpadding: InputPadding,
  signatureformat: SignatureFormat,
  description: z.string().trim().min(8).max(1000),
});
export type SignDigestOrderRequest = z.infer<typeof SignDigestOrderRequest>;

/**
 * A sign order for an Ed25519 key: PureEdDSA (RFC 8032) signs the message itself, so the caller sends the message.
 * Refused for RSA/ECDSA keys (`message_not_supported_for_key`); a digest order for an Ed25519 key is
 * `message_required`. The operation's declared digests bind it by the message's SHA-256.
 */
export const SignMessageOrderRequest = z.strictObject({
  operationid: Uuid,
  keyid: KeyIdRef,
  message: z
    .string()
    .min(1)
    .describe(`The whole message, standard base64 with padding (RFC 4648 section 4), 1 to ${MAX_SIGN_MESSAGE_BYTES} bytes once decoded (413 message_too_large beyond)`),
  description: z.string().trim().min(8).max(1000),
});
export type SignMessageOrderRequest = z.infer<typeof SignMessageOrderRequest>;

/** `POST /api/signorders`: a digest order (RSA, ECDSA keys) or a message order (Ed25519 keys). */
export const SignOrderRequest = z.union([SignDigestOrderRequest, SignMessageOrderRequest]);
export type SignOrderRequest = z.infer<typeof SignOrderRequest>;

export const SignDigestOrderResponse = z.object({
  keyid: z.string(),
  inputdata: z.string(),
  signatureformat: SignatureFormat,
  result: z.string().describe('The signature, hex'),
});
export const SignMessageOrderResponse = z.object({
  keyid: z.string(),
  messageSha256: z.string().describe('SHA-256 of the signed message, hex (what the audit log and the operation\'s digests hold)'),
  result: z.string().describe('The Ed25519 signature R || S (64 bytes), hex'),
});
export const SignOrderResponse = z.union([SignDigestOrderResponse, SignMessageOrderResponse]);
export type SignOrderResponse = z.infer<typeof SignOrderResponse>;

/** One line of text a person reads: no control characters, trimmed, not empty. */
// eslint-disable-next-line no-control-regex
const provenanceText = (max: number) => z.string().trim().min(1).max(max).regex(/^[^\u0000-\u001f\u007f-\u009f]+$/, 'no control characters');

/**
 * What a CI run declares about itself when it orders an operation. Shown to approvers next to the declared digests
 * and audited with the order; informational only: it never grants or limits anything, and the orderer vouches for it.
 */
export const OperationProvenance = z.strictObject({
  project: provenanceText(200).optional().describe('Project or repository, e.g. "demo/gadget-firmware"'),
  pipeline: provenanceText(200).optional().describe('Pipeline or workflow name'),
  run: provenanceText(200).optional().describe('Run or build number/id'),
  commit: z.string().regex(/^[0-9a-fA-F]{7,64}$/, 'a hex commit id').optional().describe('Source commit the run built'),
  url: z.url({ protocol: /^https$/ }).max(2048).optional().describe('https link to the run'),
});
export type OperationProvenance = z.infer<typeof OperationProvenance>;

export const CreateOperationRequest = z
  .strictObject({
    description: z.string().trim().min(8).max(1000),
    validFrom: IsoDateTime,
    validTo: IsoDateTime,
    keys: z
      .array(z.strictObject({ keyid: KeyIdRef, usages: z.number().int().min(1).max(1_000_000) }))
      .min(1)
      .max(32),
    digests: z.array(z.string().regex(hex).max(128)).max(10_000).optional(),
    provenance: OperationProvenance.optional(),
  })
  .refine((o) => Date.parse(o.validTo) > Date.parse(o.validFrom), { message: 'validTo must be after validFrom', path: ['validTo'] })
  .refine((o) => new Set(o.keys.map((k) => k.keyid)).size === o.keys.length, { message: 'a key appears twice', path: ['keys'] });
export type CreateOperationRequest = z.infer<typeof CreateOperationRequest>;

export const OperationKeyView = z.object({
  keyid: z.string(),
  usagesAllowed: z.number().int(),
  usagesUsed: z.number().int(),
  requiredApprovers: z.number().int(),
  approvals: z.number().int(),
  approvalsMissing: z.number().int().min(0).describe('Approvals this key still needs before the operation can be used'),
  type: KeyType,
  algorithm: KeyAlgorithm,
  hash: HashAlgorithm,
  environment: z.enum(['production', 'development']).describe('production: the key needs approvers; development: it does not'),
  product: z.string().nullable(),
  approvedBy: z.array(z.object({ subjectId: Uuid, displayName: z.string(), approvedAt: z.string() })).describe('Who approved this key, oldest first'),
  limits: KeyLimitsView.nullable().describe('The limits in force for this key now (the operation was checked against those in force when it was created)'),
});

export const OperationView = z.object({
  id: Uuid,
  description: z.string(),
  state: OperationState,
  orderer: z.object({ subjectId: Uuid, displayName: z.string() }),
  validFrom: z.string(),
  validTo: z.string(),
  digests: z.array(z.string()),
  provenance: OperationProvenance.nullable().describe('What the ordering CI run declared about itself (null when it declared nothing)'),
  rejectionReason: z.string().nullable(),
  keys: z.array(OperationKeyView),
  createdAt: z.string(),
});
export type OperationView = z.infer<typeof OperationView>;

export const Problem = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  code: z.string(),
  detail: z.string().optional(),
  requestId: z.string().optional(),
});
