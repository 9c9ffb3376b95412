import { createEmptyDatabase, type TempDatabase } from '../spec/temp-database';
import { startPgBouncer, type PgBouncer } from '../spec/pgbouncer';
import { eventually, repositories, seedKey } from '../spec/fixtures';
import { AccessCache } from './access-cache';
import { createDb, type Db } from './db';
import { migrateDatabase } from './migrate/migrator';
import type { Repositories } from './repositories';

// The access cache behind a real transaction-pooling PgBouncer (docs/scaling.md, ADR 0028): the Db's pool goes
// through PgBouncer (`pooler: 'transaction'`), its listener holds a session on the direct URL (DATABASE_DIRECT_URL in
// the API). NOTIFY is database-wide, so a change committed by another replica through PgBouncer reaches it. The same
// listener opened through PgBouncer has LISTEN "confirmed" and then never hears anything: its client is linked to a
// server connection only while it runs a statement, and it runs none.

let tmp: TempDatabase;
let bouncer: PgBouncer;
let pooledUrl: string;
/** `a` caches (listener on the direct URL), `b` is another replica that changes things through PgBouncer. */
let a: Db;
let b: Db;
let ra: Repositories;
let rb: Repositories;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  tmp = await createEmptyDatabase('accesscachebouncer');
  await migrateDatabase(tmp.url);
  bouncer = await startPgBouncer({ poolSize: 2 });
  pooledUrl = bouncer.through(tmp.url);
  a = createDb(pooledUrl, { poolSize: 2, pooler: 'transaction' });
  b = createDb(pooledUrl, { poolSize: 2, pooler: 'transaction' });
  ra = repositories(a);
  rb = repositories(b);
  await a.access.listen(tmp.url, { ttlMs: 60_000 });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await bouncer?.stop();
  await tmp?.drop();
});

/** Reads until a read is a cache hit of `db` (earlier notifications may still flush); returns that read. */
async function servedFromCache<T>(db: Db, read: () => Promise<T>): Promise<T> {
  for (let i = 0; i < 200; i++) {
    await read();
    const { hits, misses } = db.access.snapshot();
    const v = await read();
    const after = db.access.snapshot();
    if (after.hits === hits + 1 && after.misses === misses) return v;
    await sleep(20);
  }
  throw new Error('the lookup was never served from the cache');
}

/** A key, a role granting SIGN on it and a CLIENT subject holding the role, all committed through `b` (PgBouncer). */
async function seedGrant(name: string) {
  const key = await seedKey(rb, { keyid: `${name}-fw` });
  await rb.subjects.upsertRole(`${name}-signers`, ['SIGNER']);
  await rb.subjects.setRoleKeyPermissions(`${name}-signers`, key.keyid, ['SIGN']);
  const subject = await rb.subjects.create({ kind: 'CLIENT', tid: 't1', oid: `oid-${name}`, displayName: 'ci', roles: [`${name}-signers`] });
  return { key, subject, oid: `oid-${name}`, role: `${name}-signers` };
}

/** Removes the role's grants with raw SQL through `b`'s pooled connection: only the trigger's NOTIFY tells `a`. */
async function removeGrants(role: string): Promise<void> {
  await b.pool.query(`DELETE FROM "role_key_permission" WHERE "roleId" = (SELECT "id" FROM "role" WHERE "name" = $1)`, [role]);
}

describe(`${AccessCache.name} behind a transaction-pooling PgBouncer`, () => {
  it('stays on with its listener on the direct URL: a grant removed and a key revoked through PgBouncer by another replica are seen', async () => {
    expect(a.preparedStatements).toBe(false);
    const { key, oid, role } = await seedGrant('direct');
    // Served from memory: a second read is a hit (no statement).
    expect(await servedFromCache(a, () => ra.subjects.findAccess('t1', oid))).toMatchObject({ enabled: true, keyPermissions: { [key.keyid]: ['SIGN'] } });
    expect(await servedFromCache(a, () => ra.keys.findByKeyidCached(key.keyid))).toMatchObject({ state: 'ACTIVE' });
    const before = a.access.snapshot();
    expect(before).toMatchObject({ listening: true });

    await removeGrants(role);
    expect((await eventually(() => ra.subjects.findAccess('t1', oid), (v) => Object.keys(v?.keyPermissions ?? {}).length === 0))?.keyPermissions).toEqual({});
    // Through Prisma's interactive transaction on b's pool (PgBouncer).
    await rb.keys.revoke(key.keyid, 'test');
    expect(await eventually(() => ra.keys.findByKeyidCached(key.keyid), (k) => k?.state === 'REVOKED')).toMatchObject({ state: 'REVOKED' });
    // `a` changed nothing itself: only notifications flushed it, and its listener is still the one it started with.
    expect(a.access.snapshot().flushes).toBeGreaterThan(before.flushes);
    expect(a.access.snapshot().listening).toBe(true);
    // And it caches again afterwards.
    expect(await servedFromCache(a, () => ra.keys.findByKeyidCached(key.keyid))).toMatchObject({ state: 'REVOKED' });
  });

  it('fail the same listener opened on the PgBouncer URL confirms LISTEN, then serves a removed grant that the direct listener has already dropped', async () => {
    const c = createDb(pooledUrl, { poolSize: 2, pooler: 'transaction' });
    try {
      await c.access.listen(pooledUrl, { ttlMs: 60_000 });
      const rc = repositories(c);
      // PgBouncer answers LISTEN like a server would: the cache believes it is invalidated and turns itself on.
      expect(c.access.snapshot()).toMatchObject({ listening: true });
      const { key, oid, role } = await seedGrant('pooled');
      expect(await servedFromCache(c, () => rc.subjects.findAccess('t1', oid))).toMatchObject({ keyPermissions: { [key.keyid]: ['SIGN'] } });
      expect(await servedFromCache(a, () => ra.subjects.findAccess('t1', oid))).toMatchObject({ keyPermissions: { [key.keyid]: ['SIGN'] } });
      const flushes = c.access.snapshot().flushes;

      await removeGrants(role);
      // The NOTIFY was sent: the direct listener drops the grant ...
      expect((await eventually(() => ra.subjects.findAccess('t1', oid), (v) => Object.keys(v?.keyPermissions ?? {}).length === 0))?.keyPermissions).toEqual({});
      await sleep(500);
      // ... while the pooled one never heard it and still grants SIGN from memory.
      const hits = c.access.snapshot().hits;
      expect((await rc.subjects.findAccess('t1', oid))?.keyPermissions).toEqual({ [key.keyid]: ['SIGN'] });
      expect(c.access.snapshot()).toMatchObject({ listening: true, flushes, hits: hits + 1 });
      // The database itself says otherwise.
      expect((await rc.subjects.findByTidOid('t1', oid))?.keyPermissions).toEqual({});
    } finally {
      await c.close();
    }
  });
});
