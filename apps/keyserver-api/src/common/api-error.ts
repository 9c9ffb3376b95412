import { errorClass } from '@keyserver/errors';

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
  /** An Idempotency-Key on a state-changing route that does not honour it: its retry would not be exactly-once. */
  IdempotencyKeyNotSupported = 'idempotency_key_not_supported',
  ServiceUnavailable = 'service_unavailable',
  // Refusals at the HTTP edge (before any handler runs): see src/edge.
  JsonTooDeep = 'json_too_deep',
  UnsupportedContentEncoding = 'unsupported_content_encoding',
  MalformedRequest = 'malformed_request',
  HeaderTooLarge = 'header_too_large',
  /** An `Expect` other than 100-continue (Node alone would answer a bare 417). */
  ExpectationFailed = 'expectation_failed',
  /** The header section or the whole request took longer than its timeout (HTTP_*_TIMEOUT_MS): a slow sender. */
  RequestTimeout = 'request_timeout',
  /** The client closed the connection before its body ended (recorded in the audit; nobody is left to answer). */
  RequestAborted = 'request_aborted',
  RateLimited = 'rate_limited',
  /** The API process holds HTTP_MAX_CONNECTIONS connections: a new one is answered 503 and closed. */
  ConnectionLimitReached = 'connection_limit_reached',
  /** The client's address (an IPv6 /64) holds HTTP_MAX_CONNECTIONS_PER_IP connections: a new one is answered 503 and closed. */
  ClientConnectionLimitReached = 'client_connection_limit_reached',
  /**
   * The process is shutting down (SIGTERM): a request whose header section was still arriving is answered without
   * running (nothing was done: safe to retry elsewhere) and its connection closed.
   */
  ShuttingDown = 'shutting_down',
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
  [ApiErrorCode.IdempotencyKeyNotSupported]: 400,
  [ApiErrorCode.ServiceUnavailable]: 503,
  [ApiErrorCode.JsonTooDeep]: 400,
  [ApiErrorCode.UnsupportedContentEncoding]: 415,
  [ApiErrorCode.MalformedRequest]: 400,
  [ApiErrorCode.HeaderTooLarge]: 431,
  [ApiErrorCode.ExpectationFailed]: 417,
  [ApiErrorCode.RequestTimeout]: 408,
  [ApiErrorCode.RequestAborted]: 400,
  [ApiErrorCode.RateLimited]: 429,
  [ApiErrorCode.ConnectionLimitReached]: 503,
  [ApiErrorCode.ClientConnectionLimitReached]: 503,
  [ApiErrorCode.ShuttingDown]: 503,
};

export class ApiError extends errorClass(STATUS) {}

/**
 * An {@link ApiError} raised at the HTTP edge (request line, headers, body parsing, body validation, rate limit),
 * before a service could audit it: the refusal observer audits these (bounded, see src/edge/refusal-audit.ts).
 */
export class EdgeRefusal extends ApiError {
  /** Seconds a rate-limited caller should wait (429 only). */
  retryAfterSeconds?: number;
}

const TRANSPORT_REFUSAL = Symbol('keyserverTransportRefusal');

/** Records on a request still being received why the server stopped reading it (e.g. a timeout), before the socket goes. */
export function markTransportRefusal(req: object, code: ApiErrorCode): void {
  (req as Record<symbol, ApiErrorCode>)[TRANSPORT_REFUSAL] = code;
}

/**
 * Whether the request can no longer be answered: the transport refused the connection ({@link markTransportRefusal},
 * e.g. bytes after its body did not parse), or its socket is gone or ended (Node ends the connection of a client
 * that half-closes: the server is not half-open).
 */
export function transportGone(req: { socket?: { destroyed: boolean; writable: boolean } | null }): boolean {
  return (req as Record<symbol, ApiErrorCode | undefined>)[TRANSPORT_REFUSAL] !== undefined || (req.socket != null && (req.socket.destroyed || !req.socket.writable));
}

/** Why a request's body ended early: the server's refusal when it stopped reading, else the client went away. */
export function transportRefusal(req: object): ApiError {
  const code = (req as Record<symbol, ApiErrorCode | undefined>)[TRANSPORT_REFUSAL];
  return new ApiError(code ?? ApiErrorCode.RequestAborted, code ? 'the server stopped reading the request' : 'the client closed the connection before the body ended');
}
