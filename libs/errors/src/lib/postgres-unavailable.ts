// The errors of a PostgreSQL that is restarting, failing over or unreachable, as node-postgres reports them. One
// list for the API (data-access adds Prisma's own codes) and the keyclient's session store (which may not import
// data-access): the request may be retried, so both answer 503 + Retry-After, never a 500 (ADR 0026).

// Connection exceptions (08), shutdown/crash (57P01-03), too many connections (53300), and the retryable waits of a
// failover: a write on a server that became read-only (25006), statement_timeout (57014), lock_timeout (55P03).
const UNAVAILABLE_SQLSTATE = /^(08|57P0[1-3]|53300|25006|57014|55P03)/;
const UNAVAILABLE_NET = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN']);
// node-postgres' own messages for a connection that timed out or was cut, and our read-write guard's refusal.
const UNAVAILABLE_MESSAGE =
  /ECONNREFUSED|Connection terminated|terminating connection due to administrator command|timeout exceeded when trying to connect|Query read timeout|server is read-only \(not the primary\)|Client has encountered a connection error/i;

/** True when `code` is a PostgreSQL SQLSTATE of an unavailable or failing-over server. */
export function isUnavailableSqlState(code: string): boolean {
  return UNAVAILABLE_SQLSTATE.test(code);
}

/**
 * True when `err` (or a cause, or one of an AggregateError's errors) means the PostgreSQL server cannot be reached
 * right now: an unavailable SQLSTATE, a socket error, node-postgres' timeout and cut messages.
 */
export function isPostgresUnavailable(err: unknown, depth = 0): boolean {
  if (depth > 5 || typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  if (typeof e.code === 'string' && (UNAVAILABLE_SQLSTATE.test(e.code) || UNAVAILABLE_NET.has(e.code))) return true;
  if (typeof e.message === 'string' && UNAVAILABLE_MESSAGE.test(e.message)) return true;
  // Node's AggregateError (a host with several addresses, all refused) lists the socket errors.
  if (Array.isArray(e.errors) && e.errors.some((x) => isPostgresUnavailable(x, depth + 1))) return true;
  return isPostgresUnavailable(e.cause, depth + 1);
}
