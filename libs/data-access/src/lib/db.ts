import { PrismaPg } from '@prisma/adapter-pg';
import { Pool, type PoolClient, type QueryResultRow } from 'pg';
import { Prisma, PrismaClient } from '../generated/prisma/client';
import { poolConfig, type ConnectionOptions } from './connection';
import { DataAccessError } from './errors';
import { UUID_PATTERN } from '@keyserver/api-contract';
import { AccessCache } from './access-cache';

/** Transaction isolation levels accepted by {@link Db.transaction}. */
export type Isolation = 'ReadCommitted' | 'RepeatableRead' | 'Serializable';

/** Prisma transaction client; only repositories see it. */
export type Tx = Prisma.TransactionClient;

/** A database handle: one connection pool and its Prisma client. */
export interface Db {
  readonly prisma: PrismaClient;
  /**
   * The pg pool under Prisma. Only repositories use it, for the per-request hot path (authorization, usage
   * reservation, sign-order and audit writes) where Prisma's per-query overhead dominated the CPU profile.
   */
  readonly pool: Pool;
  /** Runs `fn` in one transaction (default READ COMMITTED, 60 s timeout). */
  transaction<T>(fn: (tx: Tx) => Promise<T>, options?: { isolation?: Isolation; timeoutMs?: number }): Promise<T>;
  /**
   * The hot path's subject and key lookups cached with invalidation on every change (access-cache.ts, ADR 0028);
   * a pass-through until `access.listen()` (the API calls it at boot).
   */
  readonly access: AccessCache;
  /** Closes the pool. */
  close(): Promise<void>;
}

const PRISMA_READS = new Set(['findUnique', 'findUniqueOrThrow', 'findFirst', 'findFirstOrThrow', 'findMany', 'count', 'aggregate', 'groupBy']);

/**
 * Creates a database handle over `@prisma/adapter-pg`. `options` bound the pool (size, connect, statement and lock
 * timeouts) and keep only connections to a writable server (connection.ts, ADR 0026).
 * Run {@link migrateDatabase} first; the handle never changes the schema.
 */
export function createDb(databaseUrl: string, options: ConnectionOptions = {}): Db {
  const pool = new Pool(poolConfig(databaseUrl, options));
  // An idle connection dropped by a restarting server must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  // Nor one a transaction holds between two statements (the server's FATAL arrives as an 'error' event when no
  // query runs, and pg-pool listens only on idle connections): the next statement on it fails (503) and the pool
  // destroys it on release.
  pool.on('connect', (client) => client.on('error', () => undefined));
  const adapter = new PrismaPg(pool);
  const base = new PrismaClient({ adapter });
  const access = new AccessCache();
  // Every query, raw or not: a lost database becomes 503 database_unavailable, never a 500.
  const prisma = base.$extends({
    query: {
      async $allOperations({ operation, args, query }) {
        try {
          return await query(args);
        } catch (err) {
          throw asUnavailable(err);
        } finally {
          // Anything but a model read may have changed access (raw SQL included): this replica reads its own writes.
          if (!PRISMA_READS.has(operation)) access.flush();
        }
      },
    },
  }) as unknown as PrismaClient;
  return {
    prisma,
    pool,
    transaction: async (fn, opts = {}) => {
      try {
        return await base.$transaction(fn, {
          isolationLevel: opts.isolation ? Prisma.TransactionIsolationLevel[opts.isolation] : undefined,
          // Callers may hold a row lock while an HSM signs; waiting for a pooled connection under load is normal.
          timeout: opts.timeoutMs ?? 60_000,
          maxWait: 60_000,
        });
      } catch (err) {
        throw asUnavailable(err);
      } finally {
        // Committed or not, whatever it changed is not served from the cache to this replica's next request.
        access.flush();
      }
    },
    access,
    close: async () => {
      await access.close();
      await base.$disconnect();
      if (!pool.ended) await pool.end();
    },
  };
}

