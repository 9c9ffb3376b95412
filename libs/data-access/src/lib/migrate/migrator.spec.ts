import { createHash } from 'node:crypto';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createEmptyDatabase, sql, type TempDatabase } from '../../spec/temp-database';
import { DataAccessError } from '../errors';
import { defaultMigrationsDir, migrateDatabase, readMigrations } from './migrator';
import { diffDatabaseToSchema, isEmptyMigrationScript, writeNextMigration } from './schema-engine';

const MIGRATIONS = defaultMigrationsDir();
const SCHEMA = resolve(__dirname, '../../../prisma/schema.prisma');
const ALL = readMigrations(MIGRATIONS).map((m) => m.name);

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof DataAccessError) return err.code;
    throw err;
  }
  throw new Error('expected a DataAccessError');
}

/** A copy of the first `n` migrations, to simulate an older release or to tamper with files. */
function migrationsCopy(n: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'ks-da-migrations-'));
  for (const name of ALL.slice(0, n)) cpSync(join(MIGRATIONS, name), join(dir, name), { recursive: true });
  return dir;
}

describe(migrateDatabase.name, () => {
  const dbs: TempDatabase[] = [];
  const dirs: string[] = [];
  const fresh = async (tag: string) => {
    const db = await createEmptyDatabase(tag);
    dbs.push(db);
    return db;
  };
  afterAll(async () => {
    await Promise.all(dbs.map((d) => d.drop()));
    dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
  });

  it('ships at least two migrations in timestamp order', () => {
    expect(ALL.length).toBeGreaterThanOrEqual(2);
    expect([...ALL].sort()).toEqual(ALL);
  });

  it('migrates an empty database to the latest version and records it like the Prisma CLI', async () => {
    const db = await fresh('empty');
    const logged: string[] = [];
    const { applied } = await migrateDatabase(db.url, { info: (m) => logged.push(m) });
    expect(applied).toEqual(ALL);
    expect(logged).toHaveLength(ALL.length);
    const rows = await sql<{ migration_name: string; checksum: string; finished_at: Date | null; applied_steps_count: number; id: string }>(
      db.url,
      'SELECT * FROM "_prisma_migrations" ORDER BY migration_name',
    );
    expect(rows.map((r) => r.migration_name)).toEqual(ALL);
    for (const r of rows) {
      const file = readFileSync(join(MIGRATIONS, r.migration_name, 'migration.sql'));
      expect(r.checksum).toBe(createHash('sha256').update(file).digest('hex'));
      expect(r.finished_at).toBeInstanceOf(Date);
      expect(r.applied_steps_count).toBe(1);
      expect(r.id).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect((await migrateDatabase(db.url)).applied).toEqual([]);
  });

  it('produces exactly the schema that schema.prisma describes (WASM schema engine diff is empty)', async () => {
    const db = await fresh('agree');
    await migrateDatabase(db.url);
    const drift = await diffDatabaseToSchema(db.url, SCHEMA);
    expect({ empty: isEmptyMigrationScript(drift), drift }).toEqual({ empty: true, drift });
  });

  it('detects drift: an unmigrated database differs from schema.prisma', async () => {
    const db = await fresh('drift');
    const drift = await diffDatabaseToSchema(db.url, SCHEMA);
    expect(isEmptyMigrationScript(drift)).toBe(false);
    expect(drift).toContain('CREATE TABLE "audit_event"');
  });

  it('upgrades a database at an earlier version that holds data', async () => {
    const db = await fresh('prev');
    // The version before the append-only guard, so the upgrade can be seen adding it.
    const before = ALL.findIndex((name) => name.endsWith('_audit_append_only'));
    const previous = migrationsCopy(before);
    dirs.push(previous);
    expect((await migrateDatabase(db.url, undefined, { migrationsDir: previous })).applied).toEqual(ALL.slice(0, before));
    await sql(db.url, `INSERT INTO "subject" (id, kind, tid, oid, "displayName", "updatedAt") VALUES (gen_random_uuid(), 'USER', 't', 'o', 'Old User', now())`);
    await sql(db.url, `INSERT INTO "audit_event" (id, action, outcome, details, "prevHash", hash) VALUES (gen_random_uuid(), 'legacy', 'SUCCESS', '{}', $1, 'h1')`, ['0'.repeat(64)]);
    // Before the append-only migration an UPDATE is still possible: this proves the upgrade adds the guard.
    await sql(db.url, `UPDATE "audit_event" SET action = 'legacy2'`);

    expect((await migrateDatabase(db.url)).applied).toEqual(ALL.slice(before));
    expect(await sql(db.url, 'SELECT "displayName" FROM "subject"')).toEqual([{ displayName: 'Old User' }]);
    expect(await sql(db.url, 'SELECT action FROM "audit_event"')).toEqual([{ action: 'legacy2' }]);
    await expect(sql(db.url, `UPDATE "audit_event" SET action = 'x'`)).rejects.toThrow(/append-only/);
    expect(isEmptyMigrationScript(await diffDatabaseToSchema(db.url, SCHEMA))).toBe(true);
  });

  it('applies each migration exactly once when three clients migrate concurrently', async () => {
    const db = await fresh('race');
    const results = await Promise.all([1, 2, 3].map(() => migrateDatabase(db.url)));
    expect(results.flatMap((r) => r.applied).sort()).toEqual(ALL);
    const rows = await sql<{ n: string }>(db.url, 'SELECT count(*)::text AS n FROM "_prisma_migrations"');
    expect(rows[0].n).toBe(String(ALL.length));
  });

  it('refuses to run when an applied migration file was changed', async () => {
    const db = await fresh('tamper');
    const dir = migrationsCopy(ALL.length);
    dirs.push(dir);
    await migrateDatabase(db.url, undefined, { migrationsDir: dir });
    appendFileSync(join(dir, ALL[0], 'migration.sql'), '\n-- edited after release\n');
    expect(await codeOf(migrateDatabase(db.url, undefined, { migrationsDir: dir }))).toBe('migration_checksum_mismatch');
  });

  it('rolls back a failing migration completely and records nothing', async () => {
    const db = await fresh('fail');
    const dir = migrationsCopy(ALL.length);
    dirs.push(dir);
    mkdirSync(join(dir, '99990101000000_broken'));
    writeFileSync(join(dir, '99990101000000_broken', 'migration.sql'), 'CREATE TABLE "half_done" (id int);\nSELECT no_such_function();\n');
    expect(await codeOf(migrateDatabase(db.url, undefined, { migrationsDir: dir }))).toBe('migration_failed');
    const names = await sql<{ migration_name: string }>(db.url, 'SELECT migration_name FROM "_prisma_migrations" ORDER BY 1');
    expect(names.map((r) => r.migration_name)).toEqual(ALL);
    expect(await sql(db.url, `SELECT to_regclass('public.half_done') AS t`)).toEqual([{ t: null }]);
  });

  it('refuses a database whose earlier migration attempt is recorded as failed', async () => {
    const db = await fresh('failedrow');
    await migrateDatabase(db.url);
    await sql(db.url, `INSERT INTO "_prisma_migrations" (id, checksum, migration_name) VALUES (gen_random_uuid(), 'x', '99990101000000_cli_failed')`);
    expect(await codeOf(migrateDatabase(db.url))).toBe('migration_failed');
  });

  it('db:diff writes the next migration for a schema change, and applying it removes the drift', async () => {
    const dir = migrationsCopy(ALL.length);
    dirs.push(dir);
    const schemaCopy = join(dir, 'schema.prisma');
    const original = readFileSync(SCHEMA, 'utf8');
    writeFileSync(schemaCopy, original.replace('  product           String?', '  product           String?\n  vendorNote        String?'));
    const adminUrl = 'postgres://postgres@127.0.0.1:5432/postgres';
    const file = await writeNextMigration({ adminUrl, schemaPath: schemaCopy, migrationsDir: dir, name: 'vendor_note', now: new Date('2099-01-01T00:00:00Z') });
    expect(file).toBe(join(dir, '20990101000000_vendor_note', 'migration.sql'));
    expect(readFileSync(file as string, 'utf8')).toContain('ADD COLUMN     "vendorNote" TEXT');
    const db = await fresh('diffcmd');
    expect((await migrateDatabase(db.url, undefined, { migrationsDir: dir })).applied).toContain('20990101000000_vendor_note');
    expect(isEmptyMigrationScript(await diffDatabaseToSchema(db.url, schemaCopy))).toBe(true);
    expect(await writeNextMigration({ adminUrl, schemaPath: schemaCopy, migrationsDir: dir, name: 'nothing' })).toBeNull();
  });
});
