import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientCredentialsToken, demoTenant, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, auditOf, bffUserToken, sql, type Api } from './admin-helpers';

interface SessionView {
  id: string;
  state: string;
  authorizationsRequired: number;
  authorizedBy: { subjectId: string; displayName: string }[];
}
interface Problem {
  code: string;
}
interface KeyView {
  keyid: string;
  type: string;
  state: string;
  requiredApprovers: number;
  certificate: string;
  chain: string[];
}

describe('administrative sessions (four-eyes)', () => {
  let p: RunningPlatform;
  let ada: Api;
  let alan: Api;
  let ann: Api;
  let ci: Api;
  let work: string;
  let ottoId: string;

  beforeAll(async () => {
    p = await startPlatform();
    work = mkdtempSync(join(tmpdir(), 'ks-admin-'));
    ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    ann = apiAs(p, await bffUserToken(p, 'ann.approver@demo.test'));
    const demoCi = demoTenant.ciClients.find((c) => c.name === 'demo-ci');
    if (!demoCi?.clientSecret) throw new Error('demo-ci missing');
    ci = apiAs(p, await clientCredentialsToken(p.facts, demoCi.clientId, demoCi.clientSecret));
    const subjects = await ada<{ items: { id: string; displayName: string }[] }>('GET', '/api/v1/subjects');
    ottoId = subjects.body.items.find((s) => s.displayName === 'Otto Orderer')?.id ?? '';
    expect(ottoId).not.toBe('');
  });

  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('refuses a subject change or a key creation by one administrator alone with admin_session_required', async () => {
    const change = await ada<Problem>('PATCH', `/api/v1/subjects/${ottoId}`, { body: { displayName: 'Otto Renamed' } });
    expect(change.status).toBe(403);
    expect(change.body.code).toBe('admin_session_required');
    const key = await ada<Problem>('POST', '/api/v1/keys', {
      body: { keyid: 'e2e-lonely', type: 'FW', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 30, commonName: 'Lonely' },
    });
    expect(key.status).toBe(403);
    expect(key.body.code).toBe('admin_session_required');
    expect((await ada('GET', '/api/v1/keys/e2e-lonely')).status).toBe(404);
    expect((await ada<{ displayName: string }>('GET', `/api/v1/subjects/${ottoId}`)).body.displayName).toBe('Otto Orderer');
    const refused = await auditOf(ada, 'action=subject.update&outcome=DENIED');
    expect(refused[0]).toMatchObject({ errorCode: 'admin_session_required', adminSessionId: null });
  });

  it('keeps a session PENDING until a second administrator authorizes it; the creator counts once', async () => {
    const open = await ada<SessionView>('POST', '/api/v1/admin-sessions', { body: { description: 'rename Otto' } });
    expect(open.status).toBe(201);
    expect(open.body).toMatchObject({ state: 'PENDING', authorizationsRequired: 2 });
    expect(open.body.authorizedBy.map((a) => a.displayName)).toEqual(['Ada Admin']);
    const id = open.body.id;

    const pendingUse = await ada<Problem>('PATCH', `/api/v1/subjects/${ottoId}`, { body: { displayName: 'Otto Renamed' }, session: id });
    expect(pendingUse.body.code).toBe('admin_session_required');

    const twice = await ada<Problem>('POST', `/api/v1/admin-sessions/${id}/authorizations`);
    expect(twice.status).toBe(409);
    expect(twice.body.code).toBe('already_authorized');

    const approver = await ann<Problem>('POST', `/api/v1/admin-sessions/${id}/authorizations`);
    expect(approver.status).toBe(403);
    expect(approver.body.code).toBe('permission_denied');
    expect((await ada<SessionView>('GET', `/api/v1/admin-sessions/${id}`)).body.state).toBe('PENDING');

    const second = await alan<SessionView>('POST', `/api/v1/admin-sessions/${id}/authorizations`);
    expect(second.status).toBe(200);
    expect(second.body.state).toBe('ACTIVE');
    expect(second.body.authorizedBy.map((a) => a.displayName)).toEqual(['Ada Admin', 'Alan Admin']);

    const listed = await alan<{ items: SessionView[] }>('GET', '/api/v1/admin-sessions');
    expect(listed.body.items.find((s) => s.id === id)?.state).toBe('ACTIVE');
  });

  it('activates a session exactly once when the second administrator authorizes concurrently', async () => {
    const open = await ada<SessionView>('POST', '/api/v1/admin-sessions', { body: { description: 'race for activation' } });
    const id = open.body.id;
    const answers = await Promise.all(Array.from({ length: 6 }, () => alan<SessionView & Problem>('POST', `/api/v1/admin-sessions/${id}/authorizations`)));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
    expect(answers.filter((a) => a.status === 409)).toHaveLength(5);
    const session = await ada<SessionView>('GET', `/api/v1/admin-sessions/${id}`);
    expect(session.body.state).toBe('ACTIVE');
    expect(session.body.authorizedBy).toHaveLength(2);
    const entries = await auditOf(ada, `adminSessionId=${id}`);
    expect(entries.filter((e) => e.action === 'admin_session.activated')).toHaveLength(1);
    expect(entries.filter((e) => e.action === 'admin_session.authorize' && e.outcome === 'SUCCESS')).toHaveLength(1);
    expect(entries.filter((e) => e.action === 'admin_session.authorize' && e.outcome === 'DENIED')).toHaveLength(5);
  });

  it('applies changes inside an ACTIVE session and audits them with the session id', async () => {
    const id = await activeSession(ada, alan, 'rename Otto, tighten demo-fw-dev');
    const renamed = await ada<{ displayName: string }>('PATCH', `/api/v1/subjects/${ottoId}`, { body: { displayName: 'Otto Renamed' }, session: id });
    expect(renamed.status).toBe(200);
    expect(renamed.body.displayName).toBe('Otto Renamed');
    const tightened = await alan<KeyView>('PATCH', '/api/v1/keys/demo-fw-dev', { body: { requiredApprovers: 1 }, session: id });
    expect(tightened.status).toBe(200);
    expect(tightened.body.requiredApprovers).toBe(1);

    const entries = await auditOf(ada, `adminSessionId=${id}&outcome=SUCCESS`);
    const actions = entries.map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['admin_session.create', 'admin_session.authorize', 'admin_session.activated', 'subject.update', 'key.update']));
    expect(entries.every((e) => e.adminSessionId === id)).toBe(true);
    expect(entries.find((e) => e.action === 'key.update')).toMatchObject({ keyid: 'demo-fw-dev', details: { requiredApprovers: { before: 0, after: 1 } } });
  });

  it('fail lowering a key\'s required approvers in a session without powers: 403 admin_session_scope, audited, unchanged; ok with powers', async () => {
    const plain = await activeSession(ada, alan, 'add e2e-four-eyes');
    const made = await ada('POST', '/api/v1/keys', { session: plain, body: { keyid: 'e2e-four-eyes', type: 'FW', algorithm: 'EC_P256', requiredApprovers: 2, validityDays: 30, commonName: 'Four eyes' } });
    expect(made.status).toBe(201);
    const lowered = await alan<Problem>('PATCH', '/api/v1/keys/e2e-four-eyes', { body: { requiredApprovers: 0 }, session: plain });
    expect([lowered.status, lowered.body.code]).toEqual([403, 'admin_session_scope']);
    expect((await alan<KeyView>('GET', '/api/v1/keys/e2e-four-eyes')).body.requiredApprovers).toBe(2);
    const denied = await auditOf(ada, `adminSessionId=${plain}&outcome=DENIED`);
    expect(denied.map((e) => [e.action, e.errorCode, e.keyid])).toEqual([['key.update', 'admin_session_scope', 'e2e-four-eyes']]);
    const raised = await alan<KeyView>('PATCH', '/api/v1/keys/e2e-four-eyes', { body: { requiredApprovers: 3 }, session: plain });
    expect([raised.status, raised.body.requiredApprovers]).toEqual([200, 3]);
    const powers = await activeSession(ada, alan, 'make e2e-four-eyes a development key', true);
    const loosened = await ada<KeyView>('PATCH', '/api/v1/keys/e2e-four-eyes', { body: { requiredApprovers: 0 }, session: powers });
    expect([loosened.status, loosened.body.requiredApprovers]).toEqual([200, 0]);
  });

  it('refuses changes in a closed or expired session', async () => {
    const closedId = await activeSession(ada, alan, 'to be closed');
    const closed = await alan<SessionView>('POST', `/api/v1/admin-sessions/${closedId}/closure`);
    expect(closed.status).toBe(200);
    expect(closed.body.state).toBe('CLOSED');
    const again = await alan<Problem>('POST', `/api/v1/admin-sessions/${closedId}/closure`);
    expect([again.status, again.body.code]).toEqual([409, 'admin_session_not_active']);
    const useClosed = await ada<Problem>('PATCH', `/api/v1/subjects/${ottoId}`, { body: { displayName: 'Otto Closed' }, session: closedId });
    expect([useClosed.status, useClosed.body.code]).toEqual([403, 'admin_session_required']);

    const expiredId = await activeSession(ada, alan, 'to be expired');
    // Jump past ADMIN_SESSION_MINUTES instead of waiting for it.
    await sql(p, `UPDATE "admin_session" SET "expiresAt" = now() - interval '1 second' WHERE "id" = $1`, [expiredId]);
    const useExpired = await ada<Problem>('PATCH', `/api/v1/subjects/${ottoId}`, { body: { displayName: 'Otto Expired' }, session: expiredId });
    expect([useExpired.status, useExpired.body.code]).toEqual([403, 'admin_session_required']);
    expect((await ada<SessionView>('GET', `/api/v1/admin-sessions/${expiredId}`)).body.state).toBe('EXPIRED');
    expect((await ada<{ displayName: string }>('GET', `/api/v1/subjects/${ottoId}`)).body.displayName).toBe('Otto Renamed');
  });

  it('refuses app principals on every administrative route with app_principal_forbidden', async () => {
    const id = await activeSession(ada, alan, 'app principals try');
    const calls: [string, string, unknown][] = [
      ['POST', '/api/v1/admin-sessions', { description: 'a pipeline wants in' }],
      ['GET', '/api/v1/admin-sessions', undefined],
      ['POST', `/api/v1/admin-sessions/${id}/authorizations`, undefined],
      ['PATCH', `/api/v1/subjects/${ottoId}`, { displayName: 'CI was here' }],
      ['POST', '/api/v1/roles', { name: 'ci-role', natures: [] }],
      ['POST', '/api/v1/keys', { keyid: 'ci-key', type: 'FW', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 1, commonName: 'CI' }],
    ];
    for (const [method, path, body] of calls) {
      const r = await ci<Problem>(method, path, { body, session: id });
      expect([method, path, r.status, r.body.code]).toEqual([method, path, 403, 'app_principal_forbidden']);
    }
  });

  it('creates CA and FW keys in the HSM whose certificate chains openssl verifies strictly', async () => {
    const id = await activeSession(ada, alan, 'new product keys');
    const root = new X509Certificate((await ada<KeyView>('GET', '/api/v1/keys/demo-root')).body.certificate);
    writeFileSync(join(work, 'root.pem'), root.toString());
    for (const spec of [
      { keyid: 'e2e-ca-1', type: 'CA', algorithm: 'EC_P256', commonName: 'E2E Device CA' },
      { keyid: 'e2e-fw-1', type: 'FW', algorithm: 'RSA_2048', commonName: 'E2E Firmware', product: 'e2e-gadget' },
    ]) {
      const r = await ada<KeyView>('POST', '/api/v1/keys', {
        session: id,
        body: { ...spec, requiredApprovers: 1, validityDays: 365, organization: 'Demo Devices Ltd', country: 'DK' },
      });
      expect(r.status).toBe(201);
      expect(r.body).toMatchObject({ keyid: spec.keyid, type: spec.type, state: 'ACTIVE', requiredApprovers: 1 });
      expect(r.body.chain).toHaveLength(2);
      expect(new X509Certificate(r.body.chain[1]).fingerprint256).toBe(root.fingerprint256);
      const leaf = join(work, `${spec.keyid}.pem`);
      writeFileSync(leaf, r.body.certificate);
      const out = execFileSync('openssl', ['verify', '-x509_strict', '-CAfile', join(work, 'root.pem'), leaf]).toString();
      expect(out.trim()).toBe(`${leaf}: OK`);
      const cert = new X509Certificate(r.body.certificate);
      expect(cert.ca).toBe(spec.type === 'CA');
      expect(cert.checkIssued(root)).toBe(true);
    }
    const created = await auditOf(ada, `action=key.create&adminSessionId=${id}`);
    expect(created.map((e) => e.keyid).sort()).toEqual(['e2e-ca-1', 'e2e-fw-1']);
    expect(created.every((e) => e.details['issuer'] === 'demo-root')).toBe(true);
  });

  it('destroys the HSM key of a key creation whose database write fails, and audits that it did', async () => {
    const id = await activeSession(ada, alan, 'a key the database refuses');
    const api = p.env.api;
    const labelsOnToken = () =>
      [
        ...execFileSync('pkcs11-tool', ['--module', api['PKCS11_MODULE'], '--token-label', api['PKCS11_TOKEN_LABEL'], '--login', '--pin', readFileSync(api['PKCS11_PIN_FILE'], 'utf8').trim(), '--list-objects'], {
          env: { ...process.env, SOFTHSM2_CONF: api['SOFTHSM2_CONF'] },
          stdio: ['ignore', 'pipe', 'pipe'],
        })
          .toString()
          .matchAll(/label:\s+(\S+)/g),
      ].map((m) => m[1]);
    // The key pair is generated and certified; then storing it fails, as a database fault would make it.
    await sql(p, `CREATE FUNCTION e2e_refuse_key() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`);
    await sql(p, `CREATE TRIGGER e2e_refuse_key BEFORE INSERT ON "key" FOR EACH ROW WHEN (NEW."keyid" = 'e2e-doomed') EXECUTE FUNCTION e2e_refuse_key()`);
    try {
      const before = labelsOnToken();
      const r = await ada<Problem>('POST', '/api/v1/keys', { session: id, body: { keyid: 'e2e-doomed', type: 'FW', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 30, commonName: 'Doomed' } });
      expect(r.status).toBeGreaterThanOrEqual(500);
      expect(r.headers.get('content-type')).toContain('application/problem+json');
      expect(labelsOnToken()).toEqual(before);
      expect(labelsOnToken()).not.toContain('e2e-doomed');
      expect((await ada('GET', '/api/v1/keys/e2e-doomed')).status).toBe(404);
      const [event] = await auditOf(ada, `action=key.create&adminSessionId=${id}`);
      expect(event).toMatchObject({ keyid: 'e2e-doomed', outcome: 'FAILED', details: { hsmKey: 'destroyed' } });
    } finally {
      await sql(p, `DROP TRIGGER e2e_refuse_key ON "key"`);
      await sql(p, `DROP FUNCTION e2e_refuse_key()`);
    }
  });

  it('revokes a key once and never the ROOT', async () => {
    const id = await activeSession(ada, alan, 'retire a firmware key');
    const r = await ada<KeyView>('POST', '/api/v1/keys/e2e-fw-1/revocation', { body: { reason: 'superseded' }, session: id });
    expect([r.status, r.body.state]).toEqual([200, 'REVOKED']);
    const again = await ada<Problem>('POST', '/api/v1/keys/e2e-fw-1/revocation', { body: { reason: 'superseded' }, session: id });
    expect([again.status, again.body.code]).toEqual([409, 'key_already_revoked']);
    const root = await ada<Problem>('POST', '/api/v1/keys/demo-root/revocation', { body: { reason: 'keyCompromise' }, session: id });
    expect([root.status, root.body.code]).toEqual([409, 'root_not_revocable']);

    // The ROOT's public CRL, signed in the HSM, now lists the revoked key's certificate.
    const crl = await fetch(`${p.env.urls.api}/api/v1/crl/demo-root`);
    expect(crl.status).toBe(200);
    writeFileSync(join(work, 'root.crl'), Buffer.from(await crl.arrayBuffer()));
    const text = execFileSync('openssl', ['crl', '-inform', 'DER', '-in', join(work, 'root.crl'), '-CAfile', join(work, 'root.pem'), '-verify', '-noout', '-text'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }).toString();
    const serial = new X509Certificate(readFileSync(join(work, 'e2e-fw-1.pem'))).serialNumber;
    expect(text.replace(/\s+/g, '').toUpperCase()).toContain(`SERIALNUMBER:${serial.toUpperCase()}`);
  });

  describe('bad input', () => {
    let id: string;
    beforeAll(async () => {
      id = await activeSession(ada, alan, 'bad input checks');
    });

    const key = { keyid: 'e2e-bad', type: 'FW', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 30, commonName: 'Bad' };
    it.each([
      ['fail short description', 'POST', '/api/v1/admin-sessions', { description: 'short' }, 400, 'validation_failed', 'admin_session.create'],
      ['fail extra field on a session', 'POST', '/api/v1/admin-sessions', { description: 'long enough', admin: true }, 400, 'validation_failed', 'admin_session.create'],
      ['fail body on an authorization', 'POST', '/api/v1/admin-sessions/SESSION/authorizations', { force: true }, 400, 'validation_failed', 'admin_session.authorize'],
      ['fail malformed session id', 'POST', '/api/v1/admin-sessions/not-a-uuid/authorizations', undefined, 400, 'invalid_id', 'admin_session.authorize'],
      ['fail unknown session id', 'POST', '/api/v1/admin-sessions/6f1c1c59-6c0e-4a43-9d0e-7b1f6f0f0f0f/closure', undefined, 404, 'admin_session_not_found', 'admin_session.close'],
      ['fail extra field on a key', 'POST', '/api/v1/keys', { ...key, extractable: true }, 400, 'validation_failed', 'key.create'],
      ['fail unknown algorithm', 'POST', '/api/v1/keys', { ...key, algorithm: 'DSA_1024' }, 400, 'validation_failed', 'key.create'],
      ['fail ROOT as a new key type', 'POST', '/api/v1/keys', { ...key, type: 'ROOT' }, 400, 'validation_failed', 'key.create'],
      ['fail key outliving the ROOT', 'POST', '/api/v1/keys', { ...key, validityDays: 36_500 }, 400, 'validity_exceeds_root', 'key.create'],
      ['fail control character in a name', 'POST', '/api/v1/keys', { ...key, commonName: 'Bad\u0007' }, 400, 'validation_failed', 'key.create'],
      // A key's certificate name follows the device subject rule (api-contract name-text, ADR 0047 addendum).
      ['fail a name in mathematical bold letters', 'POST', '/api/v1/keys', { ...key, commonName: '\u{1d403}\u{1d41e}\u{1d426}\u{1d428} Firmware' }, 400, 'validation_failed', 'key.create'],
      ['fail a name with a Cyrillic е among Latin letters', 'POST', '/api/v1/keys', { ...key, organization: 'D\u0435mo Devices Ltd' }, 400, 'validation_failed', 'key.create'],
      ['fail a name with a right-to-left override', 'POST', '/api/v1/keys', { ...key, commonName: 'Firmware \u202egpj.exe' }, 400, 'validation_failed', 'key.create'],
      ['fail a name in Latin small capitals', 'POST', '/api/v1/keys', { ...key, commonName: '\u1d05\u1d07\u1d20\u026a\u1d04\u1d07 Firmware' }, 400, 'validation_failed', 'key.create'],
      ['fail a name with an IPA script a', 'POST', '/api/v1/keys', { ...key, organization: '\u0251cme Devices Ltd' }, 400, 'validation_failed', 'key.create'],
      ['fail a name with a union sign drawn as u', 'POST', '/api/v1/keys', { ...key, commonName: '\u222anit 7' }, 400, 'validation_failed', 'key.create'],
      ['fail existing keyid', 'POST', '/api/v1/keys', { ...key, keyid: 'demo-fw-dev' }, 409, 'key_exists', 'key.create'],
      ['fail unknown key', 'PATCH', '/api/v1/keys/no-such-key', { requiredApprovers: 1 }, 404, 'key_not_found', 'key.update'],
      ['fail negative approvers', 'PATCH', '/api/v1/keys/demo-fw-dev', { requiredApprovers: -1 }, 400, 'validation_failed', 'key.update'],
      ['fail unknown revocation reason', 'POST', '/api/v1/keys/demo-ca-dev/revocation', { reason: 'bored' }, 400, 'validation_failed', 'key.revoke'],
    ] as const)('%s', async (_name, method, path, body, status, code, action) => {
      const before = (await sql<{ n: string }>(p, 'SELECT count(*)::text AS n FROM "key"'))[0].n;
      const sessions = (await sql<{ n: string }>(p, 'SELECT count(*)::text AS n FROM "admin_session"'))[0].n;
      const r = await ada<Problem>(method, path.replace('SESSION', id), { body, session: id });
      expect([r.status, r.body.code]).toEqual([status, code]);
      expect((await sql<{ n: string }>(p, 'SELECT count(*)::text AS n FROM "key"'))[0].n).toBe(before);
      expect((await sql<{ n: string }>(p, 'SELECT count(*)::text AS n FROM "admin_session"'))[0].n).toBe(sessions);
      const [last] = await auditOf(ada, `action=${action}&outcome=DENIED&limit=1`);
      expect(last.errorCode).toBe(code);
    });

    it('refuses an oversize body with 413 payload_too_large before anything runs', async () => {
      const r = await ada<Problem>('POST', '/api/v1/admin-sessions', { rawBody: JSON.stringify({ description: 'x'.repeat(70_000) }) });
      expect([r.status, r.body.code]).toEqual([413, 'payload_too_large']);
    });

    it('refuses a malformed X-Admin-Session header with admin_session_required', async () => {
      const r = await ada<Problem>('PATCH', '/api/v1/keys/demo-fw-dev', { body: { requiredApprovers: 2 }, session: 'not-a-session' });
      expect([r.status, r.body.code]).toEqual([403, 'admin_session_required']);
    });
  });
});
