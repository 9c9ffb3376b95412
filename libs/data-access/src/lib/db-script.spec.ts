import fc from 'fast-check';
import { escapeLiteral } from 'pg';
import { createEmptyDatabase, sql, type TempDatabase } from '../spec/temp-database';
import { createDb, executeSql, inlineParams, preparedStatement, quoteLiteral, scriptSql, sqlPrepared, sqlScriptTransaction, type Db } from './db';

describe(quoteLiteral.name, () => {
  it('quotes every string exactly as node-postgres escapeLiteral does', () => {
    const dense = fc.array(fc.constantFrom("'", '\\', 'a', ' E', '\n', 'é', '\u{1F600}', "''", '\\\\'), { maxLength: 30 }).map((parts) => parts.join(''));
    fc.assert(fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), dense), (text) => quoteLiteral(text) === escapeLiteral(text)), { numRuns: 2000 });
  });
});

describe(inlineParams.name, () => {
  it.each([
    ['ok text and cast', 'SELECT $1::text', ['a'], "SELECT 'a'::text"],
    ['ok a quote is doubled', 'SELECT $1', ["it's"], "SELECT 'it''s'"],
    ['ok a backslash makes an E string', 'SELECT $1', ['a\\b'], "SELECT  E'a\\\\b'"],
    ['ok null', 'SELECT $1::uuid', [null], 'SELECT NULL::uuid'],
    ['ok a number as a quoted literal', 'SELECT $1::bigint', [1802234977], "SELECT '1802234977'::bigint"],
    ['ok an array in node-postgres form', 'SELECT $1::text[]', [['a', 'b"c']], `SELECT  E'{"a","b\\\\"c"}'::text[]`],
    ['ok $10 is not $1 followed by 0', 'SELECT $10, $1', ['a', 2, 3, 4, 5, 6, 7, 8, 9, 'j'], "SELECT 'j', 'a'"],
    ['ok placeholders in quotes and comments stay', `SELECT '$1', "$1", $1 -- $1\n`, ['x'], `SELECT '$1', "$1", 'x' -- $1\n`],
    ['ok a doubled quote inside a literal', "SELECT 'a''$1', $1", ['x'], "SELECT 'a''$1', 'x'"],
  ])('%s', (_name, text, values, expected) => {
    expect(inlineParams(text, values)).toBe(expected);
  });

  it.each([
    ['fail a NUL character (it would end the message early)', 'SELECT $1', ['a\u0000b']],
    ['fail a binary value', 'SELECT $1', [Buffer.from('ab')]],
    ['fail a placeholder without a value', 'SELECT $2', ['a']],
    ['fail $0', 'SELECT $0', ['a']],
    ['fail dollar quoting', 'SELECT $q$ $1 $q$, $1', ['a']],
    ['fail an E string (backslash escapes)', "SELECT E'\\' $1', $1", ['a']],
    ['fail a block comment', 'SELECT /* $1 */ $1', ['a']],
    ['fail an unterminated literal', "SELECT 'a, $1", ['a']],
    ['fail a $ inside an identifier', 'SELECT a$1', ['a']],
  ])('%s', (_name, text, values) => {
    expect(inlineParams(text, values)).toBeUndefined();
  });
});

describe(executeSql.name, () => {
  const st = preparedStatement('spec_execute', 'SELECT $1::text, $2::uuid');
  it.each([
    ['ok literals in order, null as NULL', ["it's", null], `EXECUTE "spec_execute__script"('it''s', NULL)`],
    ['ok a number as a quoted literal', [7, null], `EXECUTE "spec_execute__script"('7', NULL)`],
  ])('%s', (_name, values, expected) => {
    expect(executeSql(st, values)).toBe(expected);
  });
  it.each([
    ['fail a NUL character', ['a\u0000b', null]],
    ['fail a binary value', [Buffer.from('ab'), null]],
  ])('%s', (_name, values) => {
    expect(executeSql(st, values)).toBeUndefined();
  });
});

describe(preparedStatement.name, () => {
  it('ok the same name and text declared twice', () => {
    expect(preparedStatement('spec_twice', 'SELECT 1')).toEqual(preparedStatement('spec_twice', 'SELECT 1'));
  });
  it('fail one name declared with two texts', () => {
    preparedStatement('spec_clash', 'SELECT 1');
    expect(() => preparedStatement('spec_clash', 'SELECT 2')).toThrow('declared twice');
  });
});

