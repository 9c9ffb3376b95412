import { errorClass } from '@keyserver/errors';

export enum KeyclientErrorCode {
  Unauthenticated = 'unauthenticated',
  SessionRefreshFailed = 'session_refresh_failed',
  CsrfRejected = 'csrf_rejected',
  PathRejected = 'path_rejected',
  ProxyRouteForbidden = 'proxy_route_forbidden',
  PayloadTooLarge = 'payload_too_large',
  UpstreamUnavailable = 'upstream_unavailable',
  UpstreamTimeout = 'upstream_timeout',
  ProviderUnavailable = 'provider_unavailable',
  /** The session database cannot be reached (restart, failover): retry after `Retry-After`. */
  SessionStoreUnavailable = 'session_store_unavailable',
  LoginFailed = 'login_failed',
  NotReady = 'not_ready',
  NotFound = 'not_found',
  /** A conditional request for a static file (If-Match, If-Unmodified-Since) whose condition does not hold. */
  PreconditionFailed = 'precondition_failed',
  /** A Range request for a static file that lies outside it. */
  RangeNotSatisfiable = 'range_not_satisfiable',
  MethodNotAllowed = 'method_not_allowed',
  HeaderTooLarge = 'header_too_large',
  /** An `Expect` other than 100-continue: nothing here can meet it (Node would answer a bare 417). */
  ExpectationFailed = 'expectation_failed',
  MalformedRequest = 'malformed_request',
  /** Headers or the whole request slower than HTTP_HEADERS_TIMEOUT_MS / HTTP_REQUEST_TIMEOUT_MS: answered and closed. */
  RequestTimeout = 'request_timeout',
  /** The keyclient process holds HTTP_MAX_CONNECTIONS connections: a new one is answered 503 and closed. */
  ConnectionLimitReached = 'connection_limit_reached',
  /** The client's address (an IPv6 /64) holds HTTP_MAX_CONNECTIONS_PER_IP connections: a new one is answered 503 and closed. */
  ClientConnectionLimitReached = 'client_connection_limit_reached',
  /** Routed after SIGTERM began the bounded shutdown (its header section was still arriving): nothing ran, retry. */
  ShuttingDown = 'shutting_down',
  /** After HTTP_SHUTDOWN_GRACE_MS, a request still receiving its body: cut off, never completed upstream. */
  ServiceUnavailable = 'service_unavailable',
  /** A proxied body under a Content-Encoding or a transfer coding other than chunked, which the API refuses too. */
  UnsupportedContentEncoding = 'unsupported_content_encoding',
  InternalError = 'internal_error',
}

const STATUS: Record<KeyclientErrorCode, number> = {
  [KeyclientErrorCode.Unauthenticated]: 401,
  [KeyclientErrorCode.SessionRefreshFailed]: 401,
  [KeyclientErrorCode.CsrfRejected]: 403,
  [KeyclientErrorCode.PathRejected]: 400,
  [KeyclientErrorCode.ProxyRouteForbidden]: 403,
  [KeyclientErrorCode.PayloadTooLarge]: 413,
  [KeyclientErrorCode.UpstreamUnavailable]: 502,
  [KeyclientErrorCode.UpstreamTimeout]: 504,
  [KeyclientErrorCode.ProviderUnavailable]: 503,
  [KeyclientErrorCode.SessionStoreUnavailable]: 503,
  [KeyclientErrorCode.LoginFailed]: 400,
  [KeyclientErrorCode.NotReady]: 503,
  [KeyclientErrorCode.NotFound]: 404,
  [KeyclientErrorCode.PreconditionFailed]: 412,
  [KeyclientErrorCode.RangeNotSatisfiable]: 416,
  [KeyclientErrorCode.MethodNotAllowed]: 405,
  [KeyclientErrorCode.HeaderTooLarge]: 431,
  [KeyclientErrorCode.ExpectationFailed]: 417,
  [KeyclientErrorCode.MalformedRequest]: 400,
  [KeyclientErrorCode.RequestTimeout]: 408,
  [KeyclientErrorCode.ConnectionLimitReached]: 503,
  [KeyclientErrorCode.ClientConnectionLimitReached]: 503,
  [KeyclientErrorCode.ShuttingDown]: 503,
  [KeyclientErrorCode.ServiceUnavailable]: 503,
  [KeyclientErrorCode.UnsupportedContentEncoding]: 415,
  [KeyclientErrorCode.InternalError]: 500,
};

const TITLE: Record<KeyclientErrorCode, string> = {
  [KeyclientErrorCode.Unauthenticated]: 'Not signed in',
  [KeyclientErrorCode.SessionRefreshFailed]: 'Session ended',
  [KeyclientErrorCode.CsrfRejected]: 'Cross-site request refused',
  [KeyclientErrorCode.PathRejected]: 'Malformed path',
  [KeyclientErrorCode.ProxyRouteForbidden]: 'Route not available through the keyclient',
  [KeyclientErrorCode.PayloadTooLarge]: 'Request body too large',
  [KeyclientErrorCode.UpstreamUnavailable]: 'Keyserver API unavailable',
  [KeyclientErrorCode.UpstreamTimeout]: 'Keyserver API timed out',
  [KeyclientErrorCode.ProviderUnavailable]: 'Identity provider unavailable',
  [KeyclientErrorCode.SessionStoreUnavailable]: 'Session store unavailable',
  [KeyclientErrorCode.LoginFailed]: 'Sign-in failed',
  [KeyclientErrorCode.NotReady]: 'Not ready',
  [KeyclientErrorCode.NotFound]: 'Not found',
  [KeyclientErrorCode.PreconditionFailed]: 'Precondition failed',
  [KeyclientErrorCode.RangeNotSatisfiable]: 'Range not satisfiable',
  [KeyclientErrorCode.MethodNotAllowed]: 'Method not allowed',
  [KeyclientErrorCode.HeaderTooLarge]: 'Request headers too large',
  [KeyclientErrorCode.ExpectationFailed]: 'Expectation failed',
  [KeyclientErrorCode.MalformedRequest]: 'Malformed request',
  [KeyclientErrorCode.RequestTimeout]: 'Request timeout',
  [KeyclientErrorCode.ConnectionLimitReached]: 'Too many connections',
  [KeyclientErrorCode.ClientConnectionLimitReached]: 'Too many connections from this client',
  [KeyclientErrorCode.ShuttingDown]: 'Shutting down',
  [KeyclientErrorCode.ServiceUnavailable]: 'Service unavailable',
  [KeyclientErrorCode.UnsupportedContentEncoding]: 'Unsupported content encoding',
  [KeyclientErrorCode.InternalError]: 'Internal error',
};

/** Every error the keyclient answers with; rendered as RFC 9457 problem+json. */
export class KeyclientError extends errorClass(STATUS) {
  get title(): string {
    return TITLE[this.code];
  }
}
