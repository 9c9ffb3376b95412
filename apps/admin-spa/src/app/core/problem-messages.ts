/**
 * Problem `code` -> plain words, in one table. Codes come from the Keyserver API and the keyclient
 * (RFC 9457 problem+json); an unknown code falls back to the problem's own title.
 */
export const PROBLEM_MESSAGES: Readonly<Record<string, string>> = {
  // keyclient
  unauthenticated: 'You are not signed in, or your session has ended. Please sign in again.',
  session_refresh_failed: 'Your session has ended. Please sign in again.',
  csrf_rejected: 'The request was refused as a possible cross-site request. Reload the page and try again.',
  path_rejected: 'The address of the request was not accepted.',
  proxy_route_forbidden: 'This action is not available from the administration console.',
  upstream_unavailable: 'The Keyserver is not reachable right now. Try again in a moment.',
  upstream_timeout: 'The Keyserver did not answer in time. Try again in a moment.',
  provider_unavailable: 'Microsoft Entra ID cannot be reached right now. Try again later.',
  not_ready: 'The service is starting. Try again in a moment.',
  method_not_allowed: 'This action is not allowed.',
  internal_error: 'Something went wrong on the server. The request id helps the operators find it.',
  // API: generic
  validation_failed: 'Some values were not accepted. Check the form and try again.',
  malformed_json: 'The request could not be read.',
  payload_too_large: 'The request is too large.',
  unsupported_media_type: 'The request format is not supported.',
  invalid_id: 'The identifier is not valid.',
  not_found: 'It does not exist, or you may not see it.',
  forbidden: 'You do not have the permission to do this.',
  service_unavailable: 'The Keyserver is temporarily unavailable. Try again in a moment.',
  idempotency_key_invalid: 'The request could not be repeated safely.',
  // authorization (who you are to the Keyserver)
  unknown_subject: 'Your account is signed in but not registered in the Keyserver. Ask an administrator to register it.',
  subject_disabled: 'Your Keyserver account is disabled. Ask an administrator.',
  subject_kind_mismatch: 'This account type cannot be used here.',
  app_principal_forbidden: 'Applications cannot use this function.',
  bff_token_not_allowed: 'This action is not available from the administration console.',
  permission_denied: 'You do not have the permission to do this.',
  key_permission_denied: 'You do not have the permission to use this key for this.',
  route_not_authorized: 'You do not have the permission to do this.',
  // token (the keyclient refreshes tokens; these usually mean signing in again)
  missing_token: 'Your session has ended. Please sign in again.',
  token_expired: 'Your session has expired. Please sign in again.',
  invalid_signature: 'Your sign-in could not be verified. Please sign in again.',
  keys_unavailable: 'The Keyserver cannot check sign-ins right now. Try again in a moment.',
  jwks_unreachable: 'The Keyserver cannot reach Microsoft Entra ID right now. Try again in a moment.',
  // keys
  key_not_found: 'This key does not exist.',
  key_not_permitted: 'You are not allowed to use this key.',
  key_not_usable: 'This key cannot be used (revoked or outside its validity).',
  key_exists: 'A key with this id already exists.',
  key_already_revoked: 'This key is already revoked.',
  root_not_available: 'The root key is not available.',
  root_not_revocable: 'The root key cannot be revoked.',
  validity_exceeds_root: 'The requested validity goes beyond the root certificate.',
  // operations
  operation_not_found: 'This operation does not exist.',
  operation_closed: 'This operation is closed: it can no longer be approved, rejected or used.',
  operation_expired: 'This operation has expired.',
  already_approved: 'You have already approved this operation.',
  not_an_approver: 'You are not an approver of the keys of this operation.',
  self_approval_forbidden: 'You cannot approve an operation you ordered yourself.',
  cancellation_not_allowed: 'Only the orderer can cancel this operation, and only while it is open.',
  window_too_long: 'The validity window is longer than the limits of one of its keys allow.',
  too_many_usages: 'More usages than the limits of one of its keys allow.',
  start_backdated: 'The start lies too far in the past for the limits of one of its keys.',
  start_too_far_ahead: 'The start lies too far in the future for the limits of one of its keys.',
  idempotency_key_reused: 'This request id was already used for a different request.',
  invalid_input_encoding: 'A digest is not valid hexadecimal.',
  // certificates
  certificate_not_found: 'This certificate does not exist.',
  revocation_not_allowed: 'This certificate cannot be revoked (it may already be revoked).',
  // administrative sessions
  admin_session_required: 'This change needs an active administrative session. Open one and have it authorized first.',
  admin_session_not_found: 'This administrative session does not exist.',
  admin_session_not_active: 'This administrative session is not active any more.',
  admin_session_not_participant: 'Only the administrators who opened or authorized the session may act in it.',
  already_authorized: 'You have already authorized this session.',
  // subjects and roles
  subject_exists: 'This principal is already registered.',
  subject_not_found: 'This subject does not exist.',
  role_exists: 'A role with this name already exists.',
  role_not_found: 'This role does not exist.',
  human_only_nature: 'This nature can only be given to people, not to applications.',
  // client side
  network_error: 'The server could not be reached. Check your connection and try again.',
};
