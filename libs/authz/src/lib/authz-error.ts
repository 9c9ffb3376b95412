import { errorClass } from '@keyserver/errors';

export type AuthzErrorCode =
  | 'unknown_subject'
  | 'subject_disabled'
  | 'subject_kind_mismatch'
  | 'app_principal_forbidden'
  | 'member_account_required'
  | 'bff_token_not_allowed'
  | 'permission_denied'
  | 'key_permission_denied'
  | 'route_not_authorized'
  | 'route_authorization_misconfigured';

const STATUS: Record<AuthzErrorCode, number> = {
  unknown_subject: 403,
  subject_disabled: 403,
  subject_kind_mismatch: 403,
  app_principal_forbidden: 403,
  // A user token that does not prove a member account (acct 0) asks for what only the human-only natures give.
  member_account_required: 403,
  bff_token_not_allowed: 403,
  permission_denied: 403,
  key_permission_denied: 403,
  route_not_authorized: 403,
  // Boot-time only: a route without a (valid) authorization decorator.
  route_authorization_misconfigured: 500,
};

/** Every code, for the OpenAPI document. */
export const AUTHZ_ERROR_CODES = Object.keys(STATUS) as AuthzErrorCode[];

/** An authenticated caller that may not do what it asked (403), or a boot-time route misconfiguration. */
export class AuthzError extends errorClass(STATUS) {}
