import { z } from 'zod';
import { KeyIdRef } from './ids';
import { IsoDateTime } from './contract';
import { PageLimit } from './operations';

export const AuditOutcome = z.enum(['SUCCESS', 'DENIED', 'FAILED']);

/** The largest seq the audit log can hold (PostgreSQL bigint). */
export const MAX_SEQ = 9223372036854775807n;

/**
 * An audit seq written as text (a cursor, a command's argument): ASCII decimal digits within PostgreSQL's bigint, or
 * null. The one reading of a seq for the contract and the repository (past bigint the database refused it: a 500).
 */
export function parseSeq(text: string): bigint | null {
  if (!/^\d{1,19}$/.test(text)) return null;
  const seq = BigInt(text);
  return seq <= MAX_SEQ ? seq : null;
}

/** Query of `GET /api/v1/audit` (all optional; unknown parameters are refused). */
export const AuditQuery = z.strictObject({
  action: z.string().regex(/^[a-z0-9._-]{1,100}$/).optional(),
  outcome: AuditOutcome.optional(),
  /** Entra object id (oid) of the actor. */
  actor: z.guid().optional(),
  keyid: KeyIdRef.optional(),
  operationId: z.uuid().optional(),
  adminSessionId: z.uuid().optional(),
  from: IsoDateTime.optional(),
  to: IsoDateTime.optional(),
  // A seq: ASCII digits within PostgreSQL bigint (19 digits reach 9999999999999999999, which the database refused).
  cursor: z.string().regex(/^\d{1,19}$/).refine((c) => parseSeq(c) !== null, { message: 'cursor must be a seq: decimal digits, at most 2^63-1' }).optional(),
  // The page-size vocabulary of every list (plain ASCII digits 1..500): `0x10`, `1e2`, ` 7 ` are refused here too.
  limit: PageLimit.optional(),
});
export type AuditQuery = z.infer<typeof AuditQuery>;

export const AuditEventView = z.object({
  seq: z.string(),
  id: z.string(),
  at: z.string(),
  action: z.string(),
  outcome: AuditOutcome,
  errorCode: z.string().nullable(),
  actorTid: z.string().nullable(),
  actorOid: z.string().nullable(),
  actorName: z.string().nullable(),
  actorClient: z.string().nullable(),
  actorSubjectId: z.string().nullable(),
  keyid: z.string().nullable(),
  operationId: z.string().nullable(),
  adminSessionId: z.string().nullable(),
  digest: z.string().nullable(),
  requestId: z.string().nullable(),
  details: z.record(z.string(), z.unknown()),
  prevHash: z.string(),
  hash: z.string(),
});
export type AuditEventView = z.infer<typeof AuditEventView>;

export const AuditPage = z.object({ items: z.array(AuditEventView), nextCursor: z.string().nullable() });
export type AuditPage = z.infer<typeof AuditPage>;

/**
 * Why an entry does not verify: `link_broken` = its prevHash is not the previous entry's hash (entries deleted, inserted
 * or reordered before it); `content_changed` = its own hash does not match its content; `not_an_entry` (offline
 * verification of an export only) = a line that is no audit entry.
 */
export const AuditProblemKind = z.enum([
  'link_broken',
  'content_changed',
  'not_an_entry',
  // A signed checkpoint (docs/adr/0048-signed-audit-checkpoints.md) whose imprint is not the stored entry hash at its
  // seq (the entry or one before it was rewritten, or the sealed entry deleted), whose token does not verify, whose
  // signer is not this Keyserver's TSA key version, or that is out of order.
  'checkpoint_mismatch',
  'checkpoint_signature_invalid',
  'checkpoint_untrusted',
  'checkpoint_out_of_order',
  // An audit.checkpoint entry of the chain names a checkpoint (seq, token hash) that is not there: it was deleted or
  // replaced (docs/adr/0048 addendum); seq is the missing checkpoint's.
  'checkpoint_missing',
  // Offline verification of an export only: an entry of the v1 writer whose acknowledgement no verified signed
  // checkpoint covers (in the copy's unsealed tail, anyone can append one by the public hash rule; docs/adr/0048 addendum).
  'acknowledgement_unsealed',
]);
export const AuditProblem = z.object({
  seq: z.string(),
  kind: AuditProblemKind,
  reason: z.string(),
  /** true for a content_changed entry of the v1 writer (before hash rule v2) with an intact link: an operator may
   * acknowledge it after checking it (`keyserver-api audit-acknowledge`, docs/adr/0009-audit-canonical-form.md). */
  acknowledgeable: z.literal(true).optional(),
});
export type AuditProblem = z.infer<typeof AuditProblem>;

/** An entry written before hash rule v2 that verifies only under rule v1 over the bytes the request sent, or that an
 * operator acknowledged (docs/adr/0009). */
export const AuditLegacyEntry = z.object({ seq: z.string(), kind: z.literal('legacy_hash_v1'), reason: z.string() });
export type AuditLegacyEntry = z.infer<typeof AuditLegacyEntry>;

/** The signed checkpoints of the chain (docs/adr/0048-signed-audit-checkpoints.md). */
export const AuditSeal = z.object({
  /** true when at least one checkpoint verified; false: the chain is unsealed (no TSA key, or sealing disabled). */
  sealed: z.boolean(),
  /** true: checked against a trust anchor (the API: the TSA key version in this Keyserver's HSM). */
  anchored: z.boolean(),
  /** Checkpoints examined. */
  checkpoints: z.number().int(),
  /** seq and genTime of the last checkpoint that verified: every entry up to it is sealed. */
  lastSealedSeq: z.string().nullable(),
  lastSealedAt: z.string().nullable(),
  /** Entries after the last verified checkpoint (verified by the hash chain alone). */
  unsealedEntries: z.number().int(),
});
export type AuditSeal = z.infer<typeof AuditSeal>;

export const AuditVerification = z.object({
  /** true when no entry has a problem. */
  ok: z.boolean(),
  /** Entries verified before the first problem (all of them when ok). */
  checked: z.number().int(),
  /** seq of the first problem and its reason. */
  firstBadSeq: z.string().optional(),
  reason: z.string().optional(),
  /** Entries examined. */
  total: z.number().int(),
  /** Every problem in chain order (the first 1000; problemCount counts all). */
  problems: z.array(AuditProblem),
  problemCount: z.number().int(),
  /** Entries of the v1 writer verified under rule v1 (the first 1000; legacyCount counts all). */
  legacy: z.array(AuditLegacyEntry),
  legacyCount: z.number().int(),
  /** hash of the last entry: the chain head (64 zeros for an empty log). */
  lastHash: z.string(),
  /** How far the chain is sealed by signed checkpoints of this Keyserver's TSA (docs/adr/0048). */
  seal: AuditSeal.optional(),
});
export type AuditVerification = z.infer<typeof AuditVerification>;
