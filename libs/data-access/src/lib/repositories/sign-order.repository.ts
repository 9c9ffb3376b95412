import { randomUUID } from 'node:crypto';
import type { SignOrder as SignOrderRow } from '../../generated/prisma/client';
import { sqlQuery, type Db } from '../db';
import { DataAccessError } from '../errors';
import type { AuditEvent, AuditInput, SignOrder } from '../types';
import { withIdempotentUsage } from './idempotency';
import { finishReservation, usageRefusalNow } from './usage';

export interface SignRequest {
  operationId: string;
  keyid: string;
  subjectId: string;
  description: string;
  /** Hex of the data to sign (a digest or the message, per inputformat). */
  inputdata: string;
  inputformat: string;
  inputpadding: string;
  signatureformat: string;
  /** Lower-case hex digest of the input, checked against the operation's allowed digests. */
  digest: string;
  idempotencyKey?: string | null;
  /**
   * With an idempotencyKey: {@link requestFingerprint} of the whole request. A retry is answered from the store only
   * when it is equal; any difference is `idempotency_key_reused`.
   */
  requestHash?: string | null;
  requestId?: string | null;
  /** Audit event appended in the same transaction (operationId, keyid, digest, requestId are filled in). */
  audit: AuditInput;
  /** Clock for the validity window check (tests). */
  now?: Date;
}

/** Result of {@link SignOrderRepository.recordWithUsage}. */
export interface RecordedSignOrder {
  signOrder: SignOrder;
  /** True when an earlier order with the same (subject, idempotencyKey) was returned and nothing was signed. */
  replayed: boolean;
  /** Usages left on this key of the operation after this order. */
  usagesLeft: number;
  audit: AuditEvent | null;
}

type SignOrderWithKey = SignOrderRow & { key: { keyid: string } };

const toSignOrder = (s: SignOrderWithKey): SignOrder => ({
  id: s.id,
  operationId: s.operationId,
  keyid: s.key.keyid,
  subjectId: s.subjectId,
  description: s.description,
  inputdata: s.inputdata,
  inputformat: s.inputformat,
  inputpadding: s.inputpadding,
  signatureformat: s.signatureformat,
  result: s.result,
  idempotencyKey: s.idempotencyKey,
  requestId: s.requestId,
  createdAt: s.createdAt,
});

const SIGN_ORDER_COLUMNS = `s."id", s."operationId", k."keyid", s."subjectId", s."description", s."inputdata", s."inputformat",
  s."inputpadding", s."signatureformat", s."result", s."idempotencyKey", s."requestId", s."createdAt"`;

/** Options of {@link SignOrderRepository}. */
export interface UsageOptions {
  /** Lease of a usage reservation in ms (default 60 s). */
  leaseMs?: number;
}

/** Sign orders and the usage accounting that makes each operation usage count exactly once. */
export class SignOrderRepository {
  constructor(
    private readonly db: Db,
    private readonly options: UsageOptions = {},
  ) {}

  /**
   * Takes one usage of (operation, key), calls `sign()` with NO lock held, then stores the order and its audit
   * event in one transaction (see usage.ts). The operation must be usable (APPROVED, or REQUESTED when no key
   * needs approvers), inside its window, with usages left and the digest allowed, else a DataAccessError says
   * why and nothing is signed. If `sign()` or storing throws, the usage is given back and the error rethrown.
   * A repeated (subjectId, idempotencyKey) returns the stored order without signing; one still in flight is
   * `conflict` ({@link withIdempotentUsage}, shared with certificates).
   */
  async recordWithUsage(req: SignRequest, sign: () => Promise<string>): Promise<RecordedSignOrder> {
    const digest = req.digest.toLowerCase();
    const done = await withIdempotentUsage<RecordedSignOrder>(this.db, {
      reserve: {
        operationId: req.operationId,
        keyid: req.keyid,
        subjectId: req.subjectId,
        kind: 'signorder',
        digest,
        idempotencyKey: req.idempotencyKey,
        requestId: req.requestId,
        now: req.now,
        leaseMs: this.options.leaseMs,
      },
      replay: () => this.replay(req),
      perform: async (reservation) => {
        const result = await sign();
        const id = randomUUID();
        const stored = await finishReservation(
          this.db,
          reservation,
          (p) => `INSERT INTO "sign_order" ("id", "operationId", "keyId", "subjectId", "description", "inputdata", "inputformat",
                  "inputpadding", "signatureformat", "result", "idempotencyKey", "requestHash", "requestId")
                SELECT ${p(id, 'uuid')}, d."operationId", d."keyId", ${p(req.subjectId, 'uuid')}, ${p(req.description)}, ${p(req.inputdata)},
                  ${p(req.inputformat)}, ${p(req.inputpadding)}, ${p(req.signatureformat)}, ${p(result)}, ${p(req.idempotencyKey ?? null)},
                  ${p(req.idempotencyKey ? (req.requestHash ?? null) : null)}, ${p(req.requestId ?? null)}
                FROM d RETURNING "createdAt"`,
          {
            ...req.audit,
            operationId: req.operationId,
            keyid: req.keyid,
            digest,
            requestId: req.requestId ?? req.audit.requestId ?? null,
            details: { ...req.audit.details, signOrderId: id },
          },
        );
        const order: SignOrder = {
          id,
          operationId: req.operationId,
          keyid: req.keyid,
          subjectId: req.subjectId,
          description: req.description,
          inputdata: req.inputdata,
          inputformat: req.inputformat,
          inputpadding: req.inputpadding,
          signatureformat: req.signatureformat,
          result,
          idempotencyKey: req.idempotencyKey ?? null,
          requestId: req.requestId ?? null,
          createdAt: stored.createdAt,
        };
        return { signOrder: order, replayed: false, usagesLeft: reservation.usagesAllowed - reservation.usagesUsed, audit: stored.audit };
      },
    });
    return done.value;
  }

