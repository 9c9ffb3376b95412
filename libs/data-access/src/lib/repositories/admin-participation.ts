import { UUID, type Tx } from '../db';
import { DataAccessError } from '../errors';
import { HUMAN_ONLY_NATURES } from '@keyserver/api-contract';
import type { AuditInput, SubjectKind } from '../types';
import { appendAuditTx } from './audit.repository';

// HUMAN_ONLY_NATURES (@keyserver/api-contract): a CLIENT subject may not hold a role carrying them (four eyes needs people).
const humanOnly = (natures: readonly string[]): string[] => natures.filter((n) => (HUMAN_ONLY_NATURES as readonly string[]).includes(n));

/** Why an administrative session was ended by a change of one of its administrators. */
export type SessionEndReason = 'participant_disabled' | 'participant_lost_administrator' | 'participant_became_guest';

/**
 * Locks the named roles FOR SHARE (a concurrent role change that adds a human-only nature waits for this
 * transaction, or this one waits for it and reads its result) and refuses them for a CLIENT subject.
 */
export async function lockRolesForSubject(tx: Tx, kind: SubjectKind, names: string[]): Promise<{ id: string; name: string; natures: string[] }[]> {
  if (names.length === 0) return [];
  const roles = await tx.$queryRaw<{ id: string; name: string; natures: string[] }[]>`
    SELECT "id", "name", "natures"::text[] AS "natures" FROM "role" WHERE "name" = ANY(${names}::text[]) ORDER BY "id" FOR SHARE`;
  const missing = names.filter((n) => !roles.some((r) => r.name === n));
  if (missing.length) throw new DataAccessError('not_found', `unknown roles: ${missing.join(', ')}`);
  if (kind === 'CLIENT') {
    const bad = roles.find((r) => humanOnly(r.natures).length > 0);
    if (bad) throw new DataAccessError('human_only_nature', `role ${bad.name} carries ${humanOnly(bad.natures).join(', ')}, which a CLIENT subject may not hold`);
  }
  return roles;
}

/**
 * Refuses human-only natures on a role (already locked FOR UPDATE by the caller) that a CLIENT subject holds.
 * Assignments lock the role FOR SHARE first (see {@link lockRolesForSubject}), so none can slip in meanwhile.
 */
export async function assertNoClientHolder(tx: Tx, roleId: string, roleName: string, natures: readonly string[]): Promise<void> {
  const bad = humanOnly(natures);
  if (bad.length === 0) return;
  const clients = await tx.$queryRaw<{ id: string }[]>`
    SELECT s."id" FROM "subject_role" sr JOIN "subject" s ON s."id" = sr."subjectId"
    WHERE sr."roleId" = ${roleId}::uuid AND s."kind" = 'CLIENT'::"SubjectKind" LIMIT 1`;
  if (clients.length) throw new DataAccessError('human_only_nature', `role ${roleName} is held by a CLIENT subject, which may not hold ${bad.join(', ')}`);
}

/** What the administrative session a change runs in allows (ADR 0044). */
export interface SessionScope {
  /** Opened to give or take the human-only natures, and authorized as such. */
  powers: boolean;
  /**
   * Authorizations beyond the creator a session needs (the session's own `requiredApprovals`): the installation must
   * keep that many plus one enabled member administrators, or nobody could open a session again. Absent (fixtures,
   * scopes built by hand): not checked.
   */
  requiredApprovals?: number;
  /**
   * The session itself, as the gate handed it over (an `AdminSession` is a scope): with `id` and `creatorId` the
   * change's transaction holds it ({@link holdSession}). Absent (fixtures, scopes built by hand): not held.
   */
  id?: string;
  creatorId?: string;
  approverIds?: readonly string[];
}

