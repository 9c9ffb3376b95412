import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { DataAccessError } from '../errors';

/** Minimal logger shape (pino and console both fit). */
export interface MigrationLogger {
  info(msg: string): void;
}

/** A migration found on disk. */
export interface MigrationFile {
  name: string;
  sql: string;
  /** sha256 hex of the file bytes, the same value Prisma's CLI stores. */
  checksum: string;
}

/** The Prisma CLI's own lock id, so our migrator and `prisma migrate deploy` exclude each other. */
export const PRISMA_MIGRATE_ADVISORY_LOCK = 72707369;

/** Directory holding `<name>/migration.sql`, resolved from the source tree or the repository root. */
export function defaultMigrationsDir(): string {
  const candidates = [
    process.env['KEYSERVER_MIGRATIONS_DIR'],
    resolve(__dirname, '../../../prisma/migrations'),
    resolve(process.cwd(), 'libs/data-access/prisma/migrations'),
  ].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new DataAccessError('migration_failed', `no migrations directory (tried ${candidates.join(', ')})`);
  }
  return found;
}

/** Reads `<dir>/<name>/migration.sql` in name order (names start with a sortable timestamp). */
export function readMigrations(dir: string): MigrationFile[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, 'migration.sql')))
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const bytes = readFileSync(join(dir, name, 'migration.sql'));
      return { name, sql: bytes.toString('utf8'), checksum: createHash('sha256').update(bytes).digest('hex') };
    });
}

// Same DDL as Prisma's schema engine creates, so the CLI accepts a database we migrated.
const CREATE_MIGRATIONS_TABLE = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
  "id"                  VARCHAR(36) PRIMARY KEY NOT NULL,
  "checksum"            VARCHAR(64) NOT NULL,
  "finished_at"         TIMESTAMPTZ,
  "migration_name"      VARCHAR(255) NOT NULL,
  "logs"                TEXT,
  "rolled_back_at"      TIMESTAMPTZ,
  "started_at"          TIMESTAMPTZ NOT NULL DEFAULT now(),
  "applied_steps_count" INTEGER NOT NULL DEFAULT 0
)`;

interface AppliedRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

/**
 * Applies every pending migration of `migrationsDir` (default: libs/data-access/prisma/migrations),
 * each in its own transaction, recording it in Prisma's `_prisma_migrations` table. A session-level
 * advisory lock makes concurrent callers (several API replicas) apply each migration exactly once.
 * Refuses to run when an applied migration's file changed (`migration_checksum_mismatch`) or a
 * previous attempt failed (`migration_failed`).
 */
export async function migrateDatabase(
  databaseUrl: string,
  logger?: MigrationLogger,
  options: { migrationsDir?: string } = {},
): Promise<{ applied: string[] }> {
  const migrations = readMigrations(options.migrationsDir ?? defaultMigrationsDir());
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  const applied: string[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [PRISMA_MIGRATE_ADVISORY_LOCK]);
    await client.query(CREATE_MIGRATIONS_TABLE);
    const rows = (
      await client.query<AppliedRow>(
        'SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations" ORDER BY started_at',
      )
    ).rows.filter((r) => r.rolled_back_at === null);
    const failed = rows.find((r) => r.finished_at === null);
    if (failed) {
      throw new DataAccessError('migration_failed', `migration ${failed.migration_name} failed earlier; resolve it first`);
    }
    const done = new Map(rows.map((r) => [r.migration_name, r.checksum]));
    for (const m of migrations) {
      const recorded = done.get(m.name);
      if (recorded !== undefined) {
        if (recorded !== m.checksum) {
          throw new DataAccessError('migration_checksum_mismatch', `applied migration ${m.name} was modified`);
        }
        continue;
      }
      await applyOne(client, m);
      applied.push(m.name);
      logger?.info(`applied migration ${m.name}`);
    }
    return { applied };
  } finally {
    // Closing the session releases the advisory lock even if unlocking fails.
    await client.query('SELECT pg_advisory_unlock($1)', [PRISMA_MIGRATE_ADVISORY_LOCK]).catch(() => undefined);
    await client.end();
  }
}

async function applyOne(client: Client, m: MigrationFile): Promise<void> {
  const id = randomUUID();
  await client.query('BEGIN');
  try {
    await client.query(
      'INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, applied_steps_count) VALUES ($1, $2, $3, now(), 0)',
      [id, m.checksum, m.name],
    );
    // Simple-query protocol: the file may hold many statements, including $$-quoted function bodies.
    await client.query(m.sql);
    await client.query('UPDATE "_prisma_migrations" SET finished_at = now(), applied_steps_count = 1 WHERE id = $1', [id]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw new DataAccessError('migration_failed', `migration ${m.name}: ${(err as Error).message}`, { cause: err });
  }
}
