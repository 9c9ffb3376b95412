import { errorClass } from '@keyserver/errors';

export enum SubjectAdminErrorCode {
  SubjectNotFound = 'subject_not_found',
  SubjectExists = 'subject_exists',
  RoleNotFound = 'role_not_found',
  RoleExists = 'role_exists',
  KeyNotFound = 'key_not_found',
  HumanOnlyNature = 'human_only_nature',
  InvalidId = 'invalid_id',
}

const STATUS: Record<SubjectAdminErrorCode, number> = {
  [SubjectAdminErrorCode.SubjectNotFound]: 404,
  [SubjectAdminErrorCode.SubjectExists]: 409,
  [SubjectAdminErrorCode.RoleNotFound]: 404,
  [SubjectAdminErrorCode.RoleExists]: 409,
  [SubjectAdminErrorCode.KeyNotFound]: 404,
  [SubjectAdminErrorCode.HumanOnlyNature]: 400,
  [SubjectAdminErrorCode.InvalidId]: 400,
};

/** Refusals of subject and role administration. */
export class SubjectAdminError extends errorClass(STATUS) {}
