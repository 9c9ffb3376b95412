import type { Prisma } from '../../generated/prisma/client';
import { UUID, mapPrismaError, type Db, type Tx } from '../db';
import { DataAccessError } from '../errors';
import type { AuditInput, Operation, OperationProvenance, OperationState, Page } from '../types';
import { appendAuditTx, clampLimit } from './audit.repository';
import { effectiveLimits, operationLimitViolation } from './key-limits';
import { externalChainValidity } from '../policy/chain-validity';
import { approvalComplete, certificateCoversWindow, effectiveState, type CertificateValidity } from '../policy/operation-policy';
import { enqueueOperationNotice } from './notification.repository';
import { approvableKeyIds, lockApprover } from './approval-withdrawal';

export interface CreateOperationInput {
  description: string;
  ordererId: string;
  validFrom: Date;
  validTo: Date;
  /** Allowed digests (hex, any case); empty allows any input. */
  digests?: string[];
  /** What the ordering CI run says about itself; stored as given (validated by the contract). */
  provenance?: OperationProvenance;
  keys: { keyid: string; usagesAllowed: number }[];
  /** Clock for the per-key limits (tests freeze it); default the current time. */
  now?: Date;
}

export interface OperationFilter {
  state?: OperationState;
  keyid?: string;
  ordererId?: string;
  /** Operations still REQUESTED where this subject can add a missing approval. */
  awaitingApprovalBy?: string;
  /**
   * Only operations this caller may see (the visibility policy, @keyserver/authz `visibility.operation`): those it
   * ordered and those using a key it approves. Applied in the query, so that no page or cursor is ever made of
   * operations the caller may not see; absent for callers who see everything.
   */
  visibleTo?: { subjectId: string; approveKeyids: readonly string[] };
  cursor?: string;
  limit?: number;
}

/**
 * An Idempotency-Key on POST /api/v1/operations (ADR 0007 addendum "operations and Idempotency-Key"): unique per
 * orderer, bound to the whole request by `requestHash` ({@link requestFingerprint}), its first answer kept for a retry.
 */
export interface OperationIdempotency {
  key: string;
  requestHash: string;
  requestId: string;
  /** The route's answer for the new operation, built in its transaction and stored with it (as JSON text). */
  answer: (op: Operation) => unknown;
}

/** Result of {@link OperationRepository.createIdempotent}. */
export interface CreatedOperation {
  operationId: string;
  /** The answer built for this request (fresh), or the stored first answer (a replay). */
  answer: unknown;
  /** True when an earlier request with the same (orderer, key) made it: nothing was created or audited here. */
  replayed: boolean;
  /** The request that created it. */
  firstRequestId: string | null;
}

/** Result of {@link OperationRepository.addApproval}. */
export interface ApprovalResult {
  operation: Operation;
  /** True only for the one approval that moved the operation REQUESTED -> APPROVED. */
  transitioned: boolean;
}

const operationInclude = {
  keys: { include: { key: { select: { keyid: true, type: true, algorithm: true, hash: true, product: true, requiredApprovers: true } } }, orderBy: { id: 'asc' } },
  approvals: { select: { keyId: true, approverId: true, createdAt: true, approver: { select: { displayName: true } } }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] },
} satisfies Prisma.OperationInclude;

type OperationRow = Prisma.OperationGetPayload<{ include: typeof operationInclude }>;

export function toOperation(o: OperationRow): Operation {
  return {
    id: o.id,
    description: o.description,
    state: o.state,
    ordererId: o.ordererId,
    validFrom: o.validFrom,
    validTo: o.validTo,
    digests: o.digests,
    provenance: (o.provenance as OperationProvenance | null) ?? null,
    rejectionReason: o.rejectionReason,
    createdAt: o.createdAt,
    updatedAt: o.updatedAt,
    keys: o.keys.map((k) => ({
      keyid: k.key.keyid,
      usagesAllowed: k.usagesAllowed,
      usagesUsed: k.usagesUsed,
      requiredApprovers: k.requiredApprovers,
      approverIds: o.approvals.filter((a) => a.keyId === k.keyId).map((a) => a.approverId).sort(),
      key: { type: k.key.type, algorithm: k.key.algorithm, hash: k.key.hash, product: k.key.product, requiredApprovers: k.key.requiredApprovers },
      approvals: o.approvals.filter((a) => a.keyId === k.keyId).map((a) => ({ subjectId: a.approverId, displayName: a.approver.displayName, at: a.createdAt })),
    })),
  };
}

