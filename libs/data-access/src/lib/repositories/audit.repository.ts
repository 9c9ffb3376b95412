import { randomUUID } from 'node:crypto';
import type { AuditEvent as AuditRow, Prisma } from '../../generated/prisma/client';
import { AUDIT_APPEND_LOCK, AUDIT_GENESIS_HASH, auditEventHash } from '../audit-hash';
import type { PoolClient } from 'pg';
import type { Db, Tx } from '../db';
import { DataAccessError } from '../errors';
import type { AuditEvent, AuditInput, AuditOutcome, Page } from '../types';

/** Filters for {@link AuditRepository.list}; results are newest first. */
export interface AuditFilter {
  action?: string;
  outcome?: AuditOutcome;
  keyid?: string;
  operationId?: string;
  actorOid?: string;
  requestId?: string;
  adminSessionId?: string;
  actorSubjectId?: string;
  from?: Date;
  to?: Date;
  /** nextCursor of the previous page. */
  cursor?: string;
  limit?: number;
}

/** Result of {@link AuditRepository.verifyChain}. */
export interface ChainVerification {
  ok: boolean;
  checked: number;
  /** seq of the first row whose hash or link does not verify. */
  firstBadSeq?: string;
}

export function toAuditEvent(r: AuditRow): AuditEvent {
  return {
    seq: r.seq.toString(),
    id: r.id,
    at: r.at,
    action: r.action,
    outcome: r.outcome,
    errorCode: r.errorCode,
    actorTid: r.actorTid,
    actorOid: r.actorOid,
    actorName: r.actorName,
    actorClient: r.actorClient,
    actorSubjectId: r.actorSubjectId,
    keyid: r.keyid,
    operationId: r.operationId,
    adminSessionId: r.adminSessionId,
    digest: r.digest,
    requestId: r.requestId,
    details: (r.details ?? {}) as Record<string, unknown>,
    prevHash: r.prevHash,
    hash: r.hash,
  };
}

/** The stored fields of a new event except its hash, linked to `prevHash`. */
function newAuditFields(input: AuditInput, prevHash: string) {
  return {
    id: randomUUID(),
    at: new Date(),
    action: input.action,
    outcome: input.outcome,
    errorCode: input.errorCode ?? null,
    actorTid: input.actorTid ?? null,
    actorOid: input.actorOid ?? null,
    actorName: input.actorName ?? null,
    actorClient: input.actorClient ?? null,
    actorSubjectId: input.actorSubjectId ?? null,
    keyid: input.keyid ?? null,
    operationId: input.operationId ?? null,
    adminSessionId: input.adminSessionId ?? null,
    digest: input.digest ?? null,
    requestId: input.requestId ?? null,
    // Round-trip through JSON so the hash covers exactly what JSONB stores (no undefined, Dates as strings).
    details: JSON.parse(JSON.stringify(input.details ?? {})) as Record<string, unknown>,
    prevHash,
  };
}

/**
 * Appends one event inside `tx`. The transaction-scoped advisory lock serializes appenders across
 * processes until commit, so every event links to the last committed one.
 */
export async function appendAuditTx(tx: Tx, input: AuditInput): Promise<AuditEvent> {
  await tx.$executeRaw`SELECT pg_advisory_xact_lock(${AUDIT_APPEND_LOCK}::bigint)`;
  const last = await tx.auditEvent.findFirst({ orderBy: { seq: 'desc' }, select: { hash: true } });
  const fields = newAuditFields(input, last?.hash ?? AUDIT_GENESIS_HASH);
  const row = await tx.auditEvent.create({
    data: { ...fields, details: fields.details as Prisma.InputJsonObject, hash: auditEventHash(fields) },
  });
  return toAuditEvent(row);
}

