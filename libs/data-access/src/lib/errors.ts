import { errorClass } from '@keyserver/errors';

/** Error codes of the data layer, part of the API contract. */
export const DataAccessErrorCode = {
  not_found: 'not_found',
  conflict: 'conflict',
  invalid_input: 'invalid_input',
  operation_not_usable: 'operation_not_usable',
  usage_exhausted: 'usage_exhausted',
  digest_not_allowed: 'digest_not_allowed',
  outside_window: 'outside_window',
  key_not_in_operation: 'key_not_in_operation',
  key_revoked: 'key_revoked',
  already_approved: 'already_approved',
  invalid_state: 'invalid_state',
  session_not_active: 'session_not_active',
  migration_failed: 'migration_failed',
  migration_checksum_mismatch: 'migration_checksum_mismatch',
  database_unavailable: 'database_unavailable',
  reservation_expired: 'reservation_expired',
  human_only_nature: 'human_only_nature',
  idempotency_key_reused: 'idempotency_key_reused',
  window_too_long: 'window_too_long',
  too_many_usages: 'too_many_usages',
  start_backdated: 'start_backdated',
  start_too_far_ahead: 'start_too_far_ahead',
  window_ended: 'window_ended',
  admin_session_scope: 'admin_session_scope',
  subject_is_guest: 'subject_is_guest',
  not_an_approver: 'not_an_approver',
  too_few_administrators: 'too_few_administrators',
  serial_in_use: 'serial_in_use',
  window_outside_certificate: 'window_outside_certificate',
} as const;
export type DataAccessErrorCode = (typeof DataAccessErrorCode)[keyof typeof DataAccessErrorCode];

/** HTTP status of each code, defined once. */
export const DATA_ACCESS_ERROR_STATUS: Record<DataAccessErrorCode, number> = {
  not_found: 404,
  conflict: 409,
  invalid_input: 400,
  operation_not_usable: 409,
  usage_exhausted: 409,
  digest_not_allowed: 403,
  outside_window: 403,
  key_not_in_operation: 403,
  key_revoked: 409,
  already_approved: 409,
  invalid_state: 409,
  session_not_active: 409,
  migration_failed: 500,
  migration_checksum_mismatch: 500,
  database_unavailable: 503,
  // The HSM or the database took longer than the usage lease; nothing was stored or returned, retry.
  reservation_expired: 503,
  // A CLIENT subject would hold a nature only people may hold (administrator, approver).
  human_only_nature: 400,
  // The Idempotency-Key names an earlier request that differs from this one in some field: 422, never the old result
  // (draft-ietf-httpapi-idempotency-key-header 2.7; 409 stays `conflict`, the first request still in flight: retry).
  idempotency_key_reused: 422,
  // An operation outside the per-key limits the administrators set (key_operation_limit).
  window_too_long: 400,
  too_many_usages: 400,
  start_backdated: 400,
  start_too_far_ahead: 400,
  // An operation whose window has already ended when it is ordered: nobody could ever use it (ADR 0017 addendum).
  window_ended: 400,
  // The change gives or takes the administrator or approver nature in a session not opened for that (ADR 0044).
  admin_session_scope: 403,
  // The change would give the administrator or approver nature to a subject whose last sign-in proved a guest account (ADR 0040).
  subject_is_guest: 409,
  // The approver is disabled or holds no APPROVE on the key now (re-checked in the approval's transaction).
  not_an_approver: 403,
  // The change would leave fewer enabled administrators than an administrative session needs (ADR 0012 addendum).
  too_few_administrators: 409,
  // The issuer already used the serial (RFC 5280: one per issuer): nothing stored; a retry signs with a fresh one.
  serial_in_use: 409,
  // The window reaches outside the validity of a key's certificate (or of a certificate above it): the key could not
  // sign there (key_not_usable); refused at creation and at each approval (ADR 0017 addendum, session 25).
  window_outside_certificate: 409,
};

/** Error raised by repositories and the migrator. */
export class DataAccessError extends errorClass(DATA_ACCESS_ERROR_STATUS) {}
