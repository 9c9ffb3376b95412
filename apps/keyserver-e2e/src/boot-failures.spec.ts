import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { composeCommand, freePort, platformEnv, repoRoot, runStep, startService, waitForOk, type Service } from '@keyserver/testing';
import { parse as parseYaml } from 'yaml';

/** Runs a service's image command (the API's unless told) with `env` and returns its exit code and stderr lines. */
function bootApi(env: Record<string, string | undefined>, service = 'keyserver-api', timeout = 60_000) {
  const [program, ...args] = composeCommand(service);
  const clean: Record<string, string> = { PATH: process.env['PATH'] ?? '' };
  for (const [k, v] of Object.entries(env)) if (v !== undefined) clean[k] = v;
  const r = spawnSync(program === 'node' ? process.execPath : program, args, { cwd: repoRoot, env: clean, encoding: 'utf8', timeout, killSignal: 'SIGKILL' });
  const lines = r.stderr.split('\n').filter((l) => l.trim() && !/ExperimentalWarning|--trace-warnings|Unsupported runtime/.test(l));
  return { status: r.status, lines, stdout: r.stdout };
}

describe('keyserver-api boot', () => {
  let hsmDir: string;
  let emulator: Service;
  let base: Record<string, string>;
  let v1: Server;
  let v1Url: string;

  beforeAll(async () => {
    hsmDir = mkdtempSync(join(tmpdir(), 'ks-boot-hsm-'));
    const env = platformEnv({ emulatorPort: await freePort(), apiPort: await freePort(), hsmDir, sessionKey: 'x' });
    base = { ...env.api, KEYSERVER_HSM_DIR: hsmDir, DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/postgres' };
    const init = runStep(['bash', 'scripts/softhsm-init.sh'], base);
    expect(init.status).toBe(0);
    emulator = startService('entra-emulator', composeCommand('entra-emulator'), env.emulator);
    await waitForOk(base['OPENID_CONNECT_METADATA_DOCUMENT']);
    // A provider that serves a v1.0-style document (sts.windows.net issuer) at a v2.0-looking path.
    const port = await freePort();
    v1 = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ issuer: `https://sts.windows.net/${base['TENANT_ID']}/`, jwks_uri: `http://127.0.0.1:${port}/keys` }));
    }).listen(port, '127.0.0.1');
    v1Url = `http://127.0.0.1:${port}/${base['TENANT_ID']}/v2.0/.well-known/openid-configuration`;
  });

  afterAll(async () => {
    await emulator?.stop();
    v1?.close();
    rmSync(hsmDir, { recursive: true, force: true });
  });

  it.each([
    ['fail missing TENANT_ID', { TENANT_ID: undefined }, 'TENANT_ID'],
    ['fail TENANT_ID not a GUID', { TENANT_ID: 'common' }, 'TENANT_ID'],
    ['fail APPLICATION_ID missing', { APPLICATION_ID: undefined }, 'APPLICATION_ID'],
    ['fail metadata over plain http to a remote host', { OPENID_CONNECT_METADATA_DOCUMENT: 'http://login.example.com/t/v2.0/.well-known/openid-configuration' }, 'OPENID_CONNECT_METADATA_DOCUMENT'],
    // The emulator's plain-http loopback URL only with the explicit setting: production never fetches keys over http.
    ['fail metadata over plain http to loopback without OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK', { OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK: undefined }, 'OPENID_CONNECT_METADATA_DOCUMENT'],
    ['fail OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK with an https metadata URL', { OPENID_CONNECT_METADATA_DOCUMENT: 'https://login.microsoftonline.com/7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01/v2.0/.well-known/openid-configuration', OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK: 'true' }, 'OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK'],
    ['fail DATABASE_URL not postgres', { DATABASE_URL: 'mysql://x@y/z' }, 'DATABASE_URL'],
    ['fail PKCS11_MODULE missing file', { PKCS11_MODULE: '/nonexistent/libsofthsm2.so' }, 'PKCS11_MODULE'],
    ['fail no PIN at all', { PKCS11_PIN_FILE: undefined, PKCS11_PIN: undefined }, 'PKCS11_PIN'],
    ['fail port out of range', { KEYSERVER_API_PORT: '99999' }, 'KEYSERVER_API_PORT'],
    ['fail SMTP without TLS to a remote relay', { SMTP_HOST: 'smtp.example.com', SMTP_FROM: 'ks@example.com', SMTP_TLS: 'none' }, 'SMTP_TLS'],
    ['fail a webhook secret too short (never echoed)', { NOTIFY_WEBHOOKS: JSON.stringify([{ name: 'ops', url: 'https://hooks.example.com/x', secret: 'hunter2' }]) }, 'NOTIFY_WEBHOOKS[0.secret]'],
    ['fail a TSA policy that is not an OID', { TSA_POLICY_OID: 'policy-1' }, 'TSA_POLICY_OID'],
    ['fail a TSA URL that is not http(s)', { CMS_TSA_URL: 'ftp://tsa.example.com/' }, 'CMS_TSA_URL'],
    ['fail an external TSA without a trust anchor or a pin', { CMS_TSA_URL: 'https://tsa.example.com/' }, 'CMS_TSA_CA_CERT'],
    ['fail an external TSA trust anchor file that does not exist', { CMS_TSA_URL: 'https://tsa.example.com/', CMS_TSA_CA_CERT: '/nonexistent/tsa-root.pem' }, 'CMS_TSA_CA_CERT'],
    ['fail an external TSA pin that is not a SHA-256', { CMS_TSA_URL: 'https://tsa.example.com/', CMS_TSA_CERT_SHA256: 'not-a-fingerprint' }, 'CMS_TSA_CERT_SHA256'],
    ['fail an external TSA CRL with a pin alone (no CA to check it with)', { CMS_TSA_URL: 'https://tsa.example.com/', CMS_TSA_CERT_SHA256: 'ab'.repeat(32), CMS_TSA_CRL: '/nonexistent/tsa-root.crl' }, 'CMS_TSA_CRL'],
    ['fail an unknown CMS_TIMESTAMP mode', { CMS_TIMESTAMP: 'best-effort' }, 'CMS_TIMESTAMP'],
    ['fail metrics on every interface without a token', { METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0' }, 'METRICS_TOKEN_FILE'],
    ['fail metrics port out of range', { METRICS_PORT: '70000' }, 'METRICS_PORT'],
  ])('%s: exits non-zero with one line naming the variable', (_name, change, variable) => {
    const r = bootApi({ ...base, ...change });
    expect(r.status).not.toBe(0);
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0]).toContain(variable);
    expect(r.lines[0]).not.toMatch(/\n| {4}at /);
    expect(`${r.lines.join('\n')}${r.stdout}`).not.toContain('hunter2');
  });

  it.each([
    ['fail metadata document that is not v2.0', () => ({ OPENID_CONNECT_METADATA_DOCUMENT: v1Url }), 'OPENID_CONNECT_METADATA_DOCUMENT'],
    ['fail unreachable provider', () => ({ OPENID_CONNECT_METADATA_DOCUMENT: 'http://127.0.0.1:1/t/v2.0/.well-known/openid-configuration' }), 'OPENID_CONNECT_METADATA_DOCUMENT'],
    ['fail unreachable database', () => ({ DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/keyserver' }), 'DATABASE_URL'],
    ['fail wrong token label', () => ({ PKCS11_TOKEN_LABEL: 'no-such-token' }), 'PKCS#11'],
    ['fail wrong PIN', () => ({ PKCS11_PIN_FILE: undefined, PKCS11_PIN: '000000' }), 'PKCS#11'],
  ])('%s: exits non-zero with one clear line', (_name, change, mention) => {
    const r = bootApi({ ...base, ...change() });
    expect(r.status).not.toBe(0);
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0]).toContain(mention);
    // Each part of the line once: never "metadata_unreachable: metadata_unreachable: ...".
    expect(r.lines[0]).not.toMatch(/\b([a-z0-9_]+): \1\b/i);
  });

  it('never prints the PIN or the client secret', () => {
    const r = bootApi({ ...base, PKCS11_PIN_FILE: undefined, PKCS11_PIN: 'secret-pin-123456', DATABASE_URL: 'postgresql://postgres:db-password@127.0.0.1:1/x' });
    const all = r.lines.join('\n') + r.stdout;
    expect(all).not.toContain('secret-pin-123456');
    expect(all).not.toContain('db-password');
  });

  it.each([
    ['fail an unparsable host', 'postgresql://postgres:db-secret-9@[::1/x'],
    ['fail a port out of range', 'postgresql://postgres:db-secret-9@127.0.0.1:99999/x'],
    ['fail a malformed escape in the password', 'postgresql://postgres:db-secret-9%zz@127.0.0.1:1/x'],
    ['fail the password in the query', 'postgresql://127.0.0.1:1/x?user=postgres&password=db-secret-9'],
    ['fail a missing root certificate', 'postgresql://postgres:db-secret-9@127.0.0.1:1/x?sslmode=verify-full&sslrootcert=/nonexistent/root.pem'],
    ['fail a space in the password', 'postgresql://postgres:db secret-9@127.0.0.1:1/x'],
  ])('%s: the database password is never printed', (_name, url) => {
    for (const variable of ['DATABASE_URL', 'DATABASE_DIRECT_URL']) {
      const r = bootApi({ ...base, [variable]: url });
      expect(r.status).not.toBe(0);
      expect([variable, `${r.lines.join('\n')}${r.stdout}`.match(/db.secret-9/g)]).toEqual([variable, null]);
    }
  });
});

