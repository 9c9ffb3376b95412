import { sql } from '../../spec/temp-database';
import { hex, outcome, proveAccount, seedApprover, seedKey, seedSubject, window, twoReplicas } from '../../spec/fixtures';
import { hsmGate, signRequest } from '../../spec/sign-path';
import { type Db } from '../db';
import type { Repositories } from '.';
import type { AuditInput } from '../types';
import { SubjectRepository } from './subject.repository';

// ADR 0017 addendum (2026-12-07), docs/security.md §6a: an approver who loses the right to approve a key (disabled, a
// role change, a grant taken from his role) loses his influence on every operation still open, in the transaction of
// that change; the hot path (the reservation statement) reads the operation's state as before.
describe(`${SubjectRepository.name} withdrawing approvals`, () => {
  const { tmp, dbA, dbB, a, b } = twoReplicas('withdraw');

  const adminChange = (requestId: string): AuditInput => ({ action: 'subject.update', outcome: 'SUCCESS', actorName: 'admin', requestId });

  /** A key needing `required` approvals, an operation on it with `usages`, and `approvers` entitled approvers who all approved. */
  async function approved(opts: { required?: number; approvers?: number; usages?: number } = {}) {
    const required = opts.required ?? 1;
    const key = await seedKey(a, { requiredApprovers: required });
    const orderer = await seedSubject(a);
    const op = await a.operations.create({ description: 'release', ordererId: orderer.id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: opts.usages ?? 5 }] });
    const approvers = [];
    for (let i = 0; i < (opts.approvers ?? required); i++) {
      const ap = await seedApprover(a, [key.keyid]);
      await a.operations.addApproval(op.id, key.keyid, ap.id);
      approvers.push(ap);
    }
    return { key, orderer, op, approvers, bob: approvers[0] };
  }

  const sign = (r: Repositories, opId: string, keyid: string, subjectId: string) => outcome(r.signOrders.recordWithUsage(signRequest(opId, keyid, subjectId), async () => 'cafe'));

  async function withdrawals(requestId: string) {
    return (await a.audit.list({ action: 'operation.approval_withdrawn', requestId })).items.map((e) => ({
      operationId: e.operationId,
      keyid: e.keyid,
      approverId: e.details['approverId'],
      reason: e.details['reason'],
    }));
  }

  it.each([
    ['fail an operation approved by an approver disabled since', { enabled: false }, 'approver_disabled'],
    ['fail an operation approved by an approver whose roles were taken', { roles: [] as string[] }, 'approve_grant_lost'],
  ] as const)('%s: REQUESTED again, the reservation refused operation_not_usable, the withdrawal audited', async (_n, change, reason) => {
    const { key, orderer, op, bob } = await approved();
    expect(await sign(a, op.id, key.keyid, orderer.id)).toBe('ok');
    const requestId = `disable-${hex(4)}`;
    await a.subjects.update(bob.id, change, adminChange(requestId));
    const now = await b.operations.get(op.id);
    expect([now.state, now.keys[0].approverIds]).toEqual(['REQUESTED', []]);
    expect(await sign(b, op.id, key.keyid, orderer.id)).toBe('operation_not_usable');
    expect(await sign(a, op.id, key.keyid, orderer.id)).toBe('operation_not_usable');
    expect(await withdrawals(requestId)).toEqual([{ operationId: op.id, keyid: key.keyid, approverId: bob.id, reason }]);
    // History kept: the approval is moved, not forgotten.
    const kept = await sql<{ approverId: string; reason: string }>(tmp.url, `SELECT "approverId"::text, "reason" FROM "withdrawn_approval" WHERE "operationId" = $1::uuid`, [op.id]);
    expect(kept).toEqual([{ approverId: bob.id, reason }]);
    // The console's "awaiting my approval" list shows it again to another entitled approver.
    const carol = await seedApprover(a, [key.keyid]);
    expect((await a.operations.list({ awaitingApprovalBy: carol.id, keyid: key.keyid })).items.map((o) => o.id)).toContain(op.id);
  });

  it.each([
    ['fail the role losing the key grant', () => ({ keys: [] as { keyid: string; permissions: ('SIGN' | 'APPROVE')[] }[] }), 'approve_grant_lost'],
    ['fail the role keeping SIGN but losing APPROVE on the key', (keyid: string) => ({ keys: [{ keyid, permissions: ['SIGN' as const] }] }), 'approve_grant_lost'],
  ] as const)('%s: every holder\'s approvals of that key are withdrawn', async (_n, change, reason) => {
    const { key, orderer, op, bob } = await approved();
    const requestId = `role-${hex(4)}`;
    await a.subjects.updateRole(bob.role, change(key.keyid), { ...adminChange(requestId), action: 'role.update' });
    expect((await a.operations.get(op.id)).state).toBe('REQUESTED');
    expect(await sign(b, op.id, key.keyid, orderer.id)).toBe('operation_not_usable');
    expect(await withdrawals(requestId)).toEqual([{ operationId: op.id, keyid: key.keyid, approverId: bob.id, reason }]);
  });

  it('fail a grant removed with setRoleKeyPermissions: withdrawn too', async () => {
    const { key, orderer, op, bob } = await approved();
    await a.subjects.setRoleKeyPermissions(bob.role, key.keyid, []);
    expect((await a.operations.get(op.id)).state).toBe('REQUESTED');
    expect(await sign(a, op.id, key.keyid, orderer.id)).toBe('operation_not_usable');
  });

  it('ok an approval of another key, a change that keeps APPROVE, and other approvers stay counted', async () => {
    const k1 = await seedKey(a, { requiredApprovers: 1 });
    const k2 = await seedKey(a, { requiredApprovers: 1 });
    const orderer = await seedSubject(a);
    const bob = await seedApprover(a, [k1.keyid, k2.keyid]);
    const op1 = await a.operations.create({ description: 'one', ordererId: orderer.id, ...window(), keys: [{ keyid: k1.keyid, usagesAllowed: 2 }] });
    const op2 = await a.operations.create({ description: 'two', ordererId: orderer.id, ...window(), keys: [{ keyid: k2.keyid, usagesAllowed: 2 }] });
    await a.operations.addApproval(op1.id, k1.keyid, bob.id);
    await a.operations.addApproval(op2.id, k2.keyid, bob.id);
    // The display name changes and the grant on k1 goes: only op1 falls back.
    await a.subjects.update(bob.id, { displayName: 'Bob B.' });
    await a.subjects.updateRole(bob.role, { keys: [{ keyid: k2.keyid, permissions: ['APPROVE', 'SIGN'] }] });
    expect([(await a.operations.get(op1.id)).state, (await a.operations.get(op2.id)).state]).toEqual(['REQUESTED', 'APPROVED']);
    expect(await sign(a, op2.id, k2.keyid, orderer.id)).toBe('ok');
    // Two approvals required, one of them withdrawn: the other stays, one is missing again.
    const two = await approved({ required: 2 });
    await a.subjects.update(two.bob.id, { enabled: false });
    const now = await a.operations.get(two.op.id);
    expect([now.state, now.keys[0].approverIds]).toEqual(['REQUESTED', [two.approvers[1].id]]);
  });

  it('ok finished operations keep their approvals: exhausted, expired, cancelled, rejected', async () => {
    const exhausted = await approved({ usages: 1 });
    expect(await sign(a, exhausted.op.id, exhausted.key.keyid, exhausted.orderer.id)).toBe('ok');
    const expired = await approved();
    await sql(tmp.url, `UPDATE "operation" SET "validTo" = now() - interval '1 second' WHERE "id" = $1::uuid`, [expired.op.id]);
    const cancelled = await approved();
    await a.operations.cancel(cancelled.op.id);
    const rejected = await approved({ required: 2, approvers: 1 });
    await a.operations.reject(rejected.op.id, 'wrong build');
    const requestId = `finished-${hex(4)}`;
    for (const s of [exhausted, expired, cancelled, rejected]) await a.subjects.update(s.bob.id, { enabled: false }, adminChange(requestId));
    const states = await Promise.all([exhausted, expired, cancelled, rejected].map(async (s) => {
      const op = await a.operations.get(s.op.id);
      return [op.state, op.keys[0].approverIds];
    }));
    expect(states).toEqual([
      ['EXHAUSTED', [exhausted.bob.id]],
      ['APPROVED', [expired.bob.id]],
      ['CANCELLED', [cancelled.bob.id]],
      ['REJECTED', [rejected.bob.id]],
    ]);
    expect(await withdrawals(requestId)).toEqual([]);
  });

  it('ok another entitled approver makes it usable again; re-enabling Bob restores nothing, he approves anew', async () => {
    const { key, orderer, op, bob } = await approved({ usages: 3 });
    await a.subjects.update(bob.id, { enabled: false });
    await a.subjects.update(bob.id, { enabled: true });
    expect([(await a.operations.get(op.id)).state, await sign(a, op.id, key.keyid, orderer.id)]).toEqual(['REQUESTED', 'operation_not_usable']);
    const carol = await seedApprover(a, [key.keyid]);
    expect((await b.operations.addApproval(op.id, key.keyid, carol.id)).transitioned).toBe(true);
    expect(await sign(b, op.id, key.keyid, orderer.id)).toBe('ok');
    // Two required: Bob's withdrawn approval is history, it neither counts nor blocks his new one.
    const two = await approved({ required: 2 });
    await a.subjects.update(two.bob.id, { enabled: false });
    await a.subjects.update(two.bob.id, { enabled: true });
    expect(await sign(a, two.op.id, two.key.keyid, two.orderer.id)).toBe('operation_not_usable');
    expect((await a.operations.addApproval(two.op.id, two.key.keyid, two.bob.id)).transitioned).toBe(true);
    expect(await sign(a, two.op.id, two.key.keyid, two.orderer.id)).toBe('ok');
  });

  it.each([
    ['fail a disabled subject', async (bob: { id: string; role: string }): Promise<void> => void (await a.subjects.update(bob.id, { enabled: false }))],
    ['fail a subject whose role lost APPROVE on the key', async (bob: { id: string; role: string }): Promise<void> => void (await a.subjects.updateRole(bob.role, { keys: [] }))],
  ] as const)('%s approving through a stale cache: not_an_approver, nothing counted', async (_n, lose) => {
    const key = await seedKey(a, { requiredApprovers: 1 });
    const orderer = await seedSubject(a);
    const op = await a.operations.create({ description: 'stale', ordererId: orderer.id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: 1 }] });
    const bob = await seedApprover(a, [key.keyid]);
    await lose(bob);
    expect(await outcome(b.operations.addApproval(op.id, key.keyid, bob.id))).toBe('not_an_approver');
    expect((await a.operations.get(op.id)).keys[0].approverIds).toEqual([]);
  });

  it('ok a usage reserved before the withdrawal finishes; the next one is refused', async () => {
    const { key, orderer, op, bob } = await approved();
    const held = hsmGate('cafe');
    const inFlight = outcome(a.signOrders.recordWithUsage(signRequest(op.id, key.keyid, orderer.id), held.wait));
    await held.entered;
    await b.subjects.update(bob.id, { enabled: false });
    held.open();
    expect(await inFlight).toBe('ok');
    expect(await sign(a, op.id, key.keyid, orderer.id)).toBe('operation_not_usable');
  });

  it('ok an approval racing a disable on two replicas: either refused or withdrawn, never counted after the disable', async () => {
    for (let round = 0; round < 12; round++) {
      const key = await seedKey(a, { requiredApprovers: 1 });
      const orderer = await seedSubject(a);
      const op = await a.operations.create({ description: `race ${round}`, ordererId: orderer.id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: 1 }] });
      const bob = await seedApprover(a, [key.keyid]);
      const requestId = `race-${hex(4)}`;
      const [approval] = await Promise.all([
        outcome((round % 2 ? a : b).operations.addApproval(op.id, key.keyid, bob.id)),
        (round % 2 ? b : a).subjects.update(bob.id, round % 3 ? { enabled: false } : { roles: [] }, adminChange(requestId)),
      ]);
      expect(['ok', 'not_an_approver']).toContain(approval);
      const now = await a.operations.get(op.id);
      expect([now.state, now.keys[0].approverIds]).toEqual(['REQUESTED', []]);
      expect(await sign(b, op.id, key.keyid, orderer.id)).toBe('operation_not_usable');
      // Counted first and then withdrawn, audited; or refused and nothing to withdraw.
      expect((await withdrawals(requestId)).length).toBe(approval === 'ok' ? 1 : 0);
    }
  });

  // ADR 0040 addendum (2026-12-13): a member whose token proves a guest account (acct 1, recorded by the guard)
  // loses his approvals on open operations in the transaction that records it, not at the next admin change.
  const becameGuest = (subjectId: string, requestId: string, at = new Date()) =>
    b.subjects.recordAccount(subjectId, 'GUEST', at, { action: 'subject.account', outcome: 'SUCCESS', actorSubjectId: subjectId, requestId });
  const withdrawnRows = (opId: string) =>
    sql<{ approverId: string; reason: string }>(tmp.url, `SELECT "approverId"::text, "reason" FROM "withdrawn_approval" WHERE "operationId" = $1::uuid`, [opId]);

  it('fail an operation approved by a member recorded as a guest since: REQUESTED again, operation_not_usable, withdrawn approver_became_guest by subject.account', async () => {
    const { key, orderer, op, bob } = await approved({ usages: 3 });
    await proveAccount(a, bob.id, 'MEMBER', new Date(Date.now() - 60_000));
    expect(await sign(a, op.id, key.keyid, orderer.id)).toBe('ok');
    const requestId = `guest-${hex(4)}`;
    expect(await becameGuest(bob.id, requestId)).toBe(true);
    const now = await a.operations.get(op.id);
    expect([now.state, now.keys[0].approverIds]).toEqual(['REQUESTED', []]);
    expect(await sign(a, op.id, key.keyid, orderer.id)).toBe('operation_not_usable');
    expect(await withdrawals(requestId)).toEqual([{ operationId: op.id, keyid: key.keyid, approverId: bob.id, reason: 'approver_became_guest' }]);
    const [event] = (await a.audit.list({ action: 'operation.approval_withdrawn', requestId })).items;
    expect(event).toMatchObject({ actorSubjectId: bob.id, details: { by: 'subject.account', reopened: true } });
    expect(await withdrawnRows(op.id)).toEqual([{ approverId: bob.id, reason: 'approver_became_guest' }]);
  });

  it('ok only the guest\'s approvals on open operations go: other approvers stay, finished operations keep their history', async () => {
    const two = await approved({ required: 2 });
    const exhausted = await approved({ usages: 1 });
    expect(await sign(a, exhausted.op.id, exhausted.key.keyid, exhausted.orderer.id)).toBe('ok');
    const requestId = `guest-${hex(4)}`;
    await becameGuest(two.bob.id, requestId);
    await becameGuest(exhausted.bob.id, requestId);
    const [open, done] = [await a.operations.get(two.op.id), await a.operations.get(exhausted.op.id)];
    expect([open.state, open.keys[0].approverIds]).toEqual(['REQUESTED', [two.approvers[1].id]]);
    expect([done.state, done.keys[0].approverIds]).toEqual(['EXHAUSTED', [exhausted.bob.id]]);
    expect((await withdrawals(requestId)).map((w) => w.approverId)).toEqual([two.bob.id]);
  });

  it('ok recorded once under concurrency: eight guest proofs on two replicas withdraw each approval once', async () => {
    const k1 = await seedKey(a, { requiredApprovers: 1 });
    const k2 = await seedKey(a, { requiredApprovers: 1 });
    const orderer = await seedSubject(a);
    const bob = await seedApprover(a, [k1.keyid, k2.keyid]);
    const ops = [];
    for (const k of [k1, k2]) {
      const op = await a.operations.create({ description: 'twice', ordererId: orderer.id, ...window(), keys: [{ keyid: k.keyid, usagesAllowed: 2 }] });
      await a.operations.addApproval(op.id, k.keyid, bob.id);
      ops.push(op);
    }
    const requestId = `guest-${hex(4)}`;
    const at = new Date();
    const wrote = await Promise.all(Array.from({ length: 8 }, (_x, i) =>
      (i % 2 ? a : b).subjects.recordAccount(bob.id, 'GUEST', at, { action: 'subject.account', outcome: 'SUCCESS', actorSubjectId: bob.id, requestId })));
    expect(wrote.filter(Boolean)).toHaveLength(1);
    expect((await withdrawals(requestId)).map((w) => w.operationId).sort()).toEqual(ops.map((o) => o.id).sort());
    for (const op of ops) expect(await withdrawnRows(op.id)).toEqual([{ approverId: bob.id, reason: 'approver_became_guest' }]);
    // A newer guest proof finds nothing to change and withdraws nothing more.
    expect(await becameGuest(bob.id, requestId, new Date(at.getTime() + 60_000))).toBe(false);
    expect(await withdrawals(requestId)).toHaveLength(2);
  });

  it('fail approving after the guest status was recorded (an older member token, a stale cache): not_an_approver, nothing counted', async () => {
    const key = await seedKey(a, { requiredApprovers: 1 });
    const orderer = await seedSubject(a);
    const op = await a.operations.create({ description: 'late', ordererId: orderer.id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: 1 }] });
    const bob = await seedApprover(a, [key.keyid]);
    await becameGuest(bob.id, `guest-${hex(4)}`);
    expect(await outcome(a.operations.addApproval(op.id, key.keyid, bob.id))).toBe('not_an_approver');
    expect((await a.operations.get(op.id)).keys[0].approverIds).toEqual([]);
  });

  it('ok a guest proven a member again gets nothing back; he approves anew; a member proof withdraws nothing', async () => {
    const { key, orderer, op, bob } = await approved({ usages: 2 });
    const t = Date.now();
    const requestId = `member-${hex(4)}`;
    expect(await proveAccount(a, bob.id, 'MEMBER', new Date(t - 60_000))).toBe(true);
    expect((await a.operations.get(op.id)).state).toBe('APPROVED');
    await becameGuest(bob.id, requestId, new Date(t - 30_000));
    expect(await proveAccount(a, bob.id, 'MEMBER', new Date(t))).toBe(true);
    expect([(await a.operations.get(op.id)).state, await sign(a, op.id, key.keyid, orderer.id)]).toEqual(['REQUESTED', 'operation_not_usable']);
    expect((await a.operations.addApproval(op.id, key.keyid, bob.id)).transitioned).toBe(true);
    expect(await sign(a, op.id, key.keyid, orderer.id)).toBe('ok');
  });

  it('ok an approval racing the guest recording on two replicas: either refused or withdrawn, never counted after', async () => {
    for (let round = 0; round < 12; round++) {
      const key = await seedKey(a, { requiredApprovers: 1 });
      const orderer = await seedSubject(a);
      const op = await a.operations.create({ description: `guest race ${round}`, ordererId: orderer.id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: 1 }] });
      const bob = await seedApprover(a, [key.keyid]);
      const requestId = `guest-race-${hex(4)}`;
      const [approval, wrote] = await Promise.all([
        outcome((round % 2 ? a : b).operations.addApproval(op.id, key.keyid, bob.id)),
        (round % 2 ? b : a).subjects.recordAccount(bob.id, 'GUEST', new Date(), { action: 'subject.account', outcome: 'SUCCESS', actorSubjectId: bob.id, requestId }),
      ]);
      expect([['ok', 'not_an_approver'].includes(approval), wrote]).toEqual([true, true]);
      const now = await a.operations.get(op.id);
      expect([now.state, now.keys[0].approverIds]).toEqual(['REQUESTED', []]);
      expect(await sign(b, op.id, key.keyid, orderer.id)).toBe('operation_not_usable');
      expect((await withdrawals(requestId)).length).toBe(approval === 'ok' ? 1 : 0);
    }
  });

  // Approvals left behind by a change that withdrew nothing: an earlier release (a subject recorded as a guest, or
  // disabled, before withdrawal existed) or a row edited outside the API. Every replica's reaper reconciles them.
  it('fail approvals whose approver lost the right outside a withdrawing change: the reconciler withdraws each once across replicas', async () => {
    const asGuest = await approved();
    const asDisabled = await approved({ required: 2 });
    const untouched = await approved();
    const finished = await approved({ usages: 1 });
    expect(await sign(a, finished.op.id, finished.key.keyid, finished.orderer.id)).toBe('ok');
    await sql(tmp.url, `UPDATE "subject" SET "account" = 'GUEST' WHERE "id" = $1::uuid`, [asGuest.bob.id]);
    await sql(tmp.url, `UPDATE "subject" SET "enabled" = false WHERE "id" = ANY($1::uuid[])`, [[asDisabled.bob.id, finished.bob.id]]);
    expect((await a.operations.get(asGuest.op.id)).state).toBe('APPROVED');

    const swept = await Promise.all([a.subjects.withdrawStaleApprovals(), b.subjects.withdrawStaleApprovals(), a.subjects.withdrawStaleApprovals()]);
    const all = swept.flat().map((w) => [w.operationId, w.approverId, w.reason]);
    expect(all.sort()).toEqual(
      [
        [asGuest.op.id, asGuest.bob.id, 'approver_became_guest'],
        [asDisabled.op.id, asDisabled.bob.id, 'approver_disabled'],
      ].sort(),
    );
    expect(await b.subjects.withdrawStaleApprovals()).toEqual([]);
    expect([(await a.operations.get(asGuest.op.id)).state, (await a.operations.get(asDisabled.op.id)).state, (await a.operations.get(untouched.op.id)).state]).toEqual(['REQUESTED', 'REQUESTED', 'APPROVED']);
    expect(await sign(b, asGuest.op.id, asGuest.key.keyid, asGuest.orderer.id)).toBe('operation_not_usable');
    expect(await sign(b, untouched.op.id, untouched.key.keyid, untouched.orderer.id)).toBe('ok');
    expect((await a.operations.get(finished.op.id)).keys[0].approverIds).toEqual([finished.bob.id]);
    const events = (await a.audit.list({ action: 'operation.approval_withdrawn', operationId: asGuest.op.id })).items;
    expect(events.map((e) => [e.details['reason'], e.details['by'], e.details['reopened']])).toEqual([['approver_became_guest', 'approval.reconcile', true]]);
    expect(await withdrawnRows(asDisabled.op.id)).toEqual([{ approverId: asDisabled.bob.id, reason: 'approver_disabled' }]);
  });

  /** `db` counting what the reconciler runs: transactions, and statements outside them (pool and Prisma). */
  function counted(db: Db) {
    const n = { transactions: 0, statements: 0 };
    const pool = new Proxy(db.pool, {
      get: (t, p) => {
        const v = Reflect.get(t, p) as unknown;
        if (p === 'query') return (...args: unknown[]) => (n.statements++, (t.query as (...a: unknown[]) => unknown)(...args));
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
    const prisma = db.prisma.$extends({ query: { $allOperations: ({ args, query }) => (n.statements++, query(args)) } }) as unknown as Db['prisma'];
    const wrapped: Db = { ...db, pool, prisma, transaction: (fn, o) => (n.transactions++, db.transaction(fn, o)) };
    return { subjects: new SubjectRepository(wrapped), n };
  }

  // Every replica's reaper runs the reconciler every pass: a pass with nothing stale is one read, no transaction.
  it('ok a pass with nothing stale runs one plain read and opens no transaction; a stale approval still takes one', async () => {
    await a.subjects.withdrawStaleApprovals();
    const idle = counted(dbA);
    expect(await idle.subjects.withdrawStaleApprovals()).toEqual([]);
    expect(idle.n).toEqual({ transactions: 0, statements: 1 });

    const { op, bob } = await approved();
    await sql(tmp.url, `UPDATE "subject" SET "enabled" = false WHERE "id" = $1::uuid`, [bob.id]);
    const busy = counted(dbB);
    expect((await busy.subjects.withdrawStaleApprovals()).map((w) => [w.operationId, w.approverId, w.reason])).toEqual([[op.id, bob.id, 'approver_disabled']]);
    expect(busy.n.transactions).toBe(1);
  });
});
