import { createHash, randomUUID } from 'node:crypto';
import type { QueryResultRow } from 'pg';
import { UUID, inlineParams, preparedStatement, scriptSql, sqlPrepared, sqlQuery, sqlScriptTransaction, sqlState, sqlTransaction, type Db, type PreparedStatement } from '../db';
import { DataAccessError } from '../errors';
import type { AuditEvent, AuditInput, OperationState } from '../types';
import { usability, type UsabilityRefusal } from '../policy/operation-policy';
import { timed, timedAppend } from './audit-observer';
import { appendAuditSql, auditCallSql, auditFromCall, sqlParams, type SqlParam } from './audit.repository';
import { AUDIT_APPEND_LOCK } from '../audit-hash';

// The one place that takes a usage of an operation's key. Whether it may be used is the operation policy
// (../policy/operation-policy.ts `usability`); RESERVE_SQL mirrors it in SQL so that the check and the counter
// change are one atomic statement (operation-policy.pg.spec.ts proves they agree). Sign orders, firmware signatures and
// certificate issuance all go through reserve -> (HSM signs, no lock held) -> finish or release:
// - reserve: ONE statement checks the operation (state, window, digest), the key (ACTIVE) and increments
//   usagesUsed only while it is below usagesAllowed, and inserts a reservation row with a lease. The row lock on
//   operation_key lasts only for that statement, so orders on one operation sign in parallel, and the guarded
//   increment (re-checked by PostgreSQL after a concurrent update) makes the count exactly-once.
// - finish: ONE statement deletes the reservation, stores the result and appends its audit event.
// - release: deletes it and gives the usage back (HSM failure, or the lease ran out because a replica died).
// The reservation commits without waiting for its WAL flush (synchronous_commit off for that one transaction): the
// finish commits synchronously and its flush covers every earlier WAL record, the reservation's included, and no
// signature is answered before the finish. A crash can only lose reservations whose signature nobody received, and
// losing one gives its usage back. On a hot operation row this halves the disk flushes per order and releases the row
// lock without waiting for the disk (issue 20, docs/adr/0028-access-cache.md).
// docs/adr/0007-usage-reservations.md explains the choice.

/** What a reservation is for; stored on the row and in the audit event of a release. */
export type ReservationKind = 'signorder' | 'certificate';

/** Default lease of a reservation; a replica that dies mid-sign gives its usage back after this. */
export const DEFAULT_USAGE_LEASE_MS = 60_000;

/** One usage of (operation, key) taken by {@link reserveUsage}. */
export interface Reservation {
  id: string;
  operationId: string;
  opKeyId: string;
  keyId: string;
  usagesAllowed: number;
  /** usagesUsed after this reservation (it counts already). */
  usagesUsed: number;
}

export interface ReserveRequest {
  operationId: string;
  keyid: string;
  subjectId: string;
  kind: ReservationKind;
  /** Lower-case hex digest checked against the operation's allowed digests; null when none applies. */
  digest: string | null;
  idempotencyKey?: string | null;
  requestId?: string | null;
  now?: Date;
  leaseMs?: number;
}

/** The reservation statement ($1 operation, $2 keyid, $3 now, $4 digest, $5 reservation id, $6 subject, $7 kind, $8 idempotency key, $9 request id, $10 lease s); scripts/bench runs it in pgbench too. */
export const RESERVE_SQL = `
WITH target AS (
  SELECT ok."id"
  FROM "operation_key" ok
  JOIN "key" k ON k."id" = ok."keyId"
  JOIN "operation" o ON o."id" = ok."operationId"
  WHERE ok."operationId" = $1::uuid AND k."keyid" = $2 AND k."state" = 'ACTIVE'
    AND (o."state" = 'APPROVED'
         OR (o."state" = 'REQUESTED'
             AND NOT EXISTS (SELECT 1 FROM "operation_key" x WHERE x."operationId" = o."id" AND x."requiredApprovers" > 0)))
    AND $3::timestamptz >= o."validFrom" AND $3::timestamptz < o."validTo"
    AND (cardinality(o."digests") = 0 OR $4::text = ANY (o."digests"))
), used AS (
  UPDATE "operation_key" ok SET "usagesUsed" = ok."usagesUsed" + 1
  FROM target WHERE ok."id" = target."id" AND ok."usagesUsed" < ok."usagesAllowed"
  RETURNING ok."id", ok."keyId", ok."usagesAllowed", ok."usagesUsed"
), reserved AS (
  INSERT INTO "usage_reservation" ("id", "operationKeyId", "operationId", "keyId", "subjectId", "kind", "idempotencyKey", "requestId", "leaseUntil")
  SELECT $5::uuid, used."id", $1::uuid, used."keyId", $6::uuid, $7, $8, $9, $3::timestamptz + make_interval(secs => $10::double precision)
  FROM used
  RETURNING "id"
)
SELECT used."id" AS "opKeyId", used."keyId", used."usagesAllowed", used."usagesUsed", (SELECT count(*) FROM reserved)::int AS "n",
  set_config('synchronous_commit', 'off', true) AS "commit"
FROM used`;

