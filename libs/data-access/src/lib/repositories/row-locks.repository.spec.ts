import { Client } from 'pg';
import { sql } from '../../spec/temp-database';
import { hex, lockWaiters, outcome, seedApprover, seedKey, seedSubject, window, twoReplicas } from '../../spec/fixtures';
import { hsmGate, signRequest } from '../../spec/sign-path';
import { AUDIT_APPEND_LOCK } from '../audit-hash';
import { sqlQuery } from '../db';
import type { AuditInput, Key } from '../types';
import { SignOrderRepository } from './sign-order.repository';
import { KeyLifecycleRepository, type NewKeyVersion } from './key-lifecycle.repository';
import { releaseExpiredReservations, reserveUsage } from './usage';

/** Sessions waiting for the audit append lock (an advisory lock) now. */
async function waitersForTheAppendLock(url: string): Promise<number> {
  const [row] = await sql<{ n: number }>(url, `SELECT count(*)::int AS "n" FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`);
  return row.n;
}

/** Until `n` sessions wait for the audit append lock (10 s at most). */
async function untilWaiting(url: string, n: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await waitersForTheAppendLock(url)) < n) {
    if (Date.now() > deadline) throw new Error(`never ${n} waiters for the audit append lock`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// A sign order's finish takes the audit append lock and then, at the end of its statement, the foreign-key checks of
// the rows it inserts take FOR KEY SHARE on the operation, key and subject rows. An administrative change that locked
// one of those rows FOR UPDATE and then waited for the append lock deadlocked with it: PostgreSQL broke the cycle
// after a second and one side (the sign order, or the change) answered 500. Admin changes lock these rows FOR NO KEY
// UPDATE (they never change a key column), which conflicts with every writer and locker but a foreign-key check.
describe(`${SignOrderRepository.name} finishing while an administrative change holds its rows`, () => {
  const { tmp, a, b } = twoReplicas('rowlocks');

  const admin = (action: string): AuditInput => ({ action, outcome: 'SUCCESS', actorName: 'admin', requestId: `admin-${hex(4)}` });

  const until = (n: number) => untilWaiting(tmp.url, n);

  /**
   * An approved operation, a sign order of it held in the HSM; then, with the append lock held by a bystander, the
   * finish queues for it first and the change (on replica b) second: released, the finish appends and checks its
   * foreign keys while the change holds its rows.
   */
  async function raced(change: (s: { opId: string; keyid: string; ordererId: string; approverId: string }) => Promise<unknown>): Promise<[string, string]> {
    const key = await seedKey(a, { requiredApprovers: 1 });
    const orderer = await seedSubject(a);
    const op = await a.operations.create({ description: 'release', ordererId: orderer.id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: 5 }] });
    const approver = await seedApprover(a, [key.keyid]);
    await a.operations.addApproval(op.id, key.keyid, approver.id);
    const gate = hsmGate('cafe');
    const signing = outcome(a.signOrders.recordWithUsage(signRequest(op.id, key.keyid, orderer.id), gate.wait));
    await gate.entered;
    const bystander = new Client({ connectionString: tmp.url });
    await bystander.connect();
    try {
      await bystander.query('BEGIN');
      await bystander.query('SELECT pg_advisory_xact_lock($1::bigint)', [AUDIT_APPEND_LOCK]);
      gate.open();
      await until(1);
      const changing = outcome(change({ opId: op.id, keyid: key.keyid, ordererId: orderer.id, approverId: approver.id }));
      await until(2);
      await bystander.query('COMMIT');
      return [await signing, await changing];
    } finally {
      await bystander.end();
    }
  }

  it.each([
    ['ok cancelling the operation', (s: { opId: string }) => b.operations.cancel(s.opId, admin('operation.cancel'))],
    ['ok disabling the orderer', (s: { ordererId: string }) => b.subjects.update(s.ordererId, { enabled: false }, admin('subject.update'))],
    ['ok raising the key\'s required approvers', (s: { keyid: string }) => b.keys.setRequiredApprovers(s.keyid, 2, admin('key.update'))],
    [
      'ok the reconciler withdrawing the approval of an approver disabled outside the API',
      async (s: { approverId: string }) => {
        await sql(tmp.url, `UPDATE "subject" SET "enabled" = false WHERE "id" = $1::uuid`, [s.approverId]);
        return b.subjects.withdrawStaleApprovals();
      },
    ],
  ] as const)('%s: both succeed, no deadlock', async (_n, change) => {
    expect(await raced(change as Parameters<typeof raced>[0])).toEqual(['ok', 'ok']);
  });
});

