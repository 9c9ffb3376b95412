import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, createPublicKey, verify, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientCredentialsToken, composeCommand, demoTenant, repoRoot, runStep, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken, sql, userOid, type Api } from './admin-helpers';
import { call, operationBody, run, signOrderBody, userToken } from './operations-support';

// Issue 15 items 1 and 2 on an empty production installation: bootstrap, then the ROOT ceremony (self-signed and
// external), then CA levels below it. Real processes, PostgreSQL, SoftHSM, the emulator; openssl and certtool verify.

const TID = demoTenant.tenant.id;
const ADA = userOid('ada.admin@demo.test');
const ALAN = userOid('alan.admin@demo.test');
const apiMain = (): string[] => {
  // The keyserver-api image's command with a subcommand appended (the way an operator runs it in the container).
  const [node, main] = composeCommand('keyserver-api');
  return [node, main];
};

const spkiSha256 = (pem: string) => createHash('sha256').update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');

describe('going live (bootstrap, ROOT ceremony, CA levels)', () => {
  let p: RunningPlatform;
  let work: string;
  let ada: Api;
  let alan: Api;
  const f = (name: string) => join(work, name);
  const bootstrap = (...args: string[]) => runStep([...apiMain(), 'bootstrap', ...args, '--by', 'e2e operator'], p.apiEnv);

  beforeAll(async () => {
    p = await startPlatform({ mode: 'production' });
    work = mkdtempSync(join(tmpdir(), 'ks-golive-'));
  });
  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  describe('before the bootstrap', () => {
    it('ok the probes and the API description answer', async () => {
      expect((await fetch(`${p.env.urls.api}/readyz`)).status).toBe(200);
      expect((await fetch(`${p.env.urls.api}/api/docs`, { headers: { accept: 'application/json' } })).status).toBe(200);
    });

    it.each([
      ['GET', '/api/keys'],
      ['GET', '/api/v1/keys'],
      ['POST', '/api/signorders'],
      ['POST', '/api/v1/admin-sessions'],
    ])('fail %s %s: 503 not_bootstrapped, even with a valid token', async (method, path) => {
      const token = await bffUserToken(p, 'ada.admin@demo.test');
      const r = await fetch(`${p.env.urls.api}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: method === 'POST' ? '{}' : undefined });
      expect(r.status).toBe(503);
      expect(r.headers.get('content-type')).toContain('application/problem+json');
      expect(((await r.json()) as { code: string }).code).toBe('not_bootstrapped');
    });

    it('fail seed-demo in production mode: no demo data, ever', async () => {
      const r = runStep([...apiMain(), 'seed-demo'], p.apiEnv);
      expect(r.status).not.toBe(0);
      expect(r.stderr + r.stdout).toContain('demo_refused');
      expect(await sql(p, 'SELECT 1 FROM "key"')).toHaveLength(0);
    });

    it.each([
      ['one administrator', [`${TID}:${ADA}:Ada`], 'too_few_administrators'],
      ['the same administrator twice', [`${TID}:${ADA}:Ada`, `${TID}:${ADA.toUpperCase()}:Ada again`], 'too_few_administrators'],
      ['an administrator of another tenant', [`${TID}:${ADA}:Ada`, `00000000-0000-4000-8000-000000000000:${ALAN}:Alan`], 'invalid_administrator'],
      ['an object id that is not a GUID', [`${TID}:${ADA}:Ada`, `${TID}:alan:Alan`], 'invalid_administrator'],
    ])('fail bootstrap with %s (exit 2, audited, nothing created)', async (_name, admins, code) => {
      const r = bootstrap(...admins.flatMap((a) => ['--admin', a]));
      expect({ status: r.status, out: r.stderr }).toEqual({ status: 2, out: expect.stringContaining(code) });
      expect(await sql(p, 'SELECT 1 FROM "subject"')).toHaveLength(0);
      const audit = await sql<{ outcome: string; errorCode: string; actorName: string }>(p, `SELECT "outcome"::text, "errorCode", "actorName" FROM "audit_event" WHERE "action" = 'installation.bootstrap' ORDER BY "seq" DESC LIMIT 1`);
      expect(audit[0]).toEqual({ outcome: 'DENIED', errorCode: code, actorName: 'e2e operator' });
    });
    it('fail bootstrap on an HSM token that already holds keys (exit 1, installation_not_empty, audited)', async () => {
      const api = p.apiEnv;
      const p11 = (...args: string[]) =>
        execFileSync('pkcs11-tool', ['--module', api['PKCS11_MODULE'], '--token-label', api['PKCS11_TOKEN_LABEL'], '--login', '--pin', readFileSync(api['PKCS11_PIN_FILE'], 'utf8').trim(), ...args], {
          env: { ...process.env, SOFTHSM2_CONF: api['SOFTHSM2_CONF'] },
          stdio: ['ignore', 'pipe', 'pipe'],
        }).toString();
      p11('--keypairgen', '--key-type', 'EC:prime256v1', '--id', '0badc0de', '--label', 'stray-key');
      try {
        const r = bootstrap('--admin', `${TID}:${ADA}:Ada`, '--admin', `${TID}:${ALAN}:Alan`);
        expect({ status: r.status, out: r.stderr }).toEqual({ status: 1, out: expect.stringContaining('installation_not_empty') });
        expect(await sql(p, 'SELECT 1 FROM "subject"')).toHaveLength(0);
      } finally {
        p11('--delete-object', '--type', 'privkey', '--id', '0badc0de');
        p11('--delete-object', '--type', 'pubkey', '--id', '0badc0de');
      }
    });
  });

  describe('bootstrap', () => {
    it('ok registers exactly the two administrators and nothing else', async () => {
      const r = bootstrap('--admin', `${TID}:${ADA}:Ada Admin`, '--admin', `${TID}:${ALAN}:Alan Admin`);
      expect({ status: r.status, err: r.stderr }).toEqual({ status: 0, err: '' });
      const subjects = await sql<{ oid: string; kind: string }>(p, 'SELECT "oid", "kind"::text FROM "subject" ORDER BY "oid"');
      expect(subjects).toEqual([
        { oid: ADA, kind: 'USER' },
        { oid: ALAN, kind: 'USER' },
      ]);
      expect(await sql(p, 'SELECT "name", "natures"::text[] AS "natures" FROM "role"')).toEqual([{ name: 'administrators', natures: ['ADMINISTRATOR'] }]);
      expect(await sql(p, 'SELECT 1 FROM "key"')).toHaveLength(0);
      const [ok] = await sql<{ outcome: string; details: { administrators: { oid: string }[] } }>(p, `SELECT "outcome"::text, "details" FROM "audit_event" WHERE "action" = 'installation.bootstrap' AND "outcome" = 'SUCCESS'`);
      expect(ok.details.administrators.map((a) => a.oid)).toEqual([ADA, ALAN]);
      ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
      alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    });

    it('ok the server serves the administrators now (the refusals before were audited)', async () => {
      expect((await ada('GET', '/api/v1/keys')).body).toEqual({ items: [] });
      const refused = await sql(p, `SELECT 1 FROM "audit_event" WHERE "action" = 'request.refused' AND "errorCode" = 'not_bootstrapped'`);
      expect(refused.length).toBeGreaterThan(0);
    });

    it('fail a second bootstrap (exit 1, already_bootstrapped, audited; concurrent runs: key-lifecycle.repository.spec.ts)', async () => {
      const again = bootstrap('--admin', `${TID}:${ADA}:Ada`, '--admin', `${TID}:${ALAN}:Alan`);
      expect({ status: again.status, out: again.stderr }).toEqual({ status: 1, out: expect.stringContaining('already_bootstrapped') });
      const denied = await sql(p, `SELECT 1 FROM "audit_event" WHERE "action" = 'installation.bootstrap' AND "errorCode" = 'already_bootstrapped'`);
      expect(denied).toHaveLength(1);
      expect(await sql(p, 'SELECT 1 FROM "subject"')).toHaveLength(2);
    });
  });

  describe('ROOT ceremony', () => {
    const ceremony = (keyid: string, extra: Record<string, unknown> = {}) => ({
      keyid,
      algorithm: 'EC_P384',
      subject: { commonName: 'Acme Devices Root CA', organization: 'Acme Devices', country: 'DK' },
      validityDays: 7300,
      pathLen: 2,
      mode: 'self-signed',
      ...extra,
    });

    it('fail without an ACTIVE session: one administrator alone cannot run it (audited)', async () => {
      const s = await ada<{ id: string }>('POST', '/api/v1/admin-sessions', { body: { description: 'ROOT ceremony (alone)' } });
      const r = await ada('POST', '/api/v1/keys/root-ceremony', { body: ceremony('acme-root'), session: s.body.id });
      expect({ status: r.status, code: r.body['code'] }).toEqual({ status: 403, code: 'admin_session_required' });
      const [a] = await sql(p, `SELECT "outcome"::text, "errorCode" FROM "audit_event" WHERE "action" = 'key.root_ceremony' ORDER BY "seq" DESC LIMIT 1`);
      expect(a).toEqual({ outcome: 'DENIED', errorCode: 'admin_session_required' });
    });

    it('fail in a session only one administrator took part in, even if a test config made it ACTIVE', async () => {
      const [s] = await sql<{ id: string }>(
        p,
        `INSERT INTO "admin_session" ("id", "description", "creatorId", "state", "requiredApprovals", "expiresAt", "activatedAt")
         SELECT gen_random_uuid(), 'dev-style session', "id", 'ACTIVE', 0, now() + interval '1 hour', now() FROM "subject" WHERE "oid" = $1 RETURNING "id"`,
        [ADA],
      );
      const r = await ada('POST', '/api/v1/keys/root-ceremony', { body: ceremony('acme-root'), session: s.id });
      expect({ status: r.status, code: r.body['code'] }).toEqual({ status: 403, code: 'ceremony_needs_two_administrators' });
      expect(await sql(p, 'SELECT 1 FROM "key"')).toHaveLength(0);
    });

    let root: string;
    it('ok generates the ROOT in the HSM, self-signs it, and audits both administrators, the fingerprint and the certificate', async () => {
      const session = await activeSession(ada, alan, 'ROOT key ceremony 2026');
      const r = await ada<{ keyid: string; state: string; certificate: string; spkiSha256: string; administrators: { displayName: string }[] }>('POST', '/api/v1/keys/root-ceremony', {
        body: ceremony('acme-root'),
        session,
      });
      expect(r.status).toBe(201);
      expect(r.body.state).toBe('ACTIVE');
      root = r.body.certificate;
      writeFileSync(f('root.pem'), root);
      expect(r.body.spkiSha256).toBe(spkiSha256(root));
      expect(r.body.administrators.map((a) => a.displayName).sort()).toEqual(['Ada Admin', 'Alan Admin']);
      expect(run('openssl', ['verify', '-CAfile', f('root.pem'), f('root.pem')])).toContain('OK');
      const text = run('openssl', ['x509', '-in', f('root.pem'), '-noout', '-text']);
      expect(text).toMatch(/CA:TRUE, pathlen:2/);
      expect(text).toContain('Acme Devices Root CA');
      expect(text).toMatch(/NIST CURVE: P-384|secp384r1/);
      const [a] = await sql<{ adminSessionId: string; details: Record<string, unknown> }>(p, `SELECT "adminSessionId", "details" FROM "audit_event" WHERE "action" = 'key.root_ceremony' AND "outcome" = 'SUCCESS'`);
      expect(a.adminSessionId).toBe(session);
      expect(a.details).toMatchObject({ spkiSha256: r.body.spkiSha256, certificate: root, mode: 'self-signed' });
      expect((a.details['administrators'] as { displayName: string }[]).map((x) => x.displayName).sort()).toEqual(['Ada Admin', 'Alan Admin']);
      expect((await ada('GET', '/api/v1/audit/verify')).body['ok']).toBe(true);
    });

    it.each([
      ['RSA_3072', /Public-Key: \(3072 bit\)/],
      ['EC_P521', /NIST CURVE: P-521|secp521r1/],
      ['ED25519', /ED25519/],
    ])('ok a ROOT in %s, self-signed in the HSM, that openssl verifies', async (algorithm, shown) => {
      const session = await activeSession(ada, alan, `ROOT ceremony ${algorithm}`);
      const keyid = `root-${algorithm.toLowerCase().replace('_', '-')}`;
      const r = await ada<{ certificate: string }>('POST', '/api/v1/keys/root-ceremony', { body: ceremony(keyid, { algorithm, pathLen: undefined }), session });
      expect(r.status).toBe(201);
      writeFileSync(f(`${keyid}.pem`), r.body.certificate);
      expect(run('openssl', ['verify', '-x509_strict', '-CAfile', f(`${keyid}.pem`), f(`${keyid}.pem`)])).toContain('OK');
      expect(run('openssl', ['x509', '-in', f(`${keyid}.pem`), '-noout', '-text'])).toMatch(shown);
    });

    it('fail a second key with the same keyid (key_exists, nothing generated)', async () => {
      const session = await activeSession(ada, alan);
      const r = await ada('POST', '/api/v1/keys/root-ceremony', { body: ceremony('acme-root'), session });
      expect({ status: r.status, code: r.body['code'] }).toEqual({ status: 409, code: 'key_exists' });
    });

    it('ok three CA levels: ROOT -> intermediate (pathLen 1) -> issuing CA (pathLen 0) -> FW key; openssl and certtool verify', async () => {
      const session = await activeSession(ada, alan, 'CA hierarchy');
      const create = (body: Record<string, unknown>) => ada<{ certificate: string; chain: string[] }>('POST', '/api/v1/keys', { body: { requiredApprovers: 1, validityDays: 3650, ...body }, session });
      const inter = await create({ keyid: 'acme-intermediate', type: 'CA', algorithm: 'EC_P384', commonName: 'Acme Intermediate CA', issuer: 'acme-root', pathLen: 1 });
      expect(inter.status).toBe(201);
      const issuing = await create({ keyid: 'acme-issuing', type: 'CA', algorithm: 'EC_P256', commonName: 'Acme Issuing CA', issuer: 'acme-intermediate', pathLen: 0, validityDays: 1825 });
      expect(issuing.status).toBe(201);
      const fw = await create({ keyid: 'acme-fw', type: 'FW', algorithm: 'RSA_3072', commonName: 'Acme Firmware', issuer: 'acme-issuing', validityDays: 730, product: 'gadget', requiredApprovers: 0 });
      expect(fw.status).toBe(201);
      expect(fw.body.chain).toHaveLength(4);
      writeFileSync(f('untrusted.pem'), issuing.body.certificate + inter.body.certificate);
      writeFileSync(f('fw.pem'), fw.body.certificate);
      expect(run('openssl', ['verify', '-x509_strict', '-CAfile', f('root.pem'), '-untrusted', f('untrusted.pem'), f('fw.pem')])).toContain('fw.pem: OK');
      writeFileSync(f('chain.pem'), fw.body.chain.join(''));
      expect(run('certtool', ['--verify-chain', '--infile', f('chain.pem')])).toMatch(/Chain verification output: Verified/);
      writeFileSync(f('inter.pem'), inter.body.certificate);
      writeFileSync(f('issuing.pem'), issuing.body.certificate);
      expect(run('openssl', ['x509', '-in', f('inter.pem'), '-noout', '-text'])).toMatch(/CA:TRUE, pathlen:1/);
      expect(run('openssl', ['x509', '-in', f('issuing.pem'), '-noout', '-text'])).toMatch(/CA:TRUE, pathlen:0/);
    });

    it('ok the first CI client (docs/operations.md step 6 with ksctl admin): a role, a client subject, then it signs with the FW key', async () => {
      const ci = demoTenant.ciClients.find((c) => c.name === 'demo-ci');
      if (!ci?.clientSecret) throw new Error('demo-ci missing');
      const ksctl = (token: string, ...args: string[]) => {
        const r = spawnSync(process.execPath, [join(repoRoot, 'dist', 'tools', 'keyserver-cli', 'main.js'), '--api', p.env.urls.api, '--json', ...args], {
          encoding: 'utf8',
          env: { PATH: process.env['PATH'] ?? '', KSCTL_CACHE_DIR: join(work, 'ksctl'), KEYSERVER_TOKEN: token },
          timeout: 60_000,
        });
        return { status: r.status, json: r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : {}, stderr: r.stderr };
      };
      const [adaT, alanT] = [await userToken(p, 'ada.admin@demo.test'), await userToken(p, 'alan.admin@demo.test')];
      const session = ksctl(adaT, 'admin', 'session', 'open', '--description', 'first CI client').json['id'] as string;
      expect(ksctl(alanT, 'admin', 'session', 'authorize', session).json['state']).toBe('ACTIVE');
      const role = ksctl(adaT, 'admin', 'role', 'create', '--session', session, '--name', 'ci-gadget', '--natures', 'ORDERER,SIGNER', '--grant', 'acme-fw=ORDER+SIGN');
      expect({ status: role.status, err: role.stderr }).toEqual({ status: 0, err: '' });
      const subject = ksctl(adaT, 'admin', 'subject', 'create', '--session', session, '--kind', 'CLIENT', '--tid', TID, '--oid', ci.servicePrincipalOid, '--display-name', 'Gadget CI', '--roles', 'ci-gadget');
      expect({ status: subject.status, err: subject.stderr }).toEqual({ status: 0, err: '' });
      const token = await clientCredentialsToken(p.facts, ci.clientId, ci.clientSecret);
      const op = await call<{ id: string }>(p.env.urls.api, token, 'POST', '/api/v1/operations', operationBody('acme-fw', 1));
      expect(op.status).toBe(201);
      const signed = await call<{ result: string }>(p.env.urls.api, token, 'POST', '/api/signorders', signOrderBody(op.body.id, 'acme-fw', createHash('sha256').update('gadget 1.0').digest('hex')));
      expect(signed.status).toBe(201);
      expect(verify('sha256', Buffer.from('gadget 1.0'), new X509Certificate(readFileSync(f('fw.pem'))).publicKey, Buffer.from(signed.body.result, 'hex'))).toBe(true);
    });

    it.each([
      ['a CA below the pathLen-0 issuing CA', { keyid: 'acme-too-deep', type: 'CA', issuer: 'acme-issuing' }, 409, 'issuer_not_usable'],
      ['a CA with pathLen 1 below the pathLen-1 intermediate', { keyid: 'acme-too-long', type: 'CA', issuer: 'acme-intermediate', pathLen: 1 }, 409, 'issuer_not_usable'],
      ['a FW key as issuer', { keyid: 'acme-under-fw', type: 'FW', issuer: 'acme-fw' }, 409, 'issuer_not_usable'],
      ['an unknown issuer', { keyid: 'acme-orphan', type: 'FW', issuer: 'no-such-key' }, 404, 'key_not_found'],
    ])('fail %s', async (_name, body, status, code) => {
      const session = await activeSession(ada, alan);
      const r = await ada('POST', '/api/v1/keys', { body: { algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 365, commonName: 'Refused', ...body }, session });
      expect({ status: r.status, code: r.body['code'] }).toEqual({ status, code });
    });

    describe('with an external (offline) root', () => {
      beforeAll(() => {
        // The customer's offline root, made with openssl (a tool we did not write).
        run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-nodes', '-keyout', f('offline.key'), '-out', f('offline.pem'), '-days', '3650', '-subj', '/C=DK/O=Acme/CN=Acme Offline Root',
          '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
        run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('other.key'), '-out', f('other.pem'), '-days', '3650', '-subj', '/CN=Someone Else Root',
          '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
        writeFileSync(f('ext.cnf'), 'basicConstraints=critical,CA:true,pathlen:1\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n');
      });

      let csr: string;
      it('ok generates the key in the HSM and exports a CSR that openssl verifies (signed in the HSM)', async () => {
        const session = await activeSession(ada, alan, 'ROOT ceremony (external)');
        const r = await ada<{ state: string; csr: string; spkiSha256: string; certificate: null }>('POST', '/api/v1/keys/root-ceremony', {
          body: ceremony('acme-online-root', { mode: 'external', subject: { commonName: 'Acme Online Root', organization: 'Acme', country: 'DK' } }),
          session,
        });
        expect(r.status).toBe(201);
        expect(r.body).toMatchObject({ state: 'AWAITING_CERTIFICATE', certificate: null });
        csr = r.body.csr;
        writeFileSync(f('online.csr'), csr);
        const verified = spawnSync('openssl', ['req', '-in', f('online.csr'), '-noout', '-verify'], { encoding: 'utf8' });
        expect({ status: verified.status, out: verified.stdout + verified.stderr }).toEqual({ status: 0, out: expect.stringMatching(/verify OK/) });
        const pub = run('openssl', ['req', '-in', f('online.csr'), '-noout', '-pubkey']);
        expect(createHash('sha256').update(createPublicKey(pub).export({ type: 'spki', format: 'der' })).digest('hex')).toBe(r.body.spkiSha256);
        expect((await ada<{ csr: string }>('GET', '/api/v1/keys/acme-online-root/csr')).body.csr).toBe(csr);
        // Not usable before its certificate is in.
        expect((await ada('GET', '/api/v1/keys/acme-online-root')).status).toBe(404);
      });

      const sign = (csrFile: string, caCert: string, caKey: string, out: string) =>
        run('openssl', ['x509', '-req', '-in', f(csrFile), '-CA', f(caCert), '-CAkey', f(caKey), '-CAcreateserial', '-out', f(out), '-days', '1825', '-extfile', f('ext.cnf')]);

      it.each([
        ['a chain that does not lead to the issuer', 'online.pem', ['other.pem'], 'chain_invalid'],
        ['a certificate for another key', 'other.pem', ['other.pem'], 'certificate_key_mismatch'],
      ])('fail the import of %s (the key stays waiting)', async (_name, certFile, chainFiles, code) => {
        sign('online.csr', 'offline.pem', 'offline.key', 'online.pem');
        const session = await activeSession(ada, alan);
        const r = await ada('POST', '/api/v1/keys/acme-online-root/certificate', {
          body: { certificate: readFileSync(f(certFile), 'utf8'), chain: chainFiles.map((c) => readFileSync(f(c), 'utf8')) },
          session,
        });
        expect({ status: r.status, code: r.body['code'] }).toEqual({ status: 400, code });
        expect((await ada('GET', '/api/v1/keys/acme-online-root/csr')).status).toBe(200);
      });

      it('ok imports the certificate the offline root issued; the key is ACTIVE and its chain reaches the offline root (openssl verify)', async () => {
        const session = await activeSession(ada, alan, 'import the online root certificate');
        const r = await ada<{ state: string; chain: string[]; type: string }>('POST', '/api/v1/keys/acme-online-root/certificate', {
          body: { certificate: readFileSync(f('online.pem'), 'utf8'), chain: [readFileSync(f('offline.pem'), 'utf8')] },
          session,
        });
        expect(r.status).toBe(200);
        expect(r.body).toMatchObject({ state: 'ACTIVE', type: 'ROOT' });
        expect(r.body.chain).toHaveLength(2);
        // A CA below it, and the whole chain verified against the offline root as the only trust anchor.
        const ca = await ada<{ chain: string[]; certificate: string }>('POST', '/api/v1/keys', {
          body: { keyid: 'acme-ext-ca', type: 'CA', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 365, commonName: 'Acme CA under the offline root', issuer: 'acme-online-root' },
          session,
        });
        expect(ca.status).toBe(201);
        // It starts a second after its issuer (nested validity); the offline root issued that one just now.
        await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(new X509Certificate(ca.body.certificate).validFrom) + 1000 - Date.now())));
        writeFileSync(f('ext-ca.pem'), ca.body.certificate);
        writeFileSync(f('ext-untrusted.pem'), ca.body.chain[1]);
        expect(run('openssl', ['verify', '-x509_strict', '-CAfile', f('offline.pem'), '-untrusted', f('ext-untrusted.pem'), f('ext-ca.pem')])).toContain('OK');
        writeFileSync(f('ext-chain.pem'), ca.body.chain.join(''));
        expect(run('certtool', ['--verify-chain', '--infile', f('ext-chain.pem')])).toMatch(/Chain verification output: Verified/);
        const again = await ada('POST', '/api/v1/keys/acme-online-root/certificate', { body: { certificate: readFileSync(f('online.pem'), 'utf8'), chain: [readFileSync(f('offline.pem'), 'utf8')] }, session });
        expect({ status: again.status, code: again.body['code'] }).toEqual({ status: 409, code: 'not_awaiting_certificate' });
      });
    });
  });
});
