import { errorClass } from '@keyserver/errors';

/** Errors of administrative sessions and of the four-eyes gate every administrative change passes. */
export enum AdminSessionErrorCode {
  AdminSessionRequired = 'admin_session_required',
  AdminSessionNotParticipant = 'admin_session_not_participant',
  AdminSessionNotFound = 'admin_session_not_found',
  AdminSessionNotActive = 'admin_session_not_active',
  AlreadyAuthorized = 'already_authorized',
  InvalidId = 'invalid_id',
}

const STATUS: Record<AdminSessionErrorCode, number> = {
  [AdminSessionErrorCode.AdminSessionRequired]: 403,
  [AdminSessionErrorCode.AdminSessionNotParticipant]: 403,
  [AdminSessionErrorCode.AdminSessionNotFound]: 404,
  [AdminSessionErrorCode.AdminSessionNotActive]: 409,
  [AdminSessionErrorCode.AlreadyAuthorized]: 409,
  [AdminSessionErrorCode.InvalidId]: 400,
};

export class AdminSessionError extends errorClass(STATUS) {}
