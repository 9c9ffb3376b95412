// Test-only helper (excluded from the library build): the one implementation is ../testing/temp-database.ts.
import { createEmptyDatabase as create, planDatabase as plan, type PlannedDatabase, type TempDatabase } from '../testing/temp-database';

export { sql, type TempDatabase } from '../testing/temp-database';

/** Creates an EMPTY database named `ks_da_test_<tag>_<random>` (not migrated). */
export function createEmptyDatabase(tag: string): Promise<TempDatabase> {
  return create(`ks_da_test_${tag}`);
}

/** Names an EMPTY database `ks_da_test_<tag>_<random>` that `create()` creates. */
export function planDatabase(tag: string): PlannedDatabase {
  return plan(`ks_da_test_${tag}`);
}
