// Temporary PostgreSQL databases for tests, in one place: the data-access specs, the API's medium tier and
// @keyserver/testing (e2e) all create their databases here (entry point `@keyserver/data-access/testing`).
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { migrateDatabase } from '../lib/migrate/migrator';

// KEYCLIENT_TEST_PG_URL: the keyclient tests' older name for the same setting.
/** The test PostgreSQL's administrative URL: where test databases are created (and PgBouncer's upstream in specs). */
export const ADMIN_URL = process.env['KEYSERVER_TEST_PG_ADMIN_URL'] ?? process.env['KEYCLIENT_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TempDatabase {
  url: string;
  drop(): Promise<void>;
}

function databaseUrl(name: string): string {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A database named now, created by `create()`: its URL is known before it exists (for handles made at describe time). */
export interface PlannedDatabase extends TempDatabase {
  /** Creates it, EMPTY (not migrated). */
  create(): Promise<void>;
}

/** Names a database `<prefix>_<random>` without creating it. `drop()` (safe before `create()`) terminates leftover connections. */
export function planDatabase(prefix: string): PlannedDatabase {
  if (!/^[a-z][a-z0-9_]{0,40}$/.test(prefix)) throw new Error(`invalid database prefix ${prefix}`);
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  return { url: databaseUrl(name), create: () => adminQuery(`CREATE DATABASE "${name}"`), drop: () => dropDatabase(name) };
}

/** Creates an EMPTY database named `<prefix>_<random>` (not migrated). `drop()` terminates leftover connections. */
export async function createEmptyDatabase(prefix: string): Promise<TempDatabase> {
  const { url, create, drop } = planDatabase(prefix);
  await create();
  return { url, drop };
}

/**
 * Drops `name`, terminating what is still connected. A pool's `end()` resolves once it has asked its connections to
 * close, before the server has seen them go: FORCE right after it sent a FATAL 57P01 to such a closing connection,
 * which node-postgres emits as an unhandled 'error' (a keyclient suite failed so in CI). So it waits up to 2 s for
 * the database's sessions to end by themselves first.
 */
async function dropDatabase(name: string): Promise<void> {
  const c = new Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    for (let i = 0; i < 100; i++) {
      const r = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
      if (r.rows[0].n === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await c.end();
  }
}

/** Creates a fresh database `<prefix>_<random>` with every Keyserver migration applied. Call `drop()` in afterAll. */
export async function createTestDatabase(prefix: string): Promise<TempDatabase> {
  const db = await createEmptyDatabase(prefix);
  try {
    await migrateDatabase(db.url);
  } catch (err) {
    await db.drop();
    throw err;
  }
  return db;
}

/** Runs one query on a fresh connection (for direct-SQL assertions). */
export async function sql<T extends Record<string, unknown> = Record<string, unknown>>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(text, params)).rows;
  } finally {
    await c.end();
  }
}

async function adminQuery(text: string): Promise<void> {
  const c = new Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}