const HEX = /^[0-9a-fA-F]+$/;

/** Locks the operation row for the rest of the transaction. */
export async function lockOperation(tx: Tx, id: string): Promise<void> {
  if (!UUID.test(id)) throw new DataAccessError('not_found', 'operation not found');
  const rows = await tx.$queryRaw<{ id: string }[]>`SELECT "id" FROM "operation" WHERE "id" = ${id}::uuid FOR NO KEY UPDATE`;
  if (rows.length === 0) throw new DataAccessError('not_found', 'operation not found');
}


/**
 * Refuses (`window_outside_certificate`, naming the key) a window that reaches outside the validity of a key's current
 * certificate or of a certificate above it. The certificates the Keyserver issues nest inside the issuer version that
 * signed them (libs/pki `checkValidity`), so only two things bound a key: its own certificate (the key row describes
 * the current version: a renewal or rotation in between counts as it is when this runs) and the external chain above
 * the ROOT at the top of its path (an offline intermediate may expire before the ROOT certificate it issued, and then
 * before every key below it): the chain of the ROOT version that certified the path, as on the sign path. `keys` are
 * rows the caller has locked FOR SHARE, so a concurrent renewal is seen whole.
 */
export async function assertCertificatesCover(
  tx: Tx,
  keys: readonly { id: string; keyid: string; notBefore: Date; notAfter: Date }[],
  window: { validFrom: Date; validTo: Date },
  now: Date,
): Promise<void> {
  if (keys.length === 0) return;
  // The chain of the ROOT key pair that certified the path (ADR 0020 addendum "one rule for the chain above a key"):
  // `via` is the issuer version named by the current version of the key just below the ROOT; when that version has
  // the ROOT's current key pair (no rotation since, or a re-issue) the current chain (key row), else the chain of the
  // newest version of that key pair, and the current chain when that one is not known (superseded before chains were
  // kept per version). `externalChainAbove` in the API finds the same version by signature.
  const chains = await tx.$queryRaw<{ start: string; chain: string }[]>`
    WITH RECURSIVE up AS (
      SELECT k."id" AS "start", k."id", k."parentId", NULL::int AS "via", 0 AS "depth" FROM "key" k WHERE k."id" = ANY(${keys.map((k) => k.id)}::uuid[])
      UNION ALL
      SELECT up."start", p."id", p."parentId", cv."issuerVersion", up."depth" + 1
        FROM up
        JOIN "key" c ON c."id" = up."id"
        LEFT JOIN "key_version" cv ON cv."keyId" = c."id" AND cv."version" = c."currentVersion"
        JOIN "key" p ON p."id" = up."parentId"
       WHERE up."depth" < 16
    )
    SELECT up."start"::text AS "start",
           COALESCE((SELECT n."issuerChainPem"
                       FROM "key_version" s JOIN "key_version" n ON n."keyId" = s."keyId" AND n."hsmKeyId" = s."hsmKeyId"
                      WHERE s."keyId" = r."id" AND s."version" = up."via" AND s."hsmKeyId" <> r."hsmKeyId"
                      ORDER BY n."version" DESC LIMIT 1), r."issuerChainPem") AS "chain"
      FROM up JOIN "key" r ON r."id" = up."id"
     WHERE up."parentId" IS NULL AND r."issuerChainPem" IS NOT NULL`;
  for (const key of keys) {
    const validity: CertificateValidity = { notBefore: key.notBefore, notAfter: key.notAfter };
    let bound = `its certificate (${key.notBefore.toISOString()} to ${key.notAfter.toISOString()})`;
    const above = externalChainValidity(chains.find((c) => c.start === key.id)?.chain);
    if (above) {
      if (above.notBefore > validity.notBefore) validity.notBefore = above.notBefore;
      if (above.notAfter < validity.notAfter) {
        validity.notAfter = above.notAfter;
        bound = `the external chain above its ROOT (${above.bound})`;
      }
    }
    if (!certificateCoversWindow(window, validity, now)) {
      throw new DataAccessError(
        'window_outside_certificate',
        `${key.keyid}: the window ${window.validFrom.toISOString()} to ${window.validTo.toISOString()} is not inside the validity of ${bound}: ` +
          `the key can sign from ${validity.notBefore.toISOString()} until ${validity.notAfter.toISOString()} only`,
      );
    }
  }
}

