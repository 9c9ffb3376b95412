import { sqlQuery, type Db, type Tx } from '../db';
import type { AuditInput } from '../types';
import { approvalComplete, stateAfterWithdrawal } from '../policy/operation-policy';
import { appendAuditTx } from './audit.repository';
import { enqueueOperationNotice } from './notification.repository';

// An approval counts only while its approver may give it (ADR 0017 addendum 2026-12-07, docs/security.md §6a): an
// enabled subject one of whose roles grants APPROVE on the key (the grant alone opens the approval route, ADR 0016).
// The hot path never asks: the reservation statement reads the operation's stored state. So every change that can
// take that right away (disabling a subject, changing its roles, changing a role's key grants, and a token proving
// that the subject's account became a guest, recorded by `SubjectRepository.recordAccount`: ADR 0040 addendum
// 2026-12-13) calls `withdrawLostApprovals` in ITS transaction, and `lockApprover` + `approvableKeyIds` make an
// approval re-check the right under the same locks, whatever the (cached) Actor or the request's token said.

/** Why an approval was withdrawn (`withdrawn_approval.reason`, the audit event's `reason`). */
export type WithdrawalReason = 'approver_disabled' | 'approver_became_guest' | 'approve_grant_lost';

/**
 * SQL: the approver of approval `a` may approve its key now (enabled, not recorded as a guest account, a role with
 * APPROVE on it). A subject recorded `GUEST` can hold no approval: his last token proved a partner tenant's account,
 * and a member token older than that proof must not count either (ADR 0040 addendum 2026-12-13).
 */
const ENTITLED = `EXISTS (
  SELECT 1 FROM "subject" s JOIN "subject_role" sr ON sr."subjectId" = s."id" JOIN "role_key_permission" g ON g."roleId" = sr."roleId"
   WHERE s."id" = a."approverId" AND s."enabled" AND s."account" <> 'GUEST' AND g."keyId" = a."keyId" AND 'APPROVE'::"KeyPermission" = ANY(g."permissions"))`;

/**
 * Locks the approver's subject row and its roles FOR SHARE, in that order, before an approval locks its operation: a
 * disable or role change (subject FOR NO KEY UPDATE) and a change of a role's grants (role FOR UPDATE) either committed before
 * and is read by {@link approvableKeyIds}, or waits for the approval and then withdraws it. Changes take the subject or
 * role first and operations after, so the order is the same everywhere (no deadlock).
 */
export async function lockApprover(tx: Tx, approverId: string): Promise<void> {
  await tx.$queryRaw`SELECT "id" FROM "subject" WHERE "id" = ${approverId}::uuid FOR SHARE`;
  await tx.$queryRaw`
    SELECT r."id" FROM "role" r JOIN "subject_role" sr ON sr."roleId" = r."id" WHERE sr."subjectId" = ${approverId}::uuid ORDER BY r."id" FOR SHARE OF r`;
}

/**
 * The key ids (key.id) the subject may approve now, as this transaction sees it (call {@link lockApprover} first): none
 * while he is disabled or recorded as a guest account (the guard's recording locks the row FOR NO KEY UPDATE, so it either
 * committed before and is read here, or waits for the approval and then withdraws it).
 */
export async function approvableKeyIds(tx: Tx, approverId: string): Promise<Set<string>> {
  const rows = await tx.$queryRaw<{ keyId: string }[]>`
    SELECT DISTINCT g."keyId"::text AS "keyId"
      FROM "subject" s JOIN "subject_role" sr ON sr."subjectId" = s."id" JOIN "role_key_permission" g ON g."roleId" = sr."roleId"
     WHERE s."id" = ${approverId}::uuid AND s."enabled" AND s."account" <> 'GUEST' AND 'APPROVE'::"KeyPermission" = ANY(g."permissions")`;
  return new Set(rows.map((r) => r.keyId));
}

/** One withdrawn approval, as {@link withdrawLostApprovals} recorded it. */
export interface WithdrawnApprovalRow {
  operationId: string;
  keyid: string;
  approverId: string;
  approvedAt: Date;
  reason: WithdrawalReason;
}

/**
 * Withdraws, in the caller's transaction (the admin change that may have taken the right, or the recording of a guest
 * account), every approval by
 * `subjectIds` that its approver may no longer give, on every operation still open (REQUESTED or APPROVED, window not
 * passed; finished operations keep their history as it was). Each approval row moves to `withdrawn_approval` with its
 * reason and gets an `operation.approval_withdrawn` audit event (actor, request and session of `audit`, the change);
 * an APPROVED operation that is no longer complete (`approvalComplete`) is REQUESTED again, so the next reservation
 * is refused `operation_not_usable`, and its approvers who may still approve and have not are asked again in a new
 * round of approval requests (ADR 0023 addendum "a new round"; the round is named in the withdrawal's audit events as
 * `approvalRequestRound`), and its orderer is told (`operation.reopened`, same round). Usages already reserved finish. Call it after the change, with the subjects (or
 * the role) already locked (FOR NO KEY UPDATE, FOR UPDATE for a role); the operations are locked here in id order, as approvals and
 * `setRequiredApprovers` lock them.
 */
