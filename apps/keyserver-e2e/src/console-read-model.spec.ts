import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, auditOf, bffUserToken } from './admin-helpers';
import { call, ciToken, operationBody, userToken } from './operations-support';

interface OpKey {
  keyid: string;
  type: string;
  algorithm: string;
  hash: string;
  environment: string;
  product: string | null;
  requiredApprovers: number;
  approvals: number;
  approvalsMissing: number;
  approvedBy: { subjectId: string; displayName: string; approvedAt: string }[];
  limits: { maxWindowSeconds: number } | null;
}
interface Op {
  id: string;
  state: string;
  provenance: Record<string, string> | null;
  rejectionReason: string | null;
  keys: OpKey[];
}

/** Issue 16: what an approver sees of an operation ("what exactly am I approving?"). */
describe('operation read model for approvers', () => {
  let p: RunningPlatform;
  const t: Record<'otto' | 'ann' | 'arno' | 'aude' | 'ci', string> = { otto: '', ann: '', arno: '', aude: '', ci: '' };
  const api = <T = Op>(who: keyof typeof t, method: string, path: string, body?: unknown) => call<T>(p.env.urls.api, t[who], method, path, body);
  const provenance = { project: 'demo/gadget-firmware', pipeline: 'release', run: '20261205.3', commit: '0a1b2c3d4e5f60718293a4b5c6d7e8f901234567', url: 'https://ci.example.test/demo/_build/results?buildId=42' };

  beforeAll(async () => {
    p = await startPlatform();
    t.otto = await userToken(p, 'otto.orderer@demo.test');
    t.ann = await userToken(p, 'ann.approver@demo.test');
    t.arno = await userToken(p, 'arno.approver@demo.test');
    t.aude = await userToken(p, 'aude.auditor@demo.test');
    t.ci = await ciToken(p);
  }, 180_000);

  afterAll(async () => {
    await p?.stop();
  });

  it('shows each key with its environment, algorithm and product, who approved it when, and how many approvals are missing', async () => {
    const created = await api('otto', 'POST', '/api/v1/operations', operationBody('demo-fw-prod', 2));
    expect(created.status).toBe(201);
    expect(created.body.provenance).toBeNull();
    expect(created.body.rejectionReason).toBeNull();
    expect(created.body.keys).toEqual([
      expect.objectContaining({ keyid: 'demo-fw-prod', type: 'FW', algorithm: 'RSA_3072', hash: 'SHA256', environment: 'production', product: 'demo-gadget', requiredApprovers: 2, approvals: 0, approvalsMissing: 2, approvedBy: [] }),
    ]);
    expect(created.body.keys[0].limits?.maxWindowSeconds).toBeGreaterThan(0);

    const before = Date.now();
    expect((await api('ann', 'POST', `/api/v1/operations/${created.body.id}/approvals`)).status).toBe(201);
    const seen = await api('arno', 'GET', `/api/v1/operations/${created.body.id}`);
    expect(seen.status).toBe(200);
    const [key] = seen.body.keys;
    expect(key).toMatchObject({ approvals: 1, approvalsMissing: 1, approvedBy: [{ displayName: 'Ann Approver' }] });
    expect(Date.parse(key.approvedBy[0].approvedAt)).toBeGreaterThanOrEqual(before - 5_000);
    expect(key.approvedBy[0].approvedAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);

    const done = await api('arno', 'POST', `/api/v1/operations/${created.body.id}/approvals`);
    expect(done.body).toMatchObject({ state: 'APPROVED', keys: [{ approvalsMissing: 0 }] });
    expect(done.body.keys[0].approvedBy.map((a) => a.displayName)).toEqual(['Ann Approver', 'Arno Approver']);
  });

  it('calls a key without approvers a development key', async () => {
    const created = await api('otto', 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 1));
    expect(created.status).toBe(201);
    expect(created.body.keys[0]).toMatchObject({ keyid: 'demo-fw-dev', environment: 'development', requiredApprovers: 0, approvalsMissing: 0 });
  });

  it('keeps the provenance a CI run declares, shows it to approvers and audits it with the order', async () => {
    const created = await api('ci', 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 1, { provenance }));
    expect(created.status).toBe(201);
    expect(created.body.provenance).toEqual(provenance);
    expect((await api('aude', 'GET', `/api/v1/operations/${created.body.id}`)).body.provenance).toEqual(provenance);
    const audit = await auditOf(apiAs(p, t.aude), `operationId=${created.body.id}`);
    expect(audit.find((r) => r.action === 'operation.create')?.details).toMatchObject({ provenance });
  });

  it('rejects with a reason the approvers can read', async () => {
    const created = await api('otto', 'POST', '/api/v1/operations', operationBody('demo-fw-prod', 1));
    const rejected = await api('ann', 'POST', `/api/v1/operations/${created.body.id}/rejection`, { reason: 'not the release we planned' });
    expect(rejected.body).toMatchObject({ state: 'REJECTED', rejectionReason: 'not the release we planned' });
  });

  it.each([
    ['fail unknown member', { ...provenance, branch: 'main' }],
    ['fail commit not hex', { commit: 'main' }],
    ['fail commit too short', { commit: 'abc12' }],
    ['fail url not https', { url: 'javascript:alert(1)' }],
    ['fail url plain http', { url: 'http://ci.example.test/run/1' }],
    ['fail control character', { project: 'demo\u0007gadget' }],
    ['fail C1 control character', { run: 'run\u0085' }],
    ['fail empty text', { pipeline: '   ' }],
    ['fail huge text', { project: 'x'.repeat(201) }],
    ['fail not an object', 'demo/gadget'],
    ['fail number', { run: 42 }],
  ])('%s: 400 validation_failed, nothing stored', async (_name, bad) => {
    const description = `bad provenance ${_name} ${Date.now()}`;
    const r = await api<{ code: string }>('ci', 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 1, { provenance: bad, description }));
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('validation_failed');
    const mine = await api<{ items: { description: string }[] }>('aude', 'GET', '/api/v1/operations?limit=500');
    expect(mine.body.items.map((o) => o.description)).not.toContain(description);
  });

  it('leaves the orderer out of the approvers', async () => {
    const created = await api('otto', 'POST', '/api/v1/operations', operationBody('demo-fw-prod', 1));
    expect((await api('otto', 'POST', `/api/v1/operations/${created.body.id}/approvals`)).status).toBe(403);
    expect((await api('otto', 'GET', `/api/v1/operations/${created.body.id}`)).body.keys[0].approvedBy).toEqual([]);
  });

  describe('administrative sessions list', () => {
    it('lists closed sessions only with ended=recent, the open ones first, and refuses unknown parameters', async () => {
      const ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
      const alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
      const closedId = await activeSession(ada, alan, 'e2e session that gets closed');
      expect((await ada('POST', `/api/v1/admin-sessions/${closedId}/closure`)).status).toBe(200);
      const openId = await activeSession(ada, alan, 'e2e session that stays open');

      const open = await ada<{ items: { id: string; state: string }[] }>('GET', '/api/v1/admin-sessions');
      expect(open.body.items.map((s) => s.id)).toContain(openId);
      expect(open.body.items.map((s) => s.id)).not.toContain(closedId);

      const all = await ada<{ items: { id: string; state: string; closedAt: string | null }[] }>('GET', '/api/v1/admin-sessions?ended=recent');
      expect(all.status).toBe(200);
      const ids = all.body.items.map((s) => s.id);
      expect(ids.indexOf(openId)).toBeGreaterThanOrEqual(0);
      expect(ids.indexOf(closedId)).toBeGreaterThan(ids.indexOf(openId));
      expect(all.body.items.find((s) => s.id === closedId)).toMatchObject({ state: 'CLOSED', closedAt: expect.stringMatching(/^\d{4}-/) });

      for (const bad of ['?ended=all', '?ended=RECENT', '?state=CLOSED']) {
        const r = await ada<{ code: string }>('GET', `/api/v1/admin-sessions${bad}`);
        expect([bad, r.status, r.body.code]).toEqual([bad, 400, 'validation_failed']);
      }
    });
  });
});
