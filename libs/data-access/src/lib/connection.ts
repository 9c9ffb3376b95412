import type { Socket } from 'node:net';
import type { Pool, PoolClient, PoolConfig } from 'pg';
import { DataAccessError } from './errors';

// How every pool reaches PostgreSQL when the database may fail over (docs/adr/0026-database-failover.md):
// one endpoint that always leads to the primary (HAProxy's primary port checked through Patroni's REST API, or
// CloudNativePG's "-rw" Service), bounded waits everywhere, and no connection kept to a server that cannot write.

/**
 * What sits between the pool and PostgreSQL. `none`: PostgreSQL itself, HAProxy, or a session-pooling PgBouncer (a
 * pooled connection is one session). `transaction`: a transaction-pooling PgBouncer, where consecutive transactions
 * of one connection may run in different server sessions: nothing may rely on the session (no prepared statements,
 * no settings sent at connect; docs/scaling.md).
 */
export type DatabasePooler = 'none' | 'transaction';

/** Bounds of one pool; every one of them turns into 503 database_unavailable when it is hit. */
export interface ConnectionOptions {
  /** Default `none`; see {@link DatabasePooler}. */
  pooler?: DatabasePooler;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /** Opening a connection, TCP and startup included (default 5 s). */
  connectTimeoutMs?: number;
  /** Server-side statement_timeout (default 30 s; 0 = none). */
  statementTimeoutMs?: number;
  /**
   * Client-side read timeout: a connection with a query outstanding that receives nothing for this long is destroyed
   * and the query fails (503). Default statementTimeoutMs + {@link QUERY_TIMEOUT_MARGIN_MS}; 0 = none.
   */
  readTimeoutMs?: number;
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
  // PgBouncer (1.18) refuses a startup packet with these parameters, and would apply them to one server session only;
  // behind a transaction pooler the server-side timeouts come from the role (ALTER ROLE ... SET, docs/scaling.md).
  const session = o.pooler !== 'transaction';
  return {
    connectionString,
    max: o.poolSize ?? CONNECTION_DEFAULTS.poolSize,
    // Connections once opened stay open (pg-pool closed those idle for 10 s): under a steady load only a few are busy,
    // the rest timed out, and the next burst paid a PostgreSQL backend start per connection (fork, authentication,
    // the read-write check) while the cores were already short (issue 20: the pool went from 5 to 10 connections in
    // the middle of a 200 ms stall of the half-rate cell). Idle ones are checked by TCP keepalive.
    min: o.poolSize ?? CONNECTION_DEFAULTS.poolSize,
    connectionTimeoutMillis: o.connectTimeoutMs ?? CONNECTION_DEFAULTS.connectTimeoutMs,
    // A peer that vanished without a FIN/RST (network partition) is found by TCP keepalive on idle connections
    // and by the read timeout on busy ones (armReadTimeout).
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    ...(session && statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs } : {}),
    ...(session && lockTimeoutMs > 0 ? { lock_timeout: lockTimeoutMs } : {}),
    ...(session && idle > 0 ? { idle_in_transaction_session_timeout: idle } : {}),
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

/** The read timeout of {@link ConnectionOptions}: statement_timeout plus a margin, unless set (0 = none). */
export function readTimeoutOf(o: ConnectionOptions): number {
  if (o.readTimeoutMs !== undefined) return o.readTimeoutMs;
  const statementTimeoutMs = o.statementTimeoutMs ?? CONNECTION_DEFAULTS.statementTimeoutMs;
  return statementTimeoutMs > 0 ? statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS : 0;
}

/** What a pooled client exposes of its socket and its protocol state (node-postgres 8). */
type SocketClient = PoolClient & { connection: { stream: Socket }; readyForQuery: boolean };

/**
 * The client-side read timeout as the socket's inactivity timeout: a connection of `pool` with a query outstanding
 * that exchanges nothing for `ms` is destroyed, so the query fails with "Query read timeout" (503) instead of
 * waiting for a peer that vanished without FIN or RST. A connection with no query outstanding (idle in the pool, or
 * held by a transaction whose caller is busy) is left alone: TCP keepalive and idle_in_transaction_session_timeout
 * bound those.
 *
 * Not node-postgres' query_timeout: it wraps every query's callback in a closure that shares the query's context,
 * and under load V8 then kept every query's objects through a young-generation GC and promoted them (issue 20: with
 * it, ~2.6 MB promoted per scavenge and 10-25 ms pauses in a pg-only loop of 1,000 queries/s, against nothing promoted
 * and 0.3 ms without; docs/benchmarks.md). The socket's one timer is refreshed by every read and write: nothing is
 * allocated per query.
 */
export function armReadTimeout(pool: Pool, ms: number): void {
  if (ms <= 0) return;
  pool.on('connect', (client) => {
    const c = client as SocketClient;
    const stream = c.connection.stream;
    stream.setTimeout(ms);
    stream.on('timeout', () => {
      if (!c.readyForQuery) stream.destroy(new Error('Query read timeout'));
    });
  });
}