export async function withdrawLostApprovals(tx: Tx, subjectIds: readonly string[], audit?: AuditInput): Promise<WithdrawnApprovalRow[]> {
  if (subjectIds.length === 0) return [];
  const ids = [...subjectIds];
  const ops = await tx.$queryRawUnsafe<{ id: string }[]>(
    `SELECT o."id"::text AS "id" FROM "operation" o
      WHERE o."state" IN ('REQUESTED', 'APPROVED') AND o."validTo" > now()
        AND o."id" IN (SELECT a."operationId" FROM "approval" a WHERE a."approverId" = ANY($1::uuid[]) AND NOT ${ENTITLED})
      ORDER BY o."id" FOR NO KEY UPDATE OF o`,
    ids,
  );
  if (ops.length === 0) return [];
  const opIds = ops.map((o) => o.id);
  const gone = await tx.$queryRawUnsafe<(WithdrawnApprovalRow & { id: string })[]>(
    `WITH gone AS (
       DELETE FROM "approval" a
        WHERE a."operationId" = ANY($2::uuid[]) AND a."approverId" = ANY($1::uuid[]) AND NOT ${ENTITLED}
       RETURNING a."id", a."operationId", a."keyId", a."approverId", a."createdAt",
         (SELECT CASE WHEN NOT s."enabled" THEN 'approver_disabled' WHEN s."account" = 'GUEST' THEN 'approver_became_guest' ELSE 'approve_grant_lost' END
            FROM "subject" s WHERE s."id" = a."approverId") AS "reason"
     ), kept AS (
       INSERT INTO "withdrawn_approval" ("id", "operationId", "keyId", "approverId", "approvedAt", "reason")
       SELECT "id", "operationId", "keyId", "approverId", "createdAt", "reason" FROM gone
       RETURNING "id"
     )
     SELECT g."id"::text AS "id", g."operationId"::text AS "operationId", k."keyid", g."approverId"::text AS "approverId",
            g."createdAt" AS "approvedAt", g."reason"
       FROM gone g JOIN "key" k ON k."id" = g."keyId"
      ORDER BY g."operationId", k."keyid", g."approverId"`,
    ids,
    opIds,
  );
  const reopened = new Map<string, number | null>();
  for (const id of opIds) {
    const keys = await tx.$queryRaw<{ requiredApprovers: number; approvals: number }[]>`
      SELECT ok."requiredApprovers", (SELECT count(*)::int FROM "approval" a WHERE a."operationId" = ok."operationId" AND a."keyId" = ok."keyId") AS "approvals"
        FROM "operation_key" ok WHERE ok."operationId" = ${id}::uuid`;
    const [op] = await tx.$queryRaw<{ state: 'REQUESTED' | 'APPROVED' }[]>`SELECT "state"::text AS "state" FROM "operation" WHERE "id" = ${id}::uuid`;
    if (stateAfterWithdrawal(op.state, approvalComplete(keys)) !== op.state) {
      await tx.$executeRaw`UPDATE "operation" SET "state" = 'REQUESTED', "updatedAt" = now() WHERE "id" = ${id}::uuid`;
      // The first round's requests were decided by the approvals just withdrawn: without a new round nobody who can
      // still approve would hear of it (the outbox writes one event per operation, event and round).
      reopened.set(id, await enqueueOperationNotice(tx, 'operation.approval_requested', id, { again: true }));
      // The orderer may be waiting to use it: he is told it is not usable any more, once per fall back (the round just
      // written; unique per operation, event and round like the requests).
      await enqueueOperationNotice(tx, 'operation.reopened', id);
    }
  }
  for (const w of gone) {
    await appendAuditTx(tx, {
      action: 'operation.approval_withdrawn',
      outcome: 'SUCCESS',
      actorTid: audit?.actorTid ?? null,
      actorOid: audit?.actorOid ?? null,
      actorName: audit?.actorName ?? null,
      actorClient: audit?.actorClient ?? null,
      actorSubjectId: audit?.actorSubjectId ?? null,
      adminSessionId: audit?.adminSessionId ?? null,
      requestId: audit?.requestId ?? null,
      operationId: w.operationId,
      keyid: w.keyid,
      details: {
        approverId: w.approverId,
        approvedAt: w.approvedAt.toISOString(),
        reason: w.reason,
        ...(audit ? { by: audit.action } : {}),
        reopened: reopened.has(w.operationId),
        ...(reopened.get(w.operationId) ? { approvalRequestRound: reopened.get(w.operationId) } : {}),
      },
    });
  }
  return gone.map(({ operationId, keyid, approverId, approvedAt, reason }) => ({ operationId, keyid, approverId, approvedAt, reason }));
}

/** SQL: the approvals on an open operation that their approver may no longer give (the reconciler's subject). */
const STALE_APPROVALS = `FROM "approval" a JOIN "operation" o ON o."id" = a."operationId"
  WHERE o."state" IN ('REQUESTED', 'APPROVED') AND o."validTo" > now() AND NOT ${ENTITLED}`;

/** The approvers holding an approval on an open operation that they may no longer give (the reconciler's query). */
export async function staleApproverIds(tx: Tx): Promise<string[]> {
  const rows = await tx.$queryRawUnsafe<{ id: string }[]>(`SELECT DISTINCT a."approverId"::text AS "id" ${STALE_APPROVALS} ORDER BY 1`);
  return rows.map((r) => r.id);
}

/**
 * Whether any approval is stale, read outside a transaction: the reconciler's cheap first look (nearly every pass
 * finds nothing). Only a hint: {@link staleApproverIds} decides again in the transaction, under the approvers' locks.
 */
export async function anyStaleApproval(db: Db): Promise<boolean> {
  return (await sqlQuery(db, `SELECT 1 ${STALE_APPROVALS} LIMIT 1`)).length > 0;
}
