import { createHash } from 'node:crypto';
import { AuditRepository, createDb, type Db } from '@keyserver/data-access';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { call, ciToken, operationBody, signOrderBody, userToken } from './operations-support';

const ORDERS = 120;
const USAGES = 25;

describe('concurrency across two API processes on one database', () => {
  let p: RunningPlatform;
  let db: Db;
  let ci: string;
  let urls: string[];

  beforeAll(async () => {
    p = await startPlatform({ replicas: 2 });
    urls = p.apiReplicas.map((r) => r.url);
    expect(new Set(urls).size).toBe(2);
    db = createDb(p.databaseUrl, { poolSize: 2 });
    ci = await ciToken(p);
  });

  afterAll(async () => {
    await db?.close();
    await p?.stop();
  });

  it(`consumes exactly ${USAGES} usages when ${ORDERS} sign orders race on demo-fw-dev`, async () => {
    const op = await call<{ id: string }>(urls[0], ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', USAGES));
    expect(op.status).toBe(201);
    const answers = await Promise.all(
      Array.from({ length: ORDERS }, (_, i) =>
        call<{ code?: string; result?: string }>(urls[i % 2], ci, 'POST', '/api/signorders', signOrderBody(op.body.id, 'demo-fw-dev', createHash('sha256').update(`image ${i}`).digest('hex'))),
      ),
    );
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(USAGES);
    expect(statuses.filter((s) => s === 409)).toHaveLength(ORDERS - USAGES);
    expect(new Set(answers.filter((a) => a.status === 409).map((a) => a.body.code))).toEqual(new Set(['usage_exhausted']));

    const after = await call<{ state: string; keys: { usagesUsed: number }[] }>(urls[1], ci, 'GET', `/api/v1/operations/${op.body.id}`);
    expect(after.body).toMatchObject({ state: 'EXHAUSTED', keys: [{ usagesUsed: USAGES }] });

    const audit = new AuditRepository(db);
    const events = await audit.list({ operationId: op.body.id, action: 'signorder.create', limit: 500 });
    expect(events.items.filter((e) => e.outcome === 'SUCCESS')).toHaveLength(USAGES);
    expect(events.items.filter((e) => e.outcome === 'DENIED')).toHaveLength(ORDERS - USAGES);
    expect(await audit.verifyChain()).toMatchObject({ ok: true });
  });

  it('makes exactly one APPROVED transition when both approvers (and their retries) approve at once', async () => {
    const otto = await userToken(p, 'otto.orderer@demo.test');
    const ann = await userToken(p, 'ann.approver@demo.test');
    const arno = await userToken(p, 'arno.approver@demo.test');
    for (let round = 0; round < 3; round++) {
      const op = await call<{ id: string }>(urls[0], otto, 'POST', '/api/v1/operations', operationBody('demo-fw-prod', 1));
      expect(op.status).toBe(201);
      // Each approver sends three requests, spread over both processes.
      const calls = [ann, arno, ann, arno, ann, arno].map((token, i) =>
        call<{ state?: string; code?: string; keys?: { approvals: number }[] }>(urls[i % 2 === 0 ? round % 2 : 1 - (round % 2)], token, 'POST', `/api/v1/operations/${op.body.id}/approvals`),
      );
      const answers = await Promise.all(calls);
      const ok = answers.filter((a) => a.status === 201);
      expect(ok).toHaveLength(2);
      expect(ok.filter((a) => a.body.state === 'APPROVED')).toHaveLength(1);
      expect(answers.filter((a) => a.status === 409).map((a) => a.body.code)).toEqual(['already_approved', 'already_approved', 'already_approved', 'already_approved']);
      const final = await call<{ state: string; keys: { approvals: number }[] }>(urls[1], otto, 'GET', `/api/v1/operations/${op.body.id}`);
      expect(final.body).toMatchObject({ state: 'APPROVED', keys: [{ approvals: 2 }] });
      const events = await new AuditRepository(db).list({ operationId: op.body.id, action: 'operation.approve', outcome: 'SUCCESS', limit: 50 });
      expect(events.items).toHaveLength(2);
    }
  });
});
