import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '@keyserver/testing';

/** scripts/compose-env.sh: the only writer of the secrets docker-compose.yml reads. */
describe('scripts/compose-env.sh', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ks-compose-env-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const VARS = ['POSTGRES_PASSWORD', 'SESSION_ENCRYPTION_KEY', 'KEYCLIENT_DB_PASSWORD', 'CLIENT_SECRET', 'EMULATOR_PORT', 'KEYSERVER_API_PORT', 'KEYCLIENT_PORT', 'POSTGRES_PORT', 'KEYSERVER_API_METRICS_PORT', 'KEYCLIENT_METRICS_PORT', 'KEYCLIENT_HOST', 'NODE_IMAGE', 'DEBIAN_IMAGE', 'POSTGRES_IMAGE', 'LOG_LEVEL'];
  function run(file: string, env: Record<string, string> = {}) {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !VARS.includes(k)));
    return spawnSync('bash', [join(repoRoot, 'scripts', 'compose-env.sh'), file], { encoding: 'utf8', env: { ...clean, ...env } });
  }
  const parse = (file: string) =>
    Object.fromEntries(
      readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => /^[A-Z_]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );

  it('ok writes fresh random secrets, mode 0600, and the demo tenant\'s client secret', () => {
    const [a, b] = [join(dir, 'a.env'), join(dir, 'b.env')];
    expect(run(a).status).toBe(0);
    expect(run(b).status).toBe(0);
    const [ea, eb] = [parse(a), parse(b)];
    expect(statSync(a).mode & 0o777).toBe(0o600);
    expect(ea['POSTGRES_PASSWORD']).toMatch(/^[0-9a-f]{48}$/);
    expect(Buffer.from(ea['SESSION_ENCRYPTION_KEY'], 'base64')).toHaveLength(32);
    expect(ea['POSTGRES_PASSWORD']).not.toBe(eb['POSTGRES_PASSWORD']);
    expect(ea['KEYCLIENT_DB_PASSWORD']).toMatch(/^[0-9a-f]{48}$/);
    expect(ea['KEYCLIENT_DB_PASSWORD']).not.toBe(eb['KEYCLIENT_DB_PASSWORD']);
    expect(ea['KEYCLIENT_DB_PASSWORD']).not.toBe(ea['POSTGRES_PASSWORD']);
    expect(ea['SESSION_ENCRYPTION_KEY']).not.toBe(eb['SESSION_ENCRYPTION_KEY']);
    const tenant = JSON.parse(readFileSync(join(repoRoot, 'config', 'demo-tenant.json'), 'utf8')) as { keyserverApp: { clientSecret: string } };
    expect(ea['CLIENT_SECRET']).toBe(tenant.keyserverApp.clientSecret);
    expect(ea).toMatchObject({ EMULATOR_PORT: '4011', KEYSERVER_API_PORT: '3000', KEYCLIENT_PORT: '8080', POSTGRES_PORT: '55432', KEYSERVER_API_METRICS_PORT: '9464', KEYCLIENT_METRICS_PORT: '9465', KEYCLIENT_HOST: '127.0.0.1' });
  });

  it('ok never changes an existing file (its secrets protect the volumes)', () => {
    const file = join(dir, '.env');
    writeFileSync(file, 'POSTGRES_PASSWORD=kept\n');
    const r = run(file, { POSTGRES_PASSWORD: 'x'.repeat(20) });
    expect(r.status).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe('POSTGRES_PASSWORD=kept\n');
  });

  it('ok takes values from the environment (a real client secret, other ports)', () => {
    const file = join(dir, '.env');
    expect(run(file, { CLIENT_SECRET: 'Real~Entra.Secret_1', KEYCLIENT_PORT: '18080' }).status).toBe(0);
    expect(parse(file)).toMatchObject({ CLIENT_SECRET: 'Real~Entra.Secret_1', KEYCLIENT_PORT: '18080' });
  });

  // Every value lands in a KEY=VALUE file and some in URLs (DATABASE_URL): nothing may break out of either.
  it.each([
    ['fail a newline in CLIENT_SECRET (a second variable injected)', { CLIENT_SECRET: 'x\nSESSION_ENCRYPTION_KEY=attacker' }],
    ['fail a space in CLIENT_SECRET', { CLIENT_SECRET: 'a b' }],
    ['fail a NUL-like control character in CLIENT_SECRET', { CLIENT_SECRET: 'a\u0001b' }],
    ['fail a non-ASCII CLIENT_SECRET', { CLIENT_SECRET: 'sécret' }],
    ['fail a zero-width space in CLIENT_SECRET', { CLIENT_SECRET: 'a\u200bb' }],
    ['fail an @ in POSTGRES_PASSWORD (breaks DATABASE_URL)', { POSTGRES_PASSWORD: 'pass@word-long-enough' }],
    ['fail a short POSTGRES_PASSWORD', { POSTGRES_PASSWORD: 'short' }],
    ['fail a quote in KEYCLIENT_DB_PASSWORD (breaks the ALTER ROLE statement)', { KEYCLIENT_DB_PASSWORD: "long-enough-password'; DROP ROLE x; --" }],
    ['fail a SESSION_ENCRYPTION_KEY that is not 32 bytes', { SESSION_ENCRYPTION_KEY: Buffer.alloc(16).toString('base64') }],
    ['fail a port that is not a number', { KEYCLIENT_PORT: '80;rm' }],
    ['fail a port with a leading zero', { EMULATOR_PORT: '0' }],
    ['fail a metrics port that is not a number', { KEYSERVER_API_METRICS_PORT: '9464 x' }],
    ['fail KEYCLIENT_HOST with a space', { KEYCLIENT_HOST: '0.0.0.0 x' }],
    ['fail an image name with a shell character', { NODE_IMAGE: 'node:24$(id)' }],
  ])('%s', (_name, env) => {
    const file = join(dir, '.env');
    const r = run(file, env);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('not allowed');
    expect(existsSync(file)).toBe(false);
  });
});