/**
 * Holds the session a change runs in for the change's transaction (ADR 0012 addendum "a change holds its session").
 * The gate reads the session before the transaction starts; between that read and the commit the session may be
 * closed, expire, or lose an administrator who opened or authorized it (disabled, role taken, recorded as a guest), on
 * this replica or another. So, first in the transaction: the subject rows of the session's administrators and of
 * `subjectIds` (the subjects the change writes or whose administrator nature it may take) are locked FOR NO KEY
 * UPDATE in id order, the order every such change takes them in, then the session is read again and the change is
 * refused `session_not_active` unless it is ACTIVE, not past its expiry (read after the locks were granted, to the
 * millisecond: `expiresAt` is the first instant it is not) and every one of those administrators is still an enabled
 * administrator not recorded as a guest. Every change that ends a session by taking the administrator nature from a
 * participant writes that participant's row or its role, so a change of the same session either committed before
 * (and is read here) or waits for this one: two participants disabling each other on two replicas cannot both
 * commit. The session row is read, not locked: a close or an expiry only ever follows a change that read it ACTIVE.
 * Every change that needs a session calls it first in its transaction, before any role, keyid, operation, key, CRL or
 * advisory lock: subject rows are the head of the one lock order (ADR 0012 addendum "every change that needs a
 * session holds it").
 */
export async function holdSession(tx: Tx, scope: SessionScope | undefined, subjectIds: readonly string[] = [], clock: () => Date = () => new Date()): Promise<void> {
  const participants = scope?.id && scope.creatorId ? [...new Set([scope.creatorId, ...(scope.approverIds ?? [])])] : [];
  const ids = [...new Set([...participants, ...subjectIds])].filter((x) => UUID.test(x)).sort();
  if (ids.length) await tx.$queryRaw`SELECT "id" FROM "subject" WHERE "id" = ANY(${ids}::uuid[]) ORDER BY "id" FOR NO KEY UPDATE`;
  if (!scope?.id || participants.length === 0) return;
  const refuse = (why: string) => new DataAccessError('session_not_active', `the administrative session this change runs in ${why}`);
  if (!UUID.test(scope.id)) throw refuse('is unknown');
  const [s] = await tx.$queryRaw<{ state: string; expiresAt: Date }[]>`
    SELECT "state"::text AS "state", "expiresAt" FROM "admin_session" WHERE "id" = ${scope.id}::uuid`;
  if (!s) throw refuse('is unknown');
  if (s.state !== 'ACTIVE') throw refuse(`is ${s.state}`);
  if (s.expiresAt.getTime() <= clock().getTime()) throw refuse('expired');
  for (const p of participants) {
    if (!(await isEnabledAdministrator(tx, p))) throw refuse('lost an administrator who opened or authorized it');
  }
}

/** The human-only natures among `natures`. */
export const humanOnlyOf = humanOnly;

/** True when an enabled subject holds the role (locked by the caller). */
export async function enabledHolder(tx: Tx, roleId: string): Promise<boolean> {
  const rows = await tx.$queryRaw<{ id: string }[]>`
    SELECT s."id" FROM "subject_role" sr JOIN "subject" s ON s."id" = sr."subjectId" WHERE sr."roleId" = ${roleId}::uuid AND s."enabled" LIMIT 1`;
  return rows.length > 0;
}

/**
 * The human-only natures a subject holds as this transaction sees it: none while it is disabled. Its roles are
 * locked FOR SHARE first, so a concurrent change of their natures either waits for this transaction (and then
 * counts this subject among its holders) or commits first (and is read here).
 */
export async function humanOnlyHeld(tx: Tx, subjectId: string): Promise<string[]> {
  await tx.$queryRaw`SELECT r."id" FROM "role" r JOIN "subject_role" sr ON sr."roleId" = r."id" WHERE sr."subjectId" = ${subjectId}::uuid ORDER BY r."id" FOR SHARE OF r`;
  const rows = await tx.$queryRaw<{ nature: string }[]>`
    SELECT DISTINCT n::text AS "nature"
    FROM "subject" s JOIN "subject_role" sr ON sr."subjectId" = s."id" JOIN "role" r ON r."id" = sr."roleId", unnest(r."natures") n
    WHERE s."id" = ${subjectId}::uuid AND s."enabled" AND n::text = ANY(${[...HUMAN_ONLY_NATURES]}::text[])
    ORDER BY 1`;
  return rows.map((r) => r.nature);
}

