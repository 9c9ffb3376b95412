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
  const prisma = new PrismaClient({ adapter });
  return {
    prisma,
    transaction: (fn, opts = {}) =>
      prisma.$transaction(fn, {
        isolationLevel: opts.isolation ? Prisma.TransactionIsolationLevel[opts.isolation] : undefined,
        // Callers may hold a row lock while an HSM signs; waiting for a pooled connection under load is normal.
        timeout: opts.timeoutMs ?? 60_000,
        maxWait: 60_000,
      }),
    close: () => prisma.$disconnect(),
  };
}

/** Maps Prisma's known request errors to stable data-access codes. */
export function mapPrismaError(err: unknown, what: string): never {
  if (err instanceof DataAccessError) throw err;
  if (err instanceof Prisma.PrismaClientKnownRequestError) {
    if (err.code === 'P2002') throw new DataAccessError('conflict', `${what} already exists`, { cause: err });
    if (err.code === 'P2025') throw new DataAccessError('not_found', `${what} not found`, { cause: err });
    if (err.code === 'P2003') throw new DataAccessError('invalid_input', `${what} references a missing row`, { cause: err });
  }
  throw err;
}
