import { createHash } from 'node:crypto';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, auditOf, bffUserToken, type Api } from './admin-helpers';
import { ciToken, operationBody, signOrderBody, userToken } from './operations-support';

// ADR 0017 addendum (2026-12-07), docs/security.md §6a: an approver disabled by the administrators loses his
// influence on every open operation at once, through the real API, replicas' caches and all.

interface Op {
  id: string;
  state: string;
  keys: { keyid: string; approvals: number; approvalsMissing: number; approvedBy: { displayName: string }[] }[];
}

describe('approvals of an approver disabled since', () => {
  let p: RunningPlatform;
  let ada: Api;
  let alan: Api;
  let aude: Api;
  let otto: Api;
  let ann: Api;
  let arno: Api;
  let ci: Api;
  const digest = (s: string) => createHash('sha256').update(s).digest('hex');

  beforeAll(async () => {
    p = await startPlatform();
    ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    aude = apiAs(p, await bffUserToken(p, 'aude.auditor@demo.test'));
    otto = apiAs(p, await userToken(p, 'otto.orderer@demo.test'));
    ann = apiAs(p, await userToken(p, 'ann.approver@demo.test'));
    arno = apiAs(p, await userToken(p, 'arno.approver@demo.test'));
    ci = apiAs(p, await ciToken(p));
  });

  afterAll(async () => {
    await p?.stop();
  });

  it('fail a sign order after one of the two approvers is disabled: 409 operation_not_usable, the operation needs approval again; re-enabling restores nothing', async () => {
    const created = await otto<Op>('POST', '/api/v1/operations', { body: operationBody('demo-fw-prod', 3) });
    expect(created.status).toBe(201);
    const id = created.body.id;
    expect((await ann<Op>('POST', `/api/v1/operations/${id}/approvals`)).status).toBe(201);
    expect((await arno<Op>('POST', `/api/v1/operations/${id}/approvals`)).body.state).toBe('APPROVED');
    expect((await ci('POST', '/api/signorders', { body: signOrderBody(id, 'demo-fw-prod', digest('before')) })).status).toBe(201);

    const subjects = await ada<{ items: { id: string; displayName: string }[] }>('GET', '/api/v1/subjects');
    const annId = subjects.body.items.find((s) => s.displayName === 'Ann Approver')?.id ?? '';
    const session = await activeSession(ada, alan, 'Ann\'s account is compromised', true);
    const disabled = await ada<{ enabled: boolean }>('PATCH', `/api/v1/subjects/${annId}`, { body: { enabled: false }, session });
    expect([disabled.status, disabled.body.enabled]).toEqual([200, false]);

    const refused = await ci<{ code: string }>('POST', '/api/signorders', { body: signOrderBody(id, 'demo-fw-prod', digest('after')) });
    expect([refused.status, refused.body.code]).toEqual([409, 'operation_not_usable']);
    // What the console shows: REQUESTED, one approval missing, Ann no longer among the approvers.
    const seen = await arno<Op>('GET', `/api/v1/operations/${id}`);
    expect([seen.body.state, seen.body.keys[0].approvals, seen.body.keys[0].approvalsMissing, seen.body.keys[0].approvedBy.map((a) => a.displayName)]).toEqual(['REQUESTED', 1, 1, ['Arno Approver']]);
    const [withdrawn] = await auditOf(aude, `action=operation.approval_withdrawn&operationId=${id}`);
    expect(withdrawn).toMatchObject({ outcome: 'SUCCESS', operationId: id, keyid: 'demo-fw-prod', adminSessionId: session, details: { approverId: annId, reason: 'approver_disabled', reopened: true } });

    // Enabled again: the withdrawn approval stays withdrawn; Ann approves anew, and the operation is usable again.
    expect((await ada('PATCH', `/api/v1/subjects/${annId}`, { body: { enabled: true }, session })).status).toBe(200);
    expect((await ci<{ code: string }>('POST', '/api/signorders', { body: signOrderBody(id, 'demo-fw-prod', digest('re-enabled')) })).body.code).toBe('operation_not_usable');
    const again = await ann<Op>('POST', `/api/v1/operations/${id}/approvals`);
    expect([again.status, again.body.state]).toEqual([201, 'APPROVED']);
    expect((await ci('POST', '/api/signorders', { body: signOrderBody(id, 'demo-fw-prod', digest('approved anew')) })).status).toBe(201);
  });
});
