import { KeyserverError } from '@keyserver/errors';

/** Errors raised by the API's own request handling (not by a domain library). */
export enum ApiErrorCode {
  ValidationFailed = 'validation_failed',
  MalformedJson = 'malformed_json',
  UnsupportedMediaType = 'unsupported_media_type',
  PayloadTooLarge = 'payload_too_large',
  InvalidInputEncoding = 'invalid_input_encoding',
  NotFound = 'not_found',
  KeyNotFound = 'key_not_found',
  KeyNotUsable = 'key_not_usable',
  KeyNotPermitted = 'key_not_permitted',
  OperationNotFound = 'operation_not_found',
  IdempotencyKeyInvalid = 'idempotency_key_invalid',
  ServiceUnavailable = 'service_unavailable',
}

const STATUS: Record<ApiErrorCode, number> = {
  [ApiErrorCode.ValidationFailed]: 400,
  [ApiErrorCode.MalformedJson]: 400,
  [ApiErrorCode.UnsupportedMediaType]: 415,
  [ApiErrorCode.PayloadTooLarge]: 413,
  [ApiErrorCode.InvalidInputEncoding]: 400,
  [ApiErrorCode.NotFound]: 404,
  [ApiErrorCode.KeyNotFound]: 404,
  [ApiErrorCode.KeyNotUsable]: 409,
  [ApiErrorCode.KeyNotPermitted]: 403,
  [ApiErrorCode.OperationNotFound]: 404,
  [ApiErrorCode.IdempotencyKeyInvalid]: 400,
  [ApiErrorCode.ServiceUnavailable]: 503,
};

export class ApiError extends KeyserverError<ApiErrorCode> {
  get status(): number {
    return STATUS[this.code];
  }
}