const RESERVE = preparedStatement('keyserver_reserve_usage', RESERVE_SQL);

type ReserveRow = { opKeyId: string; keyId: string; usagesAllowed: number; usagesUsed: number };

/**
 * Takes one usage of (operation, keyid) now, or throws the reason it cannot be taken (a {@link DataAccessError}
 * with code usage_exhausted, operation_not_usable, outside_window, digest_not_allowed, key_not_in_operation,
 * key_revoked or not_found). A (subjectId, idempotencyKey) already reserved and in flight is `conflict`.
 */
export async function reserveUsage(db: Db, req: ReserveRequest): Promise<Reservation> {
  const o = reservationObserver;
  if (!o) return reserve(db, req);
  return timed(
    () => reserve(db, req),
    (seconds, r) => o(req.kind, seconds, r.ok ? 'reserved' : r.error instanceof DataAccessError ? r.error.code : 'error'),
  );
}

/**
 * Told of every reservation when it is decided: its kind, the seconds from the call (the wait for the batch ahead,
 * the group commit, and on a refusal the read that names its reason) and `reserved` or the refusal's code (a
 * DataAccessError code, `error` for anything else). Must be cheap, synchronous and never throw.
 */
export type ReservationObserver = (kind: ReservationKind, seconds: number, outcome: string) => void;

let reservationObserver: ReservationObserver | undefined;

/** Sets (or clears) the process's reservation observer: the API's metrics time reservations with it. */
export function observeReservations(next: ReservationObserver | undefined): void {
  reservationObserver = next;
}

async function reserve(db: Db, req: ReserveRequest): Promise<Reservation> {
  if (!UUID.test(req.operationId)) throw new DataAccessError('not_found', 'operation not found');
  const now = req.now ?? new Date();
  const digest = req.digest?.toLowerCase() ?? null;
  const id = randomUUID();
  let row: ReserveRow | undefined;
  try {
    // Concurrent reservations of this process commit together (StatementBatcher), in the order of the rows they lock.
    row = await reserveBatcher(db).run(RESERVE, [
      req.operationId,
      req.keyid,
      now,
      digest,
      id,
      req.subjectId,
      req.kind,
      req.idempotencyKey ?? null,
      req.requestId ?? null,
      (req.leaseMs ?? DEFAULT_USAGE_LEASE_MS) / 1000,
    ], `${req.operationId}\n${req.keyid}`);
  } catch (err) {
    if (sqlState(err) === '23505') throw new DataAccessError('conflict', 'a request with this idempotency key is in progress', { cause: err });
    throw err;
  }
  if (!row) throw await whyNotUsable(db, req.operationId, req.keyid, digest, now);
  return { id, operationId: req.operationId, opKeyId: row.opKeyId, keyId: row.keyId, usagesAllowed: row.usagesAllowed, usagesUsed: row.usagesUsed };
}

