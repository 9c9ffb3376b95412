import { errorClass } from '@keyserver/errors';

/** Stable error codes raised by the Entra emulator and its test helpers. */
export enum EntraEmulatorErrorCode {
  TenantFileUnreadable = 'tenant_file_unreadable',
  TenantFileInvalid = 'tenant_file_invalid',
  UnknownServiceConnection = 'unknown_service_connection',
  AuthorizationFailed = 'authorization_failed',
  InvalidCredentials = 'invalid_credentials',
  TokenRequestFailed = 'token_request_failed',
  UnexpectedResponse = 'unexpected_response',
}

const STATUS: Record<EntraEmulatorErrorCode, number> = {
  [EntraEmulatorErrorCode.TenantFileUnreadable]: 400,
  [EntraEmulatorErrorCode.TenantFileInvalid]: 400,
  [EntraEmulatorErrorCode.UnknownServiceConnection]: 404,
  [EntraEmulatorErrorCode.AuthorizationFailed]: 400,
  [EntraEmulatorErrorCode.InvalidCredentials]: 401,
  [EntraEmulatorErrorCode.TokenRequestFailed]: 400,
  [EntraEmulatorErrorCode.UnexpectedResponse]: 502,
};

/**
 * Error raised by the emulator (bad tenant file) and by its HTTP test helpers.
 * `oauthError` carries the OAuth `error` value when the emulator answered with one.
 */
export class EntraEmulatorError extends errorClass(STATUS) {
  readonly oauthError?: string;

  constructor(code: EntraEmulatorErrorCode, detail?: string, options?: { cause?: unknown; oauthError?: string }) {
    super(code, detail, options);
    this.oauthError = options?.oauthError;
  }
}
