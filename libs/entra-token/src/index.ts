export {
  EntraMetadataError,
  type EntraMetadataErrorCode,
  TOKEN_ERROR_CODES,
  TokenError,
  type TokenErrorCode,
} from './lib/errors';
export { isLoopbackHost } from './lib/http-fetch';
export type { FetchLike } from './lib/http-fetch';
export { type EntraMetadata, GUID, loadEntraMetadata, type LoadEntraMetadataOptions } from './lib/metadata';
export { JwksKeyStore, KID_PATTERN } from './lib/jwks-key-store';
export type { JwksKeyStoreOptions, JwksKeyStoreStats } from './lib/jwks-key-store';
export { type Principal, type PrincipalAccount, type PrincipalChannel } from './lib/principal';
export {
  type AuthenticateOptions,
  createEntraTokenValidator,
  displayClaim,
  type EntraTokenValidator,
  type EntraTokenValidatorConfig,
} from './lib/validator';
