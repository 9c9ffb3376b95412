// The one implementation lives with the data layer (libs/data-access/src/testing/temp-database.ts).
export { createTestDatabase } from '@keyserver/data-access/testing';
