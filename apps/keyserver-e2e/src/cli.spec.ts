import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signInAt } from '@keyserver/entra-emulator';
import { demoTenant, repoRoot, startPlatform, type RunningPlatform } from '@keyserver/testing';

const KSCTL = join(repoRoot, 'dist', 'tools', 'keyserver-cli', 'main.js');
const pemBlocks = (text: string) => text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];

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

  it.each([
    ['fail unknown key', ['keys', 'show', 'no-such-key'], 4, 'key_not_found'],
    ['fail bad digest length', ['sign', '--operation', '00000000-0000-4000-8000-000000000000', '--key', 'demo-fw-dev', '--digest', 'abcd'], 4, undefined],
    ['fail unknown command', ['frobnicate'], 2, undefined],
  ])('%s: exit %s with the problem code', (_n, args, exit, code) => {
    const r = ksctl(...(args as string[]));
    expect(r.status).toBe(exit);
    if (code) expect((r.json as { code: string }).code).toBe(code);
    expect(r.stderr).toMatch(/^ksctl: /);
  });
});
