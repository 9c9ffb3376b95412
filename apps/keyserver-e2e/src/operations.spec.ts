import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditRepository, createDb, SubjectRepository, type Db } from '@keyserver/data-access';
import { demoTenant, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { call, ciToken, operationBody, run, signOrderBody, userToken } from './operations-support';

interface Op {
  id: string;
  state: string;
  keys: { keyid: string; approvals: number; requiredApprovers: number; usagesUsed: number }[];
}
interface Page {
  items: Op[];
  nextCursor: string | null;
}

describe('operations approval workflow', () => {
  let p: RunningPlatform;
  let db: Db;
  let work: string;
  const t: Record<'otto' | 'ann' | 'arno' | 'ada' | 'aude' | 'ci', string> = { otto: '', ann: '', arno: '', ada: '', aude: '', ci: '' };
  const api = <T = Op>(who: keyof typeof t, method: string, path: string, body?: unknown) => call<T>(p.env.urls.api, t[who], method, path, body);
  const digest = (s: string) => createHash('sha256').update(s).digest('hex');
  const create = async (who: keyof typeof t, keyid: string, usages = 1, extra: Record<string, unknown> = {}): Promise<Op> => {
    const r = await api(who, 'POST', '/api/v1/operations', operationBody(keyid, usages, extra));
    expect(r.status).toBe(201);
    return r.body;
  };

  // The API caches access data and flushes it on PostgreSQL NOTIFY (ADR 0028): a role changed straight in the
  // database (not through the API) is seen once the notification has arrived.
  const untilNatures = async (who: keyof typeof t, nature: string, present: boolean) => {
    for (let i = 0; i < 100; i++) {
      const me = await api<{ natures?: string[] }>(who, 'GET', '/api/v1/me');
      if ((me.body.natures ?? []).includes(nature) === present) return;
      await new Promise((done) => setTimeout(done, 50));
    }
    throw new Error(`${who}: ${nature} never ${present ? 'appeared' : 'went away'}`);
  };

  beforeAll(async () => {
    p = await startPlatform();
    db = createDb(p.databaseUrl, { poolSize: 2 });
    work = mkdtempSync(join(tmpdir(), 'ks-ops-'));
    t.otto = await userToken(p, 'otto.orderer@demo.test');
    t.ann = await userToken(p, 'ann.approver@demo.test');
    t.arno = await userToken(p, 'arno.approver@demo.test');
    t.ada = await userToken(p, 'ada.admin@demo.test');
    t.aude = await userToken(p, 'aude.auditor@demo.test');
    t.ci = await ciToken(p);
  });

  afterAll(async () => {
    await db?.close();
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('fail an RSA signature in p1363 (an ECDSA encoding): 400 signature_format_not_supported_for_key, no usage spent; asn1 signs', async () => {
    const op = await create('otto', 'demo-fw-prod', 1);
    for (const who of ['ann', 'arno'] as const) expect((await api(who, 'POST', `/api/v1/operations/${op.id}/approvals`)).status).toBe(201);
    const p1363 = await api('ci', 'POST', '/api/signorders', { ...signOrderBody(op.id, 'demo-fw-prod', digest('rsa format')), signatureformat: 'p1363' });
    expect([p1363.status, (p1363.body as unknown as { code: string }).code]).toEqual([400, 'signature_format_not_supported_for_key']);
    expect((await api('otto', 'GET', `/api/v1/operations/${op.id}`)).body.keys[0].usagesUsed).toBe(0);
    const asn1 = await api('ci', 'POST', '/api/signorders', { ...signOrderBody(op.id, 'demo-fw-prod', digest('rsa format')), signatureformat: 'asn1' });
    expect(asn1.status).toBe(201);
  });

  it('needs two approvals on demo-fw-prod before the CI client can sign, and counts each approver once', async () => {
    const op = await create('otto', 'demo-fw-prod', 2);
    expect(op.state).toBe('REQUESTED');
    expect(op.keys[0]).toMatchObject({ keyid: 'demo-fw-prod', requiredApprovers: 2, approvals: 0 });

    const early = await api('ci', 'POST', '/api/signorders', signOrderBody(op.id, 'demo-fw-prod', digest('early')));
    expect(early.status).toBe(409);
    expect(early.body).toMatchObject({ code: 'operation_not_usable' });

    const waiting = await api<Page>('ann', 'GET', '/api/v1/operations?awaiting=me');
    expect(waiting.status).toBe(200);
    expect(waiting.body.items.map((o) => o.id)).toContain(op.id);

    const first = await api('ann', 'POST', `/api/v1/operations/${op.id}/approvals`);
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ state: 'REQUESTED', keys: [{ approvals: 1 }] });

    const twice = await api('ann', 'POST', `/api/v1/operations/${op.id}/approvals`);
    expect(twice.status).toBe(409);
    expect(twice.body).toMatchObject({ code: 'already_approved' });
    expect((await api('ann', 'GET', `/api/v1/operations/${op.id}`)).body.keys[0].approvals).toBe(1);
    expect((await api<Page>('ann', 'GET', '/api/v1/operations?awaiting=me')).body.items.map((o) => o.id)).not.toContain(op.id);
    expect((await api<Page>('arno', 'GET', '/api/v1/operations?awaiting=me')).body.items.map((o) => o.id)).toContain(op.id);

    const app = await api('ci', 'POST', `/api/v1/operations/${op.id}/approvals`);
    expect(app.status).toBe(403);
    expect(app.body).toMatchObject({ code: 'app_principal_forbidden' });

    const orderer = await api('otto', 'POST', `/api/v1/operations/${op.id}/approvals`);
    expect(orderer.status).toBe(403);
    expect(typeof (orderer.body as unknown as { code: string }).code).toBe('string');

    const second = await api('arno', 'POST', `/api/v1/operations/${op.id}/approvals`);
    expect(second.status).toBe(201);
    expect(second.body).toMatchObject({ state: 'APPROVED', keys: [{ approvals: 2 }] });

    const fw = 'production firmware 2.0.0';
    const signed = await api<{ result: string }>('ci', 'POST', '/api/signorders', signOrderBody(op.id, 'demo-fw-prod', digest(fw)));
    expect(signed.status).toBe(201);
    const keys = (await call<{ keyid: string; certificate: string }[]>(p.env.urls.api, t.ci, 'GET', '/api/keys')).body;
    writeFileSync(join(work, 'prod.pem'), keys.find((k) => k.keyid === 'demo-fw-prod')?.certificate ?? '');
    writeFileSync(join(work, 'fw.bin'), fw);
    writeFileSync(join(work, 'sig.bin'), Buffer.from(signed.body.result, 'hex'));
    run('openssl', ['x509', '-in', join(work, 'prod.pem'), '-pubkey', '-noout', '-out', join(work, 'pub.pem')]);
    expect(run('openssl', ['dgst', '-sha256', '-verify', join(work, 'pub.pem'), '-signature', join(work, 'sig.bin'), join(work, 'fw.bin')])).toContain('Verified OK');

    const late = await api('arno', 'POST', `/api/v1/operations/${op.id}/approvals`);
    expect(late.status).toBe(409);
    expect(late.body).toMatchObject({ code: 'already_approved' });
    const after = await api('ann', 'GET', `/api/v1/operations/${op.id}`);
    expect(after.body).toMatchObject({ state: 'APPROVED', keys: [{ approvals: 2, usagesUsed: 1 }] });
  });

  it('refuses the orderer approving his own operation whichever client he comes through', async () => {
    // Ann becomes an orderer too, so only the own-operation rule can stop her.
    const subjects = new SubjectRepository(db);
    const ann = demoTenant.users.find((u) => u.username === 'ann.approver@demo.test');
    const row = await subjects.findByTidOid(demoTenant.tenant.id, ann?.oid ?? '');
    if (!row) throw new Error('Ann is not seeded');
    await subjects.update(row.id, { roles: ['demo-approvers', 'demo-orderers'] });
    await untilNatures('ann', 'ORDERER', true);
    try {
      const op = await create('ann', 'demo-fw-prod', 1);
      const viaProvisioning = await api('ann', 'POST', `/api/v1/operations/${op.id}/approvals`);
      expect(viaProvisioning.status).toBe(403);
      expect(viaProvisioning.body).toMatchObject({ code: 'self_approval_forbidden' });
      const bff = await userToken(p, 'ann.approver@demo.test', 'keyclient');
      const viaKeyclient = await call<Op>(p.env.urls.api, bff, 'POST', `/api/v1/operations/${op.id}/approvals`);
      expect(viaKeyclient.status).toBe(403);
      expect(viaKeyclient.body).toMatchObject({ code: 'self_approval_forbidden' });
      const after = await api('ann', 'GET', `/api/v1/operations/${op.id}`);
      expect(after.body).toMatchObject({ state: 'REQUESTED', keys: [{ approvals: 0 }] });
      const events = await new AuditRepository(db).list({ limit: 50 });
      const denied = events.items.filter((e) => e.action === 'operation.approve' && e.operationId === op.id);
      expect(denied.map((e) => [e.outcome, e.errorCode])).toEqual([
        ['DENIED', 'self_approval_forbidden'],
        ['DENIED', 'self_approval_forbidden'],
      ]);
    } finally {
      await subjects.update(row.id, { roles: ['demo-approvers'] });
      await untilNatures('ann', 'ORDERER', false);
    }
  });

  it('lets an approver reject a requested operation, after which nothing can use or approve it', async () => {
    const op = await create('otto', 'demo-fw-prod', 1);
    const byOrderer = await api('otto', 'POST', `/api/v1/operations/${op.id}/rejection`, { reason: 'changed my mind' });
    expect(byOrderer.status).toBe(403);
    const extra = await api('ann', 'POST', `/api/v1/operations/${op.id}/rejection`, { reason: 'not this build', severity: 'high' });
    expect(extra.status).toBe(400);
    expect(extra.body).toMatchObject({ code: 'validation_failed' });
    const rejected = await api('ann', 'POST', `/api/v1/operations/${op.id}/rejection`, { reason: 'not this build' });
    expect(rejected.status).toBe(200);
    expect(rejected.body.state).toBe('REJECTED');
    const approve = await api('arno', 'POST', `/api/v1/operations/${op.id}/approvals`);
    expect(approve.status).toBe(409);
    expect(approve.body).toMatchObject({ code: 'operation_closed' });
    const again = await api('arno', 'POST', `/api/v1/operations/${op.id}/rejection`, { reason: 'me too' });
    expect(again.status).toBe(409);
    const sign = await api('ci', 'POST', '/api/signorders', signOrderBody(op.id, 'demo-fw-prod', digest('rejected')));
    expect(sign.status).toBe(409);
    expect(sign.body).toMatchObject({ code: 'operation_not_usable' });
  });

  it('lets the orderer or an administrator cancel, and nobody else', async () => {
    const mine = await create('otto', 'demo-fw-prod', 1);
    const byApprover = await api('ann', 'POST', `/api/v1/operations/${mine.id}/cancellation`);
    expect(byApprover.status).toBe(403);
    expect(byApprover.body).toMatchObject({ code: 'cancellation_not_allowed' });
    const cancelled = await api('otto', 'POST', `/api/v1/operations/${mine.id}/cancellation`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.state).toBe('CANCELLED');
    const twice = await api('otto', 'POST', `/api/v1/operations/${mine.id}/cancellation`);
    expect(twice.status).toBe(409);
    expect(twice.body).toMatchObject({ code: 'operation_closed' });
    const approve = await api('ann', 'POST', `/api/v1/operations/${mine.id}/approvals`);
    expect(approve.status).toBe(409);

    const other = await create('otto', 'demo-fw-prod', 1);
    const byAdmin = await api('ada', 'POST', `/api/v1/operations/${other.id}/cancellation`);
    expect(byAdmin.status).toBe(200);
    expect(byAdmin.body.state).toBe('CANCELLED');
  });

  it('reports an operation whose window has passed as EXPIRED and refuses approving it with 409', async () => {
    // The API refuses a back-dated start (key limits), so the window is moved into the past after creation.
    const created = await create('otto', 'demo-fw-prod', 1);
    await db.pool.query(`UPDATE "operation" SET "validFrom" = now() - interval '2 hours', "validTo" = now() - interval '1 hour' WHERE "id" = $1`, [created.id]);
    const op = (await api('otto', 'GET', `/api/v1/operations/${created.id}`)).body;
    expect(op.state).toBe('EXPIRED');
    expect((await api('ann', 'GET', `/api/v1/operations/${op.id}`)).body.state).toBe('EXPIRED');
    const approve = await api('ann', 'POST', `/api/v1/operations/${op.id}/approvals`);
    expect(approve.status).toBe(409);
    expect(approve.body).toMatchObject({ code: 'operation_expired' });
    const reject = await api('ann', 'POST', `/api/v1/operations/${op.id}/rejection`, { reason: 'too late anyway' });
    expect(reject.status).toBe(409);
    const expired = await api<Page>('ann', 'GET', '/api/v1/operations?state=EXPIRED');
    expect(expired.body.items.map((o) => o.id)).toContain(op.id);
    expect(expired.body.items.every((o) => o.state === 'EXPIRED')).toBe(true);
    const requested = await api<Page>('ann', 'GET', '/api/v1/operations?state=REQUESTED');
    expect(requested.body.items.map((o) => o.id)).not.toContain(op.id);
  });

  it('lists with filters and cursor pagination, showing callers only what they may see', async () => {
    const ciOp = (await api('ci', 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 1))).body;
    const ottoOps = [await create('otto', 'demo-ca-prod', 1), await create('otto', 'demo-ca-prod', 1), await create('otto', 'demo-ca-prod', 1)];

    const mine = await api<Page>('otto', 'GET', '/api/v1/operations?mine=true&limit=500');
    expect(mine.status).toBe(200);
    expect(mine.body.items.map((o) => o.id)).toEqual(expect.arrayContaining(ottoOps.map((o) => o.id)));
    expect(mine.body.items.map((o) => o.id)).not.toContain(ciOp.id);

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r: { status: number; body: Page } = await api<Page>('otto', 'GET', `/api/v1/operations?key=demo-ca-prod&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(r.status).toBe(200);
      expect(r.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...r.body.items.map((o) => o.id));
      cursor = r.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ottoOps].reverse().map((o) => o.id));

    const auditor = await api<Page>('aude', 'GET', '/api/v1/operations?limit=500');
    expect(auditor.body.items.map((o) => o.id)).toEqual(expect.arrayContaining([ciOp.id, ...ottoOps.map((o) => o.id)]));
    // Otto neither ordered nor approves the CI client's operation: it does not exist for him.
    const foreign = await api('otto', 'GET', `/api/v1/operations/${ciOp.id}`);
    expect(foreign.status).toBe(404);
    expect(foreign.body).toMatchObject({ code: 'operation_not_found' });
  });

  describe('bad input writes nothing but the audit entry', () => {
    let opId = '';
    const good = () => signOrderBody(opId, 'demo-fw-dev', digest('bad input'));
    beforeAll(async () => {
      opId = (await api('ci', 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 3))).body.id;
    });
    afterEach(async () => {
      expect((await api('ci', 'GET', `/api/v1/operations/${opId}`)).body.keys[0].usagesUsed).toBe(0);
    });

    it.each([
      ['fail unknown field', 400, 'validation_failed', () => ({ ...good(), priority: 'high' })],
      ['fail bad hex', 400, 'invalid_input_encoding', () => ({ ...good(), inputdata: 'zz'.repeat(32) })],
      ['fail odd-length hex', 400, 'invalid_input_encoding', () => ({ ...good(), inputdata: 'abc' })],
      ['fail bad base64', 400, 'invalid_input_encoding', () => ({ ...good(), inputformat: 'base64', inputdata: '!!!notbase64!!!' })],
      ['fail digest too short for the key', 400, 'digest_length_mismatch', () => ({ ...good(), inputdata: 'ab'.repeat(20) })],
      ['fail digest too long for the key', 400, 'digest_length_mismatch', () => ({ ...good(), inputdata: 'ab'.repeat(48) })],
      ['fail non-uuid operation', 400, 'validation_failed', () => ({ ...good(), operationid: '42' })],
      // A form the ECDSA key cannot produce is refused before a usage is reserved (checkDigestOrder).
      ['fail pss padding with the ECDSA key', 400, 'padding_not_supported_for_key', () => ({ ...good(), inputpadding: 'pss' })],
      ['fail a DigestInfo with the ECDSA key', 400, 'padding_not_supported_for_key', () => ({ ...good(), inputpadding: 'digestinfo', inputdata: `3031300d060960864801650304020105000420${digest('bad input')}` })],
      ['fail the padding in upper case', 400, 'validation_failed', () => ({ ...good(), inputpadding: 'NONE' })],
      ['fail the signature format in upper case', 400, 'validation_failed', () => ({ ...good(), signatureformat: 'P1363' })],
    ])('%s: refuses the sign order with %i %s', async (_n, status, code, body) => {
      const r = await api('ci', 'POST', '/api/signorders', body());
      expect(r.status).toBe(status);
      expect(r.body).toMatchObject({ code });
    });

    it.each([
      ['fail __proto__ key', (b: string) => b.replace(/^\{/, '{"__proto__":{"polluted":true},')],
      ['fail nested constructor key', (b: string) => b.replace(/^\{/, '{"x":{"constructor":{"prototype":{"polluted":true}}},')],
    ])('%s: refuses prototype-pollution keys with 400 validation_failed', async (_n, edit) => {
      const r = await api('ci', 'POST', '/api/signorders', edit(JSON.stringify(good())));
      expect(r.status).toBe(400);
      expect(r.body).toMatchObject({ code: 'validation_failed' });
      expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    });

    it('refuses a JSON body above MAX_BODY_BYTES with 413 payload_too_large', async () => {
      const r = await api('ci', 'POST', '/api/signorders', { ...good(), description: 'x'.repeat(200_000) });
      expect(r.status).toBe(413);
      expect(r.body).toMatchObject({ code: 'payload_too_large' });
    });

    it('refuses a non-JSON body with 415 unsupported_media_type', async () => {
      const r = await call(p.env.urls.api, t.ci, 'POST', '/api/signorders', 'operationid=1', { 'content-type': 'application/x-www-form-urlencoded' });
      expect(r.status).toBe(415);
      expect(r.body).toMatchObject({ code: 'unsupported_media_type' });
    });

    it('refuses a body on an approval or a cancellation with 400 validation_failed and changes nothing', async () => {
      const op = await create('otto', 'demo-fw-prod', 1);
      const approve = await api('ann', 'POST', `/api/v1/operations/${op.id}/approvals`, { approve: 'all' });
      expect(approve.status).toBe(400);
      expect(approve.body).toMatchObject({ code: 'validation_failed' });
      const cancel = await api('otto', 'POST', `/api/v1/operations/${op.id}/cancellation`, { force: true });
      expect(cancel.status).toBe(400);
      expect(cancel.body).toMatchObject({ code: 'validation_failed' });
      expect((await api('ann', 'GET', `/api/v1/operations/${op.id}`)).body).toMatchObject({ state: 'REQUESTED', keys: [{ approvals: 0 }] });
    });

    it('audits the refused sign orders (decoding and digest checks) as DENIED with their codes', async () => {
      const denied = await new AuditRepository(db).list({ action: 'signorder.create', operationId: opId, limit: 100 });
      expect(denied.items.every((e) => e.outcome === 'DENIED')).toBe(true);
      expect(new Set(denied.items.map((e) => e.errorCode))).toEqual(new Set(['invalid_input_encoding', 'digest_length_mismatch', 'padding_not_supported_for_key']));
    });
  });

  it.each([
    ['fail limit 0', '?limit=0'],
    ['fail limit not a number', '?limit=ten'],
    ['fail cursor not a uuid', '?cursor=abc'],
    ['fail unknown state', '?state=DONE'],
    ['fail unknown filter', '?colour=red'],
    ['fail awaiting someone else', '?awaiting=ann'],
  ])('%s: refuses the list query with 400 validation_failed', async (_name, query) => {
    const r = await api('ann', 'GET', `/api/v1/operations${query}`);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ code: 'validation_failed' });
  });

  it.each([
    ['GET', ''],
    ['POST', '/approvals'],
    ['POST', '/rejection'],
    ['POST', '/cancellation'],
  ])('answers %s on a non-UUID or unknown operation id%s with 404 operation_not_found', async (method, suffix) => {
    const who = suffix === '/cancellation' ? 'otto' : 'ann';
    const body = suffix === '/rejection' ? { reason: 'no such thing' } : undefined;
    for (const id of ['not-a-uuid', "1'%20OR%20'1'='1", '00000000-0000-4000-8000-000000000000']) {
      const r = await api(who, method, `/api/v1/operations/${id}${suffix}`, body);
      expect(r.status).toBe(404);
      expect(r.body).toMatchObject({ code: 'operation_not_found' });
    }
  });
});