/** Slow path after a refused reservation: reads the rows once more and lets the policy name the reason. */
async function whyNotUsable(db: Db, operationId: string, keyid: string, digest: string | null, now: Date): Promise<DataAccessError> {
  // No reason left: the guarded increment found no usage left a moment ago (taken by a concurrent request).
  return (await refusalNow(db, operationId, keyid, digest, now, false)) ?? new DataAccessError('usage_exhausted', REFUSAL_DETAIL.usage_exhausted(keyid, 'APPROVED'));
}

/**
 * Whether key `keyid` of the operation could take a usage now, the digest aside (it is not known yet): null when it
 * could, else the {@link DataAccessError} {@link reserveUsage} would throw. Reads only: nothing is taken or held, so
 * the answer may be out of date a moment later and the reservation decides again (ADR 0011 addendum "refused before
 * the image"). The firmware route asks it before it reads an image.
 */
export async function usageRefusalNow(db: Db, operationId: string, keyid: string, now = new Date()): Promise<DataAccessError | null> {
  if (!UUID.test(operationId)) return new DataAccessError('not_found', 'operation not found');
  return refusalNow(db, operationId, keyid, null, now, true);
}

async function refusalNow(db: Db, operationId: string, keyid: string, digest: string | null, now: Date, anyDigest: boolean): Promise<DataAccessError | null> {
  const ops = await sqlQuery<{ state: OperationState; validFrom: Date; validTo: Date; digests: string[] }>(
    db,
    `SELECT o."state"::text AS "state", o."validFrom", o."validTo", o."digests" FROM "operation" o WHERE o."id" = $1::uuid`,
    [operationId],
  );
  const op = ops[0];
  if (!op) return new DataAccessError('not_found', 'operation not found');
  const keys = await sqlQuery<{ keyid: string; keyState: 'ACTIVE' | 'REVOKED'; usagesAllowed: number; usagesUsed: number; requiredApprovers: number }>(
    db,
    `SELECT k."keyid", k."state"::text AS "keyState", ok."usagesAllowed", ok."usagesUsed", ok."requiredApprovers"
     FROM "operation_key" ok JOIN "key" k ON k."id" = ok."keyId" WHERE ok."operationId" = $1::uuid`,
    [operationId],
  );
  const reason = usability({ ...op, digests: anyDigest ? [] : op.digests, keys: keys.map((k) => ({ ...k, approvals: 0 })) }, keyid, digest, now);
  return reason === null ? null : new DataAccessError(reason, REFUSAL_DETAIL[reason](keyid, op.state));
}

const REFUSAL_DETAIL: Record<UsabilityRefusal, (keyid: string, state: string) => string> = {
  key_not_in_operation: (keyid) => `key ${keyid} is not part of the operation`,
  key_revoked: (keyid) => `key ${keyid} is revoked`,
  usage_exhausted: (_k, state) => (state === 'EXHAUSTED' ? 'operation is exhausted' : 'no usages left for this key'),
  operation_not_usable: (_k, state) => `operation is ${state}`,
  outside_window: () => 'operation is not valid now',
  digest_not_allowed: () => 'digest is not allowed by the operation',
};

/**
 * Stores the result of a reservation in ONE statement (one round trip, atomic): deletes the reservation, runs
 * `store` (an INSERT ... SELECT ... FROM d RETURNING "createdAt", where d is the deleted reservation row with
 * "operationId" and "keyId"), and appends the audit event. When the reservation is gone (its lease ran out and it
 * was given back), nothing is written and this throws reservation_expired. Marks the operation EXHAUSTED when
 * no usage is left and no other reservation is open.
 */
export async function finishReservation(
  db: Db,
  r: Reservation,
  store: (p: SqlParam) => string,
  audit: AuditInput,
): Promise<{ createdAt: Date; audit: AuditEvent }> {
  const { values, p } = sqlParams();
  const deleted = `DELETE FROM "usage_reservation" WHERE "id" = ${p(r.id, 'uuid')} RETURNING "operationId", "keyId"`;
  const stored = store(p);
  const call = auditCallSql(audit, p);
  // Timed from the call to the commit of its batch: the append's latency includes waiting for the group commit.
  const row = await timedAppend(
    audit,
    'with_result',
    () =>
      finishBatcher(db).run(
        finishStatement(`WITH d AS (${deleted}), ins AS (${stored})
     SELECT ins."createdAt", ${call.sql} AS "audit",
            (SELECT COALESCE(sum(ok."usagesAllowed" - ok."usagesUsed"), 0) FROM "operation_key" ok WHERE ok."operationId" = ${p(r.operationId, 'uuid')})::int AS "left"
     FROM ins`),
        values,
      ),
    (written) => written !== undefined,
  );
  if (!row) throw new DataAccessError('reservation_expired', 'the usage reservation ran out before the result was stored');
  if (row.left <= 0) await markExhausted(db, r.operationId);
  return { createdAt: row.createdAt, audit: auditFromCall(call.fields, row.audit) };
}