/** Signing/issuing operations, their keys with usage budgets, and approvals. */
export class OperationRepository {
  constructor(private readonly db: Db) {}

  /** Creates a REQUESTED operation; each key's requiredApprovers is snapshotted from the key. */
  async create(input: CreateOperationInput, audit?: AuditInput): Promise<Operation> {
    return this.insert(input, audit);
  }

  /**
   * {@link create} under an Idempotency-Key: a repeated (orderer, key) is the stored first answer, nothing created,
   * notified or audited (`idempotency_key_reused` when it was stored for another request). Read before the insert (a
   * retry of a finished request is answered even if the key's limits changed since), and again after a unique
   * violation: a concurrent request with the same key (another replica) committed first, its answer is this one's.
   */
  async createIdempotent(input: CreateOperationInput, audit: AuditInput, idem: OperationIdempotency): Promise<CreatedOperation> {
    const prior = await this.replay(input.ordererId, idem);
    if (prior) return prior;
    let answer: unknown;
    try {
      const op = await this.insert(input, audit, idem, (a) => (answer = a));
      return { operationId: op.id, answer, replayed: false, firstRequestId: idem.requestId };
    } catch (err) {
      if (err instanceof DataAccessError && err.code === 'conflict') {
        const raced = await this.replay(input.ordererId, idem);
        if (raced) return raced;
      }
      throw err;
    }
  }

  /** The stored answer of (orderer, key), or null when there is none; another request under the key is refused. */
  private async replay(ordererId: string, idem: OperationIdempotency): Promise<CreatedOperation | null> {
    const row = await this.db.prisma.operation
      .findUnique({ where: { ordererId_idempotencyKey: { ordererId, idempotencyKey: idem.key } }, select: { id: true, requestHash: true, requestId: true, replayAnswer: true } })
      .catch((err: unknown) => mapPrismaError(err, 'operation'));
    if (!row) return null;
    if (row.requestHash !== idem.requestHash) throw new DataAccessError('idempotency_key_reused', 'this Idempotency-Key was used for a different request');
    // Stored in the transaction that created the row: a keyed row always has its answer.
    return { operationId: row.id, answer: JSON.parse(row.replayAnswer ?? 'null'), replayed: true, firstRequestId: row.requestId };
  }

