import { randomUUID } from 'node:crypto';
import type { AuditEvent as AuditRow } from '../../generated/prisma/client';
import { parseSeq } from '@keyserver/api-contract';
import { AUDIT_LEGACY_ACK_ACTION, AuditChainVerifier, auditHashParts, canonicalAuditContent, type AuditChainReport, type AuditCheckpoint, type AuditCheckpointVerifier } from '@keyserver/audit-chain';
import { AUDIT_APPEND_LOCK } from '../audit-hash';
import type { PoolClient } from 'pg';
import { sqlQuery, type Db, type Tx } from '../db';
import { DataAccessError } from '../errors';
import { timedAppend } from './audit-observer';
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

/**
 * The chain as it stood at one moment ({@link AuditRepository.chainSnapshot}), what an export streams and a
 * verification checks: its head and last checkpoint (null: none) and how many entries and checkpoints lie up to them.
 */
export interface AuditChainSnapshot {
  head: string | null;
  sealed: string | null;
  entries: number;
  checkpoints: number;
}

/** Result of {@link AuditRepository.verifyChain}: every bad entry, told apart as link_broken or content_changed. */
export type ChainVerification = AuditChainReport;

/**
 * The signed checkpoints {@link AuditRepository.verifyChain} checks (docs/adr/0048): the verifier they are offered to,
 * and what must be ready before a batch of them is (the API's trust looks up each TSA key version once).
 */
export interface ChainSeals {
  verifier: AuditCheckpointVerifier;
  prepare?(checkpoints: readonly AuditCheckpoint[]): Promise<void>;
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

/**
 * The stored fields of a new event except its place in the chain (seq, prevHash, hash: the database's part), in the
 * canonical form of @keyserver/audit-chain: exactly what PostgreSQL stores and reads back, whatever the input held
 * (upper-case UUIDs, lone surrogates, NUL, huge values).
 */
function newAuditFields(input: AuditInput) {
  const fields = canonicalAuditContent({
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
    details: input.details ?? {},
  });
  return { ...fields, outcome: input.outcome };
}

/**
 * Appends one event inside a Prisma transaction `tx` through the same SQL function as {@link appendAuditSql}, so
 * every append takes the same lock and finishes the hash in one place.
 */
export async function appendAuditTx(tx: Tx, input: AuditInput): Promise<AuditEvent> {
  const { values, p } = sqlParams();
  const call = auditCallSql(input, p);
  const rows = await timedAppend(input, 'transaction', () => tx.$queryRawUnsafe<{ r: string[] }[]>(`SELECT ${call.sql} AS "r"`, ...values));
  return auditFromCall(call.fields, rows[0].r);
}

/** Adds a value to a statement's parameter list and returns its placeholder (`$n`, cast when given). */
export type SqlParam = (value: unknown, cast?: string) => string;

/** A fresh parameter list and its {@link SqlParam}. */
export function sqlParams(): { values: unknown[]; p: SqlParam } {
  const values: unknown[] = [];
  return { values, p: (v, cast) => `$${values.push(v)}${cast ? `::${cast}` : ''}` };
}

/**
 * SQL expression appending `input` to the chain in the statement it is embedded in (keyserver_append_audit:
 * the same lock and hash as {@link appendAuditTx}); it yields text[] [seq, prevHash, hash] for {@link auditFromCall}.
 */
export function auditCallSql(input: AuditInput, p: SqlParam): { sql: string; fields: ReturnType<typeof newAuditFields> } {
  const fields = newAuditFields(input);
  const { prefix, suffix } = auditHashParts(fields);
  // The function checks that prefix + suffix are exactly the canonical JSON of these values and stores details parsed
  // from the hashed text (migration 20261205000100).
  const sql = `"keyserver_append_audit"(${[
    p(AUDIT_APPEND_LOCK, 'bigint'), p(prefix, 'text'), p(suffix, 'text'), p(fields.id, 'text'), p(fields.at, 'timestamptz'), p(fields.action, 'text'),
    p(fields.outcome, 'text'), p(fields.errorCode, 'text'), p(fields.actorTid, 'text'), p(fields.actorOid, 'text'), p(fields.actorName, 'text'),
    p(fields.actorClient, 'text'), p(fields.actorSubjectId, 'text'), p(fields.keyid, 'text'), p(fields.operationId, 'text'),
    p(fields.adminSessionId, 'text'), p(fields.digest, 'text'), p(fields.requestId, 'text'),
  ].join(', ')})`;
  return { sql, fields };
}

/** The stored event from the fields of {@link auditCallSql} and the text[] it returned. */
export function auditFromCall(fields: ReturnType<typeof newAuditFields>, result: string[]): AuditEvent {
  const [seq, prevHash, hash] = result;
  return { ...fields, seq, prevHash, hash };
}

/** {@link appendAuditTx} on the pg pool (the hot path): one statement, the same lock, fields and hash. */
export async function appendAuditSql(client: PoolClient | Db, input: AuditInput): Promise<AuditEvent> {
  const { values, p } = sqlParams();
  const call = auditCallSql(input, p);
  const rows = await timedAppend(input, 'statement', () => sqlQuery<{ r: string[] }>(client, `SELECT ${call.sql} AS "r"`, values));
  return auditFromCall(call.fields, rows[0].r);
}

/**
 * The checkpoints with seq in (after, through] (null: unbounded) in seq order, at most `limit`: the streaming
 * verifier reads them a batch of entries at a time.
 */
export async function auditCheckpointsBetween(db: Db, after: string | null, through: string | null, limit?: number): Promise<AuditCheckpoint[]> {
  const rows = await sqlQuery<{ seq: string; entryHash: string; tokenDer: Buffer; genTime: Date; tsaKeyid: string; tsaKeyVersion: number }>(
    db,
    `SELECT c.seq::text AS seq, c."entryHash", c."tokenDer", c."genTime", k.keyid AS "tsaKeyid", c."tsaKeyVersion"
     FROM audit_checkpoint c JOIN "key" k ON k.id = c."tsaKeyId"
     WHERE ($1::bigint IS NULL OR c.seq > $1::bigint) AND ($2::bigint IS NULL OR c.seq <= $2::bigint)
     ORDER BY c.seq LIMIT $3::bigint`,
    [after, through, limit ?? null],
  );
  return rows.map((r) => ({
    seq: r.seq,
    entryHash: r.entryHash,
    token: Buffer.from(r.tokenDer).toString('base64'),
    genTime: r.genTime.toISOString(),
    tsaKeyid: r.tsaKeyid,
    tsaKeyVersion: r.tsaKeyVersion,
  }));
}

/** Append-only, hash-chained audit log. */
export class AuditRepository {
  constructor(private readonly db: Db) {}

