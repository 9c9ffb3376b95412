export * from './lib/errors';
export { isLoopbackHost } from './lib/http-fetch';
export type { FetchLike } from './lib/http-fetch';
export * from './lib/metadata';
export { JwksKeyStore, KID_PATTERN } from './lib/jwks-key-store';
export type { JwksKeyStoreOptions, JwksKeyStoreStats } from './lib/jwks-key-store';
export * from './lib/principal';
export * from './lib/validator';
export * from './lib/testing/test-issuer';