describe(sqlScriptTransaction.name, () => {
  let tmp: TempDatabase;
  let db: Db;
  /** The same database as a transaction pooler's client sees it: no prepared statements (docs/scaling.md). */
  let unprepared: Db;

  beforeAll(async () => {
    tmp = await createEmptyDatabase('script');
    await sql(tmp.url, 'CREATE TABLE t (id int PRIMARY KEY, v text, at timestamptz, tags text[])');
    // A constraint checked at COMMIT: the only way here to make COMMIT itself fail.
    await sql(tmp.url, 'CREATE TABLE d (id int, CONSTRAINT d_once UNIQUE (id) DEFERRABLE INITIALLY DEFERRED)');
    db = createDb(tmp.url, { poolSize: 2 });
    unprepared = createDb(tmp.url, { poolSize: 2, pooler: 'transaction' });
  });
  afterAll(async () => {
    await unprepared.close();
    await db.close();
    await tmp.drop();
  });

  it('runs every statement in one transaction and returns the rows of each', async () => {
    const r = await sqlScriptTransaction(db, [
      inlineParams('INSERT INTO t (id, v) VALUES ($1::int, $2) RETURNING id, v', [1, 'one']) as string,
      inlineParams('INSERT INTO t (id, v) VALUES ($1::int, $2) RETURNING id, v, txid_current() AS tx', [2, 'two']) as string,
      'SELECT txid_current() AS tx',
    ]);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.rows[0]).toEqual([{ id: 1, v: 'one' }]);
    expect(r.rows[1][0]).toMatchObject({ id: 2, v: 'two' });
    expect(r.rows[2][0]['tx']).toBe(r.rows[1][0]['tx']);
  });

  it('commits nothing when a statement fails, says so, and leaves the pool usable', async () => {
    const r = await sqlScriptTransaction(db, [
      "INSERT INTO t (id, v) VALUES (10, 'kept?')",
      "INSERT INTO t (id, v) VALUES (1, 'duplicate key')",
      "INSERT INTO t (id, v) VALUES (11, 'never run')",
    ]);
    expect(r).toMatchObject({ ok: false, phase: 'statements', error: { code: '23505' } });
    expect(await sql(tmp.url, 'SELECT id FROM t WHERE id >= 10')).toEqual([]);
    for (let i = 0; i < 3; i++) expect((await db.pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('reports a failure of COMMIT itself as an unknown outcome and does not reuse the connection', async () => {
    const before = db.pool.totalCount;
    const r = await sqlScriptTransaction(db, ['INSERT INTO d VALUES (1)', 'INSERT INTO d VALUES (1)']);
    expect(r).toMatchObject({ ok: false, phase: 'commit', error: { code: '23505' } });
    expect(db.pool.totalCount).toBeLessThanOrEqual(before);
    expect(await sql(tmp.url, 'SELECT id FROM d')).toEqual([]);
    expect((await db.pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  const insert = preparedStatement('spec_script_insert', 'INSERT INTO t (id, v, at, tags) VALUES ($1::int, $2, $3::timestamptz, $4::text[]) RETURNING id, v');
  /** How many times each pooled connection has `name` prepared (pg_prepared_statements is per session). */
  async function preparedPerConnection(name: string): Promise<number[]> {
    const clients = await Promise.all(Array.from({ length: db.pool.options.max ?? 2 }, () => db.pool.connect()));
    try {
      return await Promise.all(clients.map(async (c) => Number((await c.query('SELECT count(*) AS n FROM pg_prepared_statements WHERE name = $1', [name])).rows[0].n)));
    } finally {
      clients.forEach((c) => c.release());
    }
  }

  it('ok EXECUTEs of a prepared statement: prepared once per connection, on its own round trip', async () => {
    for (let i = 0; i < 6; i++) {
      const r = await sqlScriptTransaction(db, [executeSql(insert, [2000 + 2 * i, 'a', null, null]) as string, executeSql(insert, [2001 + 2 * i, 'b', null, null]) as string], [insert]);
      expect(r).toEqual({ ok: true, rows: [[{ id: 2000 + 2 * i, v: 'a' }], [{ id: 2001 + 2 * i, v: 'b' }]] });
    }
    const counts = await preparedPerConnection('spec_script_insert__script');
    expect(counts.every((n) => n <= 1)).toBe(true);
    expect(counts.some((n) => n === 1)).toBe(true);
  });

  it('ok a connection that has the statement already (prepared before this process knew it)', async () => {
    const one = createDb(tmp.url, { poolSize: 1 });
    try {
      const st = preparedStatement('spec_script_known', 'SELECT $1::int + 1 AS n');
      const c = await one.pool.connect();
      await c.query('PREPARE "spec_script_known__script" AS SELECT $1::int + 1 AS n');
      c.release();
      expect(await sqlScriptTransaction(one, [executeSql(st, [41]) as string], [st])).toEqual({ ok: true, rows: [[{ n: 42 }]] });
    } finally {
      await one.close();
    }
  });

  it('ok sqlPrepared: one Parse per connection, the same rows as an unnamed statement', async () => {
    const st = preparedStatement('spec_protocol_named', 'SELECT $1::text || $2 AS s');
    const c = await db.pool.connect();
    try {
      for (let i = 0; i < 7; i++) expect(await sqlPrepared(c, st, ['a', String(i)])).toEqual([{ s: `a${i}` }]);
      expect((await c.query("SELECT count(*) AS n FROM pg_prepared_statements WHERE name = 'spec_protocol_named'")).rows).toEqual([{ n: '1' }]);
    } finally {
      c.release();
    }
  });

  it('ok without prepared statements: scriptSql inlines the literals EXECUTE would pass, sqlPrepared runs unnamed, nothing is prepared', async () => {
    const values = [3000, "it's \\ $1", new Date('2026-01-02T03:04:05.678Z'), ['a', 'b"c']];
    expect(scriptSql(db, insert, values)).toBe(executeSql(insert, values));
    expect(scriptSql(unprepared, insert, values)).toBe(inlineParams(insert.text, values));
    expect(await sqlScriptTransaction(unprepared, [scriptSql(unprepared, insert, values) as string])).toEqual({ ok: true, rows: [[{ id: 3000, v: "it's \\ $1" }]] });
    const st = preparedStatement('spec_unnamed', 'SELECT $1::int * 2 AS n');
    const c = await unprepared.pool.connect();
    try {
      expect(await sqlPrepared(c, st, [21])).toEqual([{ n: 42 }]);
      expect(await sqlPrepared(unprepared, st, [4])).toEqual([{ n: 8 }]);
      expect((await c.query('SELECT count(*)::int AS n FROM pg_prepared_statements')).rows).toEqual([{ n: 0 }]);
    } finally {
      c.release();
    }
  });

  it('fail a script that needs PREPARE on a pool without prepared statements: nothing runs, nothing is prepared', async () => {
    const r = await sqlScriptTransaction(unprepared, [executeSql(insert, [3001, 'x', null, null]) as string], [insert]);
    expect(r).toMatchObject({ ok: false, phase: 'statements' });
    expect(await sql(tmp.url, 'SELECT id FROM t WHERE id = 3001')).toEqual([]);
    const counts = await Promise.all(Array.from({ length: 2 }, () => unprepared.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_prepared_statements')));
    expect(counts.map((x) => x.rows[0].n)).toEqual([0, 0]);
  });

  it('stores every value exactly as bound parameters would (hostile text, dates, arrays)', async () => {
    const text = fc.string({ unit: 'binary', maxLength: 40 }).filter((s) => !s.includes('\u0000'));
    let id = 1000;
    await fc.assert(
      fc.asyncProperty(text, fc.date({ min: new Date('1970-01-01'), max: new Date('2200-01-01'), noInvalidDate: true }), fc.array(text, { maxLength: 3 }), async (v, at, tags) => {
        const a = ++id;
        const b = ++id;
        const c = ++id;
        const d = ++id;
        const script = inlineParams(insert.text, [a, v, at, tags]);
        const executed = executeSql(insert, [c, v, at, tags]);
        // The group commit's statement behind a transaction pooler (no PREPARE, no EXECUTE).
        const unnamed = scriptSql(unprepared, insert, [d, v, at, tags]);
        expect(script).toBeDefined();
        expect(executed).toBeDefined();
        expect(unnamed).toBeDefined();
        expect((await sqlScriptTransaction(db, [script as string, 'SELECT 1'])).ok).toBe(true);
        expect((await sqlScriptTransaction(db, [executed as string], [insert])).ok).toBe(true);
        expect((await sqlScriptTransaction(unprepared, [unnamed as string])).ok).toBe(true);
        await db.pool.query(insert.text, [b, v, at, tags]);
        const rows = await sql<{ same: boolean }>(
          tmp.url,
          `SELECT x.v IS NOT DISTINCT FROM y.v AND x.at = y.at AND x.tags IS NOT DISTINCT FROM y.tags
                  AND z.v IS NOT DISTINCT FROM y.v AND z.at = y.at AND z.tags IS NOT DISTINCT FROM y.tags
                  AND w.v IS NOT DISTINCT FROM y.v AND w.at = y.at AND w.tags IS NOT DISTINCT FROM y.tags AS same
           FROM t x, t y, t z, t w WHERE x.id = $1 AND y.id = $2 AND z.id = $3 AND w.id = $4`,
          [a, b, c, d],
        );
        expect(rows).toEqual([{ same: true }]);
      }),
      { numRuns: 60 },
    );
  });
});