// The lock-order review of 2026-12-13 (ADR 0045 addendum "the lock-order review"): two more cycles through the append
// lock. The reaper held the append lock and then waited for the operation_key counters it gives usages back to, which a
// raise of a key's required approvers (and a reservation batch waiting on a finish's idempotency key) held while it
// waited for the append lock. A rotation (a new key pair) changes the key row's "hsmKeyId", a column of a unique
// index: that UPDATE takes the row's FOR UPDATE strength, which a finish's foreign-key check (KEY SHARE) waits for,
// and the rotation then waited for the append lock the finish held. A deadlock shows as a stall of deadlock_timeout
// (1 s) whichever side PostgreSQL aborts: a rotation retried after it (retryDeadlocks) answers ok all the same.
describe(`${KeyLifecycleRepository.name} and ${releaseExpiredReservations.name} against the audit append lock`, () => {
  /**
   * This database's deadlock_timeout: no cycle is broken sooner. Raised from PostgreSQL's 1 s so that a slow but
   * deadlock-free run on a loaded CI machine is never taken for a stall (its sessions open after the setting).
   */
  const DEADLOCK_TIMEOUT_MS = 5_000;

  const { tmp, dbA, dbB, a, b } = twoReplicas('lockorder');
  beforeAll(async () => {
    const name = new URL(tmp.url).pathname.slice(1);
    await sql(tmp.url, `ALTER DATABASE "${name}" SET deadlock_timeout = '${DEADLOCK_TIMEOUT_MS}ms'`);
    for (const db of [dbA, dbB]) expect(await sqlQuery<{ deadlock_timeout: string }>(db, 'SHOW deadlock_timeout', [])).toEqual([{ deadlock_timeout: '5s' }]);
  });

  const admin = (action: string): AuditInput => ({ action, outcome: 'SUCCESS', actorName: 'admin', requestId: `admin-${hex(4)}` });
  const newPair = (): NewKeyVersion => ({
    hsmKeyId: hex(8),
    certificatePem: '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n',
    certificateSerial: hex(8),
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    issuerKeyid: null,
    issuerVersion: null,
  });

  const advisoryWaiters = () => waitersForTheAppendLock(tmp.url);
  const until = (n: number) => untilWaiting(tmp.url, n);

  /**
   * With the append lock held by a bystander: `first` queues for it, then `second` (which holds its rows by then);
   * released, `first` appends while `second` holds its rows. Returns both outcomes and the seconds from the release
   * to the end of both (a deadlock costs at least deadlock_timeout).
   */
  async function queued(first: () => Promise<unknown>, second: () => Promise<unknown>): Promise<{ outcomes: [string, string]; stalled: boolean }> {
    const bystander = new Client({ connectionString: tmp.url });
    await bystander.connect();
    try {
      await bystander.query('BEGIN');
      await bystander.query('SELECT pg_advisory_xact_lock($1::bigint)', [AUDIT_APPEND_LOCK]);
      const one = outcome(first());
      await until(1);
      const two = outcome(second());
      await until(2);
      const released = Date.now();
      await bystander.query('COMMIT');
      const outcomes: [string, string] = [await one, await two];
      return { outcomes, stalled: Date.now() - released >= DEADLOCK_TIMEOUT_MS };
    } finally {
      await bystander.end();
    }
  }

  async function usagesUsed(opId: string): Promise<number> {
    const [row] = await sql<{ n: number }>(tmp.url, `SELECT sum("usagesUsed")::int AS "n" FROM "operation_key" WHERE "operationId" = $1::uuid`, [opId]);
    return row.n;
  }

  it('ok the reaper giving back a usage while a raise of the key\'s required approvers holds its counter: no deadlock, the usage given back once by a later pass', async () => {
    const key = await seedKey(a, { requiredApprovers: 0 });
    const orderer = await seedSubject(a);
    const op = await a.operations.create({ description: 'release', ordererId: orderer.id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: 5 }] });
    await reserveUsage(dbA, { operationId: op.id, keyid: key.keyid, subjectId: orderer.id, kind: 'signorder', digest: null, leaseMs: 1 });
    const later = new Date(Date.now() + 60_000);
    const raced = await queued(
      () => releaseExpiredReservations(dbA, later),
      () => b.keys.setRequiredApprovers(key.keyid, 2, admin('key.update')),
    );
    expect(raced).toEqual({ outcomes: ['ok', 'ok'], stalled: false });
    await releaseExpiredReservations(dbA, later);
    expect(await releaseExpiredReservations(dbA, later)).toEqual([]);
    expect(await usagesUsed(op.id)).toBe(0);
    const [released] = await sql<{ n: number }>(tmp.url, `SELECT count(*)::int AS "n" FROM "audit_event" WHERE "action" = 'usage.released' AND "operationId" = $1::uuid`, [op.id]);
    expect(released.n).toBe(1);
  });

  it('ok the reaper, a finish and a retried order with the finish\'s idempotency key (waiting for the finish, holding the counter): no deadlock, the retry answered the stored order, every usage counted once', async () => {
    const key = await seedKey(a, { requiredApprovers: 0 });
    const orderer = await seedSubject(a);
    const op = await a.operations.create({ description: 'release', ordererId: orderer.id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: 5 }] });
    await reserveUsage(dbA, { operationId: op.id, keyid: key.keyid, subjectId: orderer.id, kind: 'signorder', digest: null, leaseMs: 1 });
    const gate = hsmGate('cafe');
    const order = signRequest(op.id, key.keyid, orderer.id, { idempotencyKey: `idem-${hex(4)}` });
    const signing = outcome(a.signOrders.recordWithUsage(order, gate.wait));
    await gate.entered;
    const bystander = new Client({ connectionString: tmp.url });
    await bystander.connect();
    try {
      await bystander.query('BEGIN');
      await bystander.query('SELECT pg_advisory_xact_lock($1::bigint)', [AUDIT_APPEND_LOCK]);
      const reaping = outcome(releaseExpiredReservations(dbA, new Date(Date.now() + 60_000)));
      await until(1);
      gate.open();
      await until(2);
      const retried = b.signOrders.recordWithUsage(order, async () => 'beef');
      const deadline = Date.now() + 10_000;
      for (;;) {
        const [w] = await sql<{ n: number }>(tmp.url, `SELECT count(*)::int AS "n" FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted`);
        if (w.n > 0) break;
        if (Date.now() > deadline) throw new Error('the retried order never waited for the finish');
        await new Promise((r) => setTimeout(r, 20));
      }
      const released = Date.now();
      await bystander.query('COMMIT');
      const [reaped, signed, again] = await Promise.all([reaping, signing, retried]);
      expect(Date.now() - released).toBeLessThan(DEADLOCK_TIMEOUT_MS);
      expect([reaped, signed]).toEqual(['ok', 'ok']);
      expect({ replayed: again.replayed, result: again.signOrder.result }).toEqual({ replayed: true, result: 'cafe' });
    } finally {
      await bystander.end();
    }
    // The expired reservation whose counter was busy: released by the next pass, once.
    await releaseExpiredReservations(dbA, new Date(Date.now() + 60_000));
    expect(await usagesUsed(op.id)).toBe(1);
    const [orders] = await sql<{ n: number }>(tmp.url, `SELECT count(*)::int AS "n" FROM "sign_order" WHERE "operationId" = $1::uuid`, [op.id]);
    expect(orders.n).toBe(1);
  });

  /** A sign order of a fresh key held in the HSM, then finished while `rotate` (prepared first) changes the key. */
  async function finishDuringRotation(change: Rotation): Promise<{ outcomes: [string, string]; stalled: boolean }> {
    const key = await seedKey(a, { requiredApprovers: 0 });
    const orderer = await seedSubject(a);
    const op = await a.operations.create({ description: 'release', ordererId: orderer.id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: 5 }] });
    const life = new KeyLifecycleRepository(dbB);
    const rotate = await change(key, life);
    const gate = hsmGate('cafe');
    const signing = a.signOrders.recordWithUsage(signRequest(op.id, key.keyid, orderer.id), gate.wait);
    await gate.entered;
    return queued(
      () => {
        gate.open();
        return signing;
      },
      rotate,
    );
  }

  /** Prepares a change of `key` and returns it (run later, racing the finish). */
  type Rotation = (key: Key, life: KeyLifecycleRepository) => Promise<() => Promise<unknown>>;

  it.each<[string, Rotation]>([
    ['ok rotating the key to a new key pair (addVersion)', async (key, life) => () => life.addVersion(key.keyid, 1, newPair(), admin('key.rotate'))],
    [
      'ok activating the new key pair of an externally certified key\'s rotation',
      async (key, life) => {
        const pair = newPair();
        await life.createPendingVersion(key.keyid, 1, { hsmKeyId: pair.hsmKeyId, csrPem: 'csr', adminSessionId: '00000000-0000-4000-8000-000000000000' }, admin('key.rotate'));
        return () => life.activatePendingVersion(key.keyid, 2, { ...pair, issuerChainPem: pair.certificatePem }, admin('key.rotate'));
      },
    ],
    ['ok renewing the key (the same key pair)', async (key, life) => () => life.addVersion(key.keyid, 1, { ...newPair(), hsmKeyId: key.hsmKeyId }, admin('key.renew'))],
  ])('%s while a sign order of it finishes: both succeed, no deadlock', async (_n, change) => {
    expect(await finishDuringRotation(change)).toEqual({ outcomes: ['ok', 'ok'], stalled: false });
  });

  it('ok rotating while an approval of the key is ordered after it: the approval waits for the rotation\'s key row (it judges the key\'s current certificate, ADR 0017 addendum session 25), then counts; no deadlock', async () => {
    const key = await seedKey(a, { requiredApprovers: 1 });
    const orderer = await seedSubject(a);
    const op = await a.operations.create({ description: 'release', ordererId: orderer.id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: 5 }] });
    const approver = await seedApprover(a, [key.keyid]);
    const life = new KeyLifecycleRepository(dbB);
    const bystander = new Client({ connectionString: tmp.url });
    await bystander.connect();
    try {
      // The rotation holds the key row and waits for the append lock; the approval then waits for the key row.
      await bystander.query('BEGIN');
      await bystander.query('SELECT pg_advisory_xact_lock($1::bigint)', [AUDIT_APPEND_LOCK]);
      const rotating = outcome(life.addVersion(key.keyid, 1, newPair(), admin('key.rotate')));
      await until(1);
      const approving = outcome(a.operations.addApproval(op.id, key.keyid, approver.id, admin('operation.approve')));
      await lockWaiters(tmp.url, 2);
      const released = Date.now();
      await bystander.query('COMMIT');
      expect([await rotating, await approving]).toEqual(['ok', 'ok']);
      expect(Date.now() - released).toBeLessThan(DEADLOCK_TIMEOUT_MS);
    } finally {
      await bystander.end();
    }
    expect((await a.keys.getByKeyid(key.keyid)).currentVersion).toBe(2);
    expect((await a.operations.get(op.id)).state).toBe('APPROVED');
  });

  it('fail a rotation while its key row stays held past every attempt: conflict, the key unchanged', async () => {
    const key = await seedKey(a, { requiredApprovers: 0 });
    const holder = new Client({ connectionString: tmp.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM "key" WHERE "keyid" = $1 FOR KEY SHARE`, [key.keyid]);
      expect(await outcome(new KeyLifecycleRepository(dbB).addVersion(key.keyid, 1, newPair(), admin('key.rotate')))).toBe('conflict');
      expect(await advisoryWaiters()).toBe(0);
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
    expect((await a.keys.getByKeyid(key.keyid)).currentVersion).toBe(1);
  });
});
