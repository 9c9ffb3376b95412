/** Exit codes a CI log reader can act on. */
export enum Exit {
  Ok = 0,
  Failure = 1,
  Usage = 2,
  Auth = 3,
  /** Refused: the request or the Keyserver's configuration must change, a retry as is does not help. */
  Refused = 4,
  /** Unavailable: worth retrying (unreachable, 5xx other than {@link NOT_RETRYABLE_CODES}). */
  Unavailable = 5,
  /** Verification failed: a signature, a certificate chain (revoked included) or the audit chain does not verify. */
  Invalid = 6,
  /**
   * The command's deadline passed (`deadline_exceeded`, --timeout / KSCTL_TIMEOUT): a server held the connection. Worth
   * a retry like 5, but a request that was sent may have been carried out (a retry of a sign order needs its
   * Idempotency-Key to be safe).
   */
  Timeout = 7,
}

/** The user-info of every URL in a text (`scheme://user:password@`): what a CI log must never show. */
const URL_USER_INFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@]*@/gi;

/** `text` with the user-info of every URL in it replaced by `***` (a password in KEYSERVER_URL, say). */
export function maskUrlUserInfo(text: string): string {
  return text.replace(URL_USER_INFO, '$1***@');
}

/**
 * A failure with its exit code and, when the server said so, the problem+json code; `details` go into --json output.
 * The message is printed (stderr, --json), so the user-info of any URL in it is masked here, once for every path: a
 * URL from the environment reaches messages through fetch's own errors too.
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exit: Exit,
    readonly code?: string,
    readonly status?: number,
    readonly details?: Record<string, unknown>,
  ) {
    super(maskUrlUserInfo(message));
  }
}

/**
 * 5xx problem codes whose cause is configuration or a clock, not load or an outage: a retry fails the same way, so
 * they exit 4 (refused) rather than 5 (ADR 0046).
 */
export const NOT_RETRYABLE_CODES: ReadonlySet<string> = new Set([
  // The external TSA's certificate is not the one CMS_TSA_CA_CERT / CMS_TSA_CERT_SHA256 trust (ADR 0043).
  'timestamp_tsa_untrusted',
  // The external TSA's clock or ours is off by more than CMS_TSA_MAX_SKEW_MS.
  'timestamp_clock_skew',
  // The external TSA's certificate is on its CA's CRL, or that CRL (CMS_TSA_CRL) is stale (ADR 0046 addendum).
  'timestamp_tsa_revoked',
  'timestamp_tsa_crl_stale',
  // A route of the deployed API declares no access rule: a defect, not a passing fault.
  'route_authorization_misconfigured',
]);

/** The exit code of an API answer that is not 2xx. */
export function exitForStatus(status: number, code?: string): Exit {
  if (status === 401) return Exit.Auth;
  if (status >= 500 && !(code && NOT_RETRYABLE_CODES.has(code))) return Exit.Unavailable;
  return Exit.Refused;
}
