import { createEmptyDatabase, sql, type TempDatabase } from '../../spec/temp-database';
import { startPgBouncer, type PgBouncer } from '../../spec/pgbouncer';
import { hex, outcome, repositories } from '../../spec/fixtures';
import { expectHostileOrdersStored, hostileText, hsmGate as gate, ordersReservedTogether, seedOperation as setup, signRequest as request } from '../../spec/sign-path';
import { createDb, type Db } from '../db';
import { poolConfig, type ConnectionOptions } from '../connection';
import { migrateDatabase } from '../migrate/migrator';
import type { Repositories } from '.';
import { SignOrderRepository, type SignRequest } from './sign-order.repository';
import { releaseExpiredReservations } from './usage';

// The sign path through a real PgBouncer in transaction pooling mode (docs/scaling.md): two pools of 5 connections
// (two replicas) share 2 server connections, so consecutive transactions of one pooled connection run in different
// server sessions. With `pooler: 'transaction'` nothing may rely on the session; without it the same work fails.

/** 100 orders at once from two pools on one operation with 25 usages; resolves to each order's outcome. */
async function hundredOrders(a: Repositories, b: Repositories): Promise<{ results: string[]; operationId: string }> {
  const { orderer, key, op } = await setup(a, { usages: 25 });
  const results = await Promise.all(
    Array.from({ length: 100 }, (_, i) =>
      outcome(
        (i % 2 ? a : b).signOrders.recordWithUsage(request(op.id, key.keyid, orderer.id, { requestId: `r${i}-${hex(2)}` }), async () => {
          await new Promise((r) => setTimeout(r, 2));
          return hex(64);
        }),
      ).catch((err: Error) => `thrown: ${err.message}`),
    ),
  );
  return { results, operationId: op.id };
}