const INSERT_AUDIT_SQL = `
INSERT INTO "audit_event" ("id", "at", "action", "outcome", "errorCode", "actorTid", "actorOid", "actorName", "actorClient",
  "actorSubjectId", "keyid", "operationId", "adminSessionId", "digest", "requestId", "details", "prevHash", "hash")
VALUES ($1::uuid, $2, $3, $4::"AuditOutcome", $5, $6, $7, $8, $9, $10::uuid, $11, $12::uuid, $13::uuid, $14, $15, $16::jsonb, $17, $18)
RETURNING "seq"::text AS "seq"`;

/** {@link appendAuditTx} on a raw pg transaction (the hot path); the same lock, fields and hash. */
export async function appendAuditSql(client: PoolClient, input: AuditInput): Promise<AuditEvent> {
  await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [AUDIT_APPEND_LOCK]);
  const last = await client.query<{ hash: string }>('SELECT "hash" FROM "audit_event" ORDER BY "seq" DESC LIMIT 1');
  const f = newAuditFields(input, last.rows[0]?.hash ?? AUDIT_GENESIS_HASH);
  const hash = auditEventHash(f);
  const res = await client.query<{ seq: string }>(INSERT_AUDIT_SQL, [
    f.id, f.at, f.action, f.outcome, f.errorCode, f.actorTid, f.actorOid, f.actorName, f.actorClient,
    f.actorSubjectId, f.keyid, f.operationId, f.adminSessionId, f.digest, f.requestId, JSON.stringify(f.details), f.prevHash, hash,
  ]);
  return { ...f, seq: res.rows[0].seq, hash };
}

/** Append-only, hash-chained audit log. */
export class AuditRepository {
  constructor(private readonly db: Db) {}

  /** Appends an event in its own transaction. */
  append(input: AuditInput): Promise<AuditEvent> {
    return this.db.transaction((tx) => appendAuditTx(tx, input));
  }

  /** Lists events newest first with cursor pagination (cursor = seq). */
  async list(filter: AuditFilter = {}): Promise<Page<AuditEvent>> {
    const limit = clampLimit(filter.limit);
    let before: bigint | undefined;
    if (filter.cursor !== undefined) {
      if (!/^\d+$/.test(filter.cursor)) throw new DataAccessError('invalid_input', 'bad cursor');
      before = BigInt(filter.cursor);
    }
    const rows = await this.db.prisma.auditEvent.findMany({
      where: {
        action: filter.action,
        outcome: filter.outcome,
        keyid: filter.keyid,
        operationId: filter.operationId,
        actorOid: filter.actorOid,
        requestId: filter.requestId,
        adminSessionId: filter.adminSessionId,
        actorSubjectId: filter.actorSubjectId,
        at: filter.from || filter.to ? { gte: filter.from, lt: filter.to } : undefined,
        seq: before !== undefined ? { lt: before } : undefined,
      },
      orderBy: { seq: 'desc' },
      take: limit + 1,
    });
    const items = rows.slice(0, limit).map(toAuditEvent);
    return { items, nextCursor: rows.length > limit ? items[items.length - 1].seq : null };
  }

  /** Recomputes every hash and link in seq order, in batches. */
  async verifyChain(batchSize = 1000): Promise<ChainVerification> {
    let prev = AUDIT_GENESIS_HASH;
    let after: bigint | undefined;
    let checked = 0;
    for (;;) {
      const rows = await this.db.prisma.auditEvent.findMany({
        where: after !== undefined ? { seq: { gt: after } } : undefined,
        orderBy: { seq: 'asc' },
        take: batchSize,
      });
      if (rows.length === 0) return { ok: true, checked };
      for (const row of rows) {
        const e = toAuditEvent(row);
        if (e.prevHash !== prev || auditEventHash(e) !== e.hash) {
          return { ok: false, checked, firstBadSeq: e.seq };
        }
        prev = e.hash;
        checked++;
      }
      after = rows[rows.length - 1].seq;
    }
  }
}

export function clampLimit(limit: number | undefined): number {
  if (limit === undefined) return 50;
  if (!Number.isInteger(limit) || limit < 1) throw new DataAccessError('invalid_input', 'limit must be a positive integer');
  return Math.min(limit, 500);
}
