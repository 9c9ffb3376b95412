import { Injectable } from '@nestjs/common';
import type { CreateOperationRequest, OperationListQuery, OperationPage, OperationView, RejectOperationRequest } from '@keyserver/api-contract';
import { UUID_PATTERN } from '@keyserver/api-contract';
import { DataAccessError, effectiveState, KeyLimitsRepository, keyClass, OperationRepository, requestFingerprint, SubjectRepository, type AuditInput, type EffectiveKeyLimits, type Operation } from '@keyserver/data-access';
import { ApiError, ApiErrorCode } from '../common/api-error';
import type { Actor } from '../common/actor';
import { Audited, auditEvent, type AuditedOptions } from '../common/audited';
import { IDEMPOTENT_ROUTE, auditReplay, checkIdempotencyKey } from '../common/idempotency-key';

import { OperationError, OperationErrorCode } from './operation-error';
import { visiblePage } from './paging';
import { limitsView } from '../keys/keys.service';
import { holds, isAdministrator, requireAccess, visibility } from '@keyserver/authz';

type LimitsByKey = Map<string, EffectiveKeyLimits>;

const PAGE_SCAN = 100;

const ROUTE = IDEMPOTENT_ROUTE.operations;

@Injectable()
export class OperationsService {

  constructor(
    private readonly operations: OperationRepository,
    private readonly subjects: SubjectRepository,
    private readonly limits: KeyLimitsRepository,
    private readonly audited: Audited,
  ) {}

  /**
   * An orderer asks to use keys N times in a window; every key needs the ORDER permission. With an Idempotency-Key
   * (ADR 0007 addendum "operations and Idempotency-Key", the parsing and fingerprint of sign orders and certificates):
   * a retry with the same key and body is the first answer as it was sent, no second operation, audited
   * `operation.replayed`; another body is `422 idempotency_key_reused`. Access is checked first, a replay too.
   */
  async create(actor: Actor, dto: CreateOperationRequest, requestId: string, idempotencyKey?: string): Promise<OperationView> {
    const event = auditEvent('operation.create', actor, requestId, {
      details: { keys: dto.keys, validFrom: dto.validFrom, validTo: dto.validTo, ...(dto.provenance ? { provenance: dto.provenance } : {}) },
    });
    return this.audited.run(event, async (a) => {
      checkIdempotencyKey(idempotencyKey);
      for (const k of dto.keys) {
        requireAccess(actor, 'ORDER', k.keyid, () => new ApiError(ApiErrorCode.KeyNotPermitted, `not allowed to order ${k.keyid}`));
      }
      const input = {
        description: dto.description,
        ordererId: actor.subjectId,
        validFrom: new Date(dto.validFrom),
        validTo: new Date(dto.validTo),
        digests: dto.digests,
        provenance: dto.provenance,
        keys: dto.keys.map((k) => ({ keyid: k.keyid, usagesAllowed: k.usages })),
      };
      if (!idempotencyKey) {
        const op = await this.operations.create(input, a.event);
        // Committed with its SUCCESS event: a failure reading the answer must not add a FAILED event beside it.
        a.committed();
        return this.view(op, actor.displayName, await this.limitsOf([op]));
      }
      // The answer is built in the creating transaction and stored with the row, so a replay is the same bytes.
      const limits = await this.limits.getMany(dto.keys.map((k) => k.keyid));
      const created = await this.operations.createIdempotent(input, a.event, {
        key: idempotencyKey,
        // The key is bound to every field of the validated body: any difference on a retry is a 422.
        requestHash: requestFingerprint(ROUTE, idempotencyKey, dto),
        requestId,
        answer: (op) => this.view(op, actor.displayName, limits),
      });
      a.event.operationId = created.operationId;
      if (created.replayed) await auditReplay(this.audited, a, 'operation', created.firstRequestId, { operationId: created.operationId, details: { operationId: created.operationId } });
      a.committed();
      return created.answer as OperationView;
    });
  }

  async get(actor: Actor, id: string): Promise<OperationView> {
    const op = await this.visibleOperation(actor, id);
    const orderer = await this.subjects.getById(op.ordererId);
    return this.view(op, orderer.displayName, await this.limitsOf([op]));
  }

