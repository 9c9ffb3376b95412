// eslint-disable-next-line @nx/enforce-module-boundaries -- test-only: the database is migrated by its owner
import { migrateDatabase } from '@keyserver/data-access';
import { Client } from 'pg';
import { createDatabase } from './harness';
import { asKeyclientRole } from './session-table';

jest.setTimeout(60_000);

// The keyclient's database role reaches its session schema and nothing of the Keyserver (ADR 0018): a compromised
// keyclient cannot write approvals, subjects, keys or audit events behind the API's back. Every statement below is
// what such a keyclient would try; each is refused by PostgreSQL itself (42501 insufficient_privilege).
describe('keyclient database role (keyserver_keyclient)', () => {
  let drop: () => Promise<void>;
  let kc: Client;

  beforeAll(async () => {
    const created = await createDatabase();
    drop = created.drop;
    await migrateDatabase(created.url);
    kc = new Client({ connectionString: asKeyclientRole(created.url) });
    await kc.connect();
  });
  afterAll(async () => {
    await kc?.end();
    await drop?.();
  });

  const sqlState = (text: string, params: unknown[] = []) => kc.query(text, params).then(() => 'ok', (e: { code?: string }) => e.code ?? 'untyped');
  const ZERO = '00000000-0000-0000-0000-000000000000';

  it.each([
    ['fail reading approvals', `SELECT * FROM "approval"`],
    ['fail writing an approval', `INSERT INTO "approval" ("operationId", "keyId", "approverId") VALUES ('${ZERO}', '${ZERO}', '${ZERO}')`],
    ['fail moving an operation to APPROVED', `UPDATE "operation" SET "state" = 'APPROVED'`],
    ['fail reading subjects', `SELECT * FROM "subject"`],
    ['fail granting itself a role', `INSERT INTO "subject_role" ("subjectId", "roleId") VALUES ('${ZERO}', '${ZERO}')`],
    ['fail reading keys', `SELECT * FROM "key"`],
    ['fail reading the audit log', `SELECT * FROM "audit_event"`],
    ['fail deleting audit events', `DELETE FROM "audit_event"`],
    ['fail reading sign orders', `SELECT * FROM "sign_order"`],
    ['fail reading the migration history', `SELECT * FROM "_prisma_migrations"`],
    ['fail creating a table in public', `CREATE TABLE "public"."kc_probe" (x int)`],
    ['fail creating a table in its own schema', `CREATE TABLE "keyclient"."kc_probe" (x int)`],
  ])('%s', async (_n, text) => {
    expect(await sqlState(text)).toBe('42501');
  });

  it('fails appending an audit event through the Keyserver audit function', async () => {
    const r = await kc.query(`SELECT p.oid::regprocedure::text AS sig FROM pg_proc p WHERE p.proname = 'keyserver_append_audit'`);
    expect(r.rows.length).toBeGreaterThan(0);
    for (const { sig } of r.rows as { sig: string }[]) {
      const args = sig.slice(sig.indexOf('(') + 1, -1).split(',').filter(Boolean);
      expect(await sqlState(`SELECT ${sig.slice(0, sig.indexOf('('))}(${args.map(() => 'NULL').join(', ')})`)).toBe('42501');
    }
  });

  // The statements above are examples; these two read the catalogue, so a table, sequence or function that a later
  // migration adds is covered without being named here.
  it('fail holding any right on a table, view or sequence outside its own schema (every one in the catalogue)', async () => {
    const r = await kc.query(`
      SELECT n.nspname || '.' || c.relname AS name
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
         AND n.nspname NOT IN ('keyclient', 'pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
         AND (CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'USAGE, SELECT, UPDATE')
                   ELSE has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') END)
       ORDER BY 1`);
    const all = await kc.query(`SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'`);
    expect(all.rows[0].n).toBeGreaterThan(20);
    expect(r.rows.map((x: { name: string }) => x.name)).toEqual([]);
  });

  it('fail executing any Keyserver function that can be called directly (trigger functions cannot be)', async () => {
    const r = await kc.query(`
      SELECT p.oid::regprocedure::text AS name
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname NOT IN ('keyclient', 'pg_catalog', 'information_schema')
         AND p.prorettype <> 'trigger'::regtype AND has_function_privilege(p.oid, 'EXECUTE')
       ORDER BY 1`);
    expect(r.rows.map((x: { name: string }) => x.name)).toEqual([]);
  });

  it('fail creating anything in the Keyserver schema', async () => {
    expect((await kc.query(`SELECT has_schema_privilege('public', 'CREATE') AS ok`)).rows[0].ok).toBe(false);
  });

  it('ok uses its own session table', async () => {
    const now = new Date();
    await kc.query(
      `INSERT INTO "keyclient"."bff_session" ("id", "tid", "oid", "tokenCiphertext", "accessTokenExpiresAt", "idleExpiresAt", "absoluteExpiresAt") VALUES ($1, 't', 'o', $2, $3, $3, $3)`,
      ['a'.repeat(64), Buffer.from([1]), now],
    );
    expect((await kc.query(`SELECT count(*)::int AS n FROM "keyclient"."bff_session"`)).rows[0].n).toBe(1);
    expect(await sqlState(`DELETE FROM "keyclient"."bff_session"`)).toBe('ok');
  });
});
