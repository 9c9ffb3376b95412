import { constants, createHash, generateKeyPairSync, verify, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { certificateAssertion, loadCertificateCredential } from './assertion';
import { CliError, Exit } from './errors';

const DEMO = resolve(__dirname, '../../../../config/demo-credentials');
const CERT = join(DEMO, 'demo-ci-cert.crt.pem');
const KEY = join(DEMO, 'demo-ci-cert.key.pem');
const TOKEN_ENDPOINT = 'https://login.microsoftonline.com/7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01/oauth2/v2.0/token';
const CLIENT_ID = 'f6a7b8c9-d0e1-4f2a-8b3c-4d5e6f7a8b9c';

const part = (jwt: string, i: number) => JSON.parse(Buffer.from(jwt.split('.')[i], 'base64url').toString()) as Record<string, unknown>;

describe(certificateAssertion.name, () => {
  const credential = loadCertificateCredential(CERT, KEY);
  const der = new X509Certificate(readFileSync(CERT)).raw;
  const now = Date.UTC(2026, 10, 29, 12, 0, 0);

  it.each([
    ['ok PS256 names the certificate by its SHA-256 thumbprint', 'PS256', { 'x5t#S256': createHash('sha256').update(der).digest('base64url') }],
    ['ok RS256 names the certificate by its SHA-1 thumbprint', 'RS256', { x5t: createHash('sha1').update(der).digest('base64url') }],
  ] as const)('%s', (_n, algorithm, thumbprint) => {
    const jwt = certificateAssertion(credential, { clientId: CLIENT_ID, tokenEndpoint: TOKEN_ENDPOINT, algorithm, now });
    expect(part(jwt, 0)).toEqual({ alg: algorithm, typ: 'JWT', ...thumbprint });
    const claims = part(jwt, 1);
    expect(claims).toEqual({ aud: TOKEN_ENDPOINT, iss: CLIENT_ID, sub: CLIENT_ID, jti: expect.stringMatching(/^[0-9a-f-]{36}$/), iat: now / 1000, nbf: now / 1000, exp: now / 1000 + 600 });
    const [h, p, s] = jwt.split('.');
    const key = new X509Certificate(readFileSync(CERT)).publicKey;
    const options = algorithm === 'PS256' ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : key;
    expect(verify('sha256', Buffer.from(`${h}.${p}`), options, Buffer.from(s, 'base64url'))).toBe(true);
  });

  it('uses a new jti for every assertion', () => {
    const a = certificateAssertion(credential, { clientId: CLIENT_ID, tokenEndpoint: TOKEN_ENDPOINT });
    const b = certificateAssertion(credential, { clientId: CLIENT_ID, tokenEndpoint: TOKEN_ENDPOINT });
    expect(part(a, 1)['jti']).not.toBe(part(b, 1)['jti']);
  });
});

describe(loadCertificateCredential.name, () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ksctl-assertion-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the certificate and its key from one PEM file', () => {
    const both = join(dir, 'both.pem');
    writeFileSync(both, readFileSync(CERT, 'utf8') + readFileSync(KEY, 'utf8'));
    expect(loadCertificateCredential(both, both).certificate.raw).toEqual(new X509Certificate(readFileSync(CERT)).raw);
  });

  it.each([
    ['fail key of another pair', () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string],
    ['fail EC key', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string],
    ['fail not a key', () => 'hello'],
  ])('%s: a usage error', (_n, keyPem) => {
    const keyFile = join(dir, 'key.pem');
    writeFileSync(keyFile, keyPem());
    let err: unknown;
    try {
      loadCertificateCredential(CERT, keyFile);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exit).toBe(Exit.Usage);
  });

  it('refuses a certificate file without a certificate and a missing key file', () => {
    expect(() => loadCertificateCredential(KEY, KEY)).toThrow(CliError);
    expect(() => loadCertificateCredential(CERT, join(dir, 'missing.pem'))).toThrow(CliError);
  });
});
