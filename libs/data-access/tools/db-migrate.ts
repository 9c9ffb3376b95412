// Applies pending migrations to $DATABASE_URL (the same code the apps run at start).
// Usage: DATABASE_URL=postgres://... npm run db:migrate
import { migrateDatabase } from '../src/lib/migrate/migrator';

const url = process.env['DATABASE_URL'];
if (!url) {
  console.error('DATABASE_URL is not set');
  process.exit(2);
}
migrateDatabase(url, { info: (m) => console.log(m) }).then(
  ({ applied }) => {
    console.log(applied.length ? `applied ${applied.length} migration(s)` : 'database is up to date');
    process.exit(0);
  },
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
