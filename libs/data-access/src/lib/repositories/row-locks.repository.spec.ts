import { Client } from 'pg';
import { type TempDatabase, sql } from '../../spec/temp-database';
import { hex, outcome, seedApprover, seedKey, seedSubject, window, closeTwoReplicas, openTwoReplicas } from '../../spec/fixtures';
import { hsmGate, signRequest } from '../../spec/sign-path';
import { AUDIT_APPEND_LOCK } from '../audit-hash';
import { type Db } from '../db';
import type { Repositories } from '.';
import type { AuditInput } from '../types';
import { SignOrderRepository } from './sign-order.repository';

// A sign order's finish takes the audit append lock and then, at the end of its statement, the foreign-key checks of
// the rows it inserts take FOR KEY SHARE on the operation, key and subject rows. An administrative change that locked
// one of those rows FOR UPDATE and then waited for the append lock deadlocked with it: PostgreSQL broke the cycle
// after a second and one side (the sign order, or the change) answered 500. Admin changes lock these rows FOR NO KEY
// UPDATE (they never change a key column), which conflicts with every writer and locker but a foreign-key check.
describe(`${SignOrderRepository.name} finishing while an administrative change holds its rows`, () => {
  let tmp: TempDatabase;
  let dbA: Db;
  let dbB: Db;
  let a: Repositories;
  let b: Repositories;

  beforeAll(async () => {
    ({ tmp, dbA, dbB, a, b } = await openTwoReplicas('rowlocks'));
  });
  afterAll(() => closeTwoReplicas({ tmp, dbA, dbB }));

  const admin = (action: string): AuditInput => ({ action, outcome: 'SUCCESS', actorName: 'admin', requestId: `admin-${hex(4)}` });

  async function advisoryWaiters(): Promise<number> {
    const [row] = await sql<{ n: number }>(tmp.url, `SELECT count(*)::int AS "n" FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`);
    return row.n;
  }
  async function until(n: number): Promise<void> {
    const deadline = Date.now() + 10_000;
    while ((await advisoryWaiters()) < n) {
      if (Date.now() > deadline) throw new Error(`never ${n} waiters for the audit append lock`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

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
