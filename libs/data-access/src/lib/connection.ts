import type { PoolClient, PoolConfig } from 'pg';
import { DataAccessError } from './errors';

// How every pool reaches PostgreSQL when the database may fail over (docs/adr/0026-database-failover.md):
// one endpoint that always leads to the primary (HAProxy's primary port checked through Patroni's REST API, or
// CloudNativePG's "-rw" Service), bounded waits everywhere, and no connection kept to a server that cannot write.

/** Bounds of one pool; every one of them turns into 503 database_unavailable when it is hit. */
export interface ConnectionOptions {
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /** Opening a connection, TCP and startup included (default 5 s). */
  connectTimeoutMs?: number;
  /** Server-side statement_timeout (default 30 s; 0 = none). */
  statementTimeoutMs?: number;
  /** Server-side lock_timeout (default 10 s; 0 = none). */
  lockTimeoutMs?: number;
  /** Server-side idle_in_transaction_session_timeout: a stuck client cannot hold row locks (default 60 s; 0 = none). */
  idleInTransactionTimeoutMs?: number;
  /**
   * Only keep connections to a server that accepts writes (libpq's target_session_attrs=read-write). Default true;
   * `?target_session_attrs=any` in the URL turns it off (a read-only tool on a standby).
   */
  readWrite?: boolean;
}

export const CONNECTION_DEFAULTS = {
  poolSize: 10,
  connectTimeoutMs: 5_000,
  statementTimeoutMs: 30_000,
  lockTimeoutMs: 10_000,
  idleInTransactionTimeoutMs: 60_000,
} as const;

/** The client-side read timeout beyond the server's statement_timeout: a socket nobody answers (no RST) fails too. */
export const QUERY_TIMEOUT_MARGIN_MS = 5_000;

/**
 * Splits a DATABASE_URL into a single-host connection string and its session target. node-postgres connects to one
 * host: a libpq multi-host list (`h1:5432,h2:5432`) is refused with a pointer to the one-endpoint setups instead of
 * being silently reduced to its first host.
 */
export function parseDatabaseUrl(url: string): { connectionString: string; targetSessionAttrs: 'read-write' | 'any' } {
  const m = /^(postgres(?:ql)?:\/\/)(?:[^@/?#]*@)?([^/?#]*)/.exec(url);
  if (!m) throw new DataAccessError('invalid_input', 'DATABASE_URL must be a postgresql:// URL');
  if (m[2].includes(',')) {
    throw new DataAccessError(
      'invalid_input',
      'DATABASE_URL lists several hosts; point it at one endpoint that always reaches the primary (HAProxy with Patroni checks, or the CloudNativePG -rw Service)',
    );
  }
  const q = url.indexOf('?');
  if (q < 0) return { connectionString: url, targetSessionAttrs: 'read-write' };
  const params = new URLSearchParams(url.slice(q + 1).split('#')[0]);
  const target = params.get('target_session_attrs') ?? 'read-write';
  if (target !== 'read-write' && target !== 'any') {
    throw new DataAccessError('invalid_input', `DATABASE_URL target_session_attrs=${target} is not supported (read-write or any)`);
  }
  params.delete('target_session_attrs');
  const rest = params.toString();
  return { connectionString: url.slice(0, q) + (rest ? `?${rest}` : ''), targetSessionAttrs: target };
}

/** The pg pool configuration for {@link ConnectionOptions}. */
export function poolConfig(databaseUrl: string, o: ConnectionOptions = {}): PoolConfig {
  const { connectionString, targetSessionAttrs } = parseDatabaseUrl(databaseUrl);
  const statementTimeoutMs = o.statementTimeoutMs ?? CONNECTION_DEFAULTS.statementTimeoutMs;
  const lockTimeoutMs = o.lockTimeoutMs ?? CONNECTION_DEFAULTS.lockTimeoutMs;
  const idle = o.idleInTransactionTimeoutMs ?? CONNECTION_DEFAULTS.idleInTransactionTimeoutMs;
  const readWrite = (o.readWrite ?? true) && targetSessionAttrs === 'read-write';
  return {
    connectionString,
    max: o.poolSize ?? CONNECTION_DEFAULTS.poolSize,
    connectionTimeoutMillis: o.connectTimeoutMs ?? CONNECTION_DEFAULTS.connectTimeoutMs,
    // A peer that vanished without a FIN/RST (network partition) is found by TCP keepalive on idle connections
    // and by query_timeout on busy ones.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs, query_timeout: statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS } : {}),
    ...(lockTimeoutMs > 0 ? { lock_timeout: lockTimeoutMs } : {}),
    ...(idle > 0 ? { idle_in_transaction_session_timeout: idle } : {}),
    ...(readWrite ? { verify: verifyReadWrite } : {}),
  };
}

/**
 * pg-pool's check of every new connection: a server in recovery (a standby, or an old primary that came back as
 * one) is refused, so the pool destroys the connection and the request gets 503 instead of a write error later.
 */
export function verifyReadWrite(client: PoolClient, done: (err?: Error) => void): void {
  client.query<{ transaction_read_only: string }>('SHOW transaction_read_only').then(
    (r) => done(r.rows[0]?.transaction_read_only === 'off' ? undefined : new ReadOnlyServerError()),
    (err: Error) => done(err),
  );
}

/** A connection refused by {@link verifyReadWrite}; SQLSTATE 25006 like a write on a standby (db.ts maps it to 503). */
export class ReadOnlyServerError extends Error {
  readonly code = '25006';
  constructor() {
    super('the database server is read-only (not the primary)');
    this.name = 'ReadOnlyServerError';
  }
}
