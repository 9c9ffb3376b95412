// Medium tier: the service with its real repositories on a real PostgreSQL (no HTTP, no HSM, no processes),
// wired by constructor exactly as the composition root wires it. Between the unit tests and apps/keyserver-e2e.
import { randomBytes, randomUUID } from 'node:crypto';
import { Permission, type KeyGrant, type Nature } from '@keyserver/api-contract';
import { authorize, type Actor } from '@keyserver/authz';
import { AuditRepository, KeyLimitsRepository, OperationRepository, SubjectRepository, type Db } from '@keyserver/data-access';
import type { Principal } from '@keyserver/entra-token';
import { AuditService } from '../audit/audit.service';
import { Audited } from '../common/audited';
import { codeOf, MEDIUM_TENANT, mediumActor, mediumDatabase, seedKey } from '../testing/medium';
import { HOSTILE_IDEMPOTENCY_KEYS } from '../testing/idempotency-keys';
import { OperationsService } from './operations.service';

describe(`${OperationsService.name} (medium: real PostgreSQL)`, () => {
  const pg = mediumDatabase('ks_api_medium_ops');
  let db: Db;
  let subjects: SubjectRepository;
  let operations: OperationRepository;
  let audit: AuditRepository;
  let service: OperationsService;

  beforeAll(async () => {
    db = pg.db;
    subjects = new SubjectRepository(db);
    operations = new OperationRepository(db);
    audit = new AuditRepository(db);
    service = new OperationsService(operations, subjects, new KeyLimitsRepository(db), new Audited(audit));
  });

  /** A registered user holding `natures` and `grants` on `keyids`, as the guard hands it to the service. */
  const actor = (natures: Nature[], grants: KeyGrant[], keyids: string[], permission: Permission): Promise<Actor> => mediumActor(db, { natures, grants, keyids }, permission);

  const window = () => ({ validFrom: new Date(Date.now() - 60_000).toISOString(), validTo: new Date(Date.now() + 3_600_000).toISOString() });

  async function twoKeyOperation(ordererGrants: KeyGrant[] = ['ORDER']) {
    const keyids = [await seedKey(db, { requiredApprovers: 1 }), await seedKey(db, { requiredApprovers: 1 })];
    const orderer = await actor(['ORDERER', 'APPROVER'], ordererGrants, keyids, Permission.OperationsCreate);
    const op = await service.create(orderer, { description: 'two keys', ...window(), digests: [], keys: keyids.map((keyid) => ({ keyid, usages: 1 })) }, 'req-create');
    return { keyids, orderer, op };
  }

  it('approves every key the approver holds APPROVE on in one step, and records one SUCCESS event per key', async () => {
    const { keyids, op } = await twoKeyOperation();
    const approver = await actor(['APPROVER'], ['APPROVE'], keyids, Permission.OperationsApprove);
    const view = await service.approve(approver, op.id, 'req-approve');
    expect(view.state).toBe('APPROVED');
    expect(view.keys.map((k) => k.approvals)).toEqual([1, 1]);
    const events = (await audit.list({ action: 'operation.approve', operationId: op.id })).items;
    expect(events.map((e) => [e.outcome, e.keyid]).sort()).toEqual(keyids.map((k) => ['SUCCESS', k]).sort());
  });

  it.each([
    ['fail the orderer approving his own operation', 'orderer', 'self_approval_forbidden'],
    ['fail a second approval by the same approver', 'twice', 'already_approved'],
    ['fail an approver of other keys (the operation is invisible to him)', 'stranger', 'operation_not_found'],
  ] as const)('%s: refused, audited DENIED with its code, nothing more counted', async (_n, who, code) => {
    const { keyids, orderer, op } = await twoKeyOperation(['ORDER', 'APPROVE']);
    const approver = await actor(['APPROVER'], ['APPROVE'], keyids, Permission.OperationsApprove);
    if (who === 'twice') await service.approve(approver, op.id, 'req-first');
    const caller = who === 'orderer' ? orderer : who === 'twice' ? approver : await actor(['APPROVER'], ['APPROVE'], [await seedKey(db, { requiredApprovers: 1 })], Permission.OperationsApprove);
    const requestId = `req-${randomBytes(4).toString('hex')}`;
    expect(await codeOf(service.approve(caller, op.id, requestId))).toBe(code);
    const events = (await audit.list({ action: 'operation.approve', requestId })).items;
    expect(events.map((e) => [e.outcome, e.errorCode, e.operationId])).toEqual([['DENIED', code, op.id]]);
    const after = await operations.get(op.id);
    expect(after.keys.map((k) => k.approverIds.length)).toEqual(who === 'twice' ? [1, 1] : [0, 0]);
  });

  it.each([
    ['fail an auditor-approver who may see the operation but approves none of its keys', 'sees-all'],
    ['fail an approver of the operation\'s development key only (it needs no approver)', 'dev-key'],
  ] as const)('%s: 403 not_an_approver, audited DENIED, nothing counted', async (_n, who) => {
    const prod = await seedKey(db, { requiredApprovers: 1 });
    const dev = await seedKey(db, { requiredApprovers: 0 });
    const orderer = await actor(['ORDERER'], ['ORDER'], [prod, dev], Permission.OperationsCreate);
    const op = await service.create(orderer, { description: 'mixed keys', ...window(), digests: [], keys: [{ keyid: prod, usages: 1 }, { keyid: dev, usages: 1 }] }, 'req-create');
    const caller =
      who === 'sees-all'
        ? await actor(['APPROVER', 'AUDITOR'], ['APPROVE'], [await seedKey(db, { requiredApprovers: 1 })], Permission.OperationsApprove)
        : await actor(['APPROVER'], ['APPROVE'], [dev], Permission.OperationsApprove);
    const requestId = `req-${randomBytes(4).toString('hex')}`;
    expect(await codeOf(service.approve(caller, op.id, requestId))).toBe('not_an_approver');
    const events = (await audit.list({ action: 'operation.approve', requestId })).items;
    expect(events.map((e) => [e.outcome, e.errorCode, e.operationId])).toEqual([['DENIED', 'not_an_approver', op.id]]);
    const after = await operations.get(op.id);
    expect([after.state, after.keys.map((k) => k.approverIds.length)]).toEqual(['REQUESTED', [0, 0]]);
  });

  it('fail an approver disabled after the guard checked him (a stale Actor): 403 not_an_approver, audited DENIED, nothing counted; an approval withdrawn shows as missing again', async () => {
    const { keyids, op } = await twoKeyOperation();
    const bob = await actor(['APPROVER'], ['APPROVE'], keyids, Permission.OperationsApprove);
    const carol = await actor(['APPROVER'], ['APPROVE'], keyids, Permission.OperationsApprove);
    expect((await service.approve(carol, op.id, 'req-carol')).state).toBe('APPROVED');
    await subjects.update(bob.subjectId, { enabled: false });
    const requestId = `req-${randomBytes(4).toString('hex')}`;
    expect(await codeOf(service.approve(bob, op.id, requestId))).toBe('operation_closed');
    // Carol disabled too: her approvals are withdrawn, the operation needs approval again, and Bob's stale Actor counts nothing.
    await subjects.update(carol.subjectId, { enabled: false });
    const view = await service.get(await actor(['AUDITOR'], [], [], Permission.OperationsRead), op.id);
    expect([view.state, view.keys.map((k) => [k.approvals, k.approvalsMissing, k.approvedBy])]).toEqual(['REQUESTED', [[0, 1, []], [0, 1, []]]]);
    expect(await codeOf(service.approve(bob, op.id, requestId))).toBe('not_an_approver');
    const events = (await audit.list({ action: 'operation.approve', requestId })).items;
    expect(events.map((e) => [e.outcome, e.errorCode])).toEqual([['DENIED', 'not_an_approver'], ['DENIED', 'operation_closed']]);
    expect((await operations.get(op.id)).keys.map((k) => k.approverIds)).toEqual([[], []]);
  });

  it('fail an approval that waited on the operation\'s lock until its window ended: 409 operation_expired, audited DENIED, nothing counted', async () => {
    const keyid = await seedKey(db, { requiredApprovers: 1 });
    const orderer = await actor(['ORDERER'], ['ORDER'], [keyid], Permission.OperationsCreate);
    const validTo = new Date(Date.now() + 1_500);
    const op = await operations.create({ description: 'ends soon', ordererId: orderer.subjectId, validFrom: new Date(Date.now() - 1_000), validTo, keys: [{ keyid, usagesAllowed: 1 }] });
    const approver = await actor(['APPROVER'], ['APPROVE'], [keyid], Permission.OperationsApprove);
    // Another transaction holds the operation's row (an admin change, a slow approval) past the window's end.
    const holder = await db.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM "operation" WHERE "id" = $1::uuid FOR UPDATE', [op.id]);
      const requestId = `req-${randomBytes(4).toString('hex')}`;
      const approval = codeOf(service.approve(approver, op.id, requestId));
      await new Promise((r) => setTimeout(r, Math.max(0, validTo.getTime() - Date.now()) + 50));
      await holder.query('COMMIT');
      expect(await approval).toBe('operation_expired');
      const events = (await audit.list({ action: 'operation.approve', requestId })).items;
      expect(events.map((e) => [e.outcome, e.errorCode])).toEqual([['DENIED', 'operation_expired']]);
    } finally {
      holder.release();
    }
    const after = await operations.get(op.id);
    expect([after.state, after.keys[0].approverIds]).toEqual(['REQUESTED', []]);
  });

  it('never names an operation the caller may not see in a cursor, even after scanning thousands of them', async () => {
    // A signer of the key (operations:read, SIGN, no APPROVE): others' operations on it do not exist for him, yet a
    // sign order only needs an operation id, so an id would be worth having.
    const keyid = await seedKey(db, { requiredApprovers: 1 });
    const orderer = await actor(['ORDERER'], ['ORDER'], [keyid], Permission.OperationsCreate);
    await pg.db.pool.query(
      `WITH ops AS (
         INSERT INTO "operation" ("id", "description", "state", "ordererId", "validFrom", "validTo", "digests", "createdAt", "updatedAt")
         SELECT gen_random_uuid(), 'hidden ' || n, 'APPROVED', $1::uuid, now(), now() + interval '1 hour', '{}', now() - n * interval '1 ms', now()
         FROM generate_series(1, 2100) AS n RETURNING "id")
       INSERT INTO "operation_key" ("id", "operationId", "keyId", "usagesAllowed", "requiredApprovers")
       SELECT gen_random_uuid(), ops."id", k."id", 1, 1 FROM ops, "key" k WHERE k."keyid" = $2`,
      [orderer.subjectId, keyid],
    );
    const signer = await actor(['SIGNER'], ['SIGN'], [keyid], Permission.OperationsRead);
    const mine = await service.create(
      await actor(['ORDERER', 'SIGNER'], ['ORDER', 'SIGN'], [keyid], Permission.OperationsCreate),
      { description: 'not his either', ...window(), digests: [], keys: [{ keyid, usages: 1 }] },
      'req-create',
    );
    for (const q of [{ key: keyid, limit: 1 }, { limit: 1 }, { key: keyid, state: 'APPROVED' as const, limit: 5 }]) {
      expect(await service.list(signer, q)).toEqual({ items: [], nextCursor: null });
    }
    // What the orderer sees is unchanged: his operations, page by page.
    const first = await service.list(orderer, { key: keyid, limit: 500 });
    expect(first.items).toHaveLength(500);
    expect(first.nextCursor).toBe(first.items[499].id);
    expect(first.items.every((o) => o.orderer.subjectId === orderer.subjectId && o.id !== mine.id)).toBe(true);
  });

  it('fail an operation id the caller may not see as cursor: answered exactly as an id that does not exist, so it proves neither existence nor age', async () => {
    // Olga's operation is newer than Carl's; a cursor is "everything older than this row". Before the fix, her id
    // as cursor gave Carl his own older operation and a made-up id an empty page: an existence (and age) oracle.
    const keyid = await seedKey(db, { requiredApprovers: 1 });
    const carl = await actor(['ORDERER'], ['ORDER'], [keyid], Permission.OperationsCreate);
    const olga = await actor(['ORDERER'], ['ORDER'], [keyid], Permission.OperationsCreate);
    const his = await service.create(carl, { description: 'carl', ...window(), digests: [], keys: [{ keyid, usages: 1 }] }, 'req-carl');
    await new Promise((r) => setTimeout(r, 5));
    const hers = await service.create(olga, { description: 'olga', ...window(), digests: [], keys: [{ keyid, usages: 1 }] }, 'req-olga');
    const unknown = await service.list(carl, { cursor: randomUUID() });
    expect(await service.list(carl, { cursor: hers.id })).toEqual(unknown);
    expect(await service.list(carl, { key: keyid, cursor: hers.id })).toEqual(await service.list(carl, { key: keyid, cursor: randomUUID() }));
    // Administrators see hers, so for them her id is a cursor like any other; Carl's own ids still page.
    const admin = await actor(['ADMINISTRATOR'], [], [], Permission.OperationsRead);
    expect((await service.list(admin, { key: keyid, cursor: hers.id })).items.map((o) => o.id)).toEqual([his.id]);
    expect((await service.list(carl, { key: keyid, cursor: his.id })).items).toEqual([]);
  });

  it('lists as awaiting me only operations I may still approve: never my own, never one I approved every key of', async () => {
    const { keyids, orderer, op } = await twoKeyOperation(['ORDER', 'APPROVE']);
    const other = await actor(['APPROVER'], ['APPROVE'], [keyids[0]], Permission.OperationsRead);
    const awaiting = async (a: Actor) => (await service.list(a, { awaiting: 'me', limit: 500 })).items.map((o) => o.id);
    expect(await awaiting(other)).toContain(op.id);
    await service.approve(other, op.id, 'req-other');
    // keyids[1] still lacks its approver, but not one that `other` can give.
    expect(await awaiting(other)).not.toContain(op.id);
    expect(await awaiting(orderer)).not.toContain(op.id);
  });

  it.each([
    ['ok create', 'operation.create'],
    ['ok approve', 'operation.approve'],
    ['ok reject', 'operation.reject'],
    ['ok cancel', 'operation.cancel'],
  ] as const)('%s: a failure reading the answer after the commit records nothing beside the SUCCESS', async (_n, action) => {
    // The limits are read for the answer only, after the change and its SUCCESS event committed.
    let failAnswer = false;
    const limits = new KeyLimitsRepository(db);
    const getMany = limits.getMany.bind(limits);
    limits.getMany = (keyids) => (failAnswer ? Promise.reject(new Error('limits unavailable')) : getMany(keyids));
    const flaky = new OperationsService(operations, subjects, limits, new Audited(audit));
    const keyids = [await seedKey(db, { requiredApprovers: 1 })];
    const orderer = await actor(['ORDERER'], ['ORDER'], keyids, Permission.OperationsCreate);
    const approver = await actor(['APPROVER'], ['APPROVE'], keyids, Permission.OperationsApprove);
    const requestId = `req-${randomBytes(4).toString('hex')}`;
    const body = { description: 'answer fails', ...window(), digests: [], keys: [{ keyid: keyids[0], usages: 1 }] };
    const op = action === 'operation.create' ? undefined : await flaky.create(orderer, body, 'req-setup');
    failAnswer = true;
    const call =
      action === 'operation.create'
        ? flaky.create(orderer, body, requestId)
        : action === 'operation.approve'
          ? flaky.approve(approver, op!.id, requestId)
          : action === 'operation.reject'
            ? flaky.reject(approver, op!.id, { reason: 'no' }, requestId)
            : flaky.cancel(orderer, op!.id, requestId);
    await expect(call).rejects.toThrow('limits unavailable');
    const events = (await audit.list({ action, requestId })).items;
    expect(events.map((e) => e.outcome)).toEqual(['SUCCESS']);
  });

  it('counts nothing of an approval that fails on one of its keys (one transaction)', async () => {
    const { keyids, op } = await twoKeyOperation();
    const approver = await actor(['APPROVER'], ['APPROVE'], keyids, Permission.OperationsApprove);
    expect(await codeOf(operations.approve(op.id, [keyids[0], 'not-in-this-operation'], approver.subjectId))).toBe('key_not_in_operation');
    expect((await operations.get(op.id)).keys.map((k) => k.approverIds.length)).toEqual([0, 0]);
  });

  // ADR 0007 addendum "operations and Idempotency-Key": a CI pipeline retrying a timed-out POST /api/v1/operations.
  describe('Idempotency-Key', () => {
    const rid = () => `req-${randomBytes(4).toString('hex')}`;
    async function ordering() {
      const keyids = [await seedKey(db, { requiredApprovers: 1 })];
      const orderer = await actor(['ORDERER'], ['ORDER'], keyids, Permission.OperationsCreate);
      const dto = { description: 'release 2.0', ...window(), digests: [], keys: keyids.map((keyid) => ({ keyid, usages: 2 })) };
      return { keyids, orderer, dto };
    }

    it('ok a retry with the same key is the identical answer: one operation, one create event, one operation.replayed event naming the first', async () => {
      const { keyids, orderer, dto } = await ordering();
      const [r1, r2] = [rid(), rid()];
      const first = await service.create(orderer, dto, r1, 'pipeline-77:order');
      const approver = await actor(['APPROVER'], ['APPROVE'], keyids, Permission.OperationsApprove);
      await service.approve(approver, first.id, rid());
      const retry = await service.create(orderer, dto, r2, 'pipeline-77:order');
      // The first answer, as the other routes replay theirs: not the operation's state since.
      expect(JSON.stringify(retry)).toBe(JSON.stringify(first));
      expect((await operations.list({ ordererId: orderer.subjectId })).items.map((o) => o.id)).toEqual([first.id]);
      const created = (await audit.list({ action: 'operation.create', operationId: first.id })).items;
      const replayed = (await audit.list({ action: 'operation.replayed', operationId: first.id })).items;
      expect(created.map((e) => [e.outcome, e.requestId])).toEqual([['SUCCESS', r1]]);
      expect(replayed.map((e) => ({ outcome: e.outcome, requestId: e.requestId, actor: e.actorSubjectId, first: e.details['firstRequestId'] }))).toEqual([
        { outcome: 'SUCCESS', requestId: r2, actor: orderer.subjectId, first: r1 },
      ]);
    });

    it('fail the same key with another request: 422 idempotency_key_reused, no second operation, audited DENIED', async () => {
      const { orderer, dto } = await ordering();
      await service.create(orderer, dto, rid(), 'reused-key');
      const r = rid();
      expect(await codeOf(service.create(orderer, { ...dto, keys: dto.keys.map((k) => ({ ...k, usages: 3 })) }, r, 'reused-key'))).toBe('idempotency_key_reused');
      expect((await operations.list({ ordererId: orderer.subjectId })).items).toHaveLength(1);
      const events = (await audit.list({ action: 'operation.create', requestId: r })).items;
      expect(events.map((e) => [e.outcome, e.errorCode])).toEqual([['DENIED', 'idempotency_key_reused']]);
    });

    it('ok another orderer\'s equal key is its own operation; each retry replays its own', async () => {
      const { keyids, orderer, dto } = await ordering();
      const other = await actor(['ORDERER'], ['ORDER'], keyids, Permission.OperationsCreate);
      const mine = await service.create(orderer, dto, rid(), 'shared-key');
      const theirs = await service.create(other, dto, rid(), 'shared-key');
      expect(theirs.id).not.toBe(mine.id);
      expect((await service.create(other, dto, rid(), 'shared-key')).id).toBe(theirs.id);
      expect((await service.create(orderer, dto, rid(), 'shared-key')).id).toBe(mine.id);
    });

    it('fail a retry by a caller who may no longer order the key: key_not_permitted before any replay', async () => {
      const { keyids, orderer, dto } = await ordering();
      const first = await service.create(orderer, dto, rid(), 'grant-gone');
      const without: Actor = { ...orderer, keyGrants: new Map([[keyids[0], new Set<KeyGrant>()]]) };
      expect(await codeOf(service.create(without, dto, rid(), 'grant-gone'))).toBe('key_not_permitted');
      expect((await audit.list({ action: 'operation.replayed', operationId: first.id })).items).toHaveLength(0);
    });

    it.each(HOSTILE_IDEMPOTENCY_KEYS)('%s: 400 idempotency_key_invalid, nothing created, audited DENIED', async (_n, key) => {
      const { orderer, dto } = await ordering();
      const r = rid();
      expect(await codeOf(service.create(orderer, dto, r, key))).toBe('idempotency_key_invalid');
      expect((await operations.list({ ordererId: orderer.subjectId })).items).toHaveLength(0);
      const events = (await audit.list({ action: 'operation.create', requestId: r })).items;
      expect(events.map((e) => [e.outcome, e.errorCode])).toEqual([['DENIED', 'idempotency_key_invalid']]);
      expect(JSON.stringify(events[0]).includes(key.length > 0 ? key : '\u0000never')).toBe(false);
    });
  });
});

