import type { Prisma } from '../../generated/prisma/client';
import { UUID, mapPrismaError, type Db, type Tx } from '../db';
import { DataAccessError } from '../errors';
import type { AdminSession, AuditInput } from '../types';
import { appendAuditTx } from './audit.repository';
import { assertEnabledAdministrator } from './admin-participation';
import { enqueueAdminSessionNotice } from './notification.repository';

export interface OpenAdminSessionInput {
  description: string;
  creatorId: string;
  /** Administrator approvals needed before the session is ACTIVE (0 = active at once). */
  requiredApprovals: number;
  expiresAt: Date;
  /** The session may give or take the human-only natures (ADR 0044); authorizers see it. Default false. */
  powers?: boolean;
}

/** Result of {@link AdminSessionRepository.authorize}. */
export interface AuthorizeResult {
  session: AdminSession;
  /** True only for the approval that moved the session PENDING -> ACTIVE. */
  activated: boolean;
}

const include = { approvals: { select: { adminId: true } } } satisfies Prisma.AdminSessionInclude;
type Row = Prisma.AdminSessionGetPayload<{ include: typeof include }>;

const toSession = (s: Row): AdminSession => ({
  id: s.id,
  description: s.description,
  creatorId: s.creatorId,
  state: s.state,
  requiredApprovals: s.requiredApprovals,
  powers: s.powers,
  approverIds: s.approvals.map((a) => a.adminId).sort(),
  expiresAt: s.expiresAt,
  createdAt: s.createdAt,
  activatedAt: s.activatedAt,
  closedAt: s.closedAt,
});

async function lockSession(tx: Tx, id: string): Promise<Row> {
  if (!UUID.test(id)) throw new DataAccessError('not_found', 'admin session not found');
  const rows = await tx.$queryRaw<{ id: string }[]>`SELECT "id" FROM "admin_session" WHERE "id" = ${id}::uuid FOR UPDATE`;
  if (rows.length === 0) throw new DataAccessError('not_found', 'admin session not found');
  return tx.adminSession.findUniqueOrThrow({ where: { id }, include });
}

/** Multi-administrator sessions that unlock administrative changes (M-of-N). */
export class AdminSessionRepository {
  constructor(private readonly db: Db) {}

  async open(input: OpenAdminSessionInput, audit?: AuditInput): Promise<AdminSession> {
    if (!Number.isInteger(input.requiredApprovals) || input.requiredApprovals < 0) {
      throw new DataAccessError('invalid_input', 'requiredApprovals must be an integer >= 0');
    }
    try {
      return await this.db.transaction(async (tx) => {
        // Subject locks before session locks, in every transaction that takes both (no deadlock with a disable).
        await assertEnabledAdministrator(tx, input.creatorId);
        const now = new Date();
        const active = input.requiredApprovals === 0;
        const s = await tx.adminSession.create({
          data: {
            description: input.description,
            creatorId: input.creatorId,
            requiredApprovals: input.requiredApprovals,
            expiresAt: input.expiresAt,
            powers: input.powers ?? false,
            state: active ? 'ACTIVE' : 'PENDING',
            activatedAt: active ? now : null,
          },
          include,
        });
        if (audit) await appendAuditTx(tx, { ...audit, adminSessionId: s.id });
        if (!active) await enqueueAdminSessionNotice(tx, s.id);
        return toSession(s);
      });
    } catch (err) {
      return mapPrismaError(err, 'admin session');
    }
  }

  async get(id: string): Promise<AdminSession> {
    if (!UUID.test(id)) throw new DataAccessError('not_found', 'admin session not found');
    const s = await this.db.prisma.adminSession.findUnique({ where: { id }, include });
    if (!s) throw new DataAccessError('not_found', 'admin session not found');
    return toSession(s);
  }

