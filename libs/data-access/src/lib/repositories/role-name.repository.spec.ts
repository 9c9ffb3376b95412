import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hex, outcome, twoReplicas } from '../../spec/fixtures';
import { createEmptyDatabase, sql, type TempDatabase } from '../../spec/temp-database';
import { DataAccessError } from '../errors';
import { defaultMigrationsDir, migrateDatabase } from '../migrate/migrator';

/** Role names are unique whatever their case, enforced by the database on two replicas (ADR 0016 addendum). */
describe('role names', () => {
  const r = twoReplicas('role_names', 4);

  it.each([
    ['fail the same name in lower case', (n: string) => n.toLowerCase()],
    ['fail the same name in upper case', (n: string) => n.toUpperCase()],
    ['fail the same name with one letter swapped in case', (n: string) => n.replace('A', 'a')],
  ])('%s next to an existing role: conflict, nothing written', async (_name, variant) => {
    const name = `Demo-Administrators-${hex(3)}`;
    await r.a.subjects.createRole({ name, natures: ['ADMINISTRATOR'] });
    await expect(r.b.subjects.createRole({ name: variant(name), natures: ['ADMINISTRATOR'] })).rejects.toMatchObject({ code: 'conflict' });
    const rows = await sql<{ name: string }>(r.tmp.url, `SELECT "name" FROM "role" WHERE lower("name") = lower($1)`, [name]);
    expect(rows).toEqual([{ name }]);
  });

  it('fail upsertRole with another case of an existing name: conflict, the existing role unchanged', async () => {
    const name = `Ops.Signers_${hex(3)}`;
    await r.a.subjects.upsertRole(name, ['SIGNER']);
    const e = await r.b.subjects.upsertRole(name.toLowerCase(), ['ADMINISTRATOR']).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DataAccessError);
    expect(e).toMatchObject({ code: 'conflict' });
    expect(await sql(r.tmp.url, `SELECT "name", "natures"::text[] AS "natures" FROM "role" WHERE lower("name") = lower($1)`, [name])).toEqual([{ name, natures: ['SIGNER'] }]);
  });

  it('fail two replicas creating the same name in two cases at once: exactly one role, the other conflict', async () => {
    for (let i = 0; i < 8; i++) {
      const name = `Race-Admins-${hex(3)}`;
      const results = await Promise.all([
        outcome(r.a.subjects.createRole({ name, natures: ['ADMINISTRATOR'] })),
        outcome(r.b.subjects.createRole({ name: name.toLowerCase(), natures: ['ADMINISTRATOR'] })),
      ]);
      expect(results.sort()).toEqual(['conflict', 'ok']);
      expect(await sql(r.tmp.url, `SELECT count(*)::int AS n FROM "role" WHERE lower("name") = lower($1)`, [name])).toEqual([{ n: 1 }]);
    }
  });

  it('ok names that differ by more than case coexist', async () => {
    const base = `team-${hex(3)}`;
    await r.a.subjects.createRole({ name: `${base}.a`, natures: ['ORDERER'] });
    await r.b.subjects.createRole({ name: `${base}-a`, natures: ['ORDERER'] });
    await r.b.subjects.createRole({ name: `${base}_a`, natures: ['ORDERER'] });
    expect(await sql(r.tmp.url, `SELECT count(*)::int AS n FROM "role" WHERE "name" LIKE $1`, [`${base}%`])).toEqual([{ n: 3 }]);
  });
});

describe('migration 20261215000_role_name_case', () => {
  const NAME = '20261215000_role_name_case';
  let tmp: TempDatabase;
  let before: string;
  beforeEach(async () => {
    tmp = await createEmptyDatabase('role_case_mig');
    before = mkdtempSync(join(tmpdir(), 'mig-'));
    for (const d of readdirSync(defaultMigrationsDir())) if (d < NAME) cpSync(join(defaultMigrationsDir(), d), join(before, d), { recursive: true });
    await migrateDatabase(tmp.url, undefined, { migrationsDir: before });
    await sql(tmp.url, `INSERT INTO "role" ("id", "name", "natures") VALUES (gen_random_uuid(), 'Demo-Administrators', '{ADMINISTRATOR}'), (gen_random_uuid(), 'signers', '{SIGNER}')`);
  });
  afterEach(async () => {
    if (before) rmSync(before, { recursive: true, force: true });
    await tmp?.drop();
  });

  it('ok distinct names: migrated, a later name in another case is refused by the index', async () => {
    expect(await outcome(migrateDatabase(tmp.url))).toBe('ok');
    await expect(sql(tmp.url, `INSERT INTO "role" ("id", "name") VALUES (gen_random_uuid(), 'SIGNERS')`)).rejects.toMatchObject({ code: '23505', constraint: 'role_name_lower_key' });
  });

  it('fail names that differ only in case: the migration stops naming them, no index', async () => {
    await sql(tmp.url, `INSERT INTO "role" ("id", "name") VALUES (gen_random_uuid(), 'demo-administrators'), (gen_random_uuid(), 'DEMO-ADMINISTRATORS')`);
    await expect(migrateDatabase(tmp.url)).rejects.toMatchObject({
      code: 'migration_failed',
      message: expect.stringContaining('DEMO-ADMINISTRATORS, Demo-Administrators, demo-administrators'),
    });
    expect(await sql(tmp.url, `SELECT count(*)::int AS n FROM pg_indexes WHERE indexname = 'role_name_lower_key'`)).toEqual([{ n: 0 }]);
  });
});
