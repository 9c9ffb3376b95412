import { defineConfig } from 'prisma/config';

// The CLI only needs the schema for `prisma generate`; migrations are applied by our own migrator
// (docs/adr/0004-offline-migrations.md), so no datasource URL is required here.
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
});
