import { outcome, seedApprover, seedKey, seedSubject, window, twoReplicas } from '../../spec/fixtures';
import { signRequest } from '../../spec/sign-path';
import { requestFingerprint } from './idempotency';
import { OperationRepository, type CreateOperationInput } from './operation.repository';

describe(OperationRepository.name, () => {

  // Two handles = two independent pools, like two API replicas.
  const { a, b } = twoReplicas('op');

  async function operationNeeding(approvers: number) {
    const orderer = await seedSubject(a);
    const key = await seedKey(a, { requiredApprovers: approvers });
    const op = await a.operations.create({ description: 'd', ordererId: orderer.id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: 5 }] });
    return { orderer, key, op };
  }

  it('snapshots requiredApprovers and normalizes digests on create; a lowering of the key leaves its operations as ordered', async () => {
    const orderer = await seedSubject(a);
    const key = await seedKey(a, { requiredApprovers: 2 });
    const op = await a.operations.create({
      description: 'd',
      ordererId: orderer.id,
      ...window(),
      digests: ['ABCD'],
      keys: [{ keyid: key.keyid, usagesAllowed: 3 }],
    });
    await a.keys.setRequiredApprovers(key.keyid, 1);
    expect(await a.operations.get(op.id)).toMatchObject({
      state: 'REQUESTED',
      digests: ['abcd'],
      keys: [{ keyid: key.keyid, usagesAllowed: 3, usagesUsed: 0, requiredApprovers: 2, approverIds: [] }],
    });
  });

  it.each([
    ['fail an operation ordered while the key needed no approver: no longer usable without one', 0, 0, 1, 'REQUESTED', 'operation_not_usable', false],
    ['fail an APPROVED operation one approval short of the raised number: REQUESTED again', 1, 1, 2, 'REQUESTED', 'operation_not_usable', true],
  ] as const)('%s', async (_n, before, approvals, after, state, use, reopened) => {
    const { orderer, key, op } = await operationNeeding(before);
    for (let i = 0; i < approvals; i++) await a.operations.addApproval(op.id, key.keyid, (await seedApprover(a, [key.keyid])).id);
    const requestId = `raise-${op.id}`;
    await a.keys.setRequiredApprovers(key.keyid, after, { action: 'key.update', outcome: 'SUCCESS', requestId });
    const now = await a.operations.get(op.id);
    expect([now.state, now.keys[0].requiredApprovers]).toEqual([state, after]);
    expect(await outcome(a.signOrders.recordWithUsage(signRequest(op.id, key.keyid, orderer.id), async () => 'cafe'))).toBe(use);
    const [event] = (await a.audit.list({ action: 'key.update', requestId })).items;
    expect(event.details['reopened']).toEqual(reopened ? [op.id] : undefined);
  });

  it('ok an APPROVED operation that already has the raised number of approvals stays usable', async () => {
    const { orderer, key, op } = await operationNeeding(2);
    for (let i = 0; i < 2; i++) await a.operations.addApproval(op.id, key.keyid, (await seedApprover(a, [key.keyid])).id);
    await a.keys.setRequiredApprovers(key.keyid, 1);
    await a.keys.setRequiredApprovers(key.keyid, 2);
    const now = await a.operations.get(op.id);
    expect([now.state, now.keys[0].requiredApprovers]).toEqual(['APPROVED', 2]);
    expect(await outcome(a.signOrders.recordWithUsage(signRequest(op.id, key.keyid, orderer.id), async () => 'cafe'))).toBe('ok');
  });

  it('ok a raise and approvals racing on two replicas: APPROVED exactly when every key has its approvals', async () => {
    for (let round = 0; round < 8; round++) {
      const { key, op } = await operationNeeding(1);
      const approvers = await Promise.all([1, 2].map(() => seedApprover(a, [key.keyid])));
      await Promise.all([
        (round % 2 ? a : b).keys.setRequiredApprovers(key.keyid, 2),
        ...approvers.map((ap, i) => ((round + i) % 2 ? b : a).operations.addApproval(op.id, key.keyid, ap.id).catch((e: { code: string }) => e.code)),
      ]);
      const now = await a.operations.get(op.id);
      expect(now.keys[0].requiredApprovers).toBe(2);
      expect(now.state).toBe(now.keys[0].approverIds.length >= 2 ? 'APPROVED' : 'REQUESTED');
    }
  });

  it.each([
    ['fail invalid_input without keys', { keys: [] }, 'invalid_input'],
    ['fail invalid_input with an empty window', { validTo: new Date(0) }, 'invalid_input'],
    ['fail invalid_input with non-hex digests', { digests: ['xyz'] }, 'invalid_input'],
    ['fail invalid_input with zero usages', { usages: 0 }, 'invalid_input'],
    ['fail not_found for an unknown key', { keyid: 'missing' }, 'not_found'],
  ] as const)('%s', async (_n, o, expected) => {
    const orderer = await seedSubject(a);
    const key = await seedKey(a);
    const input = {
      description: 'd',
      ordererId: orderer.id,
      ...window(),
      keys: [{ keyid: 'keyid' in o ? o.keyid : key.keyid, usagesAllowed: 'usages' in o ? o.usages : 1 }],
      ...('keys' in o ? { keys: [] } : {}),
      ...('validTo' in o ? { validTo: o.validTo } : {}),
      ...('digests' in o ? { digests: [...o.digests] } : {}),
    };
    expect(await outcome(a.operations.create(input))).toBe(expected);
  });

  describe('time: the window against a frozen clock', () => {
    const NOW = new Date('2026-12-07T12:00:00.000Z');
    const at = (ms: number) => new Date(NOW.getTime() + ms);

    it.each([
      ['fail window_ended a window that ended before it was ordered (inside the backdating skew)', -200_000, -100_000, 'window_ended'],
      ['fail window_ended a window ending at the instant it is ordered (validTo is exclusive)', -200_000, 0, 'window_ended'],
      ['ok a window ending one ms after the order', -200_000, 1, 'ok'],
    ] as const)('%s', async (_n, from, to, expected) => {
      const orderer = await seedSubject(a);
      const key = await seedKey(a, { requiredApprovers: 1 });
      const create = a.operations.create({ description: 'd', ordererId: orderer.id, validFrom: at(from), validTo: at(to), keys: [{ keyid: key.keyid, usagesAllowed: 1 }], now: NOW });
      expect(await outcome(create)).toBe(expected);
      // Refused: no operation, so no approval request goes to anyone for a window nobody can use.
      expect((await a.operations.list({ keyid: key.keyid })).items.length).toBe(expected === 'ok' ? 1 : 0);
    });

    it.each([
      ['ok an approval one ms before the window ends', -1, 'ok', 'APPROVED'],
      ['fail an approval at the instant the window ends (checked under the operation lock)', 0, 'invalid_state', 'REQUESTED'],
      ['fail an approval a minute after the window ended', 60_000, 'invalid_state', 'REQUESTED'],
    ] as const)('%s', async (_n, afterEnd, expected, state) => {
      const orderer = await seedSubject(a);
      const key = await seedKey(a, { requiredApprovers: 1 });
      const op = await a.operations.create({ description: 'd', ordererId: orderer.id, validFrom: NOW, validTo: at(60_000), keys: [{ keyid: key.keyid, usagesAllowed: 1 }], now: NOW });
      const approver = await seedApprover(a, [key.keyid]);
      const requestId = `late-${op.id}`;
      const approval = a.operations.approve(op.id, [key.keyid], approver.id, { action: 'operation.approve', outcome: 'SUCCESS', requestId }, () => at(60_000 + afterEnd));
      expect(await outcome(approval)).toBe(expected);
      const after = await a.operations.get(op.id);
      expect([after.state, after.keys[0].approverIds.length]).toEqual([state, expected === 'ok' ? 1 : 0]);
      expect((await a.audit.list({ action: 'operation.approve', requestId })).items.length).toBe(expected === 'ok' ? 1 : 0);
    });
  });

  it('lets exactly one of many concurrent approvals perform the REQUESTED -> APPROVED transition', async () => {
    const { key, op } = await operationNeeding(2);
    const approvers = await Promise.all([1, 2, 3, 4, 5, 6].map(() => seedApprover(a, [key.keyid])));
    const results = await Promise.all(
      approvers.map((ap, i) =>
        (i % 2 ? a : b).operations.addApproval(op.id, key.keyid, ap.id).then(
          (r) => (r.transitioned ? 'transitioned' : 'counted'),
          (e: { code: string }) => e.code,
        ),
      ),
    );
    expect(results.filter((r) => r === 'transitioned')).toHaveLength(1);
    expect(results.filter((r) => r === 'counted')).toHaveLength(1);
    expect(results.filter((r) => r === 'invalid_state')).toHaveLength(4);
    const after = await a.operations.get(op.id);
    expect(after.state).toBe('APPROVED');
    expect(after.keys[0].approverIds).toHaveLength(2);
  });

  it('counts the same approver once even when the approval races with itself', async () => {
    const { key, op } = await operationNeeding(2);
    const approver = await seedApprover(a, [key.keyid]);
    const results = await Promise.all([a, b, a, b].map((r) => outcome(r.operations.addApproval(op.id, key.keyid, approver.id))));
    expect(results.sort()).toEqual(['already_approved', 'already_approved', 'already_approved', 'ok']);
    const after = await a.operations.get(op.id);
    expect(after).toMatchObject({ state: 'REQUESTED', keys: [{ approverIds: [approver.id] }] });
  });

  it('refuses approvals for a key outside the operation and of unknown operations', async () => {
    const { op } = await operationNeeding(1);
    const other = await seedKey(a);
    const approver = await seedApprover(a, [other.keyid]);
    expect(await outcome(a.operations.addApproval(op.id, other.keyid, approver.id))).toBe('key_not_in_operation');
    expect(await outcome(a.operations.addApproval('00000000-0000-0000-0000-000000000000', other.keyid, approver.id))).toBe('not_found');
    expect(await outcome(a.operations.get('not-a-uuid'))).toBe('not_found');
  });

  it('rejects and cancels only from the allowed states', async () => {
    const r = await operationNeeding(1);
    const rejected = await a.operations.reject(r.op.id, 'wrong build', { action: 'operation.reject', outcome: 'SUCCESS' });
    expect(rejected).toMatchObject({ state: 'REJECTED', rejectionReason: 'wrong build' });
    expect(await outcome(a.operations.cancel(r.op.id))).toBe('invalid_state');
    const c = await operationNeeding(0);
    expect((await a.operations.cancel(c.op.id)).state).toBe('CANCELLED');
    expect(await outcome(a.operations.reject(c.op.id, 'x'))).toBe('invalid_state');
  });

  it('lists with filters and cursor pagination, including what awaits a given approver', async () => {
    const orderer = await seedSubject(a, 'lister');
    const key = await seedKey(a, { requiredApprovers: 1 });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await a.operations.create({ description: `op${i}`, ordererId: orderer.id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: 1 }] })).id);
    }
    const approver = await seedApprover(a, [key.keyid]);
    await a.operations.addApproval(ids[0], key.keyid, approver.id);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await a.operations.list({ ordererId: orderer.id, limit: 2, cursor });
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((o) => o.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
    expect((await a.operations.list({ keyid: key.keyid, state: 'APPROVED' })).items.map((o) => o.id)).toEqual([ids[0]]);
    const awaiting = await a.operations.list({ awaitingApprovalBy: approver.id, keyid: key.keyid });
    expect(awaiting.items.map((o) => o.id).sort()).toEqual(ids.slice(1).sort());
    expect(await outcome(a.operations.list({ cursor: 'nope' }))).toBe('invalid_input');
  });

  // ADR 0007 addendum "operations and Idempotency-Key": a CI pipeline retrying a timed-out POST /api/v1/operations.
  describe('createIdempotent', () => {
    const ROUTE = 'POST /api/v1/operations';
    async function keyed() {
      const orderer = await seedSubject(a);
      const key = await seedKey(a, { requiredApprovers: 1 });
      const input: CreateOperationInput = { description: 'release 1.0', ordererId: orderer.id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: 3 }] };
      const body = { description: input.description, keys: [{ keyid: key.keyid, usages: 3 }] };
      const idem = (idempotencyKey: string, requestId: string, b: Record<string, unknown> = body) => ({
        key: idempotencyKey,
        requestHash: requestFingerprint(ROUTE, idempotencyKey, b),
        requestId,
        answer: (op: { id: string; createdAt: Date }) => ({ id: op.id, z: 'last', a: 'first', at: op.createdAt.toISOString() }),
      });
      return { orderer, key, input, idem };
    }
    const audit = (requestId: string) => ({ action: 'operation.create', outcome: 'SUCCESS' as const, actorName: 't', requestId });

    it('ok a retry is the stored answer (member order kept), names the first request, adds no operation or create event', async () => {
      const s = await keyed();
      const first = await a.operations.createIdempotent(s.input, audit('rid-1'), s.idem('ci-run-1', 'rid-1'));
      const again = await b.operations.createIdempotent(s.input, audit('rid-2'), s.idem('ci-run-1', 'rid-2'));
      expect([first.replayed, again.replayed, again.firstRequestId, again.operationId]).toEqual([false, true, 'rid-1', first.operationId]);
      expect(JSON.stringify(again.answer)).toBe(JSON.stringify(first.answer));
      expect(Object.keys(again.answer as object)).toEqual(['id', 'z', 'a', 'at']);
      expect((await a.operations.list({ ordererId: s.orderer.id })).items.map((o) => o.id)).toEqual([first.operationId]);
      expect((await a.audit.list({ action: 'operation.create', operationId: first.operationId })).items.map((e) => e.requestId)).toEqual(['rid-1']);
    });

    it.each([
      ['fail another body under the same key', 'other-body'],
      ['fail the same body after a field changed', 'description'],
    ] as const)('%s: idempotency_key_reused, nothing created', async (_n, kind) => {
      const s = await keyed();
      await a.operations.createIdempotent(s.input, audit('rid-1'), s.idem('ci-run-2', 'rid-1'));
      const other = kind === 'other-body' ? { keys: [] } : { description: 'release 1.1', keys: [{ keyid: s.key.keyid, usages: 3 }] };
      expect(await outcome(b.operations.createIdempotent(s.input, audit('rid-2'), s.idem('ci-run-2', 'rid-2', other)))).toBe('idempotency_key_reused');
      expect((await a.operations.list({ ordererId: s.orderer.id })).items).toHaveLength(1);
    });

    it('ok another orderer\'s equal key is its own operation', async () => {
      const s = await keyed();
      const other = await seedSubject(a);
      const mine = await a.operations.createIdempotent(s.input, audit('rid-1'), s.idem('shared', 'rid-1'));
      const theirs = await a.operations.createIdempotent({ ...s.input, ordererId: other.id }, audit('rid-2'), s.idem('shared', 'rid-2'));
      expect([mine.replayed, theirs.replayed]).toEqual([false, false]);
      expect(theirs.operationId).not.toBe(mine.operationId);
    });

    it('ok the same key sent to both replicas at once: exactly one operation, one create event, every answer identical', async () => {
      const s = await keyed();
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).operations.createIdempotent(s.input, audit(`rid-${i}`), s.idem('burst', `rid-${i}`))));
      const ops = (await a.operations.list({ ordererId: s.orderer.id })).items;
      expect(ops).toHaveLength(1);
      expect(results.filter((r) => !r.replayed)).toHaveLength(1);
      for (const r of results) expect(JSON.stringify(r.answer)).toBe(JSON.stringify(results[0].answer));
      expect(new Set(results.map((r) => r.operationId))).toEqual(new Set([ops[0].id]));
      expect((await a.audit.list({ action: 'operation.create', operationId: ops[0].id })).items).toHaveLength(1);
    });
  });
});
