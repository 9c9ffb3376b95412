import { z } from 'zod';
import { IsoDateTime } from './contract';

export const AuditOutcome = z.enum(['SUCCESS', 'DENIED', 'FAILED']);

/** Query of `GET /api/v1/audit` (all optional; unknown parameters are refused). */
export const AuditQuery = z.strictObject({
  action: z.string().regex(/^[a-z0-9._-]{1,100}$/).optional(),
  outcome: AuditOutcome.optional(),
  /** Entra object id (oid) of the actor. */
  actor: z.guid().optional(),
  keyid: z.string().min(1).max(128).optional(),
  operationId: z.uuid().optional(),
  adminSessionId: z.uuid().optional(),
  from: IsoDateTime.optional(),
  to: IsoDateTime.optional(),
  cursor: z.string().regex(/^\d{1,19}$/).optional(),
  limit: z.coerce.number().int().min(1).max(500).optional(),
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

export const AuditVerification = z.object({
  ok: z.boolean(),
  checked: z.number().int(),
  firstBadSeq: z.string().optional(),
});
export type AuditVerification = z.infer<typeof AuditVerification>;