/**
 * Refuses a change that gives or takes a human-only nature (`before` -> `after`, as held) in a session not opened
 * for it: who may approve and administer is the one thing an administrator acting alone in a session must not
 * change, or she could make an alternate identity her second pair of eyes (ADR 0044). Without a scope (no session:
 * the bootstrap, fixtures) the caller answers for it.
 */
export function assertPowersInScope(scope: SessionScope | undefined, before: readonly string[], after: readonly string[], what: string): void {
  if (!scope || scope.powers) return;
  const changed = [...new Set([...before, ...after])].filter((n) => before.includes(n) !== after.includes(n)).sort();
  if (changed.length) throw new DataAccessError('admin_session_scope', `${what} would give or take ${changed.join(', ')}: only a session opened with powers may`);
}

/**
 * True when the subject is enabled, not recorded as a guest account (ADR 0040 addendum 2026-12-13: a member token older
 * than the guest proof must not open or authorize) and holds the administrator nature, as this transaction sees it.
 */
export async function isEnabledAdministrator(tx: Tx, subjectId: string): Promise<boolean> {
  const rows = await tx.$queryRaw<{ ok: boolean }[]>`
    SELECT s."enabled" AND s."account" <> 'GUEST' AND EXISTS (
      SELECT 1 FROM "subject_role" sr JOIN "role" r ON r."id" = sr."roleId"
      WHERE sr."subjectId" = s."id" AND 'ADMINISTRATOR'::"Nature" = ANY(r."natures")) AS "ok"
    FROM "subject" s WHERE s."id" = ${subjectId}::uuid`;
  return rows[0]?.ok === true;
}

/**
 * Opening or authorizing a session: the subject must still be an enabled administrator inside the transaction.
 * The subject row (FOR SHARE) and its roles (FOR SHARE) are locked, so a concurrent disable or role change either
 * waits for this transaction (and then sees its authorization and ends the session) or commits first (and this
 * is refused).
 */
export async function assertEnabledAdministrator(tx: Tx, subjectId: string): Promise<void> {
  await tx.$queryRaw`SELECT "id" FROM "subject" WHERE "id" = ${subjectId}::uuid FOR SHARE`;
  await tx.$queryRaw`SELECT r."id" FROM "role" r JOIN "subject_role" sr ON sr."roleId" = r."id" WHERE sr."subjectId" = ${subjectId}::uuid ORDER BY r."id" FOR SHARE OF r`;
  if (!(await isEnabledAdministrator(tx, subjectId))) {
    throw new DataAccessError('invalid_state', 'only an enabled administrator opens or authorizes an administrative session');
  }
}

/**
 * Locks, before the change's first audit append, what a change that may take rights from `subjectIds` (disabling,
 * roles, a role's natures or grants, a guest recording) later ends or withdraws: the PENDING or ACTIVE sessions they
 * opened or authorized (FOR UPDATE, id order, as {@link endSessionsOfLostAdministrators} locks them) and the open
 * operations they approved (FOR NO KEY UPDATE, id order, as `withdrawLostApprovals` locks them). Taken after, they
 * closed a cycle with the audit append lock: a session close or an approval holds its row and waits for the append
 * lock, which the change held while it waited for that row (PostgreSQL broke it, one side answered 500). The caller
 * holds the subjects' rows (or the role's), so no new session authorization or approval of theirs can join the sets.
 * Part of the one lock order (ADR 0012 addendum "every change that needs a session holds it").
 */
export async function lockWhatALossEnds(tx: Tx, subjectIds: readonly string[]): Promise<void> {
  const ids = [...new Set(subjectIds)].filter((x) => UUID.test(x)).sort();
  if (ids.length === 0) return;
  await tx.$queryRaw`
    SELECT "id" FROM "admin_session"
    WHERE "state" IN ('PENDING', 'ACTIVE')
      AND ("creatorId" = ANY(${ids}::uuid[]) OR "id" IN (SELECT "sessionId" FROM "admin_session_approval" WHERE "adminId" = ANY(${ids}::uuid[])))
    ORDER BY "id" FOR UPDATE`;
  await tx.$queryRaw`
    SELECT o."id" FROM "operation" o
    WHERE o."state" IN ('REQUESTED', 'APPROVED') AND o."validTo" > now()
      AND o."id" IN (SELECT a."operationId" FROM "approval" a WHERE a."approverId" = ANY(${ids}::uuid[]))
    ORDER BY o."id" FOR NO KEY UPDATE OF o`;
}