describe('keyclient boot', () => {
  // The environment `npm start` and the tests give it (scripts/platform.cjs): the emulator on plain-http loopback. The
  // configuration is refused before the keyclient opens its database or asks the provider, so neither runs here.
  const base = (): Record<string, string> => platformEnv({ emulatorPort: 1, apiPort: 2, keyclientPort: 3, sessionKey: Buffer.alloc(32, 1).toString('base64') }).keyclient;

  it.each([
    // Same setting and meaning as the API's (ADR 0043 addendum "insecure loopback").
    ['fail metadata over plain http to loopback without OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK', { OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK: undefined }, 'OPENID_CONNECT_METADATA_DOCUMENT', 78],
    ['fail OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK with an https metadata URL', { OPENID_CONNECT_METADATA_DOCUMENT: 'https://login.microsoftonline.com/7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01/v2.0/.well-known/openid-configuration', OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK: 'true' }, 'OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK', 78],
  ])('%s: exits non-zero with one line naming the variable', (_name, change, variable, status) => {
    // A keyclient that accepted the configuration would listen: killed after 15 s (status null).
    const r = bootApi({ ...base(), ...change }, 'keyclient', 15_000);
    expect([r.status, r.lines.length, r.lines[0]?.includes(variable), r.lines[0]?.startsWith('keyclient: ')]).toEqual([status, 1, true, true]);
    expect(`${r.lines.join('\n')}${r.stdout}`).not.toContain(base()['CLIENT_SECRET']);
  });
});

