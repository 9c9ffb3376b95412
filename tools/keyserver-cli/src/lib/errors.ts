/** Exit codes a CI log reader can act on. */
export enum Exit {
  Ok = 0,
  Failure = 1,
  Usage = 2,
  Auth = 3,
  Refused = 4,
  Unavailable = 5,
  /** Verification failed: a signature, a certificate chain (revoked included) or the audit chain does not verify. */
  Invalid = 6,
}

/** A failure with its exit code and, when the server said so, the problem+json code; `details` go into --json output. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exit: Exit,
    readonly code?: string,
    readonly status?: number,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}
