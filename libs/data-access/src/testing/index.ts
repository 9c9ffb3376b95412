// Test helpers of the data layer (`@keyserver/data-access/testing`); never imported by production code.
export { createEmptyDatabase as createEmptyTestDatabase, createTestDatabase, sql, type TempDatabase } from './temp-database';
export { runProbe } from './run-probe';