/**
 * Ends (CLOSED) every PENDING or ACTIVE administrative session that one of `subjectIds` opened or authorized when
 * that subject is no longer an enabled administrator in this transaction: a session must never keep running on
 * fewer administrators than authorized it. Each ended session gets an `admin_session.ended` event in the same
 * transaction, carrying the change's actor (from `cause`). Returns the ended session ids.
 */
export async function endSessionsOfLostAdministrators(
  tx: Tx,
  subjectIds: string[],
  reason: SessionEndReason,
  cause: AuditInput | undefined,
  now = new Date(),
): Promise<string[]> {
  const ended: string[] = [];
  for (const subjectId of [...new Set(subjectIds)].sort()) {
    if (await isEnabledAdministrator(tx, subjectId)) continue;
    const sessions = await tx.$queryRaw<{ id: string; state: string }[]>`
      SELECT "id", "state"::text AS "state" FROM "admin_session"
      WHERE "state" IN ('PENDING', 'ACTIVE')
        AND ("creatorId" = ${subjectId}::uuid OR "id" IN (SELECT "sessionId" FROM "admin_session_approval" WHERE "adminId" = ${subjectId}::uuid))
      ORDER BY "id" FOR UPDATE`;
    for (const s of sessions) {
      if (ended.includes(s.id)) continue;
      await tx.adminSession.update({ where: { id: s.id }, data: { state: 'CLOSED', closedAt: now } });
      await appendAuditTx(tx, {
        ...(cause ?? {}),
        action: 'admin_session.ended',
        outcome: 'SUCCESS',
        errorCode: null,
        keyid: null,
        operationId: null,
        adminSessionId: s.id,
        details: { reason, subjectId, previousState: s.state, cause: cause?.action ?? null, causeAdminSessionId: cause?.adminSessionId ?? null },
      });
      ended.push(s.id);
    }
  }
  return ended;
}

/**
 * Refuses a change that takes the administrator nature from someone (`lost`) when it would leave fewer enabled
 * administrators not recorded as guests than a session needs (`scope.requiredApprovals` + 1): no session could be
 * opened again, and the bootstrap runs once, so one administrator alone (or both, by mistake) would lock every key,
 * subject and role change for good (ADR 0012 addendum "the last administrators"). Called after the change's own
 * writes, before its audit event. A transaction-scoped advisory lock orders every such change across replicas, and
 * the count is a statement that starts after it was granted, so it sees what the previous holder committed: two
 * disables racing on two replicas cannot each count the other's victim.
 */
export async function assertAdministratorsRemain(tx: Tx, scope: SessionScope | undefined, lost: boolean, what: string): Promise<void> {
  if (!lost || scope?.requiredApprovals === undefined) return;
  const needed = scope.requiredApprovals + 1;
  await tx.$queryRaw`SELECT 1 AS "locked" FROM pg_advisory_xact_lock(hashtextextended('administrators', 0))`;
  const [row] = await tx.$queryRaw<{ n: number }[]>`
    SELECT count(*)::int AS "n" FROM "subject" s
    WHERE s."enabled" AND s."account" <> 'GUEST' AND EXISTS (
      SELECT 1 FROM "subject_role" sr JOIN "role" r ON r."id" = sr."roleId"
      WHERE sr."subjectId" = s."id" AND 'ADMINISTRATOR'::"Nature" = ANY(r."natures"))`;
  if ((row?.n ?? 0) < needed) {
    throw new DataAccessError('too_few_administrators', `${what} would leave ${row?.n ?? 0} administrators; a session needs ${needed}`);
  }
}