  /** Appends an event on its own (one statement: refusals are audited on every request path). */
  append(input: AuditInput): Promise<AuditEvent> {
    return appendAuditSql(this.db, input);
  }

  /** Lists events newest first with cursor pagination (cursor = seq). */
  async list(filter: AuditFilter = {}): Promise<Page<AuditEvent>> {
    const limit = clampLimit(filter.limit);
    let before: bigint | undefined;
    if (filter.cursor !== undefined) before = seqOf(filter.cursor, 'bad cursor');
    const rows = await this.db.prisma.auditEvent.findMany({
      where: {
        action: filter.action,
        outcome: filter.outcome,
        keyid: filter.keyid,
        operationId: filter.operationId,
        // An object id is a GUID, which has no case: one asked for in upper case finds the events all the same.
        actorOid: filter.actorOid === undefined ? undefined : { equals: filter.actorOid, mode: 'insensitive' },
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

  /**
   * The chain as it stood when an export or a verification began: its head and its last checkpoint, and the counts up
   * to them, read in one statement. Appends and checkpoints are stored in seq order under one lock, each checkpoint
   * with its record, so every entry up to `head` and every checkpoint up to `sealed` (and its record) is there and
   * stays so; what is stored afterwards lies past them and is left out.
   */
  async chainSnapshot(): Promise<AuditChainSnapshot> {
    const [r] = await sqlQuery<{ head: string | null; sealed: string | null; entries: string; checkpoints: string }>(
      this.db,
      `WITH s AS (SELECT (SELECT max(seq) FROM audit_event) AS head, (SELECT max(seq) FROM audit_checkpoint) AS sealed)
       SELECT s.head::text AS head, s.sealed::text AS sealed,
              (SELECT count(*) FROM audit_event e WHERE e.seq <= s.head)::text AS entries,
              (SELECT count(*) FROM audit_checkpoint c WHERE c.seq <= s.sealed)::text AS checkpoints
       FROM s`,
      [],
    );
    return { head: r.head, sealed: r.sealed, entries: Number(r.entries), checkpoints: Number(r.checkpoints) };
  }

  /**
   * {@link chainSnapshot} without the counts, what a verification needs: it reads every entry anyway, and two
   * count(*) over a long chain are work it would throw away.
   */
  async chainEnds(): Promise<Pick<AuditChainSnapshot, 'head' | 'sealed'>> {
    const [e] = await sqlQuery<{ head: string | null; sealed: string | null }>(
      this.db,
      `SELECT (SELECT max(seq) FROM audit_event)::text AS head, (SELECT max(seq) FROM audit_checkpoint)::text AS sealed`,
      [],
    );
    return { head: e.head, sealed: e.sealed };
  }

  /** Entries with seq in (after, through] oldest first, at most `limit` (after null: from the first). */
  async entriesBetween(after: string | null, through: string, limit: number): Promise<AuditEvent[]> {
    const rows = await this.db.prisma.auditEvent.findMany({
      where: { seq: { gt: after === null ? undefined : BigInt(after), lte: BigInt(through) } },
      orderBy: { seq: 'asc' },
      take: limit,
    });
    return rows.map(toAuditEvent);
  }

  /**
   * Every entry up to `through` (a snapshot's head; null: none) oldest first, `batchSize` per statement
   * ({@link entriesBetween}): the one reader of the export and of {@link verifyChain}. A batch is read only when the
   * consumer asks for it, so a consumer that stops stops the reads.
   */
  async *entryBatches(through: string | null, batchSize: number): AsyncGenerator<AuditEvent[]> {
    for (let after: string | null = null; through !== null; ) {
      const batch = await this.entriesBetween(after, through, batchSize);
      if (batch.length === 0) return;
      after = batch[batch.length - 1].seq;
      yield batch;
    }
  }

  /** The checkpoints with seq in (after, through] in seq order, at most `limit` (see {@link auditCheckpointsBetween}). */
  checkpointsBetween(after: string | null, through: string, limit: number): Promise<AuditCheckpoint[]> {
    return auditCheckpointsBetween(this.db, after, through, limit);
  }

  /**
   * Recomputes every hash and link in seq order, in batches, and reports every bad entry (link_broken: rows deleted,
   * inserted or reordered; content_changed: an entry's content does not match its hash) and the v1 entries; with
   * `seals` (the chain's signed checkpoints, docs/adr/0048) also every checkpoint against the entry at its seq and
   * every checkpoint record against its checkpoint. Streams: a batch of entries and the checkpoints up to its last seq
   * at a time. The chain and its checkpoints are verified as they stood when verification began.
   */
  async verifyChain(batchSize = 1000, seals?: ChainSeals): Promise<ChainVerification> {
    const acks = await this.db.prisma.auditEvent.findMany({ where: { action: AUDIT_LEGACY_ACK_ACTION, outcome: 'SUCCESS' }, orderBy: { seq: 'asc' } });
    const verifier = new AuditChainVerifier(acks.map(toAuditEvent), seals?.verifier);
    // One snapshot ({@link chainEnds}): the chain's head and its last checkpoint when verification began; a
    // checkpoint stored while this runs is left out with its record.
    const { head, sealed } = await this.chainEnds();
    let checkpointsAfter: string | null = null;
    const offerThrough = async (upTo: string | null) => {
      if (!seals || sealed === null) return;
      const through = upTo !== null && BigInt(upTo) < BigInt(sealed) ? upTo : sealed;
      for (;;) {
        const cps = await auditCheckpointsBetween(this.db, checkpointsAfter, through, batchSize);
        if (cps.length === 0) return;
        await seals.prepare?.(cps);
        for (const cp of cps) seals.verifier.offer(cp);
        checkpointsAfter = cps[cps.length - 1].seq;
        if (cps.length < batchSize) return;
      }
    };
    for await (const batch of this.entryBatches(head, batchSize)) {
      await offerThrough(batch[batch.length - 1].seq);
      for (const e of batch) verifier.add(e);
    }
    // Checkpoints past the last entry: their entries were deleted.
    await offerThrough(null);
    return verifier.report();
  }

  /** The documented repair step for a v1 entry verification cannot reconstruct (see acknowledgeLegacyAudit). */
  acknowledgeLegacy(seq: string, by: string, reason: string): Promise<AuditEvent> {
    return acknowledgeLegacyAudit(this, this.db, seq, by, reason);
  }
}

/** A seq given as text (a cursor, a command's argument), read by the contract's {@link parseSeq}; else invalid_input. */
function seqOf(text: string, message: string): bigint {
  const seq = parseSeq(text);
  if (seq === null) throw new DataAccessError('invalid_input', message);
  return seq;
}

/**
 * The repair step for an entry of the v1 writer that verification cannot reconstruct (docs/adr/0009): after an
 * operator has checked it (request logs by requestId), an {@link AUDIT_LEGACY_ACK_ACTION} entry names it by seq and
 * stored hash, and verification lists it under `legacy` from then on. Only a problem verification marks
 * `acknowledgeable` (content_changed, before the v2 cutover, link intact) qualifies: invalid_state otherwise, not_found
 * for no such entry. Nothing is rewritten.
 */
async function acknowledgeLegacyAudit(repo: AuditRepository, db: Db, seq: string, by: string, reason: string): Promise<AuditEvent> {
  const at = seqOf(seq, 'seq must be a decimal number');
  if (!by.trim() || !reason.trim() || reason.length > 1000) throw new DataAccessError('invalid_input', 'name who acknowledges (--by) and why (--reason, at most 1000 characters)');
  const row = await db.prisma.auditEvent.findUnique({ where: { seq: at } });
  if (!row) throw new DataAccessError('not_found', `no audit entry seq ${seq}`);
  const report = await repo.verifyChain();
  const problem = report.problems.find((p) => p.seq === row.seq.toString() && p.acknowledgeable);
  if (!problem) throw new DataAccessError('invalid_state', `audit entry seq ${row.seq} is not an unverifiable entry of the v1 writer with an intact link`);
  return repo.append({
    action: AUDIT_LEGACY_ACK_ACTION,
    outcome: 'SUCCESS',
    actorName: by,
    actorClient: 'keyserver-api audit-acknowledge',
    details: { seq: row.seq.toString(), hash: row.hash, reason, problem: problem.reason },
  });
}

export function clampLimit(limit: number | undefined): number {
  if (limit === undefined) return 50;
  if (!Number.isInteger(limit) || limit < 1) throw new DataAccessError('invalid_input', 'limit must be a positive integer');
  return Math.min(limit, 500);
}
