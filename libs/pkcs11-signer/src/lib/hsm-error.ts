import { errorClass } from '@keyserver/errors';

export const HSM_ERROR_CODES = [
  'hsm_unavailable',
  'hsm_login_failed',
  'token_not_found',
  'key_not_found',
  'mechanism_not_supported',
  'invalid_key_spec',
  'invalid_sign_input',
  'hsm_operation_failed',
  'signer_closed',
] as const;

export type HsmErrorCode = (typeof HSM_ERROR_CODES)[number];

const STATUS: Record<HsmErrorCode, number> = {
  hsm_unavailable: 503,
  hsm_login_failed: 503,
  token_not_found: 503,
  key_not_found: 404,
  mechanism_not_supported: 400,
  invalid_key_spec: 400,
  invalid_sign_input: 400,
  hsm_operation_failed: 502,
  signer_closed: 503,
};

/** Failure talking to the PKCS#11 token. Never carries PINs or key material. */
export class HsmError extends errorClass(STATUS) {}