  /** Newest first; filters combine; callers only ever see operations they may see (`visibility.operation`). */
  async list(actor: Actor, q: OperationListQuery): Promise<OperationPage> {
    const limit = q.limit ?? 50;
    const filter = {
      state: q.state,
      keyid: q.key,
      ordererId: q.mine === 'true' ? actor.subjectId : undefined,
      awaitingApprovalBy: q.awaiting === 'me' ? actor.subjectId : undefined,
      // Visibility in the query too: the end of a long scan must not hand out the id of an invisible operation as cursor.
      visibleTo: visibility.everything(actor)
        ? undefined
        : { subjectId: actor.subjectId, approveKeyids: [...actor.keyGrants].filter(([keyid]) => holds(actor, 'APPROVE', keyid)).map(([keyid]) => keyid) },
    };
    // EXPIRED is derived from the window until a sweep stores it, so that filter reads REQUESTED/APPROVED too.
    const stored = filter.state === 'EXPIRED' || filter.awaitingApprovalBy ? undefined : filter.state;
    const now = new Date();
    const page = await visiblePage(
      (cursor) => this.operations.list({ ...filter, state: filter.awaitingApprovalBy ? undefined : stored, cursor, limit: PAGE_SCAN }),
      (op) =>
        visibility.operation(actor, op) &&
        (q.state === undefined || effectiveState(op, now) === q.state) &&
        (q.awaiting !== 'me' || (effectiveState(op, now) === 'REQUESTED' && this.awaitsApproval(actor, op))),
      q.cursor,
      limit,
    );
    const names = new Map<string, string>();
    for (const op of page.items) {
      if (!names.has(op.ordererId)) names.set(op.ordererId, (await this.subjects.getById(op.ordererId)).displayName);
    }
    const limits = await this.limitsOf(page.items);
    return { items: page.items.map((op) => this.view(op, names.get(op.ordererId) ?? '', limits, now)), nextCursor: page.nextCursor };
  }

  /**
   * An approver approves every key of the operation he holds APPROVE on that still lacks his approval.
   * Refused: the orderer himself (same tid+oid, whatever client he uses), non-approvers, a second approval,
   * and operations no longer REQUESTED or past their window.
   */
  async approve(actor: Actor, id: string, requestId: string): Promise<OperationView> {
    return this.audited.run(auditEvent('operation.approve', actor, requestId, { operationId: id }), async (a) => {
      const op = await this.visibleOperation(actor, id);
      a.event.operationId = op.id;
      const orderer = await this.subjects.getById(op.ordererId);
      if (orderer.tid === actor.tid && orderer.oid === actor.oid) {
        throw new OperationError(OperationErrorCode.SelfApprovalForbidden, 'the orderer cannot approve his own operation');
      }
      this.assertOpen(op);
      const keys = this.approvableKeys(actor, op);
      if (keys.length === 0) throw new OperationError(OperationErrorCode.NotAnApprover, 'no key of this operation needs your approval');
      const pending = keys.filter((k) => !k.approverIds.includes(actor.subjectId));
      if (pending.length === 0) throw new OperationError(OperationErrorCode.AlreadyApproved, 'you already approved this operation');
      let current: Operation;
      try {
        // One transaction for every pending key: all of this approval counts, or none of it.
        current = (await this.operations.approve(op.id, pending.map((k) => k.keyid), actor.subjectId, { ...a.event, details: {} })).operation;
      } catch (err) {
        if (!(err instanceof DataAccessError)) throw err;
        // A concurrent request of the same approver got there first: counted once, answered alike.
        if (err.code === 'already_approved') throw new OperationError(OperationErrorCode.AlreadyApproved, 'you already approved this operation');
        // Disabled, or APPROVE taken, since the (cached) grants this request was checked with: re-checked at the approval.
        if (err.code === 'not_an_approver') throw new OperationError(OperationErrorCode.NotAnApprover, 'you may no longer approve the keys of this operation');
        if (err.code === 'invalid_state') {
          const now = await this.operations.get(op.id);
          if (now.keys.some((x) => pending.some((k) => k.keyid === x.keyid) && x.approverIds.includes(actor.subjectId))) {
            throw new OperationError(OperationErrorCode.AlreadyApproved, 'you already approved this operation');
          }
          // The window may have ended while the approval waited for the operation's lock (judged there, ADR 0017).
          const state = effectiveState(now, new Date());
          if (state === 'EXPIRED') throw new OperationError(OperationErrorCode.OperationExpired, 'the operation window has passed');
          throw new OperationError(OperationErrorCode.OperationClosed, `operation is ${state}`);
        }
        throw err;
      }
      a.committed();
      return this.view(current, orderer.displayName, await this.limitsOf([current]));
    }, REFUSAL);
  }

  /** An approver of one of its keys vetoes a REQUESTED operation. */
  async reject(actor: Actor, id: string, dto: RejectOperationRequest, requestId: string): Promise<OperationView> {
    return this.audited.run(auditEvent('operation.reject', actor, requestId, { operationId: id, details: { reason: dto.reason } }), async (a) => {
      const op = await this.visibleOperation(actor, id);
      a.event.operationId = op.id;
      if (!op.keys.some((k) => holds(actor, 'APPROVE', k.keyid))) {
        throw new OperationError(OperationErrorCode.NotAnApprover, 'only an approver of its keys can reject an operation');
      }
      this.assertOpen(op);
      const rejected = await this.operations.reject(op.id, dto.reason, a.event);
      a.committed();
      return this.view(rejected, (await this.subjects.getById(op.ordererId)).displayName, await this.limitsOf([rejected]));
    }, REFUSAL);
  }

