import { errorClass } from '@keyserver/errors';

/**
 * Why a bearer token was refused. Every code maps to HTTP 401 and the HTTP layer answers all of
 * them with the same `invalid_token` body: the detailed code is for logs and audit only.
 */
export const TOKEN_ERROR_CODES = [
  'missing_token',
  'multiple_authorization_headers',
  'invalid_scheme',
  'token_in_query',
  'token_too_large',
  'malformed_token',
  'encrypted_token_not_supported',
  'alg_not_allowed',
  'invalid_token_type',
  'unsupported_crit',
  'foreign_token',
  'invalid_kid',
  'unknown_key',
  'keys_unavailable',
  'invalid_signature',
  'token_expired',
  'token_not_yet_valid',
  'invalid_iat',
  'token_lifetime_too_long',
  'invalid_issuer',
  'invalid_audience',
  'invalid_version',
  'invalid_tenant',
  'id_token_not_accepted',
  'invalid_claims',
  'missing_scope',
  'missing_role',
  'token_kind_mismatch',
  'client_not_allowed',
] as const;
export type TokenErrorCode = (typeof TOKEN_ERROR_CODES)[number];

const TOKEN_ERROR_STATUS: Record<TokenErrorCode, number> = Object.fromEntries(
  TOKEN_ERROR_CODES.map((c) => [c, 401]),
) as Record<TokenErrorCode, number>;

/** A refused access token (always 401). */
export class TokenError extends errorClass(TOKEN_ERROR_STATUS) {}

/** Why the Entra metadata document or its key set could not be used (a configuration or availability problem). */
export type EntraMetadataErrorCode =
  | 'invalid_tenant_id'
  | 'metadata_url_invalid'
  | 'metadata_insecure_url'
  | 'metadata_unreachable'
  | 'metadata_invalid'
  | 'metadata_not_v2'
  | 'metadata_issuer_templated'
  | 'metadata_tenant_mismatch'
  | 'metadata_issuer_mismatch'
  | 'metadata_missing_jwks_uri'
  | 'metadata_jwks_uri_invalid'
  | 'jwks_unreachable'
  | 'jwks_invalid';

const METADATA_ERROR_STATUS: Record<EntraMetadataErrorCode, number> = {
  invalid_tenant_id: 500,
  metadata_url_invalid: 500,
  metadata_insecure_url: 500,
  metadata_unreachable: 503,
  metadata_invalid: 500,
  metadata_not_v2: 500,
  metadata_issuer_templated: 500,
  metadata_tenant_mismatch: 500,
  metadata_issuer_mismatch: 500,
  metadata_missing_jwks_uri: 500,
  metadata_jwks_uri_invalid: 500,
  jwks_unreachable: 503,
  jwks_invalid: 503,
};

/** The Entra configuration is unusable (raised at boot, or by an explicit key refresh). */
export class EntraMetadataError extends errorClass(METADATA_ERROR_STATUS) {}
