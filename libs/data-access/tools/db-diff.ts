// Dev command: writes prisma/migrations/<timestamp>_<name>/migration.sql with the SQL that brings a
// database migrated to the current latest migration in line with prisma/schema.prisma.
// Works offline: Prisma's WASM schema engine over the pg driver adapter, no native engine.
// Usage: npm run db:diff -- <name>     (needs the local PostgreSQL of the dev setup)
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { defaultMigrationsDir, migrateDatabase } from '../src/lib/migrate/migrator';
import { diffDatabaseToSchema, isEmptyMigrationScript } from '../src/lib/migrate/schema-engine';

const ADMIN_URL = process.env['KEYSERVER_PG_ADMIN_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function admin(sql: string): Promise<void> {
  const c = new Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

function timestamp(d = new Date()): string {
  return d.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

async function main(): Promise<number> {
  const name = process.argv[2];
  if (!name || !/^[a-z0-9_]+$/.test(name)) {
    console.error('usage: db:diff <name>   (lower-case letters, digits, underscores)');
    return 2;
  }
  const schema = resolve(__dirname, '../prisma/schema.prisma');
  const dbName = `ks_da_diff_${randomBytes(5).toString('hex')}`;
  await admin(`CREATE DATABASE "${dbName}"`);
  try {
    const u = new URL(ADMIN_URL);
    u.pathname = `/${dbName}`;
    await migrateDatabase(u.toString());
    const script = await diffDatabaseToSchema(u.toString(), schema);
    if (isEmptyMigrationScript(script)) {
      console.log('schema.prisma and the migrations agree: nothing to write');
      return 0;
    }
    const dir = join(defaultMigrationsDir(), `${timestamp()}_${name}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'migration.sql'), script);
    console.log(`wrote ${join(dir, 'migration.sql')}; review it and add what Prisma cannot express (CHECKs, triggers, grants)`);
    return 0;
  } finally {
    await admin(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