  /** The orderer or an administrator withdraws a REQUESTED or APPROVED operation. */
  async cancel(actor: Actor, id: string, requestId: string): Promise<OperationView> {
    return this.audited.run(auditEvent('operation.cancel', actor, requestId, { operationId: id }), async (a) => {
      const op = await this.visibleOperation(actor, id);
      a.event.operationId = op.id;
      const orderer = await this.subjects.getById(op.ordererId);
      const isOrderer = orderer.tid === actor.tid && orderer.oid === actor.oid;
      if (!isOrderer && !isAdministrator(actor)) {
        throw new OperationError(OperationErrorCode.CancellationNotAllowed, 'only the orderer or an administrator can cancel');
      }
      this.assertOpen(op);
      const cancelled = await this.operations.cancel(op.id, a.event);
      a.committed();
      return this.view(cancelled, orderer.displayName, await this.limitsOf([cancelled]));
    }, REFUSAL);
  }

  /** Unknown, malformed and invisible ids are all the same 404, so ids of others' operations leak nothing. */
  private async visibleOperation(actor: Actor, id: string): Promise<Operation> {
    const op = await this.operations.get(id).catch((err: unknown) => {
      if (err instanceof DataAccessError && err.code === 'not_found') throw new ApiError(ApiErrorCode.OperationNotFound, 'no such operation');
      throw err;
    });
    if (!visibility.operation(actor, op)) throw new ApiError(ApiErrorCode.OperationNotFound, 'no such operation');
    return op;
  }

  /** Keys of the operation that need approvals and on which the caller holds APPROVE. */
  private approvableKeys(actor: Actor, op: Operation) {
    return op.keys.filter((k) => k.requiredApprovers > 0 && holds(actor, 'APPROVE', k.keyid));
  }

  /** What `approve` would still count: a key short of approvers that the caller (never the orderer) approves and has not yet. */
  private awaitsApproval(actor: Actor, op: Operation): boolean {
    if (op.ordererId === actor.subjectId) return false;
    return this.approvableKeys(actor, op).some((k) => k.approverIds.length < k.requiredApprovers && !k.approverIds.includes(actor.subjectId));
  }

  private assertOpen(op: Operation): void {
    const state = effectiveState(op, new Date());
    if (state === 'EXPIRED') throw new OperationError(OperationErrorCode.OperationExpired, 'the operation window has passed');
    if (state !== 'REQUESTED' && state !== 'APPROVED') throw new OperationError(OperationErrorCode.OperationClosed, `operation is ${state}`);
  }

  /** The limits in force for every key of these operations (what an approver weighs the request against). */
  private limitsOf(ops: Operation[]): Promise<LimitsByKey> {
    return this.limits.getMany([...new Set(ops.flatMap((o) => o.keys.map((k) => k.keyid)))]);
  }

  private view(op: Operation, ordererName: string, limits: LimitsByKey, now = new Date()): OperationView {
    return {
      id: op.id,
      description: op.description,
      state: effectiveState(op, now),
      orderer: { subjectId: op.ordererId, displayName: ordererName },
      validFrom: op.validFrom.toISOString(),
      validTo: op.validTo.toISOString(),
      digests: op.digests,
      provenance: op.provenance,
      rejectionReason: op.rejectionReason,
      keys: op.keys.map((k) => ({
        keyid: k.keyid,
        usagesAllowed: k.usagesAllowed,
        usagesUsed: k.usagesUsed,
        requiredApprovers: k.requiredApprovers,
        approvals: k.approverIds.length,
        approvalsMissing: Math.max(0, k.requiredApprovers - k.approverIds.length),
        type: k.key.type as OperationView['keys'][number]['type'],
        algorithm: k.key.algorithm as OperationView['keys'][number]['algorithm'],
        hash: k.key.hash as OperationView['keys'][number]['hash'],
        environment: keyClass(k.key),
        product: k.key.product,
        approvedBy: k.approvals.map((a) => ({ subjectId: a.subjectId, displayName: a.displayName, approvedAt: a.at.toISOString() })),
        limits: ((l) => (l ? limitsView(l) : null))(limits.get(k.keyid)),
      })),
      createdAt: op.createdAt.toISOString(),
    };
  }
}

/** A refused request's event keeps an operation id that is not a UUID only in its details (the column holds UUIDs). */
const REFUSAL: AuditedOptions = {
  refusal: (e: AuditInput) => {
    const id = e.operationId ?? null;
    const valid = id !== null && UUID_PATTERN.test(id);
    return { ...e, operationId: valid ? id : null, details: { ...e.details, ...(id && !valid ? { requestedId: id.slice(0, 64) } : {}) } };
  },
};

/** The operation policy's effective state (libs/data-access policy/operation-policy.ts), re-exported for this feature. */
export { effectiveState };