describe(SignOrderRepository.name, () => {
  let tmp: TempDatabase;
  let bouncer: PgBouncer;
  let url: string;

  beforeAll(async () => {
    tmp = await createEmptyDatabase('pgbouncer');
    // Migrations take a session advisory lock: they run on the direct connection (DATABASE_DIRECT_URL).
    await migrateDatabase(tmp.url);
    // Behind a transaction pooler the server-side timeouts come from the role or the database, not from the pool.
    await sql(tmp.url, `ALTER DATABASE "${new URL(tmp.url).pathname.slice(1)}" SET statement_timeout = '25s'`);
    bouncer = await startPgBouncer({ poolSize: 2 });
    url = bouncer.through(tmp.url);
  });
  afterAll(async () => {
    await bouncer?.stop();
    await tmp?.drop();
  });

  /** Two replicas' pools through PgBouncer. */
  function twoReplicas(options: ConnectionOptions) {
    const dbA = createDb(url, { poolSize: 5, ...options });
    const dbB = createDb(url, { poolSize: 5, ...options });
    return { dbA, dbB, a: repositories(dbA), b: repositories(dbB), close: async () => Promise.all([dbA.close(), dbB.close()]) };
  }

  /**
   * Orders one at a time (so every statement runs alone, as a named statement when prepared statements are on), each on
   * a pool of one connection: one order, PgBouncer replacing its server sessions (server_lifetime, a restart), an order
   * on the same connection, then one order on each of three new connections. Resolves to the five outcomes. Forced
   * rather than hoped for in a burst: under load group commits take most statements, and a script tolerates 42P05.
   */
  async function ordersAcrossReconnect(options: ConnectionOptions): Promise<string[]> {
    const dbs = Array.from({ length: 4 }, () => createDb(url, { poolSize: 1, ...options }));
    try {
      const [first, ...fresh] = dbs.map((db) => repositories(db));
      const { orderer, key, op } = await setup(first, { usages: 10 });
      const order = (r: Repositories) => outcome(r.signOrders.recordWithUsage(request(op.id, key.keyid, orderer.id, { requestId: `seq-${hex(4)}` }), async () => hex(64)));
      const results = [await order(first)];
      await bouncer.reconnect(tmp.url);
      results.push(await order(first));
      for (const r of fresh) results.push(await order(r));
      return results;
    } finally {
      await Promise.all(dbs.map((db) => db.close()));
    }
  }

  describe('behind a transaction-pooling PgBouncer with pooler: transaction', () => {
    let dbA: Db;
    let dbB: Db;
    let a: Repositories;
    let b: Repositories;
    let close: () => Promise<unknown>;

    beforeAll(() => {
      ({ dbA, dbB, a, b, close } = twoReplicas({ pooler: 'transaction' }));
    });
    afterAll(() => close());

    it('sends no session settings at connect and gets the server-side timeouts from the database', async () => {
      expect(poolConfig(url, { pooler: 'transaction' })).not.toHaveProperty('statement_timeout');
      expect(poolConfig(url, { pooler: 'transaction' })).not.toHaveProperty('lock_timeout');
      expect(poolConfig(url, { pooler: 'transaction' })).not.toHaveProperty('idle_in_transaction_session_timeout');
      expect((await dbA.pool.query<{ statement_timeout: string }>('SHOW statement_timeout')).rows).toEqual([{ statement_timeout: '25s' }]);
      expect(dbA.preparedStatements).toBe(false);
    });

    it('consumes exactly 25 usages out of 100 concurrent orders from two pools on 2 server connections; the chain verifies', async () => {
      // Fresh server sessions under pool connections that have run the sign path already change nothing.
      await hundredOrders(a, b);
      await bouncer.reconnect(tmp.url);
      const { results, operationId } = await hundredOrders(a, b);
      expect(results.filter((r) => r === 'ok')).toHaveLength(25);
      expect(results.filter((r) => r !== 'ok')).toEqual(Array.from({ length: 75 }, () => 'usage_exhausted'));
      const after = await a.operations.get(operationId);
      expect(after.keys[0].usagesUsed).toBe(25);
      expect(after.state).toBe('EXHAUSTED');
      expect(await a.signOrders.listByOperation(operationId)).toHaveLength(25);
      const audit = await sql<{ n: string }>(tmp.url, `SELECT count(*)::text AS n FROM audit_event WHERE "operationId" = $1 AND action = 'sign'`, [operationId]);
      expect(audit[0].n).toBe('25');
      expect(await a.audit.verifyChain()).toMatchObject({ ok: true });
      // The pools' 10 connections really shared PgBouncer's 2 server sessions, none of which holds a prepared statement.
      expect(dbA.pool.totalCount + dbB.pool.totalCount).toBeGreaterThan(2);
      const servers = await sql<{ n: string }>(tmp.url, `SELECT count(*)::text AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`);
      expect(Number(servers[0].n)).toBeLessThanOrEqual(2);
      const prepared = await Promise.all(Array.from({ length: 4 }, async () => (await dbA.pool.query<{ n: string }>('SELECT count(*)::text AS n FROM pg_prepared_statements')).rows[0].n));
      expect(prepared).toEqual(['0', '0', '0', '0']);
    });

    it('keeps ordering one at a time across new server sessions, on old and new connections alike', async () => {
      expect(await ordersAcrossReconnect({ pooler: 'transaction' })).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    });

    it('reserves concurrent orders together: fewer commits than orders, exact counts, a duplicate idempotency key fails only itself', async () => {
      await ordersReservedTogether(a, b, tmp.url);
    });

    /** `n` orders whose signatures all come back together (their finishes form batches); `result(i)` is order i's. */
    async function ordersTogether(n: number, extra: (i: number) => Partial<SignRequest>, result: (i: number) => string) {
      const { orderer, key, op } = await setup(a, { usages: n + 5 });
      const held = gate('');
      let entered = 0;
      const orders = Promise.allSettled(
        Array.from({ length: n }, (_, i) =>
          a.signOrders.recordWithUsage(request(op.id, key.keyid, orderer.id, extra(i)), async () => {
            entered++;
            await held.wait();
            return result(i);
          }),
        ),
      );
      for (let i = 0; i < 300 && entered < n; i++) await new Promise((r) => setTimeout(r, 10));
      held.open();
      return { results: await orders, operationId: op.id };
    }

    it('stores hostile text exactly when finishes commit together with inlined literals, and the chain verifies', async () => {
      const hostile = hostileText;
      const { results } = await ordersTogether(
        30,
        (i) => ({ requestId: `hostile-${i}`, description: hostile(i), audit: { action: 'sign', outcome: 'SUCCESS', actorName: hostile(i), details: { note: hostile(i) } } }),
        (i) => `sig'\\${i}`,
      );
      expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
      await expectHostileOrdersStored(tmp.url);
      expect(await a.audit.verifyChain()).toMatchObject({ ok: true });
    });

    it('fails only the finish that fails when finishes arrive together', async () => {
      // Order 3's result cannot be stored (a NUL in text); the other nine are stored and counted.
      const { results, operationId } = await ordersTogether(10, (i) => ({ requestId: `one-fails-${i}` }), (i) => (i === 3 ? 'a\u0000b' : `sig-${i}`));
      expect(results.map((r) => r.status)).toEqual(Array.from({ length: 10 }, (_, i) => (i === 3 ? 'rejected' : 'fulfilled')));
      expect((await a.operations.get(operationId)).keys[0].usagesUsed).toBe(9);
      expect(await a.signOrders.listByOperation(operationId)).toHaveLength(9);
      expect(await a.audit.verifyChain()).toMatchObject({ ok: true });
    });

    it('gives the usage back when a lease runs out: two replicas reaping at once release it once', async () => {
      const { orderer, key, op } = await setup(a, { usages: 1 });
      const stuck = gate('late');
      const late = outcome(new SignOrderRepository(dbA, { leaseMs: 50 }).recordWithUsage(request(op.id, key.keyid, orderer.id, { requestId: 'req-late' }), stuck.wait));
      for (let i = 0; i < 100 && (await a.operations.get(op.id)).keys[0].usagesUsed < 1; i++) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 80));
      const [byA, byB] = await Promise.all([releaseExpiredReservations(dbA), releaseExpiredReservations(dbB)]);
      expect([...byA, ...byB].filter((r) => r.operationId === op.id).map((r) => r.requestId)).toEqual(['req-late']);
      stuck.open();
      expect(await late).toBe('reservation_expired');
      expect((await a.operations.get(op.id)).keys[0].usagesUsed).toBe(0);
      expect(await a.audit.verifyChain()).toMatchObject({ ok: true });
    });
  });

  describe('behind a transaction-pooling PgBouncer without the switch', () => {
    it('fail a pool with its default settings is refused at connect (timeouts sent as startup parameters)', async () => {
      const db = createDb(url, { poolSize: 1 });
      try {
        await expect(db.pool.query('SELECT 1')).rejects.toMatchObject({ code: '08P01', message: expect.stringContaining('unsupported startup parameter') });
      } finally {
        await db.close();
      }
    });

    it('fail the same orders break on prepared statements (missing from a new server session, already in a shared one)', async () => {
      // Without timeouts the pools connect; what remains is the prepared statements.
      const [before, afterSameConnection, ...freshConnections] = await ordersAcrossReconnect({ statementTimeoutMs: 0, lockTimeoutMs: 0, idleInTransactionTimeoutMs: 0 });
      expect(before).toBe('ok');
      // 26000: the connection binds the statement it parsed before; the new server session has never seen it.
      expect(afterSameConnection).toBe('26000');
      // 42P05: three connections parse it for the first time into 2 server sessions, so two of them meet in one.
      expect(freshConnections).toContain('42P05');
      expect(freshConnections.filter((c) => c !== 'ok' && c !== '42P05')).toEqual([]);
    });
  });
});
