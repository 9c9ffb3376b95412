import { sql } from '../../spec/temp-database';
import { hex, outcome, seedApprover, seedKey, seedSubject, twoReplicas } from '../../spec/fixtures';
import { expectHostileOrdersStored, hostileText, hsmGate as gate, ordersReservedTogether, seedOperation, signRequest as request } from '../../spec/sign-path';
import { Client } from 'pg';
import { AUDIT_APPEND_LOCK } from '../audit-hash';
import { createDb, type Db } from '../db';
import { SignOrderRepository } from './sign-order.repository';
import { releaseExpiredReservations } from './usage';

describe(SignOrderRepository.name, () => {

  // Two handles = two independent pools, like two API replicas.
  const { tmp, dbA, dbB, a, b } = twoReplicas('sign', 5);

  const setup = (opts: Parameters<typeof seedOperation>[1] = {}) => seedOperation(a, opts);

  it('consumes exactly 25 usages out of 100 concurrent requests from two pools', async () => {
    const { orderer, key, op } = await setup({ usages: 25 });
    let signed = 0;
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        outcome(
          (i % 2 ? a : b).signOrders.recordWithUsage(request(op.id, key.keyid, orderer.id, { requestId: `r${i}` }), async () => {
            signed++;
            await new Promise((r) => setTimeout(r, 2));
            return hex(64);
          }),
        ),
      ),
    );
    expect(results.filter((r) => r === 'ok')).toHaveLength(25);
    expect(results.filter((r) => r !== 'ok').every((r) => r === 'usage_exhausted')).toBe(true);
    expect(signed).toBe(25);
    const after = await a.operations.get(op.id);
    expect(after.keys[0].usagesUsed).toBe(25);
    expect(after.state).toBe('EXHAUSTED');
    expect(await a.signOrders.listByOperation(op.id)).toHaveLength(25);
    const audit = await sql<{ n: string }>(tmp.url, `SELECT count(*)::text AS n FROM audit_event WHERE "operationId" = $1 AND action = 'sign'`, [op.id]);
    expect(audit[0].n).toBe('25');
    expect(await a.audit.verifyChain()).toMatchObject({ ok: true });
  });

  it('consumes no usage and stores nothing when signing fails', async () => {
    const { orderer, key, op } = await setup({ usages: 1 });
    const hsmDown = new Error('CKR_DEVICE_ERROR');
    await expect(a.signOrders.recordWithUsage(request(op.id, key.keyid, orderer.id), () => Promise.reject(hsmDown))).rejects.toBe(hsmDown);
    expect((await a.operations.get(op.id)).keys[0].usagesUsed).toBe(0);
    expect(await a.signOrders.listByOperation(op.id)).toEqual([]);
    const ok = await a.signOrders.recordWithUsage(request(op.id, key.keyid, orderer.id), async () => 'cafe');
    expect(ok.signOrder.result).toBe('cafe');
    expect(ok.usagesLeft).toBe(0);
  });

  it('replays an idempotent request without signing or consuming a usage', async () => {
    const { orderer, key, op } = await setup({ usages: 2 });
    const req = request(op.id, key.keyid, orderer.id, { idempotencyKey: 'build-77' });
    const first = await a.signOrders.recordWithUsage(req, async () => 'beef');
    const again = await b.signOrders.recordWithUsage(req, () => Promise.reject(new Error('must not sign')));
    expect(again).toMatchObject({ replayed: true, usagesLeft: 1 });
    expect(again.signOrder).toEqual(first.signOrder);
    expect(await a.signOrders.findByIdempotencyKey(orderer.id, 'build-77')).toEqual(first.signOrder);
    expect((await a.operations.get(op.id)).keys[0].usagesUsed).toBe(1);
    expect(await outcome(a.signOrders.recordWithUsage({ ...req, inputdata: 'cd'.repeat(32) }, async () => 'x'))).toBe('idempotency_key_reused');
  });

  it.each([
    ['fail digest_not_allowed', { digests: ['AA'.repeat(32)] }, {}, 'digest_not_allowed'],
    ['fail outside_window (before)', {}, { now: new Date(Date.now() - 3_600_000) }, 'outside_window'],
    ['fail outside_window (after)', {}, { now: new Date(Date.now() + 7_200_000) }, 'outside_window'],
    ['fail operation_not_usable while approvals are missing', { approvers: 1 }, {}, 'operation_not_usable'],
    ['fail key_not_in_operation', {}, { keyid: 'no-such-key' }, 'key_not_in_operation'],
    ['ok allowed digest (case-insensitive)', { digests: ['AB'.repeat(32)] }, {}, 'ok'],
    ['ok REQUESTED operation when no key needs approvers', {}, {}, 'ok'],
  ] as const)('%s', async (_name, setupOpts, extra, expected) => {
    const { orderer, key, op } = await setup(setupOpts as { digests?: string[]; approvers?: number });
    const req = { ...request(op.id, key.keyid, orderer.id), ...extra };
    expect(await outcome(a.signOrders.recordWithUsage(req, async () => 'aa'))).toBe(expected);
  });

  it('ok a usage reserved in the window\'s last millisecond is stored when its signature comes after the window ended; the window\'s end itself is refused (ADR 0007, ADR 0017 addendum "time")', async () => {
    const orderer = await seedSubject(a);
    const key = await seedKey(a, { requiredApprovers: 0 });
    const validTo = new Date(Date.now() + 300);
    const op = await a.operations.create({ description: 'ends soon', ordererId: orderer.id, validFrom: new Date(Date.now() - 1_000), validTo, keys: [{ keyid: key.keyid, usagesAllowed: 3 }] });
    const lastMs = new Date(validTo.getTime() - 1);
    const done = await a.signOrders.recordWithUsage(request(op.id, key.keyid, orderer.id, { now: lastMs }), async () => {
      // The HSM answers after the window has ended (the lease, not the window, bounds the signature).
      await new Promise((r) => setTimeout(r, Math.max(0, validTo.getTime() - Date.now()) + 50));
      return 'aa';
    });
    expect(Date.now()).toBeGreaterThan(validTo.getTime());
    expect([done.signOrder.result, done.usagesLeft]).toEqual(['aa', 2]);
    expect(await outcome(a.signOrders.recordWithUsage(request(op.id, key.keyid, orderer.id, { now: validTo }), async () => 'bb'))).toBe('outside_window');
    expect(await outcome(a.signOrders.recordWithUsage(request(op.id, key.keyid, orderer.id), async () => 'cc'))).toBe('outside_window');
    expect((await a.operations.get(op.id)).keys[0].usagesUsed).toBe(1);
  });

  it('refuses a cancelled operation and a revoked key', async () => {
    const s1 = await setup();
    await a.operations.cancel(s1.op.id);
    expect(await outcome(a.signOrders.recordWithUsage(request(s1.op.id, s1.key.keyid, s1.orderer.id), async () => 'aa'))).toBe(
      'operation_not_usable',
    );
    const s2 = await setup();
    await a.keys.revoke(s2.key.keyid, 'keyCompromise');
    expect(await outcome(a.signOrders.recordWithUsage(request(s2.op.id, s2.key.keyid, s2.orderer.id), async () => 'aa'))).toBe('key_revoked');
  });

  it('marks the operation EXHAUSTED only when every key is used up', async () => {
    const { orderer, keys, op } = await setup({ usages: 1, keys: 2 });
    await a.signOrders.recordWithUsage(request(op.id, keys[0].keyid, orderer.id), async () => 'aa');
    expect((await a.operations.get(op.id)).state).toBe('REQUESTED');
    expect(await outcome(a.signOrders.recordWithUsage(request(op.id, keys[0].keyid, orderer.id), async () => 'aa'))).toBe('usage_exhausted');
    await a.signOrders.recordWithUsage(request(op.id, keys[1].keyid, orderer.id), async () => 'aa');
    expect((await a.operations.get(op.id)).state).toBe('EXHAUSTED');
  });

  it('uses an APPROVED operation and records the audit event in the same transaction', async () => {
    const { orderer, key, op } = await setup({ approvers: 1 });
    const approver = await seedApprover(a, [key.keyid]);
    await a.operations.addApproval(op.id, key.keyid, approver.id);
    const r = await a.signOrders.recordWithUsage(request(op.id, key.keyid, orderer.id, { requestId: 'req-1' }), async () => 'aa');
    expect(r.audit).toMatchObject({ action: 'sign', operationId: op.id, keyid: key.keyid, requestId: 'req-1', digest: 'ab'.repeat(32) });
    expect(r.audit?.details).toEqual({ test: true, signOrderId: r.signOrder.id });
  });

  it('commits the reservation alone without waiting for the disk, and leaves the pooled connection synchronous', async () => {
    const { orderer, key, op } = await setup({ usages: 2 });
    const one = createDb(tmp.url, { poolSize: 1 });
    try {
      const settings: string[] = [];
      const show = async () => (await one.pool.query<{ synchronous_commit: string }>('SHOW synchronous_commit')).rows[0].synchronous_commit;
      const before = await show();
      // The single pooled connection ran the reservation just before sign(): its session setting is untouched.
      await new SignOrderRepository(one).recordWithUsage(request(op.id, key.keyid, orderer.id), async () => {
        settings.push(await show());
        return 'aa';
      });
      settings.push(await show());
      expect(settings).toEqual([before, before]);
      expect(before).not.toBe('off');
      expect((await a.operations.get(op.id)).keys[0].usagesUsed).toBe(1);
    } finally {
      await one.close();
    }
  });

  it('commits concurrent finishes together, keeps one verifiable chain, and fails only the finish that fails', async () => {
    const { orderer, key, op } = await setup({ usages: 60 });
    // Order 7's result cannot be stored (NUL in text): its statement fails inside a batch, the others must not.
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) => a.signOrders.recordWithUsage(request(op.id, key.keyid, orderer.id, { requestId: `batch-${i}` }), async () => (i === 7 ? 'a\u0000b' : `sig-${i}`))),
    );
    expect(results.filter((x) => x.status === 'rejected')).toHaveLength(1);
    expect(results[7].status).toBe('rejected');
    expect((await a.operations.get(op.id)).keys[0].usagesUsed).toBe(39);
    const rows = await sql<{ n: string; commits: string }>(
      tmp.url,
      `SELECT count(*)::text AS "n", count(DISTINCT xmin::text)::text AS "commits" FROM "audit_event" WHERE "requestId" LIKE 'batch-%' AND "outcome" = 'SUCCESS'`,
    );
    expect(Number(rows[0].n)).toBe(39);
    expect(Number(rows[0].commits)).toBeLessThan(39);
    expect(await a.audit.verifyChain()).toMatchObject({ ok: true });
    // Planned once per connection, not per order (ADR 0036): the reservation is a named statement and a batch
    // EXECUTEs the finish's prepared statement.
    const clients = await Promise.all(Array.from({ length: dbA.pool.totalCount }, () => dbA.pool.connect()));
    try {
      const names = (await Promise.all(clients.map(async (c) => (await c.query<{ name: string }>('SELECT name FROM pg_prepared_statements')).rows.map((r) => r.name)))).flat();
      expect(names).toContain('keyserver_reserve_usage');
      expect(names.some((n) => /^keyserver_finish_[0-9a-f]{24}__script$/.test(n))).toBe(true);
    } finally {
      clients.forEach((c) => c.release());
    }
  });

  it('reserves concurrent orders together: fewer commits than orders, exact counts on two operations, a duplicate idempotency key fails only itself', async () => {
    const deadlocks = async () => Number((await sql<{ n: string }>(tmp.url, `SELECT deadlocks::text AS n FROM pg_stat_database WHERE datname = current_database()`))[0].n);
    const before = await deadlocks();
    await ordersReservedTogether(a, b, tmp.url);
    // Batches lock operation_key rows in one order on every replica: they never wait on each other in a cycle.
    expect(await deadlocks()).toBe(before);
  });

  it('commits the reservations and the finishes of one event-loop turn together, the first included', async () => {
    const { orderer, key, op } = await setup({ usages: 6 });
    const held = gate('sig');
    let entered = 0;
    // Five orders started in one turn on an idle replica: no reservation is in flight that the others could wait for.
    const orders = Array.from({ length: 5 }, (_, i) =>
      a.signOrders.recordWithUsage(request(op.id, key.keyid, orderer.id, { requestId: `turn-${i}` }), () => {
        entered++;
        return held.wait();
      }),
    );
    for (let i = 0; i < 200 && entered < 5; i++) await new Promise((r) => setTimeout(r, 5));
    const reserved = await sql<{ n: string; commits: string }>(tmp.url, `SELECT count(*)::text AS "n", count(DISTINCT xmin::text)::text AS "commits" FROM "usage_reservation" WHERE "requestId" LIKE 'turn-%'`);
    expect(reserved[0]).toEqual({ n: '5', commits: '1' });
    // The five signatures come back in one turn: their finishes share one commit too.
    held.open();
    await Promise.all(orders);
    const stored = await sql<{ n: string; commits: string }>(tmp.url, `SELECT count(*)::text AS "n", count(DISTINCT xmin::text)::text AS "commits" FROM "sign_order" WHERE "requestId" LIKE 'turn-%'`);
    expect(stored[0]).toEqual({ n: '5', commits: '1' });
    expect(await a.audit.verifyChain()).toMatchObject({ ok: true });
  });

  it('stores hostile text exactly when finishes commit together in one message, and the chain verifies', async () => {
    const { orderer, key, op } = await setup({ usages: 40 });
    const hostile = hostileText;
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        a.signOrders.recordWithUsage(request(op.id, key.keyid, orderer.id, { requestId: `hostile-${i}`, description: hostile(i), audit: { action: 'sign', outcome: 'SUCCESS', actorName: hostile(i), details: { note: hostile(i) } } }), async () => `sig'\\${i}`),
      ),
    );
    await expectHostileOrdersStored(tmp.url);
    expect(results.map((r) => r.audit?.actorName)).toEqual(Array.from({ length: 30 }, (_, i) => hostile(i)));
    expect(await a.audit.verifyChain()).toMatchObject({ ok: true });
  });

  it('signs two orders of one operation at once: no lock is held while the HSM signs', async () => {
    const { orderer, key, op } = await setup({ usages: 2 });
    const slow = gate('slow');
    const first = a.signOrders.recordWithUsage(request(op.id, key.keyid, orderer.id), slow.wait);
    await slow.entered;
    // With the first order still inside the HSM, a second one on the same operation completes.
    const second = await b.signOrders.recordWithUsage(request(op.id, key.keyid, orderer.id), async () => 'fast');
    expect(second).toMatchObject({ replayed: false, usagesLeft: 0 });
    slow.open();
    expect((await first).signOrder.result).toBe('slow');
    const after = await a.operations.get(op.id);
    expect(after.keys[0].usagesUsed).toBe(2);
    expect(after.state).toBe('EXHAUSTED');
  });

  it('refuses the same idempotency key with conflict while the first request is still signing', async () => {
    const { orderer, key, op } = await setup({ usages: 3 });
    const slow = gate('sig-1');
    const req = request(op.id, key.keyid, orderer.id, { idempotencyKey: 'build-88' });
    const first = a.signOrders.recordWithUsage(req, slow.wait);
    await slow.entered;
    expect(await outcome(b.signOrders.recordWithUsage(req, async () => 'sig-2'))).toBe('conflict');
    slow.open();
    await first;
    expect(await b.signOrders.recordWithUsage(req, () => Promise.reject(new Error('must not sign')))).toMatchObject({ replayed: true, usagesLeft: 2 });
    expect((await a.operations.get(op.id)).keys[0].usagesUsed).toBe(1);
  });

  it.each([
    ['the HSM failed', 'hsm'],
    ['its replica hung past the lease and the reaper gave the usage back', 'lease'],
  ] as const)('ok a retry with the same key after the first attempt failed half-way (%s) signs afresh: one usage, one order, nothing half-written', async (_n, how) => {
    const { orderer, key, op } = await setup({ usages: 1 });
    const req = request(op.id, key.keyid, orderer.id, { idempotencyKey: `half-${how}` });
    if (how === 'hsm') {
      expect(await outcome(a.signOrders.recordWithUsage(req, () => Promise.reject(Object.assign(new Error('CKR_DEVICE_ERROR'), { code: 'hsm_error' }))))).toBe('hsm_error');
    } else {
      const stuck = gate('late');
      const late = outcome(new SignOrderRepository(dbA, { leaseMs: 50 }).recordWithUsage(req, stuck.wait));
      await stuck.entered;
      // While the hung attempt holds the key, a retry is told to retry, not refused for the usage it holds.
      expect(await outcome(b.signOrders.recordWithUsage(req, async () => 'too-early'))).toBe('conflict');
      await new Promise((r) => setTimeout(r, 80));
      expect(await releaseExpiredReservations(dbB)).toHaveLength(1);
      stuck.open();
      expect(await late).toBe('reservation_expired');
    }
    expect(await a.signOrders.listByOperation(op.id)).toEqual([]);
    expect((await a.operations.get(op.id)).keys[0].usagesUsed).toBe(0);
    const retry = await b.signOrders.recordWithUsage(req, async () => 'fresh');
    expect([retry.replayed, retry.signOrder.result]).toEqual([false, 'fresh']);
    expect((await b.signOrders.recordWithUsage(req, () => Promise.reject(new Error('must not sign')))).signOrder.result).toBe('fresh');
    expect((await a.operations.get(op.id)).keys[0].usagesUsed).toBe(1);
    expect(await a.signOrders.listByOperation(op.id)).toHaveLength(1);
  });

  it('ok the last usage held by the first request, still signing: a retry on another replica is conflict (retry), never usage_exhausted', async () => {
    const { orderer, key, op } = await setup({ usages: 1 });
    const slow = gate('sig-last');
    const req = request(op.id, key.keyid, orderer.id, { idempotencyKey: 'last-usage' });
    const first = a.signOrders.recordWithUsage(req, slow.wait);
    await slow.entered;
    expect(await outcome(b.signOrders.recordWithUsage(req, async () => 'sig-2'))).toBe('conflict');
    // Another request (another key, or none) is refused for the usage it cannot have.
    expect(await outcome(b.signOrders.recordWithUsage({ ...req, idempotencyKey: 'other-key' }, async () => 'sig-3'))).toBe('usage_exhausted');
    slow.open();
    await first;
    expect(await b.signOrders.recordWithUsage(req, () => Promise.reject(new Error('must not sign')))).toMatchObject({ replayed: true, usagesLeft: 0 });
  });

  // Replica B reads "no order with this key yet" just before replica A's order commits, and reserves just after: B's
  // retry must still get A's answer, never a usage of its own, a second HSM signature, or a refusal A's usage caused.
  it.each([
    ['ok the last usage taken by the first request: the retry is its replay, not usage_exhausted', 1],
    ['ok usages left: the retry is its replay, signs nothing and holds no usage', 3],
  ] as const)('%s', async (_name, usages) => {
    const { orderer, key, op } = await setup({ usages });
    const req = request(op.id, key.keyid, orderer.id, { idempotencyKey: `race-${usages}` });
    const slow = gate('sig-a');
    const first = a.signOrders.recordWithUsage(req, slow.wait);
    await slow.entered;
    let heldRead!: () => void;
    const readDone = new Promise<void>((r) => (heldRead = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const query = dbB.pool.query.bind(dbB.pool) as (...args: unknown[]) => unknown;
    let held = false;
    const spy = jest.spyOn(dbB.pool, 'query').mockImplementation(((...args: unknown[]) => {
      const text = typeof args[0] === 'string' ? args[0] : '';
      const cb = args[args.length - 1];
      if (held || !text.includes('FROM "sign_order" s JOIN') || typeof cb !== 'function') return query(...args);
      held = true;
      // The replay read of B: answered from its snapshot before A's commit, handed to B only after A has finished.
      return query(...args.slice(0, -1), (err: unknown, res: unknown) => {
        heldRead();
        void released.then(() => (cb as (e: unknown, r: unknown) => void)(err, res));
      });
    }) as never);
    let signedByB = 0;
    let again: Awaited<ReturnType<SignOrderRepository['recordWithUsage']>>;
    let done: typeof again;
    try {
      const retry = b.signOrders.recordWithUsage(req, async () => {
        signedByB++;
        return 'sig-b';
      });
      await readDone;
      slow.open();
      done = await first;
      release();
      again = await retry;
    } finally {
      spy.mockRestore();
    }
    expect({ replayed: again.replayed, result: again.signOrder.result, id: again.signOrder.id, signedByB }).toEqual({ replayed: true, result: 'sig-a', id: done.signOrder.id, signedByB: 0 });
    expect((await a.operations.get(op.id)).keys[0].usagesUsed).toBe(1);
    expect(await a.signOrders.listByOperation(op.id)).toHaveLength(1);
  });

  it('gives the usage back when a lease runs out (a dead replica) and never stores the late result', async () => {
    const { orderer, key, op } = await setup({ usages: 1 });
    const shortLease = new SignOrderRepository(dbA, { leaseMs: 50 });
    const stuck = gate('late');
    const late = outcome(shortLease.recordWithUsage(request(op.id, key.keyid, orderer.id, { requestId: 'req-late' }), stuck.wait));
    await stuck.entered;
    expect((await a.operations.get(op.id)).keys[0].usagesUsed).toBe(1);
    await new Promise((r) => setTimeout(r, 80));

    const released = await releaseExpiredReservations(dbB);
    expect(released).toEqual([expect.objectContaining({ operationId: op.id, keyid: key.keyid, kind: 'signorder', requestId: 'req-late' })]);
    expect(await releaseExpiredReservations(dbA)).toEqual([]);
    expect((await a.operations.get(op.id)).keys[0].usagesUsed).toBe(0);
    const audit = await sql<{ outcome: string; errorCode: string }>(
      tmp.url,
      `SELECT outcome::text, "errorCode" FROM audit_event WHERE "operationId" = $1 AND action = 'usage.released'`,
      [op.id],
    );
    expect(audit).toEqual([{ outcome: 'FAILED', errorCode: 'reservation_expired' }]);

    stuck.open();
    expect(await late).toBe('reservation_expired');
    expect(await a.signOrders.listByOperation(op.id)).toEqual([]);
    expect((await a.operations.get(op.id)).keys[0].usagesUsed).toBe(0);
    // The usage given back is usable again.
    expect(await outcome(a.signOrders.recordWithUsage(request(op.id, key.keyid, orderer.id), async () => 'aa'))).toBe('ok');
    expect(await a.audit.verifyChain()).toMatchObject({ ok: true });
  });

  it('ok a reaper and a group commit that holds the audit lock and then reaches the expired reservation do not deadlock; each usage counted once', async () => {
    const { orderer, key, op } = await setup({ usages: 2 });
    const shortLease = new SignOrderRepository(dbA, { leaseMs: 50 });
    const [first, late] = [gate('aa'), gate('bb')];
    const orders = [
      outcome(a.signOrders.recordWithUsage(request(op.id, key.keyid, orderer.id, { requestId: 'req-in-time', inputdata: hex(32) }), first.wait)),
      outcome(shortLease.recordWithUsage(request(op.id, key.keyid, orderer.id, { requestId: 'req-late', inputdata: hex(32) }), late.wait)),
    ];
    await Promise.all([first.entered, late.entered]);
    await new Promise((r) => setTimeout(r, 80));
    const deadlocks = async () => Number((await sql<{ n: string }>(tmp.url, `SELECT deadlocks::text AS n FROM pg_stat_database WHERE datname = current_database()`))[0].n);
    const before = await deadlocks();
    const waiting = async (n: number) => {
      for (let i = 0; i < 250; i++) {
        const rows = await sql<{ n: string }>(tmp.url, `SELECT count(*)::text AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE d.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted`);
        if (Number(rows[0].n) >= n) return;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`never ${n} waiting for the audit lock`);
    };
    // Another appender holds the audit lock: the two finishes commit together, the in-time one first, and wait for it
    // holding nothing of the late one; the reaper then takes the expired reservation and waits for the lock too.
    const other = new Client({ connectionString: tmp.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_APPEND_LOCK]);
      first.open();
      late.open();
      await waiting(1);
      const reaped = releaseExpiredReservations(dbB).then((rows) => rows.length, (err: { code?: string }) => err.code ?? 'error');
      // With the fix the reaper waits for the lock before it takes any reservation, without it after: both wait.
      await waiting(2);
      await other.query('COMMIT');
      const [released, results] = await Promise.all([reaped, Promise.all(orders)]);
      const stored = (await a.signOrders.listByOperation(op.id)).length;
      expect({ deadlocks: (await deadlocks()) - before, released }).toEqual({ deadlocks: 0, released: 2 - stored });
      expect(results.filter((x) => x === 'ok').length).toBe(stored);
      expect((await a.operations.get(op.id)).keys[0].usagesUsed).toBe(stored);
      expect(await a.audit.verifyChain()).toMatchObject({ ok: true });
    } finally {
      await other.end();
    }
  });

  it('ok two replicas reaping at once release each expired reservation once: each usage given back and audited once', async () => {
    const { orderer, key, op } = await setup({ usages: 8 });
    const shortLease = new SignOrderRepository(dbA, { leaseMs: 50 });
    const stuck = gate('late');
    // Eight orders whose replica "hangs" in the HSM call past their lease.
    const late = Array.from({ length: 8 }, (_, i) =>
      outcome(shortLease.recordWithUsage(request(op.id, key.keyid, orderer.id, { requestId: `req-reap-${i}`, inputdata: hex(32) }), stuck.wait)),
    );
    await stuck.entered;
    for (let i = 0; i < 100 && (await a.operations.get(op.id)).keys[0].usagesUsed < 8; i++) await new Promise((r) => setTimeout(r, 20));
    expect((await a.operations.get(op.id)).keys[0].usagesUsed).toBe(8);
    await new Promise((r) => setTimeout(r, 80));

    // Both replicas' reapers run their loop (batches of 2, like UsageReaper's until an empty batch) at the same time.
    const reap = async (db: Db) => {
      const mine: string[] = [];
      for (let batch = await releaseExpiredReservations(db, new Date(), 2); batch.length > 0; batch = await releaseExpiredReservations(db, new Date(), 2)) {
        mine.push(...batch.filter((r) => r.operationId === op.id).map((r) => r.requestId ?? ''));
      }
      return mine;
    };
    const [byA, byB] = await Promise.all([reap(dbA), reap(dbB)]);
    expect([...byA, ...byB].sort()).toEqual(Array.from({ length: 8 }, (_, i) => `req-reap-${i}`).sort());
    expect((await a.operations.get(op.id)).keys[0].usagesUsed).toBe(0);
    const audit = await sql<{ n: string }>(tmp.url, `SELECT count(*)::text AS n FROM audit_event WHERE "operationId" = $1 AND action = 'usage.released'`, [op.id]);
    expect(audit[0].n).toBe('8');

    stuck.open();
    expect(await Promise.all(late)).toEqual(Array.from({ length: 8 }, () => 'reservation_expired'));
    expect(await a.signOrders.listByOperation(op.id)).toEqual([]);
    expect(await a.audit.verifyChain()).toMatchObject({ ok: true });
  });

  describe('assertUsableNow', () => {
    type Arranged = { operationId: string; keyid: string; now: Date };
    const at = (op: { validFrom: Date }, ms: number) => new Date(op.validFrom.getTime() + ms);
    it.each<[string, () => Promise<Arranged>, string]>([
      ['ok a usable operation', async () => {
        const { key, op } = await setup({ usages: 1 });
        return { operationId: op.id, keyid: key.keyid, now: at(op, 1000) };
      }, 'ok'],
      ['ok the digest is not judged before the input is known', async () => {
        const { key, op } = await setup({ usages: 1, digests: ['aa'.repeat(32)] });
        return { operationId: op.id, keyid: key.keyid, now: at(op, 1000) };
      }, 'ok'],
      ['fail no usage left', async () => {
        const { orderer, key, op } = await setup({ usages: 1 });
        await a.signOrders.recordWithUsage(request(op.id, key.keyid, orderer.id), async () => 'cafe');
        return { operationId: op.id, keyid: key.keyid, now: at(op, 1000) };
      }, 'usage_exhausted'],
      ['fail waiting for its approvals', async () => {
        const { key, op } = await setup({ usages: 1, approvers: 1 });
        return { operationId: op.id, keyid: key.keyid, now: at(op, 1000) };
      }, 'operation_not_usable'],
      ['fail before its window', async () => {
        const { key, op } = await setup({ usages: 1 });
        return { operationId: op.id, keyid: key.keyid, now: at(op, -1) };
      }, 'outside_window'],
      ['fail at the end of its window', async () => {
        const { key, op } = await setup({ usages: 1 });
        return { operationId: op.id, keyid: key.keyid, now: op.validTo };
      }, 'outside_window'],
      ['fail a key the operation does not hold', async () => {
        const { op } = await setup({ usages: 1 });
        return { operationId: op.id, keyid: 'not-in-it', now: at(op, 1000) };
      }, 'key_not_in_operation'],
      ['fail an operation that does not exist', async () => ({ operationId: '00000000-0000-4000-8000-000000000000', keyid: 'k', now: new Date(0) }), 'not_found'],
      ['fail an operation id that is not a UUID', async () => ({ operationId: 'op-1', keyid: 'k', now: new Date(0) }), 'not_found'],
    ])('%s', async (_n, arrange, code) => {
      const { operationId, keyid, now } = await arrange();
      const before = await sql<{ used: number; reservations: number }>(tmp.url, `SELECT (SELECT coalesce(sum("usagesUsed"), 0)::int FROM operation_key) AS used, (SELECT count(*)::int FROM usage_reservation) AS reservations`);
      expect(await outcome(b.signOrders.assertUsableNow(operationId, keyid, now))).toBe(code);
      // Nothing is taken either way.
      expect(await sql(tmp.url, `SELECT (SELECT coalesce(sum("usagesUsed"), 0)::int FROM operation_key) AS used, (SELECT count(*)::int FROM usage_reservation) AS reservations`)).toEqual(before);
    });
  });
});
