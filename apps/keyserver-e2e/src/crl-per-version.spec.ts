import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { demoTenant, repoRoot, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken, sql, type Api } from './admin-helpers';
import { call, ciToken, operationBody, run } from './operations-support';

const KSCTL = join(repoRoot, 'dist', 'tools', 'keyserver-cli', 'main.js');

// Issue 15, CRLs per issuing key version (docs/adr/0029-crl-per-key-version.md): a CA rotates; certificates issued
// before and after name their own version's CRL, relying parties' tools (openssl, certtool, ksctl --crl-fetch)
// check revocation with the CRLs downloaded from those distribution points; the refresher signs every live
// version's CRL unasked; a destroyed CA keeps serving its final CRLs.

interface Issued {
  id: string;
  certificate: string;
  chain: string[];
  serial: string;
}

/** openssl's exit status and output (a refusal is an answer here, not an error). */
const openssl = (...args: string[]) => {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
};
const cdpOf = (pemFile: string) => /URI:(\S+)/.exec(run('openssl', ['x509', '-in', pemFile, '-noout', '-ext', 'crlDistributionPoints']))?.[1] ?? '';

describe('CRLs per issuing key version', () => {
  let p: RunningPlatform;
  let work: string;
  let ada: Api;
  let alan: Api;
  let ci: string;
  const f = (name: string) => join(work, name);
  const admin = async (path: string, body: unknown = {}) => ada<{ state: string; certificate: string; chain: string[]; code?: string }>('POST', path, { body, session: await activeSession(ada, alan, `crl e2e: ${path}`) });

  /** A device certificate from demo-ca-dev for an openssl CSR, written to NAME.pem. */
  async function issue(name: string): Promise<Issued> {
    run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${name}.key`), '-subj', `/CN=${name}/O=Demo Devices Ltd`, '-out', f(`${name}.csr`)]);
    const op = await call<{ id: string }>(p.env.urls.api, ci, 'POST', '/api/v1/operations', operationBody('demo-ca-dev', 1));
    expect(op.status).toBe(201);
    const r = await call<Issued>(p.env.urls.api, ci, 'POST', '/api/v1/certificates', { operationid: op.body.id, keyid: 'demo-ca-dev', csr: readFileSync(f(`${name}.csr`), 'utf8') });
    expect(r.status).toBe(201);
    writeFileSync(f(`${name}.pem`), r.body.certificate);
    return r.body;
  }

  /** The CRL at a certificate's distribution point, fetched anonymously as a relying party does, as PEM. */
  async function crlAt(url: string, name: string): Promise<string> {
    const r = await fetch(url);
    expect([r.status, r.headers.get('content-type')]).toEqual([200, 'application/pkix-crl']);
    writeFileSync(f(`${name}.der`), Buffer.from(await r.arrayBuffer()));
    run('openssl', ['crl', '-inform', 'DER', '-in', f(`${name}.der`), '-out', f(`${name}.crl.pem`)]);
    return f(`${name}.crl.pem`);
  }

  beforeAll(async () => {
    // A refresh pass every second, so the test sees the job sign CRLs nobody asked for.
    p = await startPlatform({ extraApiEnv: { CRL_REFRESH_SECONDS: '1' } });
    work = mkdtempSync(join(tmpdir(), 'ks-crl-versions-'));
    ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    ci = await ciToken(p);
  });
  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ok the refresher signs and stores a CRL for every live ROOT/CA key version without any fetch', async () => {
    const live = async () =>
      sql<{ n: string; stored: string }>(
        p,
        `SELECT count(*)::text AS n, count(c."keyVersionId")::text AS stored FROM "key_version" v JOIN "key" k ON k."id" = v."keyId"
           LEFT JOIN "crl" c ON c."keyVersionId" = v."id" WHERE k."type" IN ('ROOT', 'CA') AND v."destroyedAt" IS NULL AND v."notAfter" > now()`,
      );
    for (let i = 0; i < 100 && (await live())[0].stored !== (await live())[0].n; i++) await new Promise((r) => setTimeout(r, 100));
    const [row] = await live();
    expect(Number(row.n)).toBeGreaterThanOrEqual(3);
    expect(row.stored).toBe(row.n);
  });

  const issued: Record<string, Issued> = {};
  it('ok certificates issued before and after a CA rotation name their own version\'s CRL in their distribution point', async () => {
    issued['v1-revoked'] = await issue('v1-revoked');
    issued['v1-good'] = await issue('v1-good');
    const rotated = await admin('/api/v1/keys/demo-ca-dev/rotation', { validityDays: 300 });
    expect(rotated.status).toBe(200);
    issued['v2-revoked'] = await issue('v2-revoked');
    issued['v2-good'] = await issue('v2-good');
    for (const v of [1, 2]) for (const n of [`v${v}-revoked`, `v${v}-good`]) expect(cdpOf(f(`${n}.pem`))).toBe(`${p.env.urls.api}/api/v1/crl/demo-ca-dev/versions/${v}`);
    // The chain each issuance returned: the CA version that signed, then the ROOT.
    writeFileSync(f('ca-v1.pem'), issued['v1-good'].chain[0]);
    writeFileSync(f('ca-v2.pem'), issued['v2-good'].chain[0]);
    writeFileSync(f('root.pem'), issued['v2-good'].chain[1]);
    expect(new X509Certificate(issued['v1-good'].certificate).verify(new X509Certificate(issued['v1-good'].chain[0]).publicKey)).toBe(true);
    expect(new X509Certificate(issued['v2-good'].certificate).verify(new X509Certificate(issued['v1-good'].chain[0]).publicKey)).toBe(false);
    // The CA certificates name the CRL of the ROOT version that certified them.
    expect(cdpOf(f('ca-v2.pem'))).toBe(`${p.env.urls.api}/api/v1/crl/demo-root/versions/1`);
  });

  it('ok revoking one certificate of each version lists it on that version\'s CRL only; openssl -crl_check and -crl_check_all agree', async () => {
    for (const n of ['v1-revoked', 'v2-revoked']) {
      const r = await ada<{ revokedAt: string | null }>('POST', `/api/v1/certificates/${issued[n].id}/revocation`, { body: { reason: 'keyCompromise' } });
      expect(r.status).toBe(200);
    }
    const rootCrl = await crlAt(cdpOf(f('ca-v1.pem')), 'root-v1');
    for (const v of [1, 2]) {
      const crl = await crlAt(cdpOf(f(`v${v}-good.pem`)), `ca-v${v}`);
      // Signed by this version's key pair (openssl checks the signature against the version's certificate).
      expect(openssl('crl', '-in', crl, '-CAfile', f(`ca-v${v}.pem`), '-noout', '-verify').out).toContain('verify OK');
      const text = run('openssl', ['crl', '-in', crl, '-noout', '-text']).replace(/\s/g, '');
      expect(text).toContain(issued[`v${v}-revoked`].serial.toUpperCase().replace(/^0+/, ''));
      expect(text).not.toContain(issued[`v${3 - v}-revoked`].serial.toUpperCase().replace(/^0+/, ''));
      writeFileSync(f(`crls-v${v}.pem`), readFileSync(crl, 'utf8') + readFileSync(rootCrl, 'utf8'));
      for (const [name, ok] of [[`v${v}-revoked`, false], [`v${v}-good`, true]] as const) {
        for (const mode of [['-crl_check', '-CRLfile', crl], ['-crl_check_all', '-CRLfile', f(`crls-v${v}.pem`)]]) {
          const r = openssl('verify', ...mode, '-CAfile', f('root.pem'), '-untrusted', f(`ca-v${v}.pem`), f(`${name}.pem`));
          if (ok) expect(r).toEqual({ status: 0, out: expect.stringContaining(': OK') });
          else expect(r).toEqual({ status: 2, out: expect.stringContaining('certificate revoked') });
        }
      }
    }
    // Why versions: the newest version's CRL cannot vouch for a certificate of the older key pair.
    expect(openssl('verify', '-crl_check', '-CRLfile', f('ca-v2.crl.pem'), '-CAfile', f('root.pem'), '-untrusted', f('ca-v1.pem'), f('v1-good.pem')).status).not.toBe(0);
  });

  it('ok certtool agrees: the revoked certificate of each version is revoked, the other verifies', () => {
    for (const v of [1, 2]) {
      writeFileSync(f(`trust-v${v}.pem`), readFileSync(f('root.pem'), 'utf8') + readFileSync(f(`ca-v${v}.pem`), 'utf8'));
      const check = (name: string) => spawnSync('certtool', ['--verify', '--load-ca-certificate', f(`trust-v${v}.pem`), '--load-crl', f(`ca-v${v}.crl.pem`), '--infile', f(`${name}.pem`)], { encoding: 'utf8' });
      const revoked = check(`v${v}-revoked`);
      expect(`${revoked.stdout}${revoked.stderr}`).toMatch(/revoked/i);
      expect(revoked.status).not.toBe(0);
      const good = check(`v${v}-good`);
      expect({ status: good.status, out: `${good.stdout}${good.stderr}` }).toEqual({ status: 0, out: expect.stringMatching(/Chain verification output: Verified/) });
    }
  });

  it('ok the unversioned route (certificates issued before CRLs per version) serves the current version\'s CRL', async () => {
    const current = await crlAt(`${p.env.urls.api}/api/v1/crl/demo-ca-dev`, 'ca-current');
    expect(openssl('crl', '-in', current, '-CAfile', f('ca-v2.pem'), '-noout', '-verify').out).toContain('verify OK');
    expect(run('openssl', ['crl', '-in', current, '-noout', '-text']).replace(/\s/g, '')).toContain(issued['v2-revoked'].serial.toUpperCase().replace(/^0+/, ''));
  });

  describe('ksctl verify --crl-fetch (firmware keys certified by each CA version)', () => {
    const ksctl = (...args: string[]) => {
      const r = spawnSync(process.execPath, [KSCTL, '--api', p.env.urls.api, '--json', ...args], {
        encoding: 'utf8',
        env: { PATH: process.env['PATH'] ?? '', KSCTL_CACHE_DIR: join(work, 'ksctl-cache'), KEYSERVER_TOKEN: ci },
        timeout: 60_000,
      });
      return { status: r.status, json: r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : {}, stderr: r.stderr };
    };
    const image = () => f('image.bin');

    it('ok a signature of the key the old CA version certified fails once that key is revoked; the new version\'s key verifies', async () => {
      writeFileSync(image(), Buffer.alloc(64 * 1024, 0x5a));
      const session = await activeSession(ada, alan, 'firmware keys under both CA versions');
      // demo-ca-dev is at version 2 now: fw-under-v2 is certified by it; fw-under-v1 gets an older-version twin
      // through the rotation below (created first, then the CA rotates again).
      const mk = async (keyid: string) => {
        const r = await ada('POST', '/api/v1/keys', { session, body: { keyid, type: 'FW', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 30, commonName: keyid, issuer: 'demo-ca-dev', product: 'crl-e2e' } });
        expect(r.status).toBe(201);
      };
      await mk('fw-under-v2');
      expect((await ada('POST', '/api/v1/keys/demo-ca-dev/rotation', { session, body: { validityDays: 200 } })).status).toBe(200);
      await mk('fw-under-v3');
      const role = await ada('POST', '/api/v1/roles', { session, body: { name: 'crl-e2e', natures: ['ORDERER', 'SIGNER'], keys: ['fw-under-v2', 'fw-under-v3'].map((keyid) => ({ keyid, permissions: ['ORDER', 'SIGN'] })) } });
      expect(role.status).toBe(201);
      const demoCi = demoTenant.ciClients.find((c) => c.name === 'demo-ci');
      const subjects = await ada<{ items: { id: string; oid: string; roles: string[] }[] }>('GET', '/api/v1/subjects');
      const subject = subjects.body.items.find((s) => s.oid === demoCi?.servicePrincipalOid);
      if (!subject) throw new Error('demo-ci subject missing');
      expect((await ada('PATCH', `/api/v1/subjects/${subject.id}`, { session, body: { roles: [...subject.roles, 'crl-e2e'] } })).status).toBe(200);
      await new Promise((r) => setTimeout(r, 300)); // the access cache hears of the new role (ADR 0028)

      for (const keyid of ['fw-under-v2', 'fw-under-v3']) {
        const op = await call<{ id: string }>(p.env.urls.api, ci, 'POST', '/api/v1/operations', operationBody(keyid, 1));
        expect(op.status).toBe(201);
        const signed = ksctl('sign', '--operation', op.body.id, '--key', keyid, '--file', image(), '--out', f(`${keyid}.sig`));
        expect({ status: signed.status, err: signed.stderr }).toMatchObject({ status: 0 });
        expect(ksctl('keys', 'show', keyid, '--chain', f(`${keyid}-chain.pem`)).status).toBe(0);
      }
      const verify = (keyid: string) => ksctl('verify', '--signature', f(`${keyid}.sig`), '--file', image(), '--chain', f(`${keyid}-chain.pem`), '--ca', f('root.pem'), '--crl-fetch');
      for (const keyid of ['fw-under-v2', 'fw-under-v3']) expect({ keyid, status: verify(keyid).status }).toEqual({ keyid, status: 0 });
      expect((await ada('POST', '/api/v1/keys/fw-under-v2/revocation', { session, body: { reason: 'keyCompromise' } })).status).toBe(200);
      const revoked = verify('fw-under-v2');
      expect({ status: revoked.status, out: JSON.stringify(revoked.json) + revoked.stderr }).toEqual({ status: 6, out: expect.stringContaining('certificate_revoked') });
      const good = verify('fw-under-v3');
      expect({ status: good.status, out: JSON.stringify(good.json) }).toEqual({ status: 0, out: expect.stringContaining('checked') });
    });
  });

  it.each([
    ['fail version 0', '/api/v1/crl/demo-ca-dev/versions/0', 400, 'crl_version_invalid'],
    ['fail a negative version', '/api/v1/crl/demo-ca-dev/versions/-1', 400, 'crl_version_invalid'],
    ['fail a leading zero', '/api/v1/crl/demo-ca-dev/versions/01', 400, 'crl_version_invalid'],
    ['fail a huge number', `/api/v1/crl/demo-ca-dev/versions/${'9'.repeat(40)}`, 400, 'crl_version_invalid'],
    ['fail an exponent', '/api/v1/crl/demo-ca-dev/versions/1e3', 400, 'crl_version_invalid'],
    ['fail a "v" prefix', '/api/v1/crl/demo-ca-dev/versions/v1', 400, 'crl_version_invalid'],
    ['fail a fullwidth digit (unicode)', '/api/v1/crl/demo-ca-dev/versions/%EF%BC%91', 400, 'crl_version_invalid'],
    ['fail an Arabic-Indic digit (unicode)', '/api/v1/crl/demo-ca-dev/versions/%D9%A1', 400, 'crl_version_invalid'],
    ['fail NUL after the number', '/api/v1/crl/demo-ca-dev/versions/1%00', 400, 'invalid_input_encoding'],
    ['fail a version the key does not have', '/api/v1/crl/demo-ca-dev/versions/999999', 404, 'key_version_not_found'],
    ['fail an unknown key', '/api/v1/crl/no-such-ca/versions/1', 404, 'key_not_found'],
    ['fail a key in another case', '/api/v1/crl/DEMO-CA-DEV/versions/1', 404, 'key_not_found'],
    ['fail a firmware key (no CRL)', '/api/v1/crl/demo-fw-dev/versions/1', 404, 'key_not_found'],
    ['fail a huge keyid', `/api/v1/crl/${'k'.repeat(3000)}/versions/1`, 404, 'key_not_found'],
  ])('%s: 4xx problem+json with a stable code', async (_n, path, status, code) => {
    const r = await fetch(`${p.env.urls.api}${path}`);
    expect(r.headers.get('content-type')).toContain('application/problem+json');
    expect({ status: r.status, code: ((await r.json()) as { code: string }).code }).toEqual({ status, code });
  });

  describe('a destroyed CA', () => {
    it('ok destruction signs a final CRL per unexpired version, valid until its certificates expired, and keeps serving it', async () => {
      for (const k of ['fw-under-v3', 'demo-ca-dev']) expect((await admin(`/api/v1/keys/${k}/retirement`)).status).toBe(200);
      const destroyed = await admin('/api/v1/keys/demo-ca-dev/destruction');
      expect(destroyed.status).toBe(200);
      const [event] = await sql<{ details: { finalCrlVersions: number[] } }>(p, `SELECT "details" FROM "audit_event" WHERE "action" = 'key.destroy' AND "keyid" = 'demo-ca-dev' AND "outcome" = 'SUCCESS'`);
      expect(event.details.finalCrlVersions).toEqual([1, 2, 3]);
      const crl = await crlAt(`${p.env.urls.api}/api/v1/crl/demo-ca-dev/versions/1`, 'ca-v1-final');
      const nextUpdate = Date.parse(/nextUpdate=(.+)/.exec(run('openssl', ['crl', '-in', crl, '-noout', '-nextupdate']))?.[1] ?? '');
      expect(nextUpdate).toBeGreaterThanOrEqual(Date.parse(new X509Certificate(readFileSync(f('ca-v1.pem'), 'utf8')).validTo));
      const r = openssl('verify', '-crl_check', '-CRLfile', crl, '-CAfile', f('root.pem'), '-untrusted', f('ca-v1.pem'), f('v1-revoked.pem'));
      expect(r).toEqual({ status: 2, out: expect.stringContaining('certificate revoked') });
      expect(openssl('verify', '-crl_check', '-CRLfile', crl, '-CAfile', f('root.pem'), '-untrusted', f('ca-v1.pem'), f('v1-good.pem')).status).toBe(0);
    });

    it('fail revoking a certificate or a retired key of the destroyed CA (its final CRL cannot change)', async () => {
      const r = await ada('POST', `/api/v1/certificates/${issued['v1-good'].id}/revocation`, { body: { reason: 'keyCompromise' } });
      expect({ status: r.status, code: r.body['code'] }).toEqual({ status: 409, code: 'issuer_destroyed' });
      const k = await admin('/api/v1/keys/fw-under-v3/revocation', { reason: 'keyCompromise' });
      expect({ status: k.status, code: k.body.code }).toEqual({ status: 409, code: 'issuer_not_usable' });
    });

    it('fail once the final CRL is past its nextUpdate: 404 crl_not_available', async () => {
      await sql(p, `UPDATE "crl" SET "nextUpdate" = now() - interval '1 second' WHERE "keyVersionId" IN (SELECT v."id" FROM "key_version" v JOIN "key" k ON k."id" = v."keyId" WHERE k."keyid" = 'demo-ca-dev' AND v."version" = 1)`);
      const r = await fetch(`${p.env.urls.api}/api/v1/crl/demo-ca-dev/versions/1`);
      expect({ status: r.status, code: ((await r.json()) as { code: string }).code }).toEqual({ status: 404, code: 'crl_not_available' });
      expect((await fetch(`${p.env.urls.api}/api/v1/crl/demo-ca-dev/versions/2`)).status).toBe(200);
      expect((await ada('GET', '/api/v1/audit/verify')).body['ok']).toBe(true);
    });
  });
});