  private async insert(input: CreateOperationInput, audit?: AuditInput, idem?: OperationIdempotency, answered?: (answer: unknown) => void): Promise<Operation> {
    if (input.keys.length === 0) throw new DataAccessError('invalid_input', 'an operation needs at least one key');
    if (!(input.validFrom < input.validTo)) throw new DataAccessError('invalid_input', 'validFrom must be before validTo');
    const digests = (input.digests ?? []).map((d) => d.toLowerCase());
    if (digests.some((d) => !HEX.test(d))) throw new DataAccessError('invalid_input', 'digests must be hex');
    const keyids = input.keys.map((k) => k.keyid);
    if (new Set(keyids).size !== keyids.length) throw new DataAccessError('invalid_input', 'duplicate key in operation');
    if (input.keys.some((k) => !Number.isInteger(k.usagesAllowed) || k.usagesAllowed < 1)) {
      throw new DataAccessError('invalid_input', 'usagesAllowed must be a positive integer');
    }
    try {
      const now = input.now ?? new Date();
      return await this.db.transaction(async (tx) => {
        // FOR SHARE: a concurrent change of a key's limits or approvers (FOR NO KEY UPDATE) is either seen whole or waits.
        await tx.$queryRaw`SELECT "id" FROM "key" WHERE "keyid" = ANY(${keyids}::text[]) ORDER BY "id" FOR SHARE`;
        const keys = await tx.key.findMany({ where: { keyid: { in: keyids } }, include: { operationLimit: true } });
        for (const k of input.keys) {
          const key = keys.find((x) => x.keyid === k.keyid);
          if (!key) throw new DataAccessError('not_found', `key ${k.keyid} not found`);
          if (key.state !== 'ACTIVE') throw new DataAccessError('key_revoked', `key ${k.keyid} is ${key.state}`);
          const broken = operationLimitViolation(effectiveLimits(key, key.operationLimit), { validFrom: input.validFrom, validTo: input.validTo, usages: k.usagesAllowed }, now);
          if (broken) throw new DataAccessError(broken.code, `${k.keyid}: ${broken.detail}`);
        }
        // Backdating (maxBackdateSeconds) allows a start in the past, not a window already over: such an operation would
        // be born EXPIRED and still ask its approvers to approve it. validTo is exclusive (policy `usability`).
        if (input.validTo.getTime() <= now.getTime()) throw new DataAccessError('window_ended', 'validTo is not after now: the window has already ended');
        await assertCertificatesCover(tx, input.keys.map((k) => keys.find((x) => x.keyid === k.keyid)).filter((k) => k !== undefined), input, now);
        const op = await tx.operation.create({
          data: {
            description: input.description,
            ordererId: input.ordererId,
            validFrom: input.validFrom,
            validTo: input.validTo,
            digests,
            ...(input.provenance ? { provenance: input.provenance as Prisma.InputJsonObject } : {}),
            ...(idem ? { idempotencyKey: idem.key, requestHash: idem.requestHash, requestId: idem.requestId } : {}),
            keys: {
              create: input.keys.map((k) => {
                const key = keys.find((x) => x.keyid === k.keyid);
                return { keyId: key?.id ?? '', usagesAllowed: k.usagesAllowed, requiredApprovers: key?.requiredApprovers ?? 0 };
              }),
            },
          },
          include: operationInclude,
        });
        const created = toOperation(op);
        if (idem) {
          // Text, not jsonb: a replay must be the same bytes, and jsonb reorders members.
          const answer = idem.answer(created);
          await tx.$executeRaw`UPDATE "operation" SET "replayAnswer" = ${JSON.stringify(answer)} WHERE "id" = ${op.id}::uuid`;
          answered?.(answer);
        }
        if (audit) await appendAuditTx(tx, { ...audit, operationId: op.id });
        await enqueueOperationNotice(tx, 'operation.approval_requested', op.id);
        return created;
      });
    } catch (err) {
      return mapPrismaError(err, 'operation');
    }
  }

  async get(id: string): Promise<Operation> {
    if (!UUID.test(id)) throw new DataAccessError('not_found', 'operation not found');
    const op = await this.db.prisma.operation.findUnique({ where: { id }, include: operationInclude });
    if (!op) throw new DataAccessError('not_found', 'operation not found');
    return toOperation(op);
  }

