import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { composeCommand, freePort, startPlatform, startService, waitForOk, type DemoTenant, type RunningPlatform, type Service } from '@keyserver/testing';
import { activeSession, apiAs, auditOf, bffUserToken, sql, type Api } from './admin-helpers';
import { ciToken, operationBody, signOrderBody, userToken } from './operations-support';

// ADR 0017 addendum (2026-12-07), docs/security.md §6a: an approver disabled by the administrators loses his
// influence on every open operation at once, through the real API, replicas' caches and all.

interface Op {
  id: string;
  state: string;
  keys: { keyid: string; approvals: number; approvalsMissing: number; approvedBy: { displayName: string }[] }[];
}

/** Another API process on the same database and HSM token (it reads the emulator's signing keys at boot). */
async function startReplica(p: RunningPlatform, extra: Service[]): Promise<string> {
  const port = await freePort();
  const url = `http://${new URL(p.env.urls.api).hostname}:${port}`;
  const metricsPort: Record<string, string> = p.apiEnv['METRICS_PORT'] ? { METRICS_PORT: String(await freePort()) } : {};
  const replica = startService(`keyserver-api-${extra.length + 2}`, composeCommand('keyserver-api'), { ...p.apiEnv, KEYSERVER_API_PORT: String(port), ...metricsPort });
  extra.push(replica);
  await waitForOk(`${url}/readyz`);
  return url;
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
  const extra: Service[] = [];
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
    for (const s of extra.reverse()) await s.stop();
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

  // ADR 0017 addendum (2026-12-13): approvals left behind by a change that withdrew nothing (a release before the
  // withdrawal, a hand edit of the database) are withdrawn by the reaper's reconciler, whose first pass runs at boot.
  it('fail a sign order after an approver was disabled outside the API: a replica\'s reconciler withdraws at boot, audited by approval.reconcile', async () => {
    const created = await otto<Op>('POST', '/api/v1/operations', { body: operationBody('demo-fw-prod', 3) });
    const id = created.body.id;
    expect((await ann<Op>('POST', `/api/v1/operations/${id}/approvals`)).status).toBe(201);
    expect((await arno<Op>('POST', `/api/v1/operations/${id}/approvals`)).body.state).toBe('APPROVED');
    const arnoId = (await arno<{ subjectId: string }>('GET', '/api/v1/me')).body.subjectId;
    await sql(p, `UPDATE "subject" SET "enabled" = false WHERE "id" = $1::uuid`, [arnoId]);

    await startReplica(p, extra);
    // Its first pass runs as it starts (not before /readyz): the operation is REQUESTED again within a moment.
    for (const deadline = Date.now() + 15_000; (await ann<Op>('GET', `/api/v1/operations/${id}`)).body.state !== 'REQUESTED'; ) {
      if (Date.now() > deadline) throw new Error('the reconciler did not withdraw the approval');
      await new Promise((r) => setTimeout(r, 100));
    }
    const refused = await ci<{ code: string }>('POST', '/api/signorders', { body: signOrderBody(id, 'demo-fw-prod', digest('reconciled')) });
    expect([refused.status, refused.body.code]).toEqual([409, 'operation_not_usable']);
    const withdrawn = await auditOf(aude, `action=operation.approval_withdrawn&operationId=${id}`);
    expect(withdrawn).toHaveLength(1);
    expect(withdrawn[0]).toMatchObject({ outcome: 'SUCCESS', operationId: id, keyid: 'demo-fw-prod', details: { approverId: arnoId, reason: 'approver_disabled', by: 'approval.reconcile', reopened: true } });
    await sql(p, `UPDATE "subject" SET "enabled" = true WHERE "id" = $1::uuid`, [arnoId]);
  });
});

