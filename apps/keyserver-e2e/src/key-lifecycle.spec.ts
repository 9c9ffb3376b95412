import { spawnSync } from 'node:child_process';
import { createHash, verify as verifySignature, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken, sql, type Api } from './admin-helpers';
import { call, ciToken, operationBody, run, signOrderBody, tokenLabels, userToken } from './operations-support';

const KSCTL = join(repoRoot, 'dist', 'tools', 'keyserver-cli', 'main.js');

// Issue 15 item 3: renew, rotate (versions), retire, revoke, destroy through the real API and SoftHSM, on the demo
// tenant (its CI client signs with demo-fw-dev, which needs no approver). openssl verifies certificates and CRLs.

interface Version {
  version: number;
  state: string;
  current: boolean;
  certificate: string;
  serial: string;
  spkiSha256: string;
  issuerKeyid: string | null;
  issuerVersion: number | null;
  destroyedAt: string | null;
}
interface Versions {
  state: string;
  currentVersion: number;
  destroyedAt: string | null;
  items: Version[];
}
interface Detail {
  state: string;
  certificate: string;
  chain: string[];
}

const spki = (pem: string) => createHash('sha256').update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');

describe('key lifecycle (renew, rotate, retire, revoke, destroy)', () => {
  let p: RunningPlatform;
  let work: string;
  let ada: Api;
  let alan: Api;
  let ci: string;
  const f = (name: string) => join(work, name);
  const versions = async (keyid: string) => (await ada<Versions>('GET', `/api/v1/keys/${keyid}/versions`)).body;
  const admin = async (path: string, body: unknown = {}) => ada<Detail & { code?: string }>('POST', path, { body, session: await activeSession(ada, alan, `lifecycle: ${path}`) });
  const labelsOnToken = () => tokenLabels(p);

  /** Signs `message` with demo-fw-dev as the CI client would: an operation, then a sign order over its SHA-256. */
  async function signWithFwDev(message: string): Promise<{ status: number; code?: string; signature?: Buffer }> {
    const op = await call<{ id: string; code?: string }>(p.env.urls.api, ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 1));
    if (op.status !== 201) return { status: op.status, code: op.body.code };
    const digest = createHash('sha256').update(message).digest('hex');
    const r = await call<{ result: string; code?: string }>(p.env.urls.api, ci, 'POST', '/api/signorders', signOrderBody(op.body.id, 'demo-fw-dev', digest));
    return { status: r.status, code: r.body.code, signature: r.body.result ? Buffer.from(r.body.result, 'hex') : undefined };
  }
  const verifies = (message: string, signature: Buffer, certPem: string) => verifySignature('sha256', Buffer.from(message), new X509Certificate(certPem).publicKey, signature);

  beforeAll(async () => {
    p = await startPlatform();
    work = mkdtempSync(join(tmpdir(), 'ks-lifecycle-'));
    ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    ci = await ciToken(p);
    writeFileSync(f('root-v1.pem'), (await ada<Detail>('GET', '/api/v1/keys/demo-root')).body.certificate);
  });
  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ok every demo key starts as version 1, current', async () => {
    const v = await versions('demo-fw-dev');
    expect(v).toMatchObject({ state: 'ACTIVE', currentVersion: 1, destroyedAt: null });
    expect(v.items.map((i) => [i.version, i.state, i.current, i.issuerKeyid])).toEqual([[1, 'ACTIVE', true, 'demo-root']]);
  });

  it.each([
    ['ok a key the caller holds a grant on', 'demo-fw-prod', 200],
    ['fail a key the caller holds no grant on: as if it did not exist', 'demo-ca-prod', 404],
    ['fail an unknown key', 'no-such-key', 404],
  ])('%s: GET /api/v1/keys/%s/versions', async (_n, keyid, status) => {
    const r = await call<{ code?: string }>(p.env.urls.api, ci, 'GET', `/api/v1/keys/${keyid}/versions`);
    expect(r.status).toBe(status);
    if (status === 404) expect(r.body.code).toBe('key_not_found');
  });

  it.each([
    ['renewal', '/api/v1/keys/demo-fw-dev/renewal', { validityDays: 30 }],
    ['rotation', '/api/v1/keys/demo-fw-dev/rotation', { validityDays: 30 }],
    ['retirement', '/api/v1/keys/demo-fw-dev/retirement', {}],
    ['destruction', '/api/v1/keys/demo-fw-prod/destruction', {}],
  ])('fail %s without an ACTIVE admin session (admin_session_required, audited)', async (_name, path, body) => {
    const r = await ada('POST', path, { body });
    expect({ status: r.status, code: r.body['code'] }).toEqual({ status: 403, code: 'admin_session_required' });
    const last = await sql(p, `SELECT "outcome"::text, "errorCode" FROM "audit_event" WHERE "action" LIKE 'key.%' ORDER BY "seq" DESC LIMIT 1`);
    expect(last[0]).toEqual({ outcome: 'DENIED', errorCode: 'admin_session_required' });
  });

  it('ok renewal: same key pair, new certificate and validity; version 1 retired but still published', async () => {
    const before = (await versions('demo-fw-dev')).items[0];
    const r = await admin('/api/v1/keys/demo-fw-dev/renewal', { validityDays: 200 });
    expect(r.status).toBe(200);
    const v = await versions('demo-fw-dev');
    expect(v.items.map((i) => [i.version, i.state, i.current])).toEqual([
      [1, 'RETIRED', false],
      [2, 'ACTIVE', true],
    ]);
    expect(v.items[1].spkiSha256).toBe(before.spkiSha256);
    expect(v.items[1].serial).not.toBe(before.serial);
    expect(r.body.certificate).toBe(v.items[1].certificate);
    const cert = new X509Certificate(r.body.certificate);
    expect(Math.round((Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000)).toBe(200);
    writeFileSync(f('fw-v2.pem'), r.body.certificate);
    expect(run('openssl', ['verify', '-CAfile', f('root-v1.pem'), f('fw-v2.pem')])).toContain('OK');
  });

  let v2: string;
  it('ok rotation: a new key pair under the same keyid; new sign orders use it, the older versions stay published', async () => {
    v2 = (await versions('demo-fw-dev')).items[1].certificate;
    const labels = labelsOnToken().filter((l) => l === 'demo-fw-dev').length;
    const r = await admin('/api/v1/keys/demo-fw-dev/rotation', { validityDays: 100 });
    expect(r.status).toBe(200);
    const v = await versions('demo-fw-dev');
    expect(v.currentVersion).toBe(3);
    expect(v.items.map((i) => [i.version, i.state, i.current])).toEqual([
      [1, 'RETIRED', false],
      [2, 'RETIRED', false],
      [3, 'ACTIVE', true],
    ]);
    expect(v.items[2].spkiSha256).not.toBe(v.items[1].spkiSha256);
    expect(spki(r.body.certificate)).toBe(v.items[2].spkiSha256);
    // Two key pairs on the token now carry the label (private + public objects each).
    expect(labelsOnToken().filter((l) => l === 'demo-fw-dev').length).toBe(labels * 2);
    const signed = await signWithFwDev('firmware 1.0 after rotation');
    expect(signed.status).toBe(201);
    expect(verifies('firmware 1.0 after rotation', signed.signature as Buffer, v.items[2].certificate)).toBe(true);
    expect(verifies('firmware 1.0 after rotation', signed.signature as Buffer, v2)).toBe(false);
    // What the PKCS#11 module reads: the current certificate.
    const legacy = await call<{ keyid: string; certificate: string }[]>(p.env.urls.api, ci, 'GET', '/api/keys');
    expect(legacy.body.find((k) => k.keyid === 'demo-fw-dev')?.certificate).toBe(v.items[2].certificate);
    const audit = await sql<{ details: { version: number; newKeyPair: boolean; spkiSha256: string } }>(p, `SELECT "details" FROM "audit_event" WHERE "action" = 'key.rotate' AND "outcome" = 'SUCCESS'`);
    expect(audit[0].details).toMatchObject({ version: 3, newKeyPair: true, spkiSha256: v.items[2].spkiSha256 });
  });

  it('ok concurrent rotations: exactly one wins, the other is refused and its HSM key destroyed again', async () => {
    const session = await activeSession(ada, alan, 'two rotations at once');
    const before = labelsOnToken().length;
    const rs = await Promise.all([1, 2].map(() => ada('POST', '/api/v1/keys/demo-ca-dev/rotation', { body: { validityDays: 50 }, session })));
    // Status and problem code together, so that a failure says which refusal it was.
    expect(rs.map((r) => `${r.status} ${r.status === 200 ? '' : r.body['code']} ${r.status === 200 ? '' : (r.body['detail'] ?? '')}`.trim()).sort()).toEqual(['200', expect.stringMatching(/^409 version_conflict/)]);
    expect((await versions('demo-ca-dev')).items.map((i) => i.version)).toEqual([1, 2]);
    expect(labelsOnToken().length).toBe(before + 2);
  });

  it('ok ROOT rotation: CAs not yet renewed still chain to the ROOT version that certified them; renewed ones to the new one', async () => {
    const r = await admin('/api/v1/keys/demo-root/rotation', { validityDays: 3650 });
    expect(r.status).toBe(200);
    writeFileSync(f('root-v2.pem'), r.body.certificate);
    const prod = (await ada<Detail>('GET', '/api/v1/keys/demo-ca-prod')).body;
    writeFileSync(f('ca-prod-v1.pem'), prod.certificate);
    expect(prod.chain[1]).toBe(readFileSync(f('root-v1.pem'), 'utf8'));
    expect(run('openssl', ['verify', '-CAfile', f('root-v1.pem'), f('ca-prod-v1.pem')])).toContain('OK');
    const renewed = await admin('/api/v1/keys/demo-ca-prod/renewal', { validityDays: 365 });
    expect(renewed.status).toBe(200);
    expect(renewed.body.chain[1]).toBe(r.body.certificate);
    writeFileSync(f('ca-prod-v2.pem'), renewed.body.certificate);
    expect(run('openssl', ['verify', '-CAfile', f('root-v2.pem'), f('ca-prod-v2.pem')])).toContain('OK');
    writeFileSync(f('chain-v2.pem'), renewed.body.chain.join(''));
    expect(run('certtool', ['--verify-chain', '--infile', f('chain-v2.pem')])).toMatch(/Chain verification output: Verified/);
  });

  it('ok a device certificate after the ROOT rotated: its chain holds the ROOT version that certified its CA (openssl verifies)', async () => {
    const op = await call<{ id: string }>(p.env.urls.api, ci, 'POST', '/api/v1/operations', operationBody('demo-ca-dev', 1));
    expect(op.status).toBe(201);
    run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('device.key'), '-subj', '/CN=device-after-root-rotation', '-out', f('device.csr')]);
    const r = await call<{ certificate: string; chain: string[] }>(p.env.urls.api, ci, 'POST', '/api/v1/certificates', { operationid: op.body.id, keyid: 'demo-ca-dev', csr: readFileSync(f('device.csr'), 'utf8') });
    expect(r.status).toBe(201);
    expect(r.body.chain.slice(1)).toEqual([readFileSync(f('root-v1.pem'), 'utf8')]);
    writeFileSync(f('device.pem'), r.body.certificate);
    writeFileSync(f('device-ca.pem'), r.body.chain[0]);
    writeFileSync(f('device-root.pem'), r.body.chain[1]);
    expect(run('openssl', ['verify', '-CAfile', f('device-root.pem'), '-untrusted', f('device-ca.pem'), f('device.pem')])).toContain('OK');
  });

  it('ok retirement: no new use (sign orders and operations refused), the certificate still served', async () => {
    const r = await admin('/api/v1/keys/demo-fw-dev/retirement');
    expect(r.status).toBe(200);
    expect(r.body.state).toBe('RETIRED');
    const signed = await signWithFwDev('firmware after retirement');
    expect(signed.status).toBeGreaterThanOrEqual(400);
    expect(signed.status).toBeLessThan(500);
    expect((await versions('demo-fw-dev')).items.every((i) => i.state === 'RETIRED' && i.certificate.includes('BEGIN CERTIFICATE'))).toBe(true);
    expect((await ada<Detail>('GET', '/api/v1/keys/demo-fw-dev')).body.certificate).toContain('BEGIN CERTIFICATE');
  });

  it.each([
    ['rotation of a RETIRED key', '/api/v1/keys/demo-fw-dev/rotation', { validityDays: 10 }, 'key_not_active'],
    ['renewal of a RETIRED key', '/api/v1/keys/demo-fw-dev/renewal', { validityDays: 10 }, 'key_not_active'],
    ['retirement of a RETIRED key', '/api/v1/keys/demo-fw-dev/retirement', {}, 'key_not_active'],
    ['destruction of an ACTIVE key', '/api/v1/keys/demo-fw-prod/destruction', {}, 'key_still_active'],
    ['destruction of a ROOT that certifies ACTIVE keys', '/api/v1/keys/demo-root/destruction', {}, 'key_still_active'],
    ['a renewal that would outlive the issuer', '/api/v1/keys/demo-ca-dev/renewal', { validityDays: 36_000 }, 'validity_exceeds_root'],
    ['an unknown key', '/api/v1/keys/no-such-key/rotation', { validityDays: 10 }, 'key_not_found'],
    ['a body on retirement', '/api/v1/keys/demo-fw-prod/retirement', { now: true }, 'validation_failed'],
  ])('fail %s (audited, nothing changed)', async (_name, path, body, code) => {
    const r = await admin(path, body);
    expect(r.body.code).toBe(code);
    const last = await sql(p, `SELECT "outcome"::text, "errorCode" FROM "audit_event" WHERE "action" LIKE 'key.%' ORDER BY "seq" DESC LIMIT 1`);
    expect(last[0]).toEqual({ outcome: 'DENIED', errorCode: code });
  });

  it('ok revocation of the retired key: every version on the CRL of the ROOT version that certified it (openssl verifies the CRL)', async () => {
    const serials = (await versions('demo-fw-dev')).items.map((i) => i.serial.toUpperCase().replace(/^0+/, ''));
    expect((await versions('demo-fw-dev')).items.map((i) => i.issuerVersion)).toEqual([1, 1, 1]);
    const r = await admin('/api/v1/keys/demo-fw-dev/revocation', { reason: 'keyCompromise' });
    expect(r.status).toBe(200);
    expect(r.body.state).toBe('REVOKED');
    const crl = await fetch(`${p.env.urls.api}/api/v1/crl/demo-root/versions/1`);
    writeFileSync(f('root.crl'), Buffer.from(await crl.arrayBuffer()));
    // Every version was certified by ROOT version 1 (before the ROOT rotated): its key pair signs the CRL (ADR 0029).
    const text = run('openssl', ['crl', '-inform', 'DER', '-in', f('root.crl'), '-CAfile', f('root-v1.pem'), '-verify', '-noout', '-text']);
    for (const s of serials) expect(text.replace(/\s/g, '')).toContain(s);
    expect(text).toContain('Key Compromise');
    // The current ROOT version's CRL (the unversioned route) is signed by the new key pair and lists none of them.
    writeFileSync(f('root-current.crl'), Buffer.from(await (await fetch(`${p.env.urls.api}/api/v1/crl/demo-root`)).arrayBuffer()));
    const current = run('openssl', ['crl', '-inform', 'DER', '-in', f('root-current.crl'), '-CAfile', f('root-v2.pem'), '-verify', '-noout', '-text']);
    for (const s of serials) expect(current.replace(/\s/g, '')).not.toContain(s);
    const v = await versions('demo-fw-dev');
    expect(v.items.every((i) => i.state === 'REVOKED')).toBe(true);
  });

  it('ok revocation of a rotated CA key: the certifying ROOT version signs a new CRL (higher CRL number) naming both CA versions', async () => {
    // openssl prints the number in decimal, or in hex after 0x when it is long (CRL numbers are bound to time, ADR 0029).
    const crlNumber = (text: string) => BigInt(/X509v3 CRL Number:\s*\n?\s*(0x[0-9A-Fa-f]+|[0-9]+)/.exec(text)?.[1] ?? 'x');
    const before = run('openssl', ['crl', '-inform', 'DER', '-in', f('root.crl'), '-noout', '-text']);
    const serials = (await versions('demo-ca-dev')).items.map((i) => i.serial.toUpperCase().replace(/^0+/, ''));
    expect(serials).toHaveLength(2);
    const r = await admin('/api/v1/keys/demo-ca-dev/revocation', { reason: 'cACompromise' });
    expect(r.body.state).toBe('REVOKED');
    writeFileSync(f('root-2.crl'), Buffer.from(await (await fetch(`${p.env.urls.api}/api/v1/crl/demo-root/versions/1`)).arrayBuffer()));
    const after = run('openssl', ['crl', '-inform', 'DER', '-in', f('root-2.crl'), '-CAfile', f('root-v1.pem'), '-verify', '-noout', '-text']);
    for (const s of serials) expect(after.replace(/\s/g, '')).toContain(s);
    expect(after).toContain('CA Compromise');
    expect(crlNumber(after)).toBeGreaterThan(crlNumber(before));
  });

  it('fail rotation of a REVOKED key (key_not_active)', async () => {
    const r = await admin('/api/v1/keys/demo-fw-dev/rotation', { validityDays: 10 });
    expect({ status: r.status, code: r.body.code }).toEqual({ status: 409, code: 'key_not_active' });
  });

  it('ok destruction of the revoked key deletes every HSM object of every version, once, audited', async () => {
    expect(labelsOnToken()).toContain('demo-fw-dev');
    const r = await admin('/api/v1/keys/demo-fw-dev/destruction');
    expect(r.status).toBe(200);
    expect(labelsOnToken()).not.toContain('demo-fw-dev');
    const v = await versions('demo-fw-dev');
    expect(v.destroyedAt).not.toBeNull();
    expect(v.items.every((i) => i.destroyedAt !== null && i.certificate.includes('BEGIN CERTIFICATE'))).toBe(true);
    const [a] = await sql<{ details: { hsmKeyIds: string[] } }>(p, `SELECT "details" FROM "audit_event" WHERE "action" = 'key.destroy' AND "outcome" = 'SUCCESS'`);
    expect(a.details.hsmKeyIds).toHaveLength(2);
    const again = await admin('/api/v1/keys/demo-fw-dev/destruction');
    expect({ status: again.status, code: again.body.code }).toEqual({ status: 409, code: 'key_already_destroyed' });
    expect((await ada('GET', '/api/v1/audit/verify')).body['ok']).toBe(true);
  });

  describe('ksctl admin (the same lifecycle from the command line, administrators signed in with PKCE)', () => {
    const ksctl = (token: string, ...args: string[]) => {
      const r = spawnSync(process.execPath, [KSCTL, '--api', p.env.urls.api, '--json', ...args], {
        encoding: 'utf8',
        env: { PATH: process.env['PATH'] ?? '', KSCTL_CACHE_DIR: join(work, 'ksctl-cache'), KEYSERVER_TOKEN: token },
        timeout: 60_000,
      });
      return { status: r.status, json: r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : {}, stderr: r.stderr };
    };

    it('ok session open/authorize, key create, rotate, versions, retire, destroy; refusals exit 4 with their code', async () => {
      const [adaT, alanT] = [await userToken(p, 'ada.admin@demo.test'), await userToken(p, 'alan.admin@demo.test')];
      const opened = ksctl(adaT, 'admin', 'session', 'open', '--description', 'ksctl lifecycle');
      expect(opened.status).toBe(0);
      const session = opened.json['id'] as string;
      expect(ksctl(alanT, 'admin', 'session', 'authorize', session).json['state']).toBe('ACTIVE');
      const created = ksctl(adaT, 'admin', 'key', 'create', '--session', session, '--keyid', 'cli-fw', '--type', 'FW', '--algorithm', 'EC_P256', '--cn', 'CLI Firmware', '--days', '90', '--approvers', '1', '--issuer', 'demo-root');
      expect({ status: created.status, state: created.json['state'] }).toEqual({ status: 0, state: 'ACTIVE' });
      const destroyActive = ksctl(adaT, 'admin', 'key', 'destroy', 'cli-fw', '--session', session);
      expect({ status: destroyActive.status, code: destroyActive.json['code'] }).toEqual({ status: 4, code: 'key_still_active' });
      expect(ksctl(adaT, 'admin', 'key', 'rotate', 'cli-fw', '--session', session, '--days', '60').status).toBe(0);
      const v = ksctl(adaT, 'admin', 'key', 'versions', 'cli-fw');
      expect((v.json['items'] as Version[]).map((i) => [i.version, i.state])).toEqual([
        [1, 'RETIRED'],
        [2, 'ACTIVE'],
      ]);
      expect(ksctl(adaT, 'admin', 'key', 'retire', 'cli-fw', '--session', session).json['state']).toBe('RETIRED');
      expect(ksctl(adaT, 'admin', 'key', 'destroy', 'cli-fw', '--session', session).status).toBe(0);
      expect((await versions('cli-fw')).destroyedAt).not.toBeNull();
      const usage = ksctl(adaT, 'admin', 'key', 'renew', 'cli-fw', '--session', session);
      expect(usage.status).toBe(2);
      expect(ksctl(adaT, 'admin', 'session', 'close', session).json['state']).toBe('CLOSED');
    });
  });
});