  /** Lists operations newest first; the cursor is the last item's id. */
  async list(filter: OperationFilter = {}): Promise<Page<Operation>> {
    const limit = clampLimit(filter.limit);
    const where: Prisma.OperationWhereInput = { state: filter.state, ordererId: filter.ordererId };
    const and: Prisma.OperationWhereInput[] = [];
    if (filter.keyid) and.push({ keys: { some: { key: { keyid: filter.keyid } } } });
    if (filter.visibleTo) {
      const { subjectId, approveKeyids } = filter.visibleTo;
      if (!UUID.test(subjectId)) throw new DataAccessError('invalid_input', 'bad subject id');
      const approves: Prisma.OperationWhereInput[] = approveKeyids.length ? [{ keys: { some: { key: { keyid: { in: [...approveKeyids] } } } } }] : [];
      and.push({ OR: [{ ordererId: subjectId }, ...approves] });
    }
    if (and.length) where.AND = and;
    if (filter.awaitingApprovalBy) {
      const approver = filter.awaitingApprovalBy;
      where.state = 'REQUESTED';
      // Prisma cannot compare two columns, so pre-select ids with SQL.
      const ids = await this.db.prisma.$queryRaw<{ id: string }[]>`
        SELECT DISTINCT ok."operationId" AS id FROM "operation_key" ok
        WHERE ok."requiredApprovers" > (SELECT count(*) FROM "approval" a WHERE a."operationId" = ok."operationId" AND a."keyId" = ok."keyId")
          AND NOT EXISTS (SELECT 1 FROM "approval" a WHERE a."operationId" = ok."operationId" AND a."keyId" = ok."keyId" AND a."approverId" = ${approver}::uuid)`;
      where.id = { in: ids.map((r) => r.id) };
    }
    if (filter.cursor !== undefined && !UUID.test(filter.cursor)) throw new DataAccessError('invalid_input', 'bad cursor');
    const rows = await this.db.prisma.operation.findMany({
      where,
      include: operationInclude,
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: limit + 1,
      ...(filter.cursor ? { cursor: { id: filter.cursor }, skip: 1 } : {}),
    });
    const items = rows.slice(0, limit).map(toOperation);
    return { items, nextCursor: rows.length > limit ? items[items.length - 1].id : null };
  }

  /** Records `approverId`'s approval of one key: {@link approve} with that key. */
  addApproval(operationId: string, keyid: string, approverId: string, audit?: AuditInput): Promise<ApprovalResult> {
    return this.approve(operationId, [keyid], approverId, audit);
  }