// ADR 0040 addendum (2026-12-13): a member approver whose token proves that his account became a guest (Entra's user
// converted to a B2B guest, acct 1) loses his approvals on open operations when that token is first used, on any
// replica, and a member token issued before the conversion can no longer approve.
describe('approvals of an approver whose account became a guest', () => {
  const GIL = { username: 'gil.member@demo.test', password: 'demo-password', name: 'Gil Member', oid: 'a0000001-0000-4000-8000-0000000000b1', natures: [] as string[] };
  let p: RunningPlatform;
  let ada: Api;
  let aude: Api;
  let otto: Api;
  let ann: Api;
  let gil: Api;
  let ci: Api;
  const extra: Service[] = [];
  const digest = (s: string) => createHash('sha256').update(s).digest('hex');
  /** The same calls against another API process (a replica on the same database and HSM token). */
  const on = (url: string): RunningPlatform => ({ ...p, env: { ...p.env, urls: { ...p.env.urls, api: url } } });

  beforeAll(async () => {
    p = await startPlatform({ tenant: (t: DemoTenant) => void t.users.push({ ...GIL }) });
    ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    const alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    aude = apiAs(p, await bffUserToken(p, 'aude.auditor@demo.test'));
    otto = apiAs(p, await userToken(p, 'otto.orderer@demo.test'));
    ann = apiAs(p, await userToken(p, 'ann.approver@demo.test'));
    ci = apiAs(p, await ciToken(p));
    const session = await activeSession(ada, alan, 'register Gil as an approver', true);
    const r = await ada('POST', '/api/v1/subjects', {
      session,
      body: { kind: 'USER', tid: p.facts.tenantId, oid: GIL.oid, displayName: GIL.name, username: GIL.username, roles: ['demo-approvers'] },
    });
    if (r.status !== 201) throw new Error(`register Gil: ${r.status} ${r.text}`);
    gil = apiAs(p, await bffUserToken(p, GIL.username, GIL.password));
  });

  afterAll(async () => {
    for (const s of extra.reverse()) await s.stop();
    await p?.stop();
  });

  /** Entra converts Gil to a guest: the emulator restarts with his userType Guest (new signing keys, same port). */
  async function convertGilToGuest(): Promise<void> {
    await p.emulator.stop();
    const file = join(p.hsmDir, 'demo-tenant.json');
    const tenant = JSON.parse(readFileSync(file, 'utf8')) as { users: { username: string; userType?: string }[] };
    for (const u of tenant.users) if (u.username === GIL.username) u.userType = 'Guest';
    writeFileSync(file, JSON.stringify(tenant));
    const emulator = startService('entra-emulator', composeCommand('entra-emulator'), p.env.emulator);
    extra.push(emulator);
    await waitForOk(p.env.api['OPENID_CONNECT_METADATA_DOCUMENT']);
  }

  /** A second API process, started after the conversion: it reads the emulator's new signing keys at boot. */
  const secondReplica = (): Promise<string> => startReplica(p, extra);

  it('fail a sign order after an approver\'s token proves a guest account: 409 operation_not_usable, withdrawn once (approver_became_guest); his older member token approves nothing', async () => {
    const created = await otto<Op>('POST', '/api/v1/operations', { body: operationBody('demo-fw-prod', 3) });
    const other = await otto<Op>('POST', '/api/v1/operations', { body: operationBody('demo-fw-prod', 1) });
    const id = created.body.id;
    expect((await ann<Op>('POST', `/api/v1/operations/${id}/approvals`)).status).toBe(201);
    expect((await gil<Op>('POST', `/api/v1/operations/${id}/approvals`)).body.state).toBe('APPROVED');
    expect((await ci('POST', '/api/signorders', { body: signOrderBody(id, 'demo-fw-prod', digest('member')) })).status).toBe(201);
    const gilId = (await gil<{ subjectId: string }>('GET', '/api/v1/me')).body.subjectId;

    // The member token's iat must be older than the guest token's (seconds).
    await new Promise((r) => setTimeout(r, 1100));
    await convertGilToGuest();
    const replica = on(await secondReplica());
    const gilGuest = apiAs(replica, await bffUserToken(replica, GIL.username, GIL.password));
    // Several requests at once on the second replica: the guard records the guest once, and refuses him as before.
    const seen = await Promise.all(Array.from({ length: 4 }, () => gilGuest<{ account: string | null }>('GET', '/api/v1/me')));
    expect(seen.map((r) => [r.status, r.body.account])).toEqual(Array.from({ length: 4 }, () => [200, 'guest']));
    expect((await gilGuest<{ code: string }>('POST', `/api/v1/operations/${other.body.id}/approvals`)).body.code).toBe('member_account_required');

    // The first replica, with the CI token issued before the conversion: the operation is no longer usable.
    const refused = await ci<{ code: string }>('POST', '/api/signorders', { body: signOrderBody(id, 'demo-fw-prod', digest('guest')) });
    expect([refused.status, refused.body.code]).toEqual([409, 'operation_not_usable']);
    const view = await ann<Op>('GET', `/api/v1/operations/${id}`);
    expect([view.body.state, view.body.keys[0].approvals, view.body.keys[0].approvalsMissing, view.body.keys[0].approvedBy.map((a) => a.displayName)]).toEqual(['REQUESTED', 1, 1, ['Ann Approver']]);
    const withdrawn = await auditOf(aude, `action=operation.approval_withdrawn&operationId=${id}`);
    expect(withdrawn).toHaveLength(1);
    expect(withdrawn[0]).toMatchObject({ outcome: 'SUCCESS', operationId: id, keyid: 'demo-fw-prod', actorOid: GIL.oid, details: { approverId: gilId, reason: 'approver_became_guest', by: 'subject.account', reopened: true } });

    // Gil's member token from before the conversion is still valid at the first replica: it approves nothing.
    const stale = await gil<{ code: string }>('POST', `/api/v1/operations/${other.body.id}/approvals`);
    expect([stale.status, stale.body.code]).toEqual([403, 'not_an_approver']);
    expect((await ann<Op>('GET', `/api/v1/operations/${other.body.id}`)).body.keys[0].approvals).toBe(0);
    expect(await auditOf(aude, `action=operation.approval_withdrawn&operationId=${id}`)).toHaveLength(1);
  });
});