type FinishRow = { createdAt: Date; audit: string[]; left: number };

// A finish statement's text is fixed per call site (the store's SQL and the audit call's; only values vary), so each
// is prepared once per connection (ADR 0036), under a name derived from its text. The bound keeps a caller that
// would build texts from data from preparing without end: beyond it, texts run unprepared.
const FINISH_STATEMENTS_MAX = 64;
const finishStatements = new Map<string, PreparedStatement>();

function finishStatement(text: string): PreparedStatement | string {
  let s = finishStatements.get(text);
  if (!s) {
    if (finishStatements.size >= FINISH_STATEMENTS_MAX) return text;
    s = preparedStatement(`keyserver_finish_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`, text);
    finishStatements.set(text, s);
  }
  return s;
}

/** Most finishes committed together. */
export const FINISH_BATCH_MAX = 32;

/** Most reservations committed together. */
const RESERVE_BATCH_MAX = 32;

interface BatchJob<R> {
  sql: PreparedStatement | string;
  values: unknown[];
  /** Statements of one batch run in this order (the row locks they take are taken in it). */
  order: string;
  resolve: (row: R | undefined) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit of one kind of statement (issue 20, ADR 0028, ADR 0037): the statements that arrive in the same
 * event-loop turn, and while one statement (or batch) of this process is in flight, queue and then run as ONE
 * transaction, each its own unchanged statement, so every guard still holds per statement; every caller is answered
 * after that commit. A statement that fails aborts the batch before anything is committed: the batch is then run
 * again one statement per transaction, so only the failing one fails. A failed COMMIT is an unknown outcome and fails
 * the whole batch (as it would fail a single statement).
 * Finishes: each appends to the audit chain, so it holds the global append lock until its commit, and its commit
 * waits for the WAL flush: one lock acquisition and one flush per batch instead of per order.
 * Reservations: one transaction, one round trip and one commit per batch instead of per order; the statements run
 * sorted by (operation, keyid), the order of the operation_key rows they lock, so that two replicas' batches never
 * wait on each other's rows in opposite orders (no deadlock).
 * A batch is ONE round trip (BEGIN, its statements with their values as literals, COMMIT in one message), not one
 * per statement plus two: under load each round trip waits for a core, and the statements arriving meanwhile queue
 * behind the batch (ADR 0034). Each statement of it is an EXECUTE of its prepared statement, so PostgreSQL plans it
 * once per connection rather than per order (ADR 0036); behind a transaction pooler it is the statement's text with
 * the same literals (Db.preparedStatements).
 */
class StatementBatcher<R> {
  private readonly queue: BatchJob<R>[] = [];
  private running = false;

  constructor(
    private readonly db: Db,
    private readonly max: number,
  ) {}

