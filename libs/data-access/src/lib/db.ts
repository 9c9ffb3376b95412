import { PrismaPg } from '@prisma/adapter-pg';
import { Prisma, PrismaClient } from '../generated/prisma/client';
import { DataAccessError } from './errors';

/** Transaction isolation levels accepted by {@link Db.transaction}. */
export type Isolation = 'ReadCommitted' | 'RepeatableRead' | 'Serializable';

/** Prisma transaction client; only repositories see it. */
export type Tx = Prisma.TransactionClient;

/** A database handle: one connection pool and its Prisma client. */
export interface Db {
  readonly prisma: PrismaClient;
  /** Runs `fn` in one transaction (default READ COMMITTED, 60 s timeout). */
  transaction<T>(fn: (tx: Tx) => Promise<T>, options?: { isolation?: Isolation; timeoutMs?: number }): Promise<T>;
  /** Closes the pool. */
  close(): Promise<void>;
}

/**
 * Creates a database handle over `@prisma/adapter-pg`. `poolSize` caps the pg pool (default 10).
 * Run {@link migrateDatabase} first; the handle never changes the schema.
 */
export function createDb(databaseUrl: string, options: { poolSize?: number } = {}): Db {
  const adapter = new PrismaPg({ connectionString: databaseUrl, max: options.poolSize ?? 10 });
  const base = new PrismaClient({ adapter });
  // Every query, raw or not: a lost database becomes 503 database_unavailable, never a 500.
  const prisma = base.$extends({
    query: {
      async $allOperations({ args, query }) {
        try {
          return await query(args);
        } catch (err) {
          throw asUnavailable(err);
        }
      },
    },
  }) as unknown as PrismaClient;
  return {
    prisma,
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
      }
    },
    close: () => base.$disconnect(),
  };
}

const UNAVAILABLE_PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2028']);
const UNAVAILABLE_CAUSES = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections', 'DatabaseDoesNotExist']);
const UNAVAILABLE_NET = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH']);

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
  if (code && (UNAVAILABLE_PRISMA_CODES.has(code) || UNAVAILABLE_NET.has(code) || /^(08|57P0[1-3]|53300)/.test(code))) return true;
  const kind = typeof e['kind'] === 'string' ? e['kind'] : undefined;
  if (kind && UNAVAILABLE_CAUSES.has(kind)) return true;
  const original = typeof e['originalCode'] === 'string' ? e['originalCode'] : undefined;
  if (original && /^(08|57P0[1-3]|53300)/.test(original)) return true;
  const message = typeof e['message'] === 'string' ? e['message'] : '';
  if (/ECONNREFUSED|Connection terminated|terminating connection due to administrator command|Can't reach database server/i.test(message)) return true;
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