const UNAVAILABLE_PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2028']);
const UNAVAILABLE_CAUSES = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections', 'DatabaseDoesNotExist']);
const UNAVAILABLE_NET = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH']);
// Connection exceptions (08), shutdown/crash (57P01-03), too many connections (53300), and the retryable waits of a
// failover: a write on a server that became read-only (25006), statement_timeout (57014), lock_timeout (55P03).
const UNAVAILABLE_SQLSTATE = /^(08|57P0[1-3]|53300|25006|57014|55P03)/;
// node-postgres' own messages for a connection that timed out or was cut.
const UNAVAILABLE_MESSAGE =
  /ECONNREFUSED|Connection terminated|terminating connection due to administrator command|Can't reach database server|timeout exceeded when trying to connect|Query read timeout|server is read-only \(not the primary\)|Client has encountered a connection error/i;

/**
 * True when an error means the database cannot be reached or dropped the connection (Prisma connection
 * codes, driver-adapter cause kinds, PostgreSQL connection-exception / shutdown SQLSTATEs, socket errors).
 */
export function isDatabaseUnavailable(err: unknown, depth = 0): boolean {
  if (depth > 5 || typeof err !== 'object' || err === null) return false;
  if (err instanceof DataAccessError) return err.code === 'database_unavailable';
  if (err instanceof Prisma.PrismaClientInitializationError) return true;
  const e = err as Record<string, unknown>;
  const code = typeof e['code'] === 'string' ? e['code'] : undefined;
  if (code && (UNAVAILABLE_PRISMA_CODES.has(code) || UNAVAILABLE_NET.has(code) || UNAVAILABLE_SQLSTATE.test(code))) return true;
  const kind = typeof e['kind'] === 'string' ? e['kind'] : undefined;
  if (kind && UNAVAILABLE_CAUSES.has(kind)) return true;
  const original = typeof e['originalCode'] === 'string' ? e['originalCode'] : undefined;
  if (original && UNAVAILABLE_SQLSTATE.test(original)) return true;
  const message = typeof e['message'] === 'string' ? e['message'] : '';
  if (UNAVAILABLE_MESSAGE.test(message)) return true;
  return isDatabaseUnavailable(e['cause'], depth + 1) || isDatabaseUnavailable((e['meta'] as Record<string, unknown> | undefined)?.['driverAdapterError'], depth + 1);
}

function asUnavailable(err: unknown): unknown {
  return !(err instanceof DataAccessError) && isDatabaseUnavailable(err)
    ? new DataAccessError('database_unavailable', 'the database is not reachable; retry shortly', { cause: err })
    : err;
}

/** Maps Prisma's known request errors to stable data-access codes. */
export function mapPrismaError(err: unknown, what: string): never {
  if (err instanceof DataAccessError) throw err;
  if (isDatabaseUnavailable(err)) throw asUnavailable(err);
  if (err instanceof Prisma.PrismaClientKnownRequestError) {
    if (err.code === 'P2002') throw new DataAccessError('conflict', `${what} already exists`, { cause: err });
    if (err.code === 'P2025') throw new DataAccessError('not_found', `${what} not found`, { cause: err });
    if (err.code === 'P2003') throw new DataAccessError('invalid_input', `${what} references a missing row`, { cause: err });
  }
  throw err;
}

/** One SQL statement on the pool; errors mapped like Prisma's (503 when the database is gone). */
export async function sqlQuery<R extends QueryResultRow>(db: Db | PoolClient, text: string, values: unknown[] = []): Promise<R[]> {
  const q = 'pool' in db ? db.pool : db;
  try {
    return (await q.query<R>(text, values)).rows;
  } catch (err) {
    throw asUnavailable(err);
  }
}

/** Runs `fn` in one READ COMMITTED transaction on a pooled connection; rolls back on any throw. */
export async function sqlTransaction<T>(db: Db, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  let client: PoolClient;
  try {
    client = await db.pool.connect();
  } catch (err) {
    throw asUnavailable(err);
  }
  let broken: unknown;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    try {
      await client.query('ROLLBACK');
    } catch (rollbackErr) {
      broken = rollbackErr;
    }
    throw asUnavailable(err);
  } finally {
    // A connection that failed to roll back is destroyed instead of going back to the pool.
    client.release(broken instanceof Error ? broken : undefined);
  }
}

/** PostgreSQL SQLSTATE of a pg error (e.g. 23505 unique violation), if any. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** A UUID as PostgreSQL's uuid type reads it: checked before a `::uuid` cast, which would fail on anything else. */
/** The one UUID pattern (@keyserver/api-contract ids.ts). */
export const UUID = UUID_PATTERN;
