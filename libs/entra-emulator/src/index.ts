export { startEmulator, type RunningEmulator, type StartEmulatorOptions } from './lib/emulator';
export { EntraEmulatorError, EntraEmulatorErrorCode } from './lib/emulator-error';
export {
  demoTenantSchema,
  loadTenantFile,
  parseTenant,
  type DemoTenant,
  type ResolvedTenant,
  type TenantCiClient,
  type TenantUser,
} from './lib/tenant';
export {
  AZURE_DEVOPS_APP_ID,
  entraFederationSubject,
  guidToBase64Url,
  TOKEN_EXCHANGE_APP_ID,
  TOKEN_EXCHANGE_AUDIENCE,
  type AdoIssuerFormat,
  type MintAdoTokenOptions,
} from './lib/ado-issuer';
export type { RotateOptions, PublishedJwk } from './lib/signing-keys';
export {
  type AuthorizationResult,
  authorizeWithPassword,
  type ClientCredentialsOptions,
  clientCredentialsToken,
  CookieJar,
  type EmulatorEndpoints,
  exchangeCode,
  type ExchangeCodeOptions,
  loginWithPassword,
  type PasswordLoginOptions,
  pkcePair,
  type PkcePair,
  signInAt,
  type SignInAtOptions,
  type TokenEndpointResponse,
  tokenRequest,
} from './lib/test-clients';
