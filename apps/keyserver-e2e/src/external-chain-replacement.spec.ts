import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken, sql, type Api } from './admin-helpers';
import { ksctlAs, offlineRoot, run, userToken } from './operations-support';

// The offline CA above an imported ROOT renews (ADR 0020 addendum "the renewed external chain"): the offline
// intermediate is re-certified with the same key pair, then the ROOT's own certificate is re-issued for the same key
// pair; both are installed through POST /api/v1/keys/{keyid}/external-chain (and ksctl admin key replace-chain). The
// offline CA is openssl here, as at a customer; what the API stores is verified with openssl.

interface Detail {
  certificate: string;
  chain?: string[];
  currentVersion?: number;
}

describe('replacing the external chain of an imported ROOT (the offline CA renewed)', () => {
  let p: RunningPlatform;
  let work: string;
  let ada: Api;
  let session: string;
  const f = (name: string) => join(work, name);
  const pem = (name: string) => readFileSync(f(name), 'utf8');
  const replace = (body: unknown) => ada<Detail & { code?: string }>('POST', '/api/v1/keys/ext-root/external-chain', { body, session });
  /** The offline intermediate (re)certified by the offline root: the same key pair and request every time. */
  const intermediate = (out: string, days: number) =>
    run('openssl', ['x509', '-req', '-in', f('int.csr'), '-CA', f('offline.pem'), '-CAkey', f('offline.key'), '-CAcreateserial', '-out', f(out), '-days', String(days), '-extfile', f('int.cnf')]);
  /** A certificate the offline intermediate issues for a request (the ROOT's, or another key's). */
  const byIntermediate = (csr: string, out: string, days: number, extra: string[] = []) =>
    run('openssl', ['x509', '-req', '-in', f(csr), '-CA', f('int.pem'), '-CAkey', f('int.key'), '-CAcreateserial', '-out', f(out), '-days', String(days), '-extfile', f('ext.cnf'), ...extra]);
  const verify = (leaf: string, untrusted: string, at?: number) =>
    spawnSync('openssl', ['verify', '-x509_strict', ...(at ? ['-attime', String(Math.floor(at / 1000))] : []), '-CAfile', f('offline.pem'), '-untrusted', f(untrusted), f(leaf)], { encoding: 'utf8' });

  beforeAll(async () => {
    p = await startPlatform();
    work = mkdtempSync(join(tmpdir(), 'ks-ext-chain-'));
    ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    const alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    session = await activeSession(ada, alan, 'the offline CA renewed');
    offlineRoot(f);
    writeFileSync(f('int.cnf'), 'basicConstraints=critical,CA:true,pathlen:2\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
    run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('int.key'), '-out', f('int.csr'), '-subj', '/C=DK/O=Acme/CN=Acme Offline Intermediate']);
    intermediate('int.pem', 30);
    const c = await ada<{ csr: string }>('POST', '/api/v1/keys/root-ceremony', {
      body: { keyid: 'ext-root', algorithm: 'EC_P256', subject: { commonName: 'Acme Online Root', organization: 'Acme', country: 'DK' }, validityDays: 1000, requiredApprovers: 0, mode: 'external' },
      session,
    });
    expect(c.status).toBe(201);
    writeFileSync(f('root.csr'), c.body.csr);
    byIntermediate('root.csr', 'root-v1.pem', 1000);
    const imported = await ada('POST', '/api/v1/keys/ext-root/certificate', { body: { certificate: pem('root-v1.pem'), chain: [pem('int.pem'), pem('offline.pem')] }, session });
    expect(imported.status).toBe(200);
  });
  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ok the renewed intermediate (same key pair) replaces the stored chain; openssl verifies the ROOT through it past the old one\'s end', async () => {
    const oldEnd = new X509Certificate(pem('int.pem')).validToDate.getTime();
    intermediate('int-v2.pem', 400);
    const r = await replace({ chain: [pem('int-v2.pem'), pem('offline.pem')] });
    expect(r.status).toBe(200);
    expect(r.body.certificate).toBe(pem('root-v1.pem'));
    const versions = (await ada<{ currentVersion: number }>('GET', '/api/v1/keys/ext-root/versions')).body;
    expect(versions.currentVersion).toBe(1);
    expect(verify('root-v1.pem', 'int-v2.pem', oldEnd + 86_400_000)).toMatchObject({ status: 0 });
    expect(verify('root-v1.pem', 'int.pem', oldEnd + 86_400_000).status).not.toBe(0);
    const [event] = await sql<{ details: { reissued: boolean; administrators: unknown[]; chainSha256: string[] } }>(p, `SELECT "details" FROM "audit_event" WHERE "action" = 'key.external_chain_replace' AND "keyid" = 'ext-root' AND "outcome" = 'SUCCESS'`);
    expect(event.details.reissued).toBe(false);
    expect(event.details.administrators).toHaveLength(2);
    expect(event.details.chainSha256[0]).toBe(new X509Certificate(pem('int-v2.pem')).fingerprint256.replace(/:/g, '').toLowerCase());
  });

  describe('hostile input: a 4xx problem+json with a stable code, nothing changed', () => {
    beforeAll(() => {
      run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('stranger.key'), '-out', f('stranger.csr'), '-subj', '/C=DK/O=Acme/CN=Acme Online Root']);
      writeFileSync(f('int.pem'), pem('int-v2.pem'));
      byIntermediate('stranger.csr', 'stranger.pem', 500);
      byIntermediate('root.csr', 'renamed.pem', 500, ['-subj', '/C=DK/O=Acme/CN=Acme Online Root 2']);
    });
    const garbage = '-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGUgYXQgYWxsLCBqdXN0IHNvbWUgdGV4dCBpbiBhIFBFTSBhcm1vdXI=\n-----END CERTIFICATE-----\n';
    it.each([
      ['fail garbage in a PEM armour', () => ({ chain: [garbage, pem('offline.pem')] }), 400, 'invalid_certificate'],
      ['fail a certificate for another key pair under the ROOT\'s name', () => ({ certificate: pem('stranger.pem'), chain: [pem('int-v2.pem'), pem('offline.pem')] }), 400, 'certificate_key_mismatch'],
      ['fail the ROOT\'s key pair under another subject', () => ({ certificate: pem('renamed.pem'), chain: [pem('int-v2.pem'), pem('offline.pem')] }), 400, 'subject_mismatch'],
      ['fail a chain that does not link (the anchor alone)', () => ({ chain: [pem('offline.pem')] }), 400, 'chain_invalid'],
      ['fail the chain already stored', () => ({ chain: [pem('int-v2.pem'), pem('offline.pem')] }), 409, 'external_chain_unchanged'],
      ['fail a certificate of 70 kB (over the request size limit, refused at the edge)', () => ({ chain: [`-----BEGIN CERTIFICATE-----\n${'A'.repeat(70_000)}\n-----END CERTIFICATE-----\n`] }), 413, 'payload_too_large'],
      ['fail nine chain certificates', () => ({ chain: Array.from({ length: 9 }, () => pem('offline.pem')) }), 400, 'validation_failed'],
    ] as const)('%s', async (_n, body, status, code) => {
      const before = (await ada<Detail>('GET', '/api/v1/keys/ext-root')).body;
      const r = await replace(body());
      expect({ status: r.status, type: r.headers.get('content-type'), code: r.body.code }).toEqual({ status, type: expect.stringContaining('application/problem+json'), code });
      expect((await ada<Detail>('GET', '/api/v1/keys/ext-root')).body).toEqual(before);
    });

    it('fail a body of 4 MiB: 413 payload_too_large problem+json before any work', async () => {
      const r = await ada<{ code?: string }>('POST', '/api/v1/keys/ext-root/external-chain', { rawBody: JSON.stringify({ chain: ['x'.repeat(4 * 1024 * 1024)] }), session });
      expect({ status: r.status, type: r.headers.get('content-type'), code: r.body.code }).toEqual({ status: 413, type: expect.stringContaining('application/problem+json'), code: 'payload_too_large' });
    });
  });

  it('ok ksctl admin key replace-chain installs the ROOT certificate the offline CA re-issued (same key pair): a new version; sent again, exit 4 external_chain_unchanged', async () => {
    writeFileSync(f('int.pem'), pem('int-v2.pem'));
    byIntermediate('root.csr', 'root-v2.pem', 900);
    writeFileSync(f('chain.pem'), pem('int-v2.pem') + pem('offline.pem'));
    const ksctl = ksctlAs(p, join(work, 'ksctl-cache'), await userToken(p, 'ada.admin@demo.test'));
    const args = ['admin', 'key', 'replace-chain', 'ext-root', '--session', session, '--chain', f('chain.pem'), '--cert-file', f('root-v2.pem')];
    const done = ksctl(...args);
    expect({ status: done.status, certificate: done.json['certificate'] }).toEqual({ status: 0, certificate: pem('root-v2.pem') });
    const again = ksctl(...args);
    expect({ status: again.status, code: again.json['code'] }).toEqual({ status: 4, code: 'external_chain_unchanged' });
    const versions = (await ada<{ currentVersion: number; items: { version: number; state: string; spkiSha256: string }[] }>('GET', '/api/v1/keys/ext-root/versions')).body;
    expect(versions.currentVersion).toBe(2);
    expect(versions.items.map((v) => v.state)).toEqual(['RETIRED', 'ACTIVE']);
    expect(versions.items[0].spkiSha256).toBe(versions.items[1].spkiSha256);
    expect(verify('root-v2.pem', 'int-v2.pem')).toMatchObject({ status: 0 });
    expect((await ada('GET', '/api/v1/audit/verify')).body['ok']).toBe(true);
  });
});
