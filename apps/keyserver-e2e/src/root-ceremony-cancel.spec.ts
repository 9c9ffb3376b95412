import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken, sql, type Api } from './admin-helpers';
import { ksctlAs, offlineRoot, run, tokenLabels, userToken } from './operations-support';


// An external ROOT ceremony (or an external ROOT's rotation) that never gets its certificate can be cancelled
// (docs/adr/0042-pending-hsm-keys.md): in a four-eyes session, audited, its HSM objects destroyed (pkcs11-tool
// counts them on the API's token), exactly one of a cancellation and an import racing it wins.

interface Cancelled {
  keyid: string;
  version: number;
  spkiSha256: string | null;
  administrators: unknown[];
  code?: string;
}

describe('POST /api/v1/keys/{keyid}/csr/cancellation (an abandoned external ceremony)', () => {
  let p: RunningPlatform;
  let work: string;
  let ada: Api;
  let alan: Api;
  let session: string;
  const f = (name: string) => join(work, name);
  const pem = (name: string) => readFileSync(f(name), 'utf8');

  /** How many objects on the API's token carry the label (a key pair: a private and a public object). */
  const objectsLabelled = (label: string) => tokenLabels(p).filter((l) => l === label).length;
  const ceremony = (keyid: string) =>
    ada<{ csr: string; spkiSha256: string; code?: string }>('POST', '/api/v1/keys/root-ceremony', {
      body: { keyid, algorithm: 'EC_P256', subject: { commonName: `Online ${keyid}`, organization: 'Acme' }, validityDays: 1000, requiredApprovers: 0, mode: 'external' },
      session,
    });
  /** `withSession` false: without the X-Admin-Session header. */
  const cancel = (keyid: string, body: unknown = {}, withSession = true) => ada<Cancelled>('POST', `/api/v1/keys/${keyid}/csr/cancellation`, { body, session: withSession ? session : undefined });
  /** The offline root (openssl) certifies the CSR. */
  const certify = (csr: string, name: string) => {
    writeFileSync(f(`${name}.csr`), csr);
    run('openssl', ['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('offline.pem'), '-CAkey', f('offline.key'), '-CAcreateserial', '-out', f(`${name}.pem`), '-days', '900', '-extfile', f('ext.cnf')]);
    return pem(`${name}.pem`);
  };
  const importCert = (keyid: string, certificate: string, version?: number) =>
    ada<{ state?: string; code?: string }>('POST', `/api/v1/keys/${keyid}/certificate`, { body: { certificate, chain: [pem('offline.pem')], ...(version ? { version } : {}) }, session });
  const answer = (r: { status: number; body: { code?: string } }) => (r.status === 200 ? '200' : `${r.status} ${r.body.code}`);

  beforeAll(async () => {
    p = await startPlatform();
    work = mkdtempSync(join(tmpdir(), 'ks-ceremony-cancel-'));
    ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    session = await activeSession(ada, alan, 'cancel abandoned external ceremonies');
    offlineRoot(f);
  });
  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ok an abandoned ceremony holds its keyid until it is cancelled; the cancellation ends it, destroys its HSM objects and is audited', async () => {
    const c = await ceremony('abandoned-root');
    expect(c.status).toBe(201);
    expect(objectsLabelled('abandoned-root')).toBe(2);
    expect(answer(await ceremony('abandoned-root'))).toBe('409 key_exists');

    expect(answer(await cancel('abandoned-root', {}, false))).toBe('403 admin_session_required');
    expect(answer(await cancel('abandoned-root', { version: 2 }))).toBe('409 not_awaiting_certificate');
    expect(answer(await cancel('abandoned-root', { keep: true }))).toBe('400 validation_failed');
    const refusals = await sql<{ outcome: string; errorCode: string }>(p, `SELECT "outcome"::text, "errorCode" FROM "audit_event" WHERE "action" = 'key.csr_cancel' ORDER BY "seq"`);
    expect(refusals).toEqual([
      { outcome: 'DENIED', errorCode: 'admin_session_required' },
      { outcome: 'DENIED', errorCode: 'not_awaiting_certificate' },
      { outcome: 'DENIED', errorCode: 'validation_failed' },
    ]);
    expect(objectsLabelled('abandoned-root')).toBe(2);

    const r = await cancel('abandoned-root');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ keyid: 'abandoned-root', version: 1, spkiSha256: c.body.spkiSha256 });
    expect(r.body.administrators).toHaveLength(2);
    expect(objectsLabelled('abandoned-root')).toBe(0);
    const [event] = await sql<{ adminSessionId: string; details: { version: number; hsmKeyId: string; administrators: unknown[] } }>(
      p,
      `SELECT "adminSessionId"::text, "details" FROM "audit_event" WHERE "action" = 'key.csr_cancel' AND "outcome" = 'SUCCESS' AND "keyid" = 'abandoned-root'`,
    );
    expect(event).toMatchObject({ adminSessionId: session, details: { version: 1, hsmKeyId: expect.stringMatching(/^[0-9a-f]{32}$/) } });
    expect(event.details.administrators).toHaveLength(2);

    // Nothing is left to import, show or cancel; the keyid is free for a new ceremony.
    expect(answer(await ada('GET', '/api/v1/keys/abandoned-root/csr'))).toBe('409 not_awaiting_certificate');
    expect(answer(await importCert('abandoned-root', certify(c.body.csr, 'abandoned')))).toBe('409 not_awaiting_certificate');
    expect(answer(await cancel('abandoned-root'))).toBe('409 not_awaiting_certificate');
    expect((await ceremony('abandoned-root')).status).toBe(201);
    expect(objectsLabelled('abandoned-root')).toBe(2);
  });

  it.each([1, 2, 3])('ok race %i: a cancellation and the import of the certificate at once, exactly one wins; no ROOT without its key pair, no key pair destroyed under a ROOT', async (round) => {
    const keyid = `raced-root-${round}`;
    const c = await ceremony(keyid);
    expect(c.status).toBe(201);
    const certificate = certify(c.body.csr, keyid);
    const [imported, cancelled] = await Promise.all([importCert(keyid, certificate), cancel(keyid)]);
    expect([answer(imported), answer(cancelled)].sort()).toEqual(['200', '409 not_awaiting_certificate']);
    const key = await ada<{ state: string }>('GET', `/api/v1/keys/${keyid}`);
    if (imported.status === 200) {
      expect([key.status, key.body.state, objectsLabelled(keyid)]).toEqual([200, 'ACTIVE', 2]);
    } else {
      expect([key.status, objectsLabelled(keyid)]).toEqual([404, 0]);
    }
    expect(answer(await ada('GET', `/api/v1/keys/${keyid}/csr`))).toBe('409 not_awaiting_certificate');
    const successes = await sql(p, `SELECT "action" FROM "audit_event" WHERE "keyid" = $1 AND "outcome" = 'SUCCESS' AND "action" IN ('key.certificate_import', 'key.csr_cancel')`, [keyid]);
    expect(successes).toHaveLength(1);
  });

  it('ok ksctl admin key cancel-csr cancels an external ROOT\'s pending rotation (--key-version): the key keeps its version and key pair; a new rotation can follow', async () => {
    const ksctl = ksctlAs(p, join(work, 'ksctl-cache'), await userToken(p, 'ada.admin@demo.test'));
    const c = await ceremony('rotating-root');
    expect((await importCert('rotating-root', certify(c.body.csr, 'rotating-v1'))).status).toBe(200);
    const rotated = ksctl('admin', 'key', 'rotate', 'rotating-root', '--session', session, '--days', '365');
    expect({ status: rotated.status, pendingVersion: rotated.json['pendingVersion'] }).toEqual({ status: 0, pendingVersion: 2 });
    expect(objectsLabelled('rotating-root')).toBe(4);

    const wrong = ksctl('admin', 'key', 'cancel-csr', 'rotating-root', '--session', session, '--key-version', '3');
    expect({ status: wrong.status, code: wrong.json['code'] }).toEqual({ status: 4, code: 'not_awaiting_certificate' });
    const done = ksctl('admin', 'key', 'cancel-csr', 'rotating-root', '--session', session, '--key-version', '2');
    expect({ status: done.status, keyid: done.json['keyid'], version: done.json['version'] }).toEqual({ status: 0, keyid: 'rotating-root', version: 2 });
    expect(objectsLabelled('rotating-root')).toBe(2);
    const versions = (await ada<{ currentVersion: number; pendingVersion: number | null }>('GET', '/api/v1/keys/rotating-root/versions')).body;
    expect(versions).toMatchObject({ currentVersion: 1, pendingVersion: null });
    const again = ksctl('admin', 'key', 'cancel-csr', 'rotating-root', '--session', session);
    expect({ status: again.status, code: again.json['code'] }).toEqual({ status: 4, code: 'not_awaiting_certificate' });
    expect(ksctl('admin', 'key', 'rotate', 'rotating-root', '--session', session, '--days', '365').json['pendingVersion']).toBe(2);
    expect((await ada('GET', '/api/v1/audit/verify')).body['ok']).toBe(true);
  });
});
