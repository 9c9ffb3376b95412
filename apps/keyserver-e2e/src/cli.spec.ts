import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signInAt } from '@keyserver/entra-emulator';
import { demoTenant, repoRoot, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken } from './admin-helpers';
import { call, operationBody, userToken } from './operations-support';

const KSCTL = join(repoRoot, 'dist', 'tools', 'keyserver-cli', 'main.js');
const DEMO_CERT = join(repoRoot, 'config', 'demo-credentials', 'demo-ci-cert.crt.pem');
const DEMO_KEY = join(repoRoot, 'config', 'demo-credentials', 'demo-ci-cert.key.pem');
const pemBlocks = (text: string) => text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
/**
 * spawnSync blocks the event loop, so fetch does not see the keep-alive sockets the servers closed meanwhile
 * and may reuse a dead one ("other side closed"): let those events run before the next fetch.
 */
const settle = () => new Promise((resolve) => setTimeout(resolve, 50));
/** openssl's exit status and output, for agreement checks (a failure is an answer here, not an error). */
const openssl = (...args: string[]) => {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
};

describe('ksctl', () => {
  let p: RunningPlatform;
  let work: string;
  let demoFile: string;

  const ksctlEnv = (cache = 'cache', extra: Record<string, string> = {}) => ({ PATH: process.env['PATH'] ?? '', KSCTL_CACHE_DIR: join(work, cache), ...extra });
  const ksctl = (...args: string[]) => ksctlWith(ksctlEnv(), ...args);
  const ksctlWith = (env: Record<string, string>, ...args: string[]) => {
    const r = spawnSync(process.execPath, [KSCTL, '--demo', demoFile, '--json', ...args], { encoding: 'utf8', env, timeout: 60_000 });
    return { status: r.status, json: r.stdout.trim() ? JSON.parse(r.stdout) : undefined, stderr: r.stderr };
  };
  /** ksctl with no --demo, no token and no API: what an offline verifier has. */
  const offline = (...args: string[]) => {
    const r = spawnSync(process.execPath, [KSCTL, '--json', ...args], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '' }, timeout: 60_000 });
    return { status: r.status, json: r.stdout.trim() ? JSON.parse(r.stdout) : undefined, stderr: r.stderr };
  };

  beforeAll(async () => {
    p = await startPlatform();
    work = mkdtempSync(join(tmpdir(), 'ks-cli-'));
    demoFile = join(work, 'demo.json');
    writeFileSync(demoFile, JSON.stringify(p.facts));
  });

  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('lists keys with a cached client-credentials token in a 0600 file', () => {
    const r = ksctl('keys', 'list');
    expect(r.status).toBe(0);
    expect((r.json as { keyid: string }[]).map((k) => k.keyid)).toContain('demo-fw-dev');
    const cache = execFileSync('find', [join(work, 'cache'), '-type', 'f']).toString().trim().split('\n');
    expect(cache).toHaveLength(1);
    expect(statSync(cache[0]).mode & 0o777).toBe(0o600);
  });

  it('creates an operation, signs a file hashed locally and the signature verifies with openssl', () => {
    const image = join(work, 'firmware.bin');
    writeFileSync(image, Buffer.alloc(3 * 1024 * 1024 + 17, 7));
    const op = ksctl('operations', 'create', '--key', 'demo-fw-dev=2', '--description', 'cli release 1.2.3');
    expect(op.status).toBe(0);
    const id = (op.json as { id: string }).id;
    expect(ksctl('operations', 'wait', id, '--timeout', '5').status).toBe(0);

    const sig = join(work, 'firmware.sig');
    const r = ksctl('sign', '--operation', id, '--key', 'demo-fw-dev', '--file', image, '--out', sig, '--description', 'cli sign test');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const chain = join(work, 'chain.pem');
    expect(ksctl('keys', 'show', 'demo-fw-dev', '--chain', chain).status).toBe(0);
    const leaf = readFileSync(chain, 'utf8').split(/(?<=-----END CERTIFICATE-----\n?)/)[0];
    writeFileSync(join(work, 'leaf.pem'), leaf);
    execFileSync('openssl', ['x509', '-in', join(work, 'leaf.pem'), '-pubkey', '-noout', '-out', join(work, 'pub.pem')]);
    const out = execFileSync('openssl', ['dgst', '-sha256', '-verify', join(work, 'pub.pem'), '-signature', sig, image]).toString();
    expect(out).toContain('Verified OK');
  });

  const newOperation = (keyid: string, usages = 1) => {
    const r = ksctl('operations', 'create', '--key', `${keyid}=${usages}`, '--description', `cli e2e on ${keyid}`);
    expect(r.status).toBe(0);
    return (r.json as { id: string }).id;
  };

  it("hashes with the key's own hash when --hash is not given (SHA-384 for a P-384 key)", async () => {
    // A P-384 firmware key the CI client may order and sign with, made the way administrators make keys.
    const ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    const alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    const session = await activeSession(ada, alan, 'a P-384 firmware key for ksctl');
    const key = await ada('POST', '/api/v1/keys', { session, body: { keyid: 'cli-fw-p384', type: 'FW', algorithm: 'EC_P384', requiredApprovers: 0, validityDays: 30, commonName: 'CLI P-384', product: 'cli-gadget' } });
    expect(key.status).toBe(201);
    const role = await ada('POST', '/api/v1/roles', { session, body: { name: 'cli-p384', natures: ['ORDERER', 'SIGNER'], keys: [{ keyid: 'cli-fw-p384', permissions: ['ORDER', 'SIGN'] }] } });
    expect(role.status).toBe(201);
    const demoCi = demoTenant.ciClients.find((c) => c.name === 'demo-ci');
    const subjects = await ada<{ items: { id: string; oid: string; roles: string[] }[] }>('GET', '/api/v1/subjects');
    const subject = subjects.body.items.find((s) => s.oid === demoCi?.servicePrincipalOid);
    if (!subject) throw new Error('demo-ci subject missing');
    const patched = await ada('PATCH', `/api/v1/subjects/${subject.id}`, { session, body: { roles: [...subject.roles, 'cli-p384'] } });
    expect(patched.status).toBe(200);

    const image = join(work, 'p384.bin');
    writeFileSync(image, 'a firmware image signed with a P-384 key');
    const id = newOperation('cli-fw-p384');
    const sig = join(work, 'p384.sig');
    const r = ksctl('sign', '--operation', id, '--key', 'cli-fw-p384', '--file', image, '--out', sig);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect((r.json as { digest: string }).digest).toBe(createHash('sha384').update(readFileSync(image)).digest('hex'));
    const pub = join(work, 'p384.pub.pem');
    writeFileSync(pub, new X509Certificate((key.body as { certificate: string }).certificate).publicKey.export({ type: 'spki', format: 'pem' }));
    expect(openssl('dgst', '-sha384', '-verify', pub, '-signature', sig, image).status).toBe(0);
    expect(openssl('dgst', '-sha256', '-verify', pub, '-signature', sig, image).status).toBe(1);
  });

  it('streams a file for a CMS signature that openssl cms -verify accepts', () => {
    const image = join(work, 'image.bin');
    writeFileSync(image, Buffer.alloc(5 * 1024 * 1024, 3));
    const id = newOperation('demo-fw-dev');
    const out = join(work, 'image.p7s');
    const r = ksctl('sign', '--cms', '--operation', id, '--key', 'demo-fw-dev', '--file', image, '--out', out);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const chain = join(work, 'fw-chain.pem');
    expect(ksctl('keys', 'show', 'demo-fw-dev', '--chain', chain).status).toBe(0);
    writeFileSync(join(work, 'root.pem'), (pemBlocks(readFileSync(chain, 'utf8')).pop() ?? '') + '\n');
    const v = spawnSync('openssl', ['cms', '-verify', '-binary', '-content', image, '-inform', 'DER', '-in', out, '-CAfile', join(work, 'root.pem'), '-purpose', 'any', '-out', '/dev/null'], { encoding: 'utf8' });
    expect(v.stderr).toContain('Verification successful');
  });

  it('issues a device certificate from an openssl CSR and revokes it', () => {
    const key = join(work, 'device.key');
    const csr = join(work, 'device.csr');
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', '/CN=device-0001', '-out', csr], { stdio: 'ignore' });
    const id = newOperation('demo-ca-dev');
    const cert = join(work, 'device.pem');
    const chain = join(work, 'device-chain.pem');
    const r = ksctl('cert', 'issue', '--operation', id, '--key', 'demo-ca-dev', '--csr', csr, '--out', cert, '--chain-out', chain);
    expect(r.status).toBe(0);
    const ca = pemBlocks(readFileSync(chain, 'utf8'));
    expect(ca.length).toBe(3);
    writeFileSync(join(work, 'ca-bundle.pem'), ca.slice(1).join('\n') + '\n');
    expect(execFileSync('openssl', ['verify', '-x509_strict', '-CAfile', join(work, 'ca-bundle.pem'), cert]).toString()).toContain(': OK');
    const revoked = ksctl('cert', 'revoke', (r.json as { id: string }).id, '--reason', 'keyCompromise');
    expect(revoked.status).toBe(0);
  });

  it('cert issue --idempotency-key: a retry after a lost answer gets the same certificate without a second usage', () => {
    const key = join(work, 'idem-device.key');
    const csr = join(work, 'idem-device.csr');
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', '/CN=device-idem-1', '-out', csr], { stdio: 'ignore' });
    const id = newOperation('demo-ca-dev', 1);
    const issue = (out: string) => ksctl('cert', 'issue', '--operation', id, '--key', 'demo-ca-dev', '--csr', csr, '--out', join(work, out), '--idempotency-key', 'line-7.device-idem-1');
    const first = issue('idem-1.pem');
    expect(first.status).toBe(0);
    // The operation had one usage: only a replay can answer the retry.
    const retry = issue('idem-2.pem');
    expect(retry.status).toBe(0);
    expect((retry.json as { serial: string }).serial).toBe((first.json as { serial: string }).serial);
    expect(readFileSync(join(work, 'idem-2.pem'), 'utf8')).toBe(readFileSync(join(work, 'idem-1.pem'), 'utf8'));
  });

  it('logs in with Azure DevOps workload identity (SYSTEM_OIDCREQUESTURI) and lists keys', () => {
    const env = ksctlEnv('cache-wif', {
      SYSTEM_OIDCREQUESTURI: `${p.env.urls.emulator}/_ado/demo-org/oidctoken`,
      SYSTEM_ACCESSTOKEN: 'pipeline-job-access-token',
      AZURESUBSCRIPTION_SERVICE_CONNECTION_ID: 'f0e1d2c3-b4a5-4968-8778-695a4b3c2d1e',
    });
    const r = ksctlWith(env, '--wif', 'keys', 'list');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect((r.json as { keyid: string }[]).map((k) => k.keyid)).toContain('demo-fw-dev');
    const noToken = ksctlWith({ ...env, KSCTL_CACHE_DIR: join(work, 'cache-wif-2'), SYSTEM_ACCESSTOKEN: '' }, '--wif', 'keys', 'list');
    expect(noToken.status).toBe(2);
  });

  it('logs in with a federated token read from a file (the GitHub Actions path)', async () => {
    await settle();
    const r = await fetch(`${p.env.urls.emulator}/_ado/demo-org/oidctoken?serviceConnectionId=f0e1d2c3-b4a5-4968-8778-695a4b3c2d1e`, {
      method: 'POST',
      headers: { authorization: 'Bearer job-token' },
    });
    const tokenFile = join(work, 'oidc-token');
    writeFileSync(tokenFile, `${((await r.json()) as { oidcToken: string }).oidcToken}\n`);
    const keys = ksctlWith(ksctlEnv('cache-wif-file'), '--wif', '--federated-token-file', tokenFile, 'keys', 'list');
    expect([keys.status, keys.stderr]).toEqual([0, '']);
    const missing = ksctlWith(ksctlEnv('cache-wif-file-2'), '--wif', '--federated-token-file', join(work, 'no-token'), 'keys', 'list');
    expect(missing.status).toBe(2);
  });

  it('logs a provisioning user in with PKCE on a loopback redirect, then uses the cached token', async () => {
    const env = ksctlEnv('cache-pkce');
    const child = spawn(process.execPath, [KSCTL, '--demo', demoFile, '--json', '--pkce', 'login', '--no-browser', '--timeout', '60'], { env });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d) => {
        stderr += d;
        const m = /Sign in at: (\S+)/.exec(stderr);
        if (m) resolve(m[1]);
      });
      child.once('exit', () => reject(new Error(`ksctl exited early: ${stderr}`)));
    });
    expect(new URL(url).searchParams.get('code_challenge_method')).toBe('S256');
    const emulator = { baseUrl: p.env.urls.emulator, tokenEndpoint: p.facts.tokenEndpoint, authorizationEndpoint: '' };
    const user = demoTenant.users.find((u) => u.username === 'otto.orderer@demo.test');
    const { callbackUrl } = await signInAt(emulator, { authorizationUrl: url, username: user?.username ?? '', password: user?.password ?? '' });
    const landed = await fetch(callbackUrl);
    expect(landed.status).toBe(200);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect([code, JSON.parse(stdout).loggedIn]).toEqual([0, true]);
    const keys = ksctlWith(env, '--pkce', 'keys', 'list');
    expect(keys.status).toBe(0);
    expect((keys.json as { keyid: string }[]).map((k) => k.keyid)).toContain('demo-fw-prod');
  });

  it('logs in with a certificate credential (private_key_jwt), caches the app token and signs', () => {
    const env = ksctlEnv('cache-cert');
    const cert = ['--certificate', DEMO_CERT, '--private-key', DEMO_KEY];
    const login = ksctlWith(env, ...cert, 'login');
    expect([login.status, login.json]).toEqual([0, { loggedIn: true, method: 'certificate' }]);
    const [cacheName] = readdirSync(join(work, 'cache-cert'));
    const cached = JSON.parse(readFileSync(join(work, 'cache-cert', cacheName), 'utf8')) as { accessToken: string };
    const claims = JSON.parse(Buffer.from(cached.accessToken.split('.')[1], 'base64url').toString()) as Record<string, unknown>;
    const client = demoTenant.ciClients.find((c) => c.name === 'demo-ci-cert');
    expect(claims).toMatchObject({ azp: client?.clientId, azpacr: '2', idtyp: 'app', oid: client?.servicePrincipalOid, roles: ['Keyserver.CI'] });
    expect(statSync(join(work, 'cache-cert', cacheName)).mode & 0o777).toBe(0o600);

    // A fresh cache: the operation and the signature are made with a token from a new assertion.
    const fresh = ksctlEnv('cache-cert-2');
    const op = ksctlWith(fresh, ...cert, 'operations', 'create', '--key', 'demo-fw-dev=1', '--description', 'certificate credential e2e');
    expect(op.status).toBe(0);
    const image = join(work, 'cert-signed.bin');
    writeFileSync(image, 'signed by a client that logged in with a certificate');
    const sig = join(work, 'cert-signed.sig');
    const signed = ksctlWith(fresh, ...cert, 'sign', '--operation', (op.json as { id: string }).id, '--key', 'demo-fw-dev', '--file', image, '--out', sig);
    expect([signed.status, signed.stderr]).toEqual([0, '']);
    const chain = join(work, 'cert-fw-chain.pem');
    expect(ksctlWith(fresh, ...cert, 'keys', 'show', 'demo-fw-dev', '--chain', chain).status).toBe(0);
    writeFileSync(join(work, 'cert-root.pem'), `${pemBlocks(readFileSync(chain, 'utf8')).pop()}\n`);
    const v = offline('verify', '--signature', sig, '--file', image, '--chain', chain, '--ca', join(work, 'cert-root.pem'));
    expect([v.status, v.json.verified]).toEqual([0, true]);
  });

  it('fails with exit 3 and the OAuth error for a certificate Entra does not know', () => {
    const key = join(work, 'unknown.key');
    const crt = join(work, 'unknown.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt, '-subj', '/CN=not registered', '-days', '2'], { stdio: 'ignore' });
    const r = ksctlWith(ksctlEnv('cache-cert-unknown'), '--certificate', crt, '--private-key', key, 'keys', 'list');
    expect([r.status, r.json.code]).toEqual([3, 'invalid_client']);
    const mismatch = ksctlWith(ksctlEnv('cache-cert-unknown'), '--certificate', DEMO_CERT, '--private-key', key, 'keys', 'list');
    expect(mismatch.status).toBe(2);
  });

  it('never reuses a token cached for another credential: a wrong --client-secret fails with exit 3', () => {
    const env = ksctlEnv('cache-credential');
    expect(ksctlWith(env, 'login').status).toBe(0);
    const wrong = ksctlWith(env, '--client-secret', 'not-the-secret', 'keys', 'list');
    expect([wrong.status, wrong.json.code]).toEqual([3, 'invalid_client']);
    // The refused login cached nothing; the right secret still finds its own token.
    expect(readdirSync(join(work, 'cache-credential'))).toHaveLength(1);
    expect(ksctlWith(env, 'keys', 'list').status).toBe(0);
    expect(readdirSync(join(work, 'cache-credential'))).toHaveLength(1);
    const cached = readFileSync(join(work, 'cache-credential', readdirSync(join(work, 'cache-credential'))[0]), 'utf8');
    const secret = demoTenant.ciClients[0].clientSecret ?? '';
    expect(secret.length).toBeGreaterThan(8);
    expect(cached).not.toContain(secret);
  });

  it.each([
    ['fail a password in KEYSERVER_URL', { KEYSERVER_URL: 'http://ops:url-pass-77@127.0.0.1:1', KEYSERVER_TOKEN: 'x' }],
    ['fail a password in KEYSERVER_TOKEN_ENDPOINT', { KEYSERVER_URL: 'http://127.0.0.1:1', KEYSERVER_TOKEN_ENDPOINT: 'http://ops:url-pass-77@127.0.0.1:1/token', KEYSERVER_CLIENT_ID: 'a', KEYSERVER_SCOPE: 'b', KEYSERVER_CLIENT_SECRET: 'c' }],
  ])('%s: refused before anything is sent, and the failure never shows the password (stderr and --json)', (_n, env) => {
    for (const json of [[], ['--json']]) {
      const r = spawnSync(process.execPath, [KSCTL, ...json, 'keys', 'list'], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', ...env }, timeout: 60_000 });
      // A URL with user:password@ is refused as insecure_url (ADR 0001 addendum) before any request; CliError's
      // masking of URL credentials (errors.spec.ts) covers every other failure that would name such a URL.
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/must be https .*no user:password@|insecure_url/);
      expect(`${r.stdout}${r.stderr}`).not.toContain('url-pass-77');
    }
  });

  it('fail --cms with --idempotency-key: usage (exit 2) before anything is sent (the firmware route replays nothing, so the key would promise a safe retry it does not give)', () => {
    const image = join(work, 'idem-cms.bin');
    writeFileSync(image, 'firmware');
    const r = spawnSync(process.execPath, [KSCTL, 'sign', '--cms', '--file', image, '--operation', 'op', '--key', 'k', '--idempotency-key', 'retry-1'], {
      encoding: 'utf8',
      env: { PATH: process.env['PATH'] ?? '', KEYSERVER_URL: 'http://127.0.0.1:1', KEYSERVER_TOKEN: 'x' },
      timeout: 60_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--idempotency-key');
  });

  describe('output for people and for scripts', () => {
    /** ksctl without --json: what a person sees (stdout as bytes). */
    const human = (...args: string[]) => spawnSync(process.execPath, [KSCTL, '--demo', demoFile, ...args], { env: ksctlEnv('cache-human'), timeout: 60_000 });

    it('prints a table by default, never a PEM', () => {
      const r = human('keys', 'list');
      expect([r.status, r.stderr.toString()]).toEqual([0, '']);
      const lines = r.stdout.toString().trim().split('\n');
      expect(lines[0]).toMatch(/^KEYID +/);
      expect(lines.some((l) => l.startsWith('demo-fw-dev '))).toBe(true);
      expect(r.stdout.toString()).not.toContain('-----BEGIN');
      const shown = human('keys', 'show', 'demo-fw-dev');
      expect(shown.stdout.toString()).toMatch(/^keyid +demo-fw-dev$/m);
      expect(shown.stdout.toString()).not.toContain('-----BEGIN');
    });

    it('prints the key certificate with --output pem (with its chain) and --output der, as openssl reads them', () => {
      const pem = human('keys', 'show', 'demo-fw-dev', '--output', 'pem');
      expect(pem.status).toBe(0);
      const blocks = pemBlocks(pem.stdout.toString());
      expect(blocks.length).toBeGreaterThanOrEqual(2);
      const der = human('keys', 'show', 'demo-fw-dev', '--output', 'der');
      expect(der.status).toBe(0);
      const derFile = join(work, 'fw-dev.der');
      writeFileSync(derFile, der.stdout);
      const fromDer = execFileSync('openssl', ['x509', '-inform', 'DER', '-in', derFile, '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' });
      expect(fromDer.split('=')[1].trim()).toBe(new X509Certificate(blocks[0] ?? '').fingerprint256);
      const refused = human('operations', 'show', 'no-such-operation', '--output', 'pem');
      expect(refused.status).not.toBe(0);
      const noCert = human('keys', 'list', '--output', 'pem');
      expect(noCert.status).toBe(2);
    });

    it.each([
      ['ok --version', ['--version'], 0, /^ksctl \d+\.\d+\.\d+ \(Node\.js /],
      ['ok sign --help: the sign help, not the global one', ['sign', '--help'], 0, /^Usage: ksctl sign --operation/],
      ['ok help cert', ['help', 'cert'], 0, /^Usage: ksctl cert issue/],
      ['ok keys list --help', ['keys', 'list', '--help'], 0, /^Usage: ksctl keys list/],
      ['ok completion bash', ['completion', 'bash'], 0, /complete -F _ksctl ksctl/],
      ['ok completion zsh', ['completion', 'zsh'], 0, /^#compdef ksctl/],
      ['fail help for an unknown command', ['help', 'nope'], 2, /^$/],
      ['fail completion for an unknown shell', ['completion', 'fish'], 2, /^$/],
      ['fail an unknown --output', ['keys', 'list', '--output', 'yaml'], 2, /^$/],
    ])('%s', (_n, args, status, out) => {
      const r = spawnSync(process.execPath, [KSCTL, ...(args as string[])], { env: { PATH: process.env['PATH'] ?? '' }, encoding: 'utf8', timeout: 60_000 });
      expect(r.status).toBe(status);
      expect(r.stdout).toMatch(out as RegExp);
    });

    it('runs as `npx ksctl` from the repository, building itself when its build is missing or stale', () => {
      // Stale on purpose: the launcher rebuilds (esbuild) and runs the new file.
      utimesSync(KSCTL, new Date(0), new Date(0));
      const r = spawnSync('npx', ['--no-install', 'ksctl', '--version'], { cwd: repoRoot, encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', HOME: work, npm_config_update_notifier: 'false', npm_config_offline: 'true' }, timeout: 120_000 });
      expect([r.status, r.stderr]).toEqual([0, '']);
      expect(r.stdout).toMatch(/^ksctl \d+\.\d+\.\d+/);
      expect(statSync(KSCTL).mtimeMs).toBeGreaterThan(Date.now() - 120_000);
    });
  });

  it('takes --demo without a file name (.keyserver/demo.json in the working directory)', () => {
    const cwd = join(work, 'demo-cwd');
    mkdirSync(join(cwd, '.keyserver'), { recursive: true });
    writeFileSync(join(cwd, '.keyserver', 'demo.json'), JSON.stringify(p.facts));
    const r = spawnSync(process.execPath, [KSCTL, '--demo', 'keys', 'list', '--json'], { cwd, encoding: 'utf8', env: ksctlEnv('cache-demo-flag'), timeout: 60_000 });
    expect(r.status).toBe(0);
    expect((JSON.parse(r.stdout) as { keyid: string }[]).map((k) => k.keyid)).toContain('demo-fw-dev');
  });

  describe('verify (offline), agreeing with openssl', () => {
    let ecChain: string;
    let rsaChain: string;
    let root: string;
    let otherRoot: string;
    let image: string;
    let tampered: string;
    const keyPub = (chain: string, name: string) => {
      const leaf = join(work, `${name}-leaf.pem`);
      writeFileSync(leaf, `${pemBlocks(readFileSync(chain, 'utf8'))[0]}\n`);
      execFileSync('openssl', ['x509', '-in', leaf, '-pubkey', '-noout', '-out', join(work, `${name}-pub.pem`)]);
      return join(work, `${name}-pub.pem`);
    };

    beforeAll(() => {
      ecChain = join(work, 'v-fw-dev-chain.pem');
      rsaChain = join(work, 'v-fw-prod-chain.pem');
      expect(ksctl('keys', 'show', 'demo-fw-dev', '--chain', ecChain).status).toBe(0);
      expect(ksctl('keys', 'show', 'demo-fw-prod', '--chain', rsaChain).status).toBe(0);
      root = join(work, 'v-root.pem');
      writeFileSync(root, `${pemBlocks(readFileSync(ecChain, 'utf8')).pop()}\n`);
      otherRoot = join(work, 'v-other-root.pem');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(work, 'v-other-root.key'), '-out', otherRoot, '-subj', '/CN=Demo Devices Root CA', '-days', '2'], { stdio: 'ignore' });
      image = join(work, 'v-image.bin');
      writeFileSync(image, Buffer.alloc(2 * 1024 * 1024 + 5, 0x5a));
      tampered = join(work, 'v-tampered.bin');
      writeFileSync(tampered, Buffer.concat([readFileSync(image).subarray(0, 1000), Buffer.from([0x5b]), readFileSync(image).subarray(1001)]));
    });

    it('checks ECDSA signatures of the API (asn1 over a file, p1363 over a digest) and fails tampered files, other roots and other chains', () => {
      const op = newOperation('demo-fw-dev', 2);
      const sig = join(work, 'v-ec.sig');
      expect(ksctl('sign', '--operation', op, '--key', 'demo-fw-dev', '--file', image, '--out', sig).status).toBe(0);
      const digest = createHash('sha256').update(readFileSync(image)).digest('hex');
      const p1363 = join(work, 'v-ec-p1363.sig');
      expect(ksctl('sign', '--operation', op, '--key', 'demo-fw-dev', '--digest', digest, '--format', 'p1363', '--out', p1363).status).toBe(0);
      expect(readFileSync(p1363)).toHaveLength(64);

      const ok = offline('verify', '--signature', sig, '--file', image, '--chain', ecChain, '--ca', root);
      expect(ok.status).toBe(0);
      expect(ok.json).toMatchObject({ verified: true, kind: 'raw', hash: 'sha256', digest, chain: [expect.stringContaining('Firmware'), expect.stringContaining('Root')] });
      expect(offline('verify', '--signature', p1363, '--digest', digest, '--format', 'p1363', '--chain', ecChain, '--ca', root).status).toBe(0);
      const pub = keyPub(ecChain, 'v-ec');
      expect(openssl('dgst', '-sha256', '-verify', pub, '-signature', sig, image).status).toBe(0);

      const bad = offline('verify', '--signature', sig, '--file', tampered, '--chain', ecChain, '--ca', root);
      expect([bad.status, bad.json.code]).toEqual([6, 'signature_invalid']);
      expect(bad.stderr).toMatch(/^ksctl: .*\(signature_invalid\)/);
      expect(openssl('dgst', '-sha256', '-verify', pub, '-signature', sig, tampered).status).toBe(1);
      const otherCa = offline('verify', '--signature', sig, '--file', image, '--chain', ecChain, '--ca', otherRoot);
      expect([otherCa.status, otherCa.json.code]).toEqual([6, 'untrusted_root']);
      const otherChain = offline('verify', '--signature', sig, '--file', image, '--chain', rsaChain, '--ca', root);
      expect([otherChain.status, otherChain.json.code]).toEqual([6, 'signature_invalid']);
      const ecAsRsa = offline('verify', '--signature', sig, '--file', image, '--chain', ecChain, '--ca', root, '--padding', 'pss');
      expect(ecAsRsa.status).toBe(2);
    });

    it('checks RSA signatures of the API in every input padding, over the file and over the digest, as openssl does', async () => {
      await settle();
      const otto = await userToken(p, 'otto.orderer@demo.test');
      const created = await call<{ id: string }>(p.env.urls.api, otto, 'POST', '/api/v1/operations', operationBody('demo-fw-prod', 3));
      expect(created.status).toBe(201);
      for (const approver of ['ann.approver@demo.test', 'arno.approver@demo.test']) {
        const a = await call(p.env.urls.api, await userToken(p, approver), 'POST', `/api/v1/operations/${created.body.id}/approvals`);
        expect(a.status).toBe(201);
      }
      const digestHex = createHash('sha256').update(readFileSync(image)).digest('hex');
      const digestFile = join(work, 'v-digest.bin');
      writeFileSync(digestFile, Buffer.from(digestHex, 'hex'));
      const pub = keyPub(rsaChain, 'v-rsa');
      for (const padding of ['none', 'digestinfo', 'pss']) {
        const sig = join(work, `v-rsa-${padding}.sig`);
        const signed = ksctl('sign', '--operation', created.body.id, '--key', 'demo-fw-prod', '--file', image, '--padding', padding, '--out', sig);
        expect([padding, signed.status]).toEqual([padding, 0]);
        const pss = padding === 'pss' ? ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:auto'] : [];
        const pssKey = padding === 'pss' ? ['-pkeyopt', 'rsa_padding_mode:pss', '-pkeyopt', 'rsa_pss_saltlen:auto'] : [];
        for (const [input, file] of [['--file', image], ['--digest', digestHex]]) {
          const v = offline('verify', '--signature', sig, input, file, '--padding', padding, '--chain', rsaChain, '--ca', root);
          expect([padding, input, v.status]).toEqual([padding, input, 0]);
        }
        expect([padding, openssl('dgst', '-sha256', ...pss, '-verify', pub, '-signature', sig, image).status]).toEqual([padding, 0]);
        expect([padding, openssl('pkeyutl', '-verify', '-pubin', '-inkey', pub, '-in', digestFile, '-sigfile', sig, '-pkeyopt', 'digest:sha256', ...pssKey).status]).toEqual([padding, 0]);

        const bad = offline('verify', '--signature', sig, '--file', tampered, '--padding', padding, '--chain', rsaChain, '--ca', root);
        expect([padding, bad.status, bad.json.code]).toEqual([padding, 6, 'signature_invalid']);
        expect([padding, openssl('dgst', '-sha256', ...pss, '-verify', pub, '-signature', sig, tampered).status]).toEqual([padding, 1]);
      }
      const wrongPadding = offline('verify', '--signature', join(work, 'v-rsa-pss.sig'), '--file', image, '--padding', 'none', '--chain', rsaChain, '--ca', root);
      expect([wrongPadding.status, wrongPadding.json.code]).toEqual([6, 'signature_invalid']);
    });

    it('checks a CMS signature of the API and agrees with openssl cms -verify on good and bad inputs', () => {
      const op = newOperation('demo-fw-dev');
      const p7s = join(work, 'v-image.p7s');
      expect(ksctl('sign', '--cms', '--operation', op, '--key', 'demo-fw-dev', '--file', image, '--out', p7s).status).toBe(0);
      const cms = (content: string, ca: string) =>
        openssl('cms', '-verify', '-binary', '-content', content, '-inform', 'DER', '-in', p7s, '-CAfile', ca, '-purpose', 'any', '-out', '/dev/null');

      const ok = offline('verify', '--cms', '--signature', p7s, '--file', image, '--ca', root);
      expect(ok.status).toBe(0);
      expect(ok.json).toMatchObject({ verified: true, kind: 'cms', signers: [{ hash: 'sha256', signingTime: expect.any(String), chain: [expect.stringContaining('Firmware'), expect.stringContaining('Root')] }] });
      expect(cms(image, root).out).toContain('Verification successful');
      expect(offline('verify', '--cms', '--signature', p7s, '--file', image, '--ca', root, '--chain', ecChain).status).toBe(0);

      const changed = offline('verify', '--cms', '--signature', p7s, '--file', tampered, '--ca', root);
      expect([changed.status, changed.json.code]).toEqual([6, 'digest_mismatch']);
      expect(cms(tampered, root).status).not.toBe(0);
      const foreign = offline('verify', '--cms', '--signature', p7s, '--file', image, '--ca', otherRoot);
      expect([foreign.status, foreign.json.code]).toEqual([6, 'untrusted_root']);
      expect(cms(image, otherRoot).status).not.toBe(0);
      const notACms = offline('verify', '--cms', '--signature', image, '--file', image, '--ca', root);
      expect([notACms.status, notACms.json.code]).toEqual([6, 'cms_invalid']);
      // The API timestamped it (demo-tsa, ADR 0024): in 2099 the FW certificate has long expired, and the signature
      // stands on its timestamp (without one it is certificate_expired: tsa.spec.ts).
      const later = offline('verify', '--cms', '--signature', p7s, '--file', image, '--ca', root, '--at', '2099-01-01T00:00:00Z');
      expect(later.status).toBe(0);
      expect(later.json.signers[0].validAt).toBe(later.json.signers[0].timestamp.time);
      expect(offline('verify', '--cms', '--signature', p7s, '--file', image).status).toBe(2);
    });
  });

  it('exports the audit log with a ready token (KEYSERVER_TOKEN) and verifies it offline; a tampered line names its seq', async () => {
    await settle();
    const auditor = await userToken(p, 'aude.auditor@demo.test', 'keyclient');
    const file = join(work, 'audit.jsonl');
    const exported = ksctlWith(ksctlEnv('cache-audit', { KEYSERVER_TOKEN: auditor }), 'audit', 'export', '--out', file);
    expect(exported.status).toBe(0);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines.length).toBeGreaterThan(5);

    const ok = offline('audit', 'verify', file);
    expect([ok.status, ok.json]).toEqual([
      0,
      {
        verified: true, status: 'valid_unsealed_tail', checked: lines.length, total: lines.length, lastHash: (JSON.parse(lines[lines.length - 1]) as { hash: string }).hash,
        unsealedTail: { entries: lines.length, afterSeq: null }, legacy: [], legacyCount: 0,
      },
    ]);
    // No checkpoint covers any of it (this platform seals nothing): valid, and said not to be proven whole.
    expect(ok.stderr).toContain('warning: audit_tail_unsealed');

    const victim = JSON.parse(lines[2]) as { seq: string; action: string };
    const edited = join(work, 'audit-edited.jsonl');
    writeFileSync(edited, lines.map((l, i) => (i === 2 ? l.replace(`"action":"${victim.action}"`, '"action":"audit.forged"') : l)).join('\n') + '\n');
    const bad = offline('audit', 'verify', edited);
    expect([bad.status, bad.json.code, bad.json.firstBadSeq, bad.json.checked]).toEqual([6, 'audit_chain_broken', victim.seq, 2]);
    expect(bad.json.problems).toEqual([{ seq: victim.seq, kind: 'content_changed', reason: 'content does not match its hash' }]);
    expect(bad.stderr).toContain(`at seq ${victim.seq}`);
    expect(offline('audit', 'verify', join(work, 'no-such-export.jsonl')).status).toBe(2);

    const refused = ksctl('audit', 'export', '--out', join(work, 'ci-audit.jsonl'));
    expect([refused.status, refused.json.code]).toEqual([4, 'permission_denied']);
  });

  it.each([
    ['fail unknown key', ['keys', 'show', 'no-such-key'], 4, 'key_not_found'],
    ['fail digest of no known hash', ['sign', '--operation', '00000000-0000-4000-8000-000000000000', '--key', 'demo-fw-dev', '--digest', 'abcd'], 2, undefined],
    ['fail digest the API refuses', ['sign', '--operation', '00000000-0000-4000-8000-000000000000', '--key', 'demo-fw-dev', '--digest', 'abcd', '--hash', 'sha256'], 4, undefined],
    ['fail unknown command', ['frobnicate'], 2, undefined],
  ])('%s: exit %s with the problem code', (_n, args, exit, code) => {
    const r = ksctl(...(args as string[]));
    expect(r.status).toBe(exit);
    if (code) expect((r.json as { code: string }).code).toBe(code);
    expect(r.stderr).toMatch(/^ksctl: /);
  });

  describe('verify --crl / --crl-fetch against the CRLs of the running API, agreeing with openssl verify -crl_check', () => {
    // A firmware key of its own (never a demo key other tests sign with), revoked half-way through.
    const KEYID = 'cli-fw-crl';
    let ada: ReturnType<typeof apiAs>;
    let session: string;
    let image: string;
    let sig: string;
    let p7s: string;
    let chain: string;
    let root: string;
    let leaf: string;
    let crlUrl: string;

    /** GET the CRL at its distribution point, as a relying party would (no token), into DER and PEM files. */
    const downloadCrl = async (name: string) => {
      await settle();
      const r = await fetch(crlUrl);
      expect([r.status, r.headers.get('content-type')]).toEqual([200, 'application/pkix-crl']);
      const der = join(work, `${name}.der`);
      writeFileSync(der, Buffer.from(await r.arrayBuffer()));
      execFileSync('openssl', ['crl', '-inform', 'DER', '-in', der, '-out', join(work, `${name}.pem`)]);
      return { der, pem: join(work, `${name}.pem`) };
    };
    const verifyRaw = (...revocation: string[]) => offline('verify', '--signature', sig, '--file', image, '--chain', chain, '--ca', root, ...revocation);
    const verifyCmsWith = (...revocation: string[]) => offline('verify', '--cms', '--signature', p7s, '--file', image, '--ca', root, ...revocation);
    const opensslVerify = (crlPem: string) => openssl('verify', '-crl_check', '-CAfile', root, '-CRLfile', crlPem, leaf);

    beforeAll(async () => {
      await settle();
      ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
      const alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
      session = await activeSession(ada, alan, 'a firmware key for the ksctl CRL tests');
      const key = await ada('POST', '/api/v1/keys', { session, body: { keyid: KEYID, type: 'FW', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 30, commonName: 'CLI CRL Firmware', product: 'cli-crl' } });
      expect(key.status).toBe(201);
      const role = await ada('POST', '/api/v1/roles', { session, body: { name: 'cli-crl', natures: ['ORDERER', 'SIGNER'], keys: [{ keyid: KEYID, permissions: ['ORDER', 'SIGN'] }] } });
      expect(role.status).toBe(201);
      const demoCi = demoTenant.ciClients.find((c) => c.name === 'demo-ci');
      const subjects = await ada<{ items: { id: string; oid: string; roles: string[] }[] }>('GET', '/api/v1/subjects');
      const subject = subjects.body.items.find((s) => s.oid === demoCi?.servicePrincipalOid);
      if (!subject) throw new Error('demo-ci subject missing');
      expect((await ada('PATCH', `/api/v1/subjects/${subject.id}`, { session, body: { roles: [...subject.roles, 'cli-crl'] } })).status).toBe(200);

      // The demo CI client signs a file with it, raw and CMS.
      image = join(work, 'crl-image.bin');
      writeFileSync(image, Buffer.alloc(256 * 1024, 0x3c));
      const op = newOperation(KEYID, 2);
      sig = join(work, 'crl-image.sig');
      p7s = join(work, 'crl-image.p7s');
      expect(ksctl('sign', '--operation', op, '--key', KEYID, '--file', image, '--out', sig).status).toBe(0);
      expect(ksctl('sign', '--cms', '--operation', op, '--key', KEYID, '--file', image, '--out', p7s).status).toBe(0);
      chain = join(work, 'crl-chain.pem');
      expect(ksctl('keys', 'show', KEYID, '--chain', chain).status).toBe(0);
      const blocks = pemBlocks(readFileSync(chain, 'utf8'));
      root = join(work, 'crl-root.pem');
      writeFileSync(root, `${blocks[blocks.length - 1]}\n`);
      leaf = join(work, 'crl-leaf.pem');
      writeFileSync(leaf, `${blocks[0]}\n`);
      // The CRL distribution point the Keyserver wrote into the key's certificate: its issuer's public CRL.
      const dp = execFileSync('openssl', ['x509', '-in', leaf, '-noout', '-ext', 'crlDistributionPoints']).toString();
      crlUrl = /URI:(\S+)/.exec(dp)?.[1] ?? '';
      expect(crlUrl).toMatch(new RegExp(`^${p.env.urls.api}/api/v1/crl/[a-z0-9._-]+/versions/[1-9][0-9]*$`));
    });

    it('accepts the signature before the revocation: --crl with the downloaded CRL, --crl-fetch, and openssl', async () => {
      const crl = await downloadCrl('crl-before');
      const raw = verifyRaw('--crl', crl.der);
      expect([raw.status, raw.stderr]).toEqual([0, '']);
      expect(raw.json).toMatchObject({ verified: true, revocation: 'checked', crls: [{ certificate: expect.stringContaining('CLI CRL Firmware'), crl: crl.der }] });
      expect(verifyRaw().json).toMatchObject({ verified: true, revocation: 'not-checked' });
      expect(verifyRaw('--crl', crl.pem).status).toBe(0);
      const cms = verifyCmsWith('--crl', crl.der);
      expect([cms.status, cms.json.revocation, cms.json.signers[0].crls[0].crl]).toEqual([0, 'checked', crl.der]);
      const fetched = verifyRaw('--crl-fetch');
      expect([fetched.status, fetched.json.crls[0].crl]).toEqual([0, crlUrl]);
      expect(verifyCmsWith('--crl-fetch').status).toBe(0);
      const o = opensslVerify(crl.pem);
      expect([o.status, o.out]).toEqual([0, expect.stringContaining(': OK')]);
    });

    it('rejects the signature once an administrator revokes the key: certificate_revoked (exit 6), as openssl and --crl-fetch do', async () => {
      await settle();
      const revoked = await ada<{ state: string }>('POST', `/api/v1/keys/${KEYID}/revocation`, { session, body: { reason: 'keyCompromise' } });
      expect([revoked.status, revoked.body.state]).toEqual([200, 'REVOKED']);
      const crl = await downloadCrl('crl-after');
      const serial = new X509Certificate(readFileSync(leaf)).serialNumber.toLowerCase();

      const raw = verifyRaw('--crl', crl.der);
      expect([raw.status, raw.json.code]).toEqual([6, 'certificate_revoked']);
      expect(raw.json).toMatchObject({ certificate: expect.stringContaining('CLI CRL Firmware'), serial, reason: 'keyCompromise' });
      expect(raw.stderr).toMatch(/^ksctl: .*\(certificate_revoked\)/);
      const cms = verifyCmsWith('--crl', crl.pem);
      expect([cms.status, cms.json.code, cms.json.serial]).toEqual([6, 'certificate_revoked', serial]);
      const o = opensslVerify(crl.pem);
      expect(o.status).not.toBe(0);
      expect(o.out).toContain('certificate revoked');

      for (const fetched of [verifyRaw('--crl-fetch'), verifyCmsWith('--crl-fetch')]) {
        expect([fetched.status, fetched.json.code, fetched.json.serial, fetched.json.crl]).toEqual([6, 'certificate_revoked', serial, crlUrl]);
      }
      // Without CRLs the signature itself still verifies, and the answer says revocation was not checked.
      expect(verifyRaw().json).toMatchObject({ verified: true, revocation: 'not-checked' });
    });
  });
});