  /**
   * Records `approverId`'s approval of every key in `keyids`, all or nothing, in ONE transaction. The operation
   * row is locked (SELECT ... FOR NO KEY UPDATE) so concurrent approvals see each other and exactly one of them performs
   * the REQUESTED -> APPROVED transition (when `approvalComplete` holds). A repeated approval of any key is
   * `already_approved` and nothing is counted. Each key's approval gets its own audit event (`keyid` set).
   * The approver's right is re-checked here, under locks a disable or a role or grant change must wait for (the
   * Actor the service checked may come from a cache a moment old, the token older than a recorded guest proof): a key
   * he may not approve now is `not_an_approver` and nothing is counted (ADR 0017 addendum 2026-12-07, ADR 0040
   * addendum 2026-12-13).
   */
  /**
   * `clock` is read after the operation's lock is held: the window is judged when the approval commits, not when the
   * request arrived (an approval that waited on the lock past the window's end counts for nothing).
   */
  async approve(operationId: string, keyids: readonly string[], approverId: string, audit?: AuditInput, clock: () => Date = () => new Date()): Promise<ApprovalResult> {
    try {
      return await this.db.transaction(async (tx) => {
        // The approver before the operation: the order in which a withdrawal locks them (approval-withdrawal.ts).
        if (!UUID.test(approverId)) throw new DataAccessError('not_an_approver', 'no such approver');
        await lockApprover(tx, approverId);
        await lockOperation(tx, operationId);
        const op = await tx.operation.findUniqueOrThrow({ where: { id: operationId }, include: operationInclude });
        if (op.state !== 'REQUESTED') throw new DataAccessError('invalid_state', `operation is ${op.state}`);
        const now = clock();
        if (effectiveState(op, now) === 'EXPIRED') throw new DataAccessError('invalid_state', 'the operation window has passed');
        // Every key as it is now (FOR SHARE, in id order after the operation, as a change of required approvers locks
        // them): one retired or revoked since the order (as a new order would be: key_revoked), or whose certificate
        // was renewed or re-issued with a validity that no longer covers the window. An approval must not make usable
        // what could only end in key_not_usable.
        const keyRows = await tx.$queryRaw<{ id: string; keyid: string; state: string; notBefore: Date; notAfter: Date }[]>`
          SELECT "id"::text AS "id", "keyid", "state"::text AS "state", "notBefore", "notAfter" FROM "key" WHERE "id" = ANY(${op.keys.map((k) => k.keyId)}::uuid[]) ORDER BY "id" FOR SHARE`;
        const gone = keyRows.find((k) => k.state !== 'ACTIVE');
        if (gone) throw new DataAccessError('key_revoked', `key ${gone.keyid} is ${gone.state}`);
        await assertCertificatesCover(tx, keyRows, op, now);
        const entitled = await approvableKeyIds(tx, approverId);
        const approvals = op.approvals.map((a) => ({ keyId: a.keyId, approverId: a.approverId }));
        for (const keyid of keyids) {
          const opKey = op.keys.find((k) => k.key.keyid === keyid);
          if (!opKey) throw new DataAccessError('key_not_in_operation', `key ${keyid} is not part of the operation`);
          if (!entitled.has(opKey.keyId)) throw new DataAccessError('not_an_approver', `the approver may not approve key ${keyid} (disabled, recorded as a guest account, or no APPROVE on it)`);
          if (approvals.some((a) => a.keyId === opKey.keyId && a.approverId === approverId)) {
            throw new DataAccessError('already_approved', 'this approver already approved this key');
          }
          await tx.approval.create({ data: { operationId, keyId: opKey.keyId, approverId } });
          approvals.push({ keyId: opKey.keyId, approverId });
          if (audit) await appendAuditTx(tx, { ...audit, operationId, keyid });
        }
        const complete = approvalComplete(
          op.keys.map((k) => ({ requiredApprovers: k.requiredApprovers, approvals: approvals.filter((a) => a.keyId === k.keyId).length })),
        );
        if (complete) await tx.operation.update({ where: { id: operationId }, data: { state: 'APPROVED' } });
        if (complete) await enqueueOperationNotice(tx, 'operation.approved', operationId);
        const after = await tx.operation.findUniqueOrThrow({ where: { id: operationId }, include: operationInclude });
        return { operation: toOperation(after), transitioned: complete };
      });
    } catch (err) {
      return mapPrismaError(err, 'approval');
    }
  }

  /** REQUESTED -> REJECTED. */
  reject(operationId: string, reason: string, audit?: AuditInput): Promise<Operation> {
    return this.transition(operationId, ['REQUESTED'], { state: 'REJECTED', rejectionReason: reason }, audit);
  }

  /** REQUESTED or APPROVED -> CANCELLED. */
  cancel(operationId: string, audit?: AuditInput): Promise<Operation> {
    return this.transition(operationId, ['REQUESTED', 'APPROVED'], { state: 'CANCELLED' }, audit);
  }

  private async transition(
    id: string,
    from: OperationState[],
    data: Prisma.OperationUpdateInput,
    audit?: AuditInput,
  ): Promise<Operation> {
    const notice = data.state === 'REJECTED' ? 'operation.rejected' : null;
    return this.db.transaction(async (tx) => {
      await lockOperation(tx, id);
      const op = await tx.operation.findUniqueOrThrow({ where: { id } });
      if (!from.includes(op.state)) throw new DataAccessError('invalid_state', `operation is ${op.state}`);
      const updated = await tx.operation.update({ where: { id }, data, include: operationInclude });
      if (audit) await appendAuditTx(tx, { ...audit, operationId: id });
      if (notice) await enqueueOperationNotice(tx, notice, id);
      return toOperation(updated);
    });
  }
}