  /**
   * Adds `adminId`'s authorization under a row lock: each admin counts once (`already_approved`
   * otherwise) and exactly one call activates the session. An expired session is marked EXPIRED
   * and refused with `session_not_active`. With `audit`, the authorization's event and, when it activates the
   * session, the `admin_session.activated` event (details.authorizedBy) are written in the same transaction.
   */
  async authorize(sessionId: string, adminId: string, audit?: AuditInput, now = new Date()): Promise<AuthorizeResult> {
    let result: AuthorizeResult | 'expired';
    try {
      result = await this.db.transaction(async (tx): Promise<AuthorizeResult | 'expired'> => {
        if (!UUID.test(sessionId)) throw new DataAccessError('not_found', 'admin session not found');
        // Subject locks before the session lock (see open); a concurrent disable of this admin either comes first
        // (refused here) or waits and then finds this authorization and ends the session.
        await assertEnabledAdministrator(tx, adminId);
        const s = await lockSession(tx, sessionId);
        if (s.state === 'PENDING' && s.expiresAt <= now) {
          // Commit the EXPIRED state, then refuse outside the transaction.
          await tx.adminSession.update({ where: { id: sessionId }, data: { state: 'EXPIRED', closedAt: now } });
          return 'expired';
        }
        if (s.state !== 'PENDING' || s.expiresAt <= now) {
          throw new DataAccessError('session_not_active', `admin session is ${s.expiresAt <= now ? 'EXPIRED' : s.state}`);
        }
        if (s.approvals.some((a) => a.adminId === adminId)) {
          throw new DataAccessError('already_approved', 'this administrator already authorized the session');
        }
        await tx.adminSessionApproval.create({ data: { sessionId, adminId } });
        const activated = s.approvals.length + 1 >= s.requiredApprovals;
        if (activated) await tx.adminSession.update({ where: { id: sessionId }, data: { state: 'ACTIVE', activatedAt: now } });
        const session = toSession(await tx.adminSession.findUniqueOrThrow({ where: { id: sessionId }, include }));
        if (audit) await appendAuditTx(tx, { ...audit, adminSessionId: sessionId });
        if (audit && activated) {
          await appendAuditTx(tx, { ...audit, action: 'admin_session.activated', adminSessionId: sessionId, details: { authorizedBy: [session.creatorId, ...session.approverIds] } });
        }
        return { session, activated };
      });
    } catch (err) {
      return mapPrismaError(err, 'admin session approval');
    }
    if (result === 'expired') throw new DataAccessError('session_not_active', 'admin session is EXPIRED');
    return result;
  }

  /**
   * The session if it is ACTIVE, not past its expiry and every administrator who opened or authorized it is still an
   * enabled administrator not recorded as a guest account (ADR 0040 addendum 2026-12-13), else null. Changes of those
   * administrators end the session in their own transaction; this second check also covers a change made behind the
   * repositories' back.
   */
  async getActive(id: string, now = new Date()): Promise<AdminSession | null> {
    if (!UUID.test(id)) return null;
    const s = await this.db.prisma.adminSession.findFirst({ where: { id, state: 'ACTIVE', expiresAt: { gt: now } }, include });
    if (!s) return null;
    const participants = [s.creatorId, ...s.approvals.map((a) => a.adminId)];
    const [row] = await this.db.prisma.$queryRaw<{ n: number }[]>`
      SELECT count(*)::int AS "n" FROM "subject" x
      WHERE x."id" = ANY(${participants}::uuid[]) AND x."enabled" AND x."account" <> 'GUEST' AND EXISTS (
        SELECT 1 FROM "subject_role" sr JOIN "role" r ON r."id" = sr."roleId"
        WHERE sr."subjectId" = x."id" AND 'ADMINISTRATOR'::"Nature" = ANY(r."natures"))`;
    return row?.n === new Set(participants).size ? toSession(s) : null;
  }

  /** All ACTIVE, unexpired sessions. */
  async listActive(now = new Date()): Promise<AdminSession[]> {
    const rows = await this.db.prisma.adminSession.findMany({
      where: { state: 'ACTIVE', expiresAt: { gt: now } },
      include,
      orderBy: { createdAt: 'desc' },
    });
    return rows.map(toSession);
  }

  /** All PENDING or ACTIVE sessions not past their expiry, newest first. */
  async listOpen(now = new Date()): Promise<AdminSession[]> {
    const rows = await this.db.prisma.adminSession.findMany({
      where: { state: { in: ['PENDING', 'ACTIVE'] }, expiresAt: { gt: now } },
      include,
      orderBy: { createdAt: 'desc' },
    });
    return rows.map(toSession);
  }

  /** CLOSED or EXPIRED sessions created since `since`, newest first, at most `limit`. */
  async listEnded(since: Date, limit: number): Promise<AdminSession[]> {
    const rows = await this.db.prisma.adminSession.findMany({
      where: { state: { in: ['CLOSED', 'EXPIRED'] }, createdAt: { gte: since } },
      include,
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: limit,
    });
    return rows.map(toSession);
  }

  /** PENDING or ACTIVE -> CLOSED. */
  async close(id: string, audit?: AuditInput, now = new Date()): Promise<AdminSession> {
    return this.db.transaction(async (tx) => {
      const s = await lockSession(tx, id);
      if (s.state !== 'PENDING' && s.state !== 'ACTIVE') throw new DataAccessError('invalid_state', `admin session is ${s.state}`);
      const updated = await tx.adminSession.update({ where: { id }, data: { state: 'CLOSED', closedAt: now }, include });
      if (audit) await appendAuditTx(tx, { ...audit, adminSessionId: id });
      return toSession(updated);
    });
  }

  /** Marks every PENDING/ACTIVE session past its expiry EXPIRED; returns how many. */
  async expire(now = new Date()): Promise<number> {
    const r = await this.db.prisma.adminSession.updateMany({
      where: { state: { in: ['PENDING', 'ACTIVE'] }, expiresAt: { lte: now } },
      data: { state: 'EXPIRED', closedAt: now },
    });
    return r.count;
  }
}
