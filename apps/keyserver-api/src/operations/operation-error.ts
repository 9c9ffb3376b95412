import { errorClass } from '@keyserver/errors';

/** Refusals of the operation workflow (approve, reject, cancel). */
export enum OperationErrorCode {
  SelfApprovalForbidden = 'self_approval_forbidden',
  NotAnApprover = 'not_an_approver',
  AlreadyApproved = 'already_approved',
  OperationExpired = 'operation_expired',
  OperationClosed = 'operation_closed',
  CancellationNotAllowed = 'cancellation_not_allowed',
}

const STATUS: Record<OperationErrorCode, number> = {
  [OperationErrorCode.SelfApprovalForbidden]: 403,
  [OperationErrorCode.NotAnApprover]: 403,
  [OperationErrorCode.AlreadyApproved]: 409,
  [OperationErrorCode.OperationExpired]: 409,
  [OperationErrorCode.OperationClosed]: 409,
  [OperationErrorCode.CancellationNotAllowed]: 403,
};

export class OperationError extends errorClass(STATUS) {}
