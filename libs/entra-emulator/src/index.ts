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
export { TOKEN_EXCHANGE_AUDIENCE, type MintAdoTokenOptions } from './lib/ado-issuer';
export type { RotateOptions, PublishedJwk } from './lib/signing-keys';
export * from './lib/test-clients';