  run(sql: PreparedStatement | string, values: unknown[], order = ''): Promise<R | undefined> {
    return new Promise((resolve, reject) => {
      this.queue.push({ sql, values, order, resolve, reject });
      if (this.running) return;
      this.running = true;
      // The first statement waits for the end of this event-loop turn: the requests read in the same turn (or the
      // signatures one lane batch returned) join it, instead of the first going alone and the rest after it.
      setImmediate(() => void this.drain());
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.max);
        if (batch.length === 1) await this.alone(batch[0]);
        else await this.together(batch.sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0)));
      }
    } finally {
      this.running = false;
    }
  }

  private async alone(job: BatchJob<R>): Promise<void> {
    try {
      const rows = typeof job.sql === 'string' ? await sqlQuery<R & QueryResultRow>(this.db, job.sql, job.values) : await sqlPrepared<R & QueryResultRow>(this.db, job.sql, job.values);
      job.resolve(rows[0]);
    } catch (err) {
      job.reject(err);
    }
  }

  private async together(batch: BatchJob<R>[]): Promise<void> {
    const script = batch.map((job) => (typeof job.sql === 'string' ? inlineParams(job.sql, job.values) : scriptSql(this.db, job.sql, job.values)));
    if (script.every((s): s is string => s !== undefined)) {
      const prepared = this.db.preparedStatements ? [...new Set(batch.flatMap((job) => (typeof job.sql === 'string' ? [] : [job.sql])))] : [];
      const r = await sqlScriptTransaction(this.db, script, prepared);
      if (r.ok) batch.forEach((job, i) => job.resolve(r.rows[i][0] as R | undefined));
      else if (r.phase === 'commit') for (const job of batch) job.reject(r.error);
      else for (const job of batch) await this.alone(job);
      return;
    }
    let statementsDone = false;
    let rows: (R | undefined)[];
    try {
      rows = await sqlTransaction(this.db, async (client) => {
        const out: (R | undefined)[] = [];
        for (const job of batch) out.push((typeof job.sql === 'string' ? await sqlQuery<R & QueryResultRow>(client, job.sql, job.values) : await sqlPrepared<R & QueryResultRow>(client, job.sql, job.values))[0]);
        statementsDone = true;
        return out;
      });
    } catch (err) {
      if (statementsDone) {
        for (const job of batch) job.reject(err);
        return;
      }
      for (const job of batch) await this.alone(job);
      return;
    }
    batch.forEach((job, i) => job.resolve(rows[i]));
  }
}

const finishBatchers = new WeakMap<Db, StatementBatcher<FinishRow>>();
const reserveBatchers = new WeakMap<Db, StatementBatcher<ReserveRow>>();

/** The batcher of one kind of statement for `db`: one per pool and kind. */
function batcherOf<R>(batchers: WeakMap<Db, StatementBatcher<R>>, db: Db, max: number): StatementBatcher<R> {
  let b = batchers.get(db);
  if (!b) batchers.set(db, (b = new StatementBatcher<R>(db, max)));
  return b;
}

const finishBatcher = (db: Db) => batcherOf(finishBatchers, db, FINISH_BATCH_MAX);
const reserveBatcher = (db: Db) => batcherOf(reserveBatchers, db, RESERVE_BATCH_MAX);

/**
 * Marks an operation EXHAUSTED when no usage is left and no reservation is open. Every finisher that saw no usage
 * left runs it after its own commit; of two concurrent last finishers at least one sees the other's reservation
 * gone, and one still signing may yet fail and give its usage back, so it is not marked before it finishes.
 */
async function markExhausted(db: Db, operationId: string): Promise<void> {
  await sqlQuery(
    db,
    `UPDATE "operation" SET "state" = 'EXHAUSTED', "updatedAt" = now()
     WHERE "id" = $1::uuid AND "state" IN ('APPROVED', 'REQUESTED')
       AND NOT EXISTS (SELECT 1 FROM "usage_reservation" WHERE "operationId" = $1::uuid)
       AND NOT EXISTS (SELECT 1 FROM "operation_key" WHERE "operationId" = $1::uuid AND "usagesUsed" < "usagesAllowed")`,
    [operationId],
  );
}

/**
 * Gives a reservation's usage back (the HSM failed, or storing the result failed). Idempotent: a reservation
 * already finished or released is left alone. Returns true when this call released it.
 */
export async function releaseUsage(db: Db, r: Pick<Reservation, 'id'>): Promise<boolean> {
  const rows = await sqlQuery<{ id: string }>(
    db,
    `WITH d AS (DELETE FROM "usage_reservation" WHERE "id" = $1::uuid RETURNING "id", "operationKeyId")
     UPDATE "operation_key" ok SET "usagesUsed" = ok."usagesUsed" - 1 FROM d WHERE ok."id" = d."operationKeyId"
     RETURNING d."id"`,
    [r.id],
  );
  return rows.length === 1;
}

