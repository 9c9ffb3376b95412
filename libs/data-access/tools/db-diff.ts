// Dev command: writes prisma/migrations/<timestamp>_<name>/migration.sql with the SQL that brings a
// database at the latest migration in line with prisma/schema.prisma. Works offline (Prisma's WASM
// schema engine over the pg driver adapter). Usage: npm run db:diff -- <name>
import { resolve } from 'node:path';
import { defaultMigrationsDir } from '../src/lib/migrate/migrator';
import { writeNextMigration } from '../src/lib/migrate/schema-engine';

const name = process.argv[2];
if (!name) {
  console.error('usage: npm run db:diff -- <name>   (lower-case letters, digits, underscores)');
  process.exit(2);
}
writeNextMigration({
  adminUrl: process.env['KEYSERVER_PG_ADMIN_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  schemaPath: resolve(__dirname, '../prisma/schema.prisma'),
  migrationsDir: defaultMigrationsDir(),
  name,
}).then(
  (file) => {
    console.log(
      file
        ? `wrote ${file}; review it and add what Prisma cannot express (CHECKs, triggers, grants)`
        : 'schema.prisma and the migrations agree: nothing to write',
    );
    process.exit(0);
  },
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
