import { spawnSync } from 'node:child_process';
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken, sql, type Api } from './admin-helpers';
import { ksctlAs, offlineRoot, run, userToken } from './operations-support';


// Issue 15: rotating a ROOT certified by an external (offline) root (docs/adr/0029-crl-per-key-version.md). The
// rotation makes a pending version (new key pair in the HSM, CSR); the offline root (openssl here) certifies it; the
// import verifies it like the first import, to the same anchor, and only then does the key use the new version.

interface Versions {
  currentVersion: number;
  pendingVersion: number | null;
  items: { version: number; state: string; current: boolean; certificate: string; spkiSha256: string }[];
}
interface Pending {
  version: number;
  csr: string;
  spkiSha256: string;
}

const spkiOfCsr = (csrFile: string) => createHash('sha256').update(createPublicKey(run('openssl', ['req', '-in', csrFile, '-noout', '-pubkey'])).export({ type: 'spki', format: 'der' })).digest('hex');
const spkiOf = (pem: string) => createHash('sha256').update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');

describe('rotation of an externally certified ROOT (pending version, CSR, import)', () => {
  let p: RunningPlatform;
  let work: string;
  let ada: Api;
  let alan: Api;
  let session: string;
  const f = (name: string) => join(work, name);
  const versions = async () => (await ada<Versions>('GET', '/api/v1/keys/ext-root/versions')).body;
  const pem = (name: string) => readFileSync(f(name), 'utf8');
  /** The offline root (or another one) certifies a CSR, as a customer's openssl would. */
  const certify = (csrFile: string, caCert: string, caKey: string, out: string) =>
    run('openssl', ['x509', '-req', '-in', f(csrFile), '-CA', f(caCert), '-CAkey', f(caKey), '-CAcreateserial', '-out', f(out), '-days', '1000', '-extfile', f('ext.cnf')]);
  const importCert = (body: Record<string, unknown>) => ada<{ code?: string; state?: string; certificate?: string; chain?: string[] }>('POST', '/api/v1/keys/ext-root/certificate', { body, session });

  beforeAll(async () => {
    p = await startPlatform();
    work = mkdtempSync(join(tmpdir(), 'ks-ext-rotation-'));
    ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    session = await activeSession(ada, alan, 'external ROOT rotation');
    offlineRoot(f, true);
    // Version 1: the external ceremony and the first import (go-live.spec.ts tests those in depth).
    const c = await ada<{ csr: string }>('POST', '/api/v1/keys/root-ceremony', {
      body: { keyid: 'ext-root', algorithm: 'EC_P256', subject: { commonName: 'Acme Online Root', organization: 'Acme', country: 'DK' }, validityDays: 1000, requiredApprovers: 0, mode: 'external' },
      session,
    });
    expect(c.status).toBe(201);
    writeFileSync(f('v1.csr'), c.body.csr);
    certify('v1.csr', 'offline.pem', 'offline.key', 'v1.pem');
    expect((await importCert({ certificate: pem('v1.pem'), chain: [pem('offline.pem')] })).status).toBe(200);
  });
  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ok rotation makes a pending version 2 with a CSR signed in the HSM; the key keeps version 1', async () => {
    const r = await ada<{ state: string; certificate: string }>('POST', '/api/v1/keys/ext-root/rotation', { body: { validityDays: 365 }, session });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ state: 'ACTIVE', certificate: pem('v1.pem') });
    const pending = (await ada<Pending>('GET', '/api/v1/keys/ext-root/csr')).body;
    expect(pending.version).toBe(2);
    writeFileSync(f('v2.csr'), pending.csr);
    const verified = spawnSync('openssl', ['req', '-in', f('v2.csr'), '-noout', '-verify'], { encoding: 'utf8' });
    expect({ status: verified.status, out: verified.stdout + verified.stderr }).toEqual({ status: 0, out: expect.stringMatching(/verify OK/) });
    expect(spkiOfCsr(f('v2.csr'))).toBe(pending.spkiSha256);
    expect(pending.spkiSha256).not.toBe(spkiOf(pem('v1.pem')));
    expect(run('openssl', ['req', '-in', f('v2.csr'), '-noout', '-subject'])).toMatch(/CN\s*=\s*Acme Online Root/);
    expect(await versions()).toMatchObject({ currentVersion: 1, pendingVersion: 2, items: [{ version: 1, state: 'ACTIVE', current: true }] });
    const [event] = await sql<{ details: { pending: boolean; version: number; administrators: unknown[]; csr: string } }>(p, `SELECT "details" FROM "audit_event" WHERE "action" = 'key.rotate' AND "keyid" = 'ext-root' AND "outcome" = 'SUCCESS'`);
    expect(event.details).toMatchObject({ pending: true, version: 2, csr: pending.csr });
    expect(event.details.administrators).toHaveLength(2);
  });

  it('ok the pending version is never used: a CA created now is certified by version 1, and version 2 has no CRL', async () => {
    const ca = await ada<{ certificate: string; chain: string[] }>('POST', '/api/v1/keys', {
      body: { keyid: 'ext-ca-1', type: 'CA', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 200, commonName: 'CA under version 1', issuer: 'ext-root' },
      session,
    });
    expect(ca.status).toBe(201);
    expect(new X509Certificate(ca.body.certificate).verify(new X509Certificate(pem('v1.pem')).publicKey)).toBe(true);
    expect(ca.body.chain[1]).toBe(pem('v1.pem'));
    writeFileSync(f('ext-ca-1.pem'), ca.body.certificate);
    const crl = await fetch(`${p.env.urls.api}/api/v1/crl/ext-root/versions/2`);
    expect({ status: crl.status, code: ((await crl.json()) as { code: string }).code }).toEqual({ status: 404, code: 'key_version_not_found' });
  });

  it.each([
    ['a second rotation while one is pending', 'POST', '/api/v1/keys/ext-root/rotation', { validityDays: 10 }, 409, 'version_pending'],
    ['a renewal (the external root renews it)', 'POST', '/api/v1/keys/ext-root/renewal', { validityDays: 10 }, 409, 'externally_certified'],
  ])('fail %s (audited)', async (_n, method, path, body, status, code) => {
    const r = await ada(method, path, { body, session });
    expect({ status: r.status, code: r.body['code'] }).toEqual({ status, code });
    const [last] = await sql(p, `SELECT "outcome"::text, "errorCode" FROM "audit_event" WHERE "action" LIKE 'key.%' ORDER BY "seq" DESC LIMIT 1`);
    expect(last).toEqual({ outcome: 'DENIED', errorCode: code });
  });

  it.each([
    ['a certificate for the wrong key (version 1\'s key pair)', () => ({ certificate: (certify('v1.csr', 'offline.pem', 'offline.key', 'wrong-key.pem'), pem('wrong-key.pem')), chain: [pem('offline.pem')] }), 400, 'certificate_key_mismatch'],
    ['a chain that does not verify', () => ({ certificate: (certify('v2.csr', 'offline.pem', 'offline.key', 'v2.pem'), pem('v2.pem')), chain: [pem('other.pem')] }), 400, 'chain_invalid'],
    ['a chain to another anchor than the first import\'s', () => ({ certificate: (certify('v2.csr', 'other.pem', 'other.key', 'v2-other.pem'), pem('v2-other.pem')), chain: [pem('other.pem')] }), 400, 'anchor_mismatch'],
    ['version 1 (not pending)', () => ({ version: 1, certificate: pem('v2.pem'), chain: [pem('offline.pem')] }), 409, 'not_awaiting_certificate'],
    ['version 3 (not pending)', () => ({ version: 3, certificate: pem('v2.pem'), chain: [pem('offline.pem')] }), 409, 'not_awaiting_certificate'],
    ['an unknown field', () => ({ certificate: pem('v2.pem'), chain: [pem('offline.pem')], activate: true }), 400, 'validation_failed'],
  ])('fail the import of %s: nothing changes, the version stays pending', async (_n, body, status, code) => {
    const r = await importCert(body());
    expect({ status: r.status, code: r.body.code }).toEqual({ status, code });
    expect(await versions()).toMatchObject({ currentVersion: 1, pendingVersion: 2 });
  });

  it('ok the import of the offline root\'s certificate for version 2 activates it (four-eyes, audited); version 1 stays published', async () => {
    const r = await importCert({ version: 2, certificate: pem('v2.pem'), chain: [pem('offline.pem')] });
    expect(r.status).toBe(200);
    expect(r.body.certificate).toBe(pem('v2.pem'));
    const v = await versions();
    expect(v).toMatchObject({ currentVersion: 2, pendingVersion: null });
    expect(v.items.map((i) => [i.version, i.state, i.current])).toEqual([
      [1, 'RETIRED', false],
      [2, 'ACTIVE', true],
    ]);
    const [event] = await sql<{ details: { rotation: boolean; version: number; administrators: unknown[] } }>(
      p,
      `SELECT "details" FROM "audit_event" WHERE "action" = 'key.certificate_import' AND "keyid" = 'ext-root' AND "outcome" = 'SUCCESS' ORDER BY "seq" DESC LIMIT 1`,
    );
    expect(event.details).toMatchObject({ rotation: true, version: 2 });
    expect(event.details.administrators).toHaveLength(2);
    const again = await importCert({ certificate: pem('v2.pem'), chain: [pem('offline.pem')] });
    expect({ status: again.status, code: again.body.code }).toEqual({ status: 409, code: 'not_awaiting_certificate' });
  });

  it('ok after the import new CAs are certified by version 2; the CA of version 1 still verifies; both versions sign their CRL', async () => {
    const ca = await ada<{ certificate: string; chain: string[] }>('POST', '/api/v1/keys', {
      body: { keyid: 'ext-ca-2', type: 'CA', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 200, commonName: 'CA under version 2', issuer: 'ext-root' },
      session,
    });
    expect(ca.status).toBe(201);
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(new X509Certificate(ca.body.certificate).validFrom) + 1000 - Date.now())));
    writeFileSync(f('ext-ca-2.pem'), ca.body.certificate);
    expect(ca.body.chain[1]).toBe(pem('v2.pem'));
    for (const [caFile, root] of [['ext-ca-1.pem', 'v1.pem'], ['ext-ca-2.pem', 'v2.pem']]) {
      expect(run('openssl', ['verify', '-x509_strict', '-CAfile', f('offline.pem'), '-untrusted', f(root), f(caFile)])).toContain('OK');
    }
    for (const v of [1, 2]) {
      const r = await fetch(`${p.env.urls.api}/api/v1/crl/ext-root/versions/${v}`);
      writeFileSync(f(`ext-root-v${v}.crl`), Buffer.from(await r.arrayBuffer()));
      const checked = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', f(`ext-root-v${v}.crl`), '-CAfile', f(`v${v}.pem`), '-noout', '-verify'], { encoding: 'utf8' });
      expect({ status: checked.status, out: checked.stdout + checked.stderr }).toEqual({ status: 0, out: expect.stringContaining('verify OK') });
    }
  });

  it('ok ksctl admin: rotate --out writes the pending CSR, import-cert --key-version activates it; a second import exits 4', async () => {
    const ksctl = ksctlAs(p, join(work, 'ksctl-cache'), await userToken(p, 'ada.admin@demo.test'));
    const rotated = ksctl('admin', 'key', 'rotate', 'ext-root', '--session', session, '--days', '365', '--out', f('v3.csr'));
    expect({ status: rotated.status, pendingVersion: rotated.json['pendingVersion'] }).toEqual({ status: 0, pendingVersion: 3 });
    expect(spkiOfCsr(f('v3.csr'))).not.toBe(spkiOf(pem('v2.pem')));
    certify('v3.csr', 'offline.pem', 'offline.key', 'v3.pem');
    const args = ['admin', 'key', 'import-cert', 'ext-root', '--session', session, '--cert-file', f('v3.pem'), '--chain', f('offline.pem'), '--key-version', '3'];
    const imported = ksctl(...args);
    expect({ status: imported.status, state: imported.json['state'], certificate: imported.json['certificate'] }).toEqual({ status: 0, state: 'ACTIVE', certificate: pem('v3.pem') });
    const again = ksctl(...args);
    expect({ status: again.status, code: again.json['code'] }).toEqual({ status: 4, code: 'not_awaiting_certificate' });
    expect((await versions()).currentVersion).toBe(3);
    expect((await ada('GET', '/api/v1/audit/verify')).body['ok']).toBe(true);
  });
});