/** A reservation whose lease ran out, as released by {@link releaseExpiredReservations}. */
export interface ReleasedReservation {
  id: string;
  operationId: string;
  keyid: string;
  subjectId: string;
  kind: string;
  requestId: string | null;
  createdAt: Date;
}

/**
 * Releases up to `limit` reservations whose lease ran out (their replica died or hung), each with its usage
 * given back and a `usage.released` audit event, in one transaction. Safe to run on every replica at once
 * (SKIP LOCKED); a late finisher of a released reservation fails with reservation_expired instead of storing.
 */
export async function releaseExpiredReservations(db: Db, now = new Date(), limit = 100): Promise<ReleasedReservation[]> {
  // Most sweeps find nothing: they must not queue behind the audit lock for it.
  if ((await sqlQuery(db, `SELECT 1 FROM "usage_reservation" WHERE "leaseUntil" < $1::timestamptz LIMIT 1`, [now])).length === 0) return [];
  return sqlTransaction(db, async (client) => {
    // The audit append lock before any reservation row. A finish locks its reservation's row and then takes the lock,
    // and a group commit already holds the lock (its earlier finishes appended) when it reaches its next reservation:
    // a reaper that locked that reservation first and then waited for the lock deadlocked with it (a second's stall
    // of every append until PostgreSQL broke it). Holding the lock, the reaper skips (SKIP LOCKED) every reservation a
    // finisher holds, and a finisher waiting for the lock holds no row the reaper waits for.
    // Their counters too (SKIP LOCKED, ADR 0045 addendum "the lock-order review"): holding the append lock, the reaper
    // waits for no row at all. A raise of a key's required approvers updates its operations' counters and then waits
    // for the append lock, and a reservation batch holds counters while it waits for a finish's idempotency key (the
    // finish waiting for the append lock): a reaper waiting for such a counter deadlocked with them. A reservation
    // whose counter is busy stays, still expired, for the next pass: it is released once, with its usage, or finished.
    await sqlQuery(client, `SELECT pg_advisory_xact_lock($1::bigint) IS NULL AS "locked"`, [AUDIT_APPEND_LOCK]);
    const rows = await sqlQuery<ReleasedReservation>(
      client,
      `WITH expired AS (
         SELECT "id", "operationKeyId" FROM "usage_reservation" WHERE "leaseUntil" < $1::timestamptz ORDER BY "leaseUntil" LIMIT $2 FOR UPDATE SKIP LOCKED
       ), counters AS (
         SELECT ok."id" FROM "operation_key" ok WHERE ok."id" IN (SELECT "operationKeyId" FROM expired) ORDER BY ok."id" FOR NO KEY UPDATE SKIP LOCKED
       ), d AS (
         DELETE FROM "usage_reservation" r USING expired WHERE r."id" = expired."id" AND expired."operationKeyId" IN (SELECT "id" FROM counters)
         RETURNING r."id", r."operationId", r."operationKeyId", r."keyId", r."subjectId", r."kind", r."requestId", r."createdAt"
       ), back AS (
         UPDATE "operation_key" ok SET "usagesUsed" = ok."usagesUsed" - c."n"
         FROM (SELECT "operationKeyId", count(*)::int AS "n" FROM d GROUP BY 1) c WHERE ok."id" = c."operationKeyId"
       )
       SELECT d."id", d."operationId", k."keyid", d."subjectId", d."kind", d."requestId", d."createdAt"
       FROM d JOIN "key" k ON k."id" = d."keyId" ORDER BY d."createdAt"`,
      [now, limit],
    );
    for (const r of rows) {
      const audit: AuditInput = {
        action: 'usage.released',
        outcome: 'FAILED',
        errorCode: 'reservation_expired',
        actorSubjectId: r.subjectId,
        keyid: r.keyid,
        operationId: r.operationId,
        requestId: r.requestId,
        details: { reservationId: r.id, kind: r.kind, reservedAt: r.createdAt.toISOString() },
      };
      await appendAuditSql(client, audit);
    }
    return rows;
  });
}