describe('docker-compose.yml', () => {
  // Validated the way a user runs it, but with an empty env file: a developer's own .env must not decide the result.
  const compose = (env: Record<string, string>, quiet = true) => {
    const dir = mkdtempSync(join(tmpdir(), 'ks-compose-'));
    const envFile = join(dir, 'empty.env');
    writeFileSync(envFile, '');
    const v2 = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' });
    const q = quiet ? ['-q'] : [];
    const [cmd, args] = v2.status === 0 ? ['docker', ['compose', '--env-file', envFile, 'config', ...q]] : ['docker-compose', ['--env-file', envFile, 'config', ...q]];
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !['POSTGRES_PASSWORD', 'SESSION_ENCRYPTION_KEY', 'CLIENT_SECRET', 'KEYCLIENT_DB_PASSWORD'].includes(k)));
    const r = spawnSync(cmd, args, { cwd: repoRoot, encoding: 'utf8', env: { ...clean, ...env } });
    rmSync(dir, { recursive: true, force: true });
    return r;
  };
  const secrets = { POSTGRES_PASSWORD: 'p'.repeat(24), SESSION_ENCRYPTION_KEY: Buffer.alloc(32, 1).toString('base64'), CLIENT_SECRET: 'c', KEYCLIENT_DB_PASSWORD: 'k'.repeat(24) };

  it('is a valid Compose file', () => {
    const r = compose(secrets);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  // The file as Compose resolves it (anchors merged): what the engine is told, checked without an engine.
  // scripts/test-containers.sh checks the same on the running containers.
  it.each(['entra-emulator', 'keyserver-init', 'keyserver-api', 'keyclient'])('ok %s runs with a read-only root filesystem, a /tmp tmpfs, no capabilities and no-new-privileges', (service) => {
    const r = compose(secrets, false);
    expect(r.status).toBe(0);
    const svc = (parseYaml(r.stdout) as { services: Record<string, Record<string, unknown>> }).services[service];
    expect({ read_only: svc['read_only'], cap_drop: svc['cap_drop'], security_opt: svc['security_opt'], tmp: (svc['tmpfs'] as string[] | undefined)?.some((t) => t.split(':')[0] === '/tmp') }).toEqual({
      read_only: true,
      cap_drop: ['ALL'],
      security_opt: ['no-new-privileges:true'],
      tmp: true,
    });
  });

  it.each(Object.keys(secrets))('fail without the secret %s (no default secret in the file)', (name) => {
    const r = compose({ ...secrets, [name]: '' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('run scripts/compose-env.sh');
  });
});
