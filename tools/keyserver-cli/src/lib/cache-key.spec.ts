import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import fc from 'fast-check';
import { cacheFile, credentialId, writeCache, type Connection } from './client';

const base: Connection = { apiUrl: 'http://127.0.0.1:1', method: 'secret', tokenEndpoint: 'http://idp/token', clientId: 'c1', scope: 'api://ks/.default', cacheDir: '/tmp/none' };

describe(cacheFile.name, () => {
  let dir: string;
  const certs: { crt: string; key: string }[] = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ksctl-cache-key-'));
    for (const n of [1, 2]) {
      const crt = join(dir, `c${n}.crt`);
      const key = join(dir, `c${n}.key`);
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt, '-subj', `/CN=cache ${n}`, '-days', '1'], { stdio: 'ignore' });
      certs.push({ crt, key });
    }
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    ['fail another secret', { clientSecret: 'secret-B' }],
    ['fail a secret differing in case only', { clientSecret: 'SECRET-A' }],
    ['fail another client', { clientId: 'c2' }],
    ['fail another scope', { scope: 'api://other/.default' }],
    ['fail another token endpoint (tenant)', { tokenEndpoint: 'http://idp2/token' }],
    ['fail a certificate credential of the same client', { method: 'certificate' as const, clientSecret: undefined }],
  ])('%s: never the file of client c1 with secret-A', (_n, change) => {
    const a = cacheFile({ ...base, clientSecret: 'secret-A' });
    expect(cacheFile({ ...base, clientSecret: 'secret-A', ...change })).not.toBe(a);
  });

  it('ok the same credential: the same file', () => {
    expect(cacheFile({ ...base, clientSecret: 'secret-A' })).toBe(cacheFile({ ...base, clientSecret: 'secret-A' }));
  });

  it('keys a certificate credential by the certificate and its key', () => {
    const file = (crt: string, key: string) => cacheFile({ ...base, method: 'certificate', certificate: { certificateFile: crt, privateKeyFile: key } });
    const [one, two] = certs;
    expect(file(one.crt, one.key)).toBe(file(one.crt, one.key));
    expect(file(two.crt, two.key)).not.toBe(file(one.crt, one.key));
    expect(file(one.crt, two.key)).not.toBe(file(one.crt, one.key));
    expect(credentialId({ ...base, method: 'certificate', certificate: { certificateFile: one.crt } })).toContain(
      execFileSync('openssl', ['x509', '-in', one.crt, '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' }).trim().split('=')[1],
    );
  });

  it('keeps the PKCE file name the PKCS#11 module computes (sha256 of endpoint|client|scope, 32 hex)', () => {
    const c: Connection = { ...base, method: 'pkce' };
    const want = createHash('sha256').update(`${c.tokenEndpoint}|${c.clientId}|${c.scope}`).digest('hex').slice(0, 32);
    expect(basename(cacheFile(c))).toBe(`token-${want}.json`);
  });

  it('never writes the secret into the file name or the file (property)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40 }), (secret) => {
        const c: Connection = { ...base, clientSecret: secret, cacheDir: join(dir, 'prop') };
        rmSync(join(dir, 'prop'), { recursive: true, force: true });
        writeCache(c, { accessToken: 'at', expiresAt: 1 });
        const [name] = readdirSync(join(dir, 'prop'));
        expect(name).toMatch(/^token-[0-9a-f]{32}\.json$/);
        const text = readFileSync(join(dir, 'prop', name), 'utf8');
        if (secret.length >= 4) expect(text).not.toContain(secret);
        expect(credentialId(c)).not.toContain(secret.length >= 4 ? secret : '\u0000\u0000');
      }),
      { seed: 14, numRuns: 40 },
    );
  });
});
