import type { SignOrder as SignOrderRow } from '../../generated/prisma/client';
import { mapPrismaError, type Db } from '../db';
import { DataAccessError } from '../errors';
import type { AuditEvent, AuditInput, SignOrder } from '../types';
import { appendAuditTx } from './audit.repository';
import { consumeUsageTx, reserveUsageTx } from './usage';
import { lockOperation } from './operation.repository';

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

/** Sign orders and the usage accounting that makes each operation usage count exactly once. */
export class SignOrderRepository {
  constructor(private readonly db: Db) {}

  /**
   * Consumes one usage of (operation, key) and records the sign order, all in ONE transaction:
   * locks the operation and its key row (SELECT ... FOR UPDATE), checks the operation is usable
   * (APPROVED, or REQUESTED when no key needs approvers), inside its window, with usages left and
   * the digest allowed, then calls `sign()` while the lock is held, and only when it resolves
   * increments usagesUsed (EXHAUSTED when every key is used up), inserts the order and appends the
   * audit event. If `sign()` throws, everything rolls back: no usage is consumed and its error is
   * rethrown. A repeated (subjectId, idempotencyKey) returns the stored order without signing.
   */
  async recordWithUsage(req: SignRequest, sign: () => Promise<string>): Promise<RecordedSignOrder> {
    const digest = req.digest.toLowerCase();
    return this.db
      .transaction(async (tx) => {
      await lockOperation(tx, req.operationId);
      if (req.idempotencyKey) {
        const prior = await tx.signOrder.findUnique({
          where: { subjectId_idempotencyKey: { subjectId: req.subjectId, idempotencyKey: req.idempotencyKey } },
          include: { key: { select: { keyid: true } } },
        });
        if (prior) {
          if (prior.operationId !== req.operationId || prior.key.keyid !== req.keyid || prior.inputdata !== req.inputdata) {
            throw new DataAccessError('conflict', 'idempotency key reused for a different request');
          }
          const ok = await tx.operationKey.findUniqueOrThrow({
            where: { operationId_keyId: { operationId: prior.operationId, keyId: prior.keyId } },
          });
          return { signOrder: toSignOrder(prior), replayed: true, usagesLeft: ok.usagesAllowed - ok.usagesUsed, audit: null };
        }
      }
      const usage = await reserveUsageTx(tx, { operationId: req.operationId, keyid: req.keyid, digest, now: req.now });

      // The row lock stays held while the HSM signs; a throw here rolls the whole transaction back.
      const result = await sign();

      await consumeUsageTx(tx, usage);
      const order = await tx.signOrder.create({
        data: {
          operationId: req.operationId,
          keyId: usage.keyId,
          subjectId: req.subjectId,
          description: req.description,
          inputdata: req.inputdata,
          inputformat: req.inputformat,
          inputpadding: req.inputpadding,
          signatureformat: req.signatureformat,
          result,
          idempotencyKey: req.idempotencyKey ?? null,
          requestId: req.requestId ?? null,
        },
        include: { key: { select: { keyid: true } } },
      });
      const audit = await appendAuditTx(tx, {
        ...req.audit,
        operationId: req.operationId,
        keyid: req.keyid,
        digest,
        requestId: req.requestId ?? req.audit.requestId ?? null,
        details: { ...req.audit.details, signOrderId: order.id },
      });
      return {
        signOrder: toSignOrder(order),
        replayed: false,
        usagesLeft: usage.usagesAllowed - usage.usagesUsed - 1,
        audit,
      };
    })
      .catch((err: unknown) => mapPrismaError(err, 'sign order'));
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