describe(`${AuditService.name} (medium: real PostgreSQL)`, () => {
  const pg = mediumDatabase('ks_api_medium_audit');

  it('records a refused query (validation) as DENIED validation_failed, through the one audited wrapper', async () => {
    const audit = new AuditRepository(pg.db);
    const service = new AuditService(audit, new Audited(audit));
    const principal: Principal = { kind: 'user', channel: 'bff', tid: MEDIUM_TENANT, oid: randomUUID(), sub: 's', azp: 'a', scopes: ['keyserver'], roles: [], expiresAt: 0 };
    const auditor = authorize(principal, { subjectId: randomUUID(), kind: 'USER', enabled: true, natures: ['AUDITOR'], keyGrants: {} }, Permission.AuditRead);
    const code = await service.list(auditor, { limit: 'many' }, 'req-bad-query').then(() => 'ok', (e: { code?: string }) => e.code);
    expect(code).toBe('validation_failed');
    const events = (await audit.list({ action: 'audit.query', requestId: 'req-bad-query' })).items;
    expect(events.map((e) => [e.outcome, e.errorCode])).toEqual([['DENIED', 'validation_failed']]);
  });

  // One vocabulary for page sizes: the operations list refuses these, so must the audit list.
  it.each([
    ['fail a hexadecimal limit', '0x10'],
    ['fail an exponent limit', '1e2'],
    ['fail a limit with spaces', ' 7 '],
    ['fail a limit in fullwidth digits', '\uff17'],
    ['fail a decimal limit', '5.0'],
  ])('%s: 400 validation_failed, as on the operations list', async (_n, limit) => {
    const audit = new AuditRepository(pg.db);
    const service = new AuditService(audit, new Audited(audit));
    const auditor = await mediumActor(pg.db, { natures: ['AUDITOR'] }, Permission.AuditRead);
    expect(await codeOf(service.list(auditor, { limit }, `req-${randomBytes(4).toString('hex')}`))).toBe('validation_failed');
  });

  it('ok finds an actor\'s events whatever the case of the object id asked for (GUIDs have no case)', async () => {
    const audit = new AuditRepository(pg.db);
    const service = new AuditService(audit, new Audited(audit));
    const oid = randomUUID();
    await audit.append({ action: 'operation.create', outcome: 'SUCCESS', actorTid: MEDIUM_TENANT, actorOid: oid, requestId: 'req-oid-case' });
    const auditor = await mediumActor(pg.db, { natures: ['AUDITOR'] }, Permission.AuditRead);
    for (const actor of [oid, oid.toUpperCase()]) {
      const page = await service.list(auditor, { actor }, 'req-oid-query');
      expect([actor, page.items.map((e) => e.requestId)]).toEqual([actor, ['req-oid-case']]);
    }
  });
});
