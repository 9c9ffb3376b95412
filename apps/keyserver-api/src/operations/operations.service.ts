import { Inject, Injectable } from '@nestjs/common';
import type { CreateOperationRequest, OperationView } from '@keyserver/api-contract';
import { AuditRepository, OperationRepository, SubjectRepository, type AuditInput, type Operation } from '@keyserver/data-access';
import { KeyserverError } from '@keyserver/errors';
import { ApiError, ApiErrorCode } from '../common/api-error';
import { actorAudit, type Actor } from '../common/actor';
import { DEPS, type ApiDeps } from '../app/tokens';

@Injectable()
export class OperationsService {
  private readonly operations: OperationRepository;
  private readonly subjects: SubjectRepository;
  private readonly audit: AuditRepository;

  constructor(@Inject(DEPS) deps: ApiDeps) {
    this.operations = new OperationRepository(deps.db);
    this.subjects = new SubjectRepository(deps.db);
    this.audit = new AuditRepository(deps.db);
  }

  /** An orderer asks to use keys N times in a window; every key needs the ORDER permission. */
  async create(actor: Actor, dto: CreateOperationRequest, requestId: string): Promise<OperationView> {
    const audit: AuditInput = { ...actorAudit(actor), action: 'operation.create', outcome: 'SUCCESS', requestId, details: { keys: dto.keys } };
    try {
      for (const k of dto.keys) {
        if (!actor.keyPermissions.get(k.keyid)?.has('ORDER')) throw new ApiError(ApiErrorCode.KeyNotPermitted, `not allowed to order ${k.keyid}`);
      }
      const op = await this.operations.create(
        {
          description: dto.description,
          ordererId: actor.subjectId,
          validFrom: new Date(dto.validFrom),
          validTo: new Date(dto.validTo),
          digests: dto.digests,
          keys: dto.keys.map((k) => ({ keyid: k.keyid, usagesAllowed: k.usages })),
        },
        audit,
      );
      return this.view(op, actor.displayName);
    } catch (err) {
      await this.audit.append({ ...audit, outcome: 'DENIED', errorCode: err instanceof KeyserverError ? err.code : 'internal_error' });
      throw err;
    }
  }

  async get(actor: Actor, id: string): Promise<OperationView> {
    const op = await this.operations.get(id).catch(() => {
      throw new ApiError(ApiErrorCode.OperationNotFound, 'no such operation');
    });
    // Orderers see their own operations; approvers the ones on keys they approve; admins and auditors all.
    const visible =
      op.ordererId === actor.subjectId ||
      actor.natures.has('ADMINISTRATOR') ||
      actor.natures.has('AUDITOR') ||
      op.keys.some((k) => actor.keyPermissions.get(k.keyid)?.has('APPROVE'));
    if (!visible) throw new ApiError(ApiErrorCode.OperationNotFound, 'no such operation');
    const orderer = await this.subjects.getById(op.ordererId);
    return this.view(op, orderer.displayName);
  }

  private view(op: Operation, ordererName: string): OperationView {
    return {
      id: op.id,
      description: op.description,
      state: op.state,
      orderer: { subjectId: op.ordererId, displayName: ordererName },
      validFrom: op.validFrom.toISOString(),
      validTo: op.validTo.toISOString(),
      digests: op.digests,
      keys: op.keys.map((k) => ({
        keyid: k.keyid,
        usagesAllowed: k.usagesAllowed,
        usagesUsed: k.usagesUsed,
        requiredApprovers: k.requiredApprovers,
        approvals: k.approverIds.length,
      })),
      createdAt: op.createdAt.toISOString(),
    };
  }
}
