import { createEmptyDatabase, type TempDatabase } from '../spec/temp-database';
import { eventually, repositories, seedKey } from '../spec/fixtures';
import { AccessCache, ACCESS_TABLES } from './access-cache';
import { createDb, type Db } from './db';
import { migrateDatabase } from './migrate/migrator';
import type { Repositories } from './repositories';
import { KeyRepository } from './repositories/key.repository';
import { SubjectRepository } from './repositories/subject.repository';

// Two Db handles on one database stand for two API replicas: `a` caches, `b` changes things behind its back.
let tmp: TempDatabase;
let a: Db;
let b: Db;
let ra: Repositories;
let rb: Repositories;

beforeAll(async () => {
  tmp = await createEmptyDatabase('accesscache');
  await migrateDatabase(tmp.url);
  a = createDb(tmp.url, { poolSize: 2 });
  b = createDb(tmp.url, { poolSize: 2 });
  ra = repositories(a);
  rb = repositories(b);
  await a.access.listen(tmp.url, { ttlMs: 60_000 });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await tmp?.drop();
});

describe(AccessCache.name, () => {
  it('serves a repeated lookup from memory, and a change committed by another replica once it is notified', async () => {
    await seedKey(ra, { keyid: 'ac-fw' });
    await rb.subjects.upsertRole('ac-signers', ['SIGNER']);
    await rb.subjects.setRoleKeyPermissions('ac-signers', 'ac-fw', ['SIGN']);
    const s = await rb.subjects.create({ kind: 'CLIENT', tid: 't1', oid: 'oid-ac-1', displayName: 'ci', roles: ['ac-signers'] });
    expect(await eventually(() => ra.subjects.findAccess('t1', 'oid-ac-1'), (v) => v !== null)).toMatchObject({ id: s.id, enabled: true });
    // The notifications of b's own changes arrive a moment later and flush: let them, then load once.
    await new Promise((r) => setTimeout(r, 300));
    await ra.subjects.findAccess('t1', 'oid-ac-1');
    const before = a.access.snapshot();
    expect(await ra.subjects.findAccess('t1', 'oid-ac-1')).toMatchObject({ keyPermissions: { 'ac-fw': ['SIGN'] } });
    expect(a.access.snapshot().hits).toBe(before.hits + 1);

    // Raw SQL on the other replica: only the trigger's NOTIFY can tell `a`.
    await b.pool.query(`UPDATE "subject" SET "enabled" = false WHERE "id" = $1::uuid`, [s.id]);
    expect(await eventually(() => ra.subjects.findAccess('t1', 'oid-ac-1'), (v) => v?.enabled === false)).toMatchObject({ enabled: false });
    await b.pool.query(`DELETE FROM "role_key_permission"`);
    expect((await eventually(() => ra.subjects.findAccess('t1', 'oid-ac-1'), (v) => Object.keys(v?.keyPermissions ?? {}).length === 0))?.keyPermissions).toEqual({});
    await b.pool.query(`UPDATE "key" SET "state" = 'REVOKED' WHERE "keyid" = 'ac-fw'`);
    expect(await eventually(() => ra.keys.findByKeyidCached('ac-fw'), (k) => k?.state === 'REVOKED')).toMatchObject({ state: 'REVOKED' });
  });

  it('reads its own writes at once: a change through the same Db is never served stale', async () => {
    await ra.subjects.upsertRole('ac-own', ['ORDERER']);
    const s = await ra.subjects.create({ kind: 'CLIENT', tid: 't1', oid: 'oid-ac-2', displayName: 'ci', roles: ['ac-own'] });
    expect(await ra.subjects.findAccess('t1', 'oid-ac-2')).toMatchObject({ enabled: true, natures: ['ORDERER'] });
    expect(await ra.subjects.findAccess('t1', 'oid-ac-2')).toMatchObject({ enabled: true });
    await ra.subjects.disable(s.id);
    expect(await ra.subjects.findAccess('t1', 'oid-ac-2')).toMatchObject({ enabled: false });
  });

  it('never stores a miss, so a subject registered elsewhere is found on its next request', async () => {
    expect(await ra.subjects.findAccess('t1', 'oid-ac-3')).toBeNull();
    await b.pool.query(`INSERT INTO "subject" ("id", "kind", "tid", "oid", "displayName", "updatedAt") VALUES (gen_random_uuid(), 'CLIENT', 't1', 'oid-ac-3', 'late', now())`);
    expect(await ra.subjects.findAccess('t1', 'oid-ac-3')).toMatchObject({ displayName: 'late' });
  });

  it('does not store a value loaded across a flush, and serves an entry no longer than its TTL', async () => {
    let clock = 1_000_000;
    const c = createDb(tmp.url, { poolSize: 1 });
    try {
      await c.access.listen(tmp.url, { ttlMs: 1_000, now: () => clock });
      let loads = 0;
      const load = async () => ++loads;
      let release: () => void = () => undefined;
      const slow = c.access.through('key', 'k', () => new Promise<number>((r) => (release = () => r(++loads))));
      c.access.flush();
      release();
      expect(await slow).toBe(1);
      expect(await c.access.through('key', 'k', load)).toBe(2);
      expect(await c.access.through('key', 'k', load)).toBe(2);
      clock += 999;
      expect(await c.access.through('key', 'k', load)).toBe(2);
      clock += 1;
      expect(await c.access.through('key', 'k', load)).toBe(3);
    } finally {
      await c.close();
    }
  });

  it('caches nothing without a listener: every lookup reads the database', async () => {
    const c = createDb(tmp.url, { poolSize: 1 });
    try {
      const rc = repositories(c);
      await rb.subjects.create({ kind: 'CLIENT', tid: 't1', oid: 'oid-ac-4', displayName: 'one' });
      expect(await rc.subjects.findAccess('t1', 'oid-ac-4')).toMatchObject({ displayName: 'one' });
      await b.pool.query(`ALTER TABLE "subject" DISABLE TRIGGER "subject_access_notify"`);
      await b.pool.query(`UPDATE "subject" SET "displayName" = 'two' WHERE "oid" = 'oid-ac-4'`);
      await b.pool.query(`ALTER TABLE "subject" ENABLE TRIGGER "subject_access_notify"`);
      expect(await rc.subjects.findAccess('t1', 'oid-ac-4')).toMatchObject({ displayName: 'two' });
      expect(c.access.snapshot()).toMatchObject({ listening: false, hits: 0 });
    } finally {
      await c.close();
    }
  });

  it('has the notify trigger on every table the cached lookups read', async () => {
    const tables = new Set<string>();
    for (const fn of [SubjectRepository.prototype.findByTidOid, KeyRepository.prototype.findByKeyid]) {
      for (const m of fn.toString().matchAll(/(?:FROM|JOIN)\s+"([a-z_]+)"/g)) tables.add(m[1]);
    }
    expect([...tables].sort()).toEqual([...ACCESS_TABLES].sort());
    const rows = await a.pool.query<{ table: string }>(
      `SELECT c.relname AS "table" FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid
       WHERE p.proname = 'keyserver_notify_access_change' AND NOT t.tgisinternal`,
    );
    expect(rows.rows.map((r) => r.table).sort()).toEqual([...ACCESS_TABLES].sort());
  });
});