  /**
   * Throws the DataAccessError {@link recordWithUsage} would throw for (operation, keyid) now, the digest aside, or
   * returns when a usage could be taken. Takes nothing (no usage, no lock): a route that reads a large input first
   * asks this before it reads a byte, and {@link recordWithUsage} decides again afterwards.
   */
  async assertUsableNow(operationId: string, keyid: string, now?: Date): Promise<void> {
    const refusal = await usageRefusalNow(this.db, operationId, keyid, now);
    if (refusal) throw refusal;
  }

  /** The stored answer for a repeated idempotency key, or null when there is none yet. */
  private async replay(req: SignRequest): Promise<RecordedSignOrder | null> {
    const rows = await sqlQuery<SignOrder & { usagesLeft: number; requestHash: string | null }>(
      this.db,
      `SELECT ${SIGN_ORDER_COLUMNS}, s."requestHash", ok."usagesAllowed" - ok."usagesUsed" AS "usagesLeft"
       FROM "sign_order" s JOIN "key" k ON k."id" = s."keyId"
       JOIN "operation_key" ok ON ok."operationId" = s."operationId" AND ok."keyId" = s."keyId"
       WHERE s."subjectId" = $1::uuid AND s."idempotencyKey" = $2`,
      [req.subjectId, req.idempotencyKey],
    );
    const prior = rows[0];
    if (!prior) return null;
    // Bound to the whole first request: its fingerprint, or (rows stored before fingerprints) every stored field.
    const same =
      prior.requestHash !== null || req.requestHash
        ? prior.requestHash === (req.requestHash ?? null)
        : prior.operationId === req.operationId &&
          prior.keyid === req.keyid &&
          prior.inputdata === req.inputdata &&
          prior.inputformat === req.inputformat &&
          prior.inputpadding === req.inputpadding &&
          prior.signatureformat === req.signatureformat &&
          prior.description === req.description;
    if (!same) throw new DataAccessError('idempotency_key_reused', 'this Idempotency-Key was used for a different request');
    const { usagesLeft, requestHash: _hash, ...order } = prior;
    return { signOrder: order, replayed: true, usagesLeft, audit: null };
  }

  /** The order a subject already made with this idempotency key, if any. */
  async findByIdempotencyKey(subjectId: string, idempotencyKey: string): Promise<SignOrder | null> {
    const s = await this.db.prisma.signOrder.findUnique({
      where: { subjectId_idempotencyKey: { subjectId, idempotencyKey } },
      include: { key: { select: { keyid: true } } },
    });
    return s ? toSignOrder(s) : null;
  }

  async get(id: string): Promise<SignOrder> {
    const s = await this.db.prisma.signOrder.findUnique({ where: { id }, include: { key: { select: { keyid: true } } } });
    if (!s) throw new DataAccessError('not_found', 'sign order not found');
    return toSignOrder(s);
  }

  async listByOperation(operationId: string): Promise<SignOrder[]> {
    const rows = await this.db.prisma.signOrder.findMany({
      where: { operationId },
      include: { key: { select: { keyid: true } } },
      orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
    });
    return rows.map(toSignOrder);
  }
}
