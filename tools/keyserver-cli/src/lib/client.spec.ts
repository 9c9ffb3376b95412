import { chmodSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { accessToken, apiRaw, bearerToken, cacheFile, tokenRequest, writeCache, type CachedToken, type Connection } from './client';
import { CliError, Exit } from './errors';

// Which API failures a pipeline should retry (exit 5) and which it should not (ADR 0046): a real HTTP server
// answers each status and problem code, ksctl's client maps it.
describe(apiRaw.name, () => {
  let server: Server;
  let c: Connection;
  let answer: { status: number; code?: string } = { status: 200 };

  beforeAll(async () => {
    server = createServer((_req, res) => {
      const body = answer.code ? JSON.stringify({ type: 'about:blank', title: 'x', status: answer.status, code: answer.code }) : '';
      res.writeHead(answer.status, body ? { 'content-type': 'application/problem+json' } : {}).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    c = { apiUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, method: 'token', token: 'any' };
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it.each<[string, number, string | undefined, Exit]>([
    ['fail 502 timestamp_tsa_untrusted: exit 4, a retry does not help (the TSA configuration does)', 502, 'timestamp_tsa_untrusted', Exit.Refused],
    ['fail 502 timestamp_clock_skew: exit 4, a retry does not help (a clock does)', 502, 'timestamp_clock_skew', Exit.Refused],
    ['fail 502 timestamp_tsa_revoked: exit 4, a retry does not help (another TSA certificate does)', 502, 'timestamp_tsa_revoked', Exit.Refused],
    ['fail 502 timestamp_tsa_crl_stale: exit 4, a retry does not help (a fresh CMS_TSA_CRL does)', 502, 'timestamp_tsa_crl_stale', Exit.Refused],
    ['fail 500 route_authorization_misconfigured: exit 4, a retry does not help (the deployment does)', 500, 'route_authorization_misconfigured', Exit.Refused],
    ['fail 503 timestamp_unavailable: exit 5, retry', 503, 'timestamp_unavailable', Exit.Unavailable],
    ['fail 502 timestamp_reply_invalid: exit 5, retry', 502, 'timestamp_reply_invalid', Exit.Unavailable],
    ['fail 503 database_unavailable: exit 5, retry', 503, 'database_unavailable', Exit.Unavailable],
    ['fail 502 without a problem body: exit 5, retry', 502, undefined, Exit.Unavailable],
    ['fail 409 usage_exhausted: exit 4', 409, 'usage_exhausted', Exit.Refused],
    ['fail 401: exit 3', 401, 'invalid_token', Exit.Auth],
  ])('%s', async (_name, status, code, exit) => {
    answer = { status, code };
    const err = await apiRaw(c, 'POST', '/api/v1/firmware/signatures').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect(err).toMatchObject({ exit, status, code });
  });

  it('ok 200: the response', async () => {
    answer = { status: 200 };
    expect((await apiRaw(c, 'GET', '/api/v1/me')).status).toBe(200);
  });
});

// Where ksctl sends a credential (RFC 9700 §2, RFC 6750 §5.3): the bearer token, the client secret or assertion and
// the pipeline's System.AccessToken travel only over TLS, or over plain http to this machine (loopback); the token
// endpoint's answer is never followed to another place with the secret in the body.
describe(accessToken.name, () => {
  let capture: Server;
  let redirector: Server;
  let captured: string[] = [];
  let captureUrl = '';
  let redirectUrl = '';
  const cacheDir = mkdtempSync(join(tmpdir(), 'ksctl-client-spec-'));

  beforeAll(async () => {
    capture = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => {
        captured.push(`${req.headers.authorization ?? ''} ${Buffer.concat(chunks).toString('utf8')}`);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'stolen-flow', expires_in: 3600 }));
      });
    });
    await new Promise<void>((resolve) => capture.listen(0, '127.0.0.1', resolve));
    captureUrl = `http://127.0.0.1:${(capture.address() as AddressInfo).port}/token`;
    redirector = createServer((req, res) => {
      req.resume();
      res.writeHead(307, { location: captureUrl }).end();
    });
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
    redirectUrl = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/token`;
  });
  afterAll(async () => {
    await new Promise((resolve) => capture.close(resolve));
    await new Promise((resolve) => redirector.close(resolve));
    rmSync(cacheDir, { recursive: true, force: true });
  });
  beforeEach(() => {
    captured = [];
  });

  const secret = (o: Partial<Connection> = {}): Connection => ({
    apiUrl: 'http://127.0.0.1:1',
    method: 'secret',
    clientId: 'c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f',
    clientSecret: 'the-client-secret',
    scope: 'api://app/.default',
    tokenEndpoint: redirectUrl,
    cacheDir: join(cacheDir, String(Math.random())),
    ...o,
  });

  it.each<[string, number, string]>([
    ['ok a cached token that expires within a day is used as it is', 3_600_000, 'cached-token'],
    ['fail a cached token that expires more than a day ahead (ksctl caches a day at most) is not used: a fresh one is fetched', 30 * 86_400_000, 'stolen-flow'],
  ])('%s', async (_n, ahead, want) => {
    const port = (capture.address() as AddressInfo).port;
    const c = secret({ tokenEndpoint: `http://127.0.0.1:${port}/token` });
    writeCache(c, { accessToken: 'cached-token', expiresAt: Date.now() + ahead });
    expect(await accessToken(c)).toBe(want);
  });

  it('fail a token endpoint that redirects: the secret is not sent again elsewhere', async () => {
    const err = await accessToken(secret()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect(captured).toEqual([]);
  });

  it.each([
    ['fail plain http token endpoint on another host', { tokenEndpoint: 'http://login.example.test/tid/oauth2/v2.0/token' }],
    ['fail a token endpoint that is no URL', { tokenEndpoint: 'login.example.test/token' }],
    ['fail plain http WIF OIDC request URI on another host', { method: 'wif' as const, tokenEndpoint: 'https://login.example.test/t', wif: { requestUri: 'http://dev.example.test/oidctoken', systemAccessToken: 'ado-token', serviceConnectionId: 'sc' } }],
  ])('%s: refused before anything is sent (exit 2, insecure_url)', async (_n, o) => {
    const err = await accessToken(secret(o)).catch((e: unknown) => e);
    expect(err).toMatchObject({ exit: Exit.Usage, code: 'insecure_url' });
  });

  it.each([
    ['fail plain http API on another host', 'http://keyserver.example.test'],
    ['fail plain http API on a private address', 'http://10.0.0.5:3000'],
    ['fail an API URL with credentials in it', 'https://user:pw@keyserver.example.test'],
  ])('%s: the bearer token is not sent (exit 2, insecure_url)', async (_n, apiUrl) => {
    const err = await apiRaw({ apiUrl, method: 'token', token: 'bearer-token' }, 'GET', '/api/v1/me').catch((e: unknown) => e);
    expect(err).toMatchObject({ exit: Exit.Usage, code: 'insecure_url' });
  });

  it.each([
    ['ok loopback 127.0.0.1', 'http://127.0.0.1'],
    ['ok loopback localhost', 'http://localhost'],
    ['ok loopback [::1]', 'http://[::1]'],
  ])('%s: plain http is allowed to this machine', async (_n, base) => {
    const port = (capture.address() as AddressInfo).port;
    const c = secret({ tokenEndpoint: `${base}:${port}/token` });
    if (base.includes('::1')) {
      // The capture server listens on IPv4 only: the URL check passes, the connection then fails as unreachable.
      expect(await accessToken(c).catch((e: unknown) => (e as CliError).code ?? 'unreachable')).not.toBe('insecure_url');
      return;
    }
    expect(await accessToken(c)).toBe('stolen-flow');
  });
});

// ksctl's token cache (~/.cache/ksctl or KSCTL_CACHE_DIR), shared with the PKCS#11 module: a PKCE login's refresh token
// survives a refresh answer that carries none (RFC 6749 §6: only a new one replaces it), and the cache file is only
// ever a fresh 0600 file of ours: a planted symlink or another link to the old file never receives a token, and a file
// someone else could have written or read (a symlink, group/other mode bits) is not taken as a login.
// A token endpoint in the hands of someone else (or a proxy in front of it): what it answers reaches the terminal and
// the --json output only as an OAuth error code of RFC 6749's shape, and is read only up to 64 KiB.
describe(tokenRequest.name, () => {
  let server: Server;
  let endpoint = '';
  let reply: (res: import('node:http').ServerResponse) => void = (res) => res.end();
  let written = 0;

  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      reply(res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  const c = (): Connection => ({ apiUrl: 'http://127.0.0.1:1', method: 'secret', tokenEndpoint: endpoint, clientId: 'c', scope: 's' });
  const json = (status: number, body: unknown) => (res: import('node:http').ServerResponse) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

  it.each<[string, (res: import('node:http').ServerResponse) => void, string | undefined]>([
    ['ok an OAuth error code: taken as the code', json(400, { error: 'invalid_client' }), 'invalid_client'],
    ['fail an error with escape sequences: no code', json(400, { error: '\u001b]0;pwned\u0007\u001b[2J' }), undefined],
    ['fail an error that is an object: no code', json(400, { error: { nested: true } }), undefined],
    ['fail an error of 10 000 characters: no code', json(400, { error: 'a'.repeat(10_000) }), undefined],
  ])('%s', async (_name, r, code) => {
    reply = r;
    const err = await tokenRequest(c(), { grant_type: 'client_credentials' }).catch((e: unknown) => e);
    expect([(err as CliError).exit, (err as CliError).code]).toEqual([Exit.Auth, code]);
  });

  it('fail an endless answer: refused without reading it to its end', async () => {
    written = 0;
    reply = (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(1 << 20, 0x20);
      const more = () => {
        while (written < 256 << 20) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      more();
    };
    const err = await tokenRequest(c(), { grant_type: 'client_credentials' }).catch((e: unknown) => e);
    expect((err as CliError).exit).toBe(Exit.Auth);
    expect(written).toBeLessThan(64 << 20);
  });

  it('fail a redirect: redirect_refused (exit 4: the URL must change, a retry does not help), not "unreachable"', async () => {
    reply = (res) => res.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere' }).end();
    const err = await tokenRequest(c(), { grant_type: 'client_credentials' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ exit: Exit.Refused, code: 'redirect_refused', status: 302 });
  });

  it.each<[string, string]>([
    ['fail a line break inside (a header injection)', 'abc\nX-Injected: 1'],
    ['fail an escape sequence', 'abc\u001b]0;x\u0007'],
    ['fail a space inside', 'abc def'],
    ['fail a non-ASCII character', 'abc\u20ac'],
  ])('%s in access_token: token_malformed (exit 3)', async (_name, token) => {
    reply = json(200, { access_token: token, expires_in: 3600 });
    const err = await tokenRequest(c(), { grant_type: 'client_credentials' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ exit: Exit.Auth, code: 'token_malformed' });
  });

  it('ok an expires_in of a thousand years: cached for a day at most', async () => {
    reply = json(200, { access_token: 'eyJ.a-b_c.d~+/==', expires_in: 3.2e10 });
    const before = Date.now();
    const t = await tokenRequest(c(), { grant_type: 'client_credentials' });
    expect(t.expiresAt).toBeLessThanOrEqual(Date.now() + 86_400_000);
    expect(t.expiresAt).toBeGreaterThanOrEqual(before + 86_400_000);
  });

  it('ok a token with a hostile expires_in (a string): the default lifetime, not NaN', async () => {
    reply = json(200, { access_token: 'at', expires_in: 'forever' });
    const t = await tokenRequest(c(), { grant_type: 'client_credentials' });
    expect(Number.isFinite(t.expiresAt)).toBe(true);
  });
});

describe(writeCache.name, () => {
  let server: Server;
  let answer: Record<string, unknown> = {};
  let bodies: URLSearchParams[] = [];
  let dir = '';
  let c: Connection;

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => {
        bodies.push(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ksctl-cache-spec-'));
    bodies = [];
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    c = { apiUrl: origin, method: 'pkce', tokenEndpoint: `${origin}/token`, clientId: '9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d', scope: 'api://app/keyserver', cacheDir: join(dir, 'cache') };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const cached = (): CachedToken => JSON.parse(readFileSync(cacheFile(c), 'utf8')) as CachedToken;
  const expiredLogin = (): void => writeCache(c, { accessToken: 'at-old', expiresAt: Date.now() - 1000, refreshToken: 'rt-1' });

  it.each([
    ['ok a refresh answer without a refresh token keeps the login\'s one', { access_token: 'at-2', expires_in: 3600 }, 'rt-1'],
    ['ok a refresh answer with a new refresh token replaces the old one (rotation)', { access_token: 'at-2', refresh_token: 'rt-2', expires_in: 3600 }, 'rt-2'],
  ])('%s', async (_n, reply, refreshToken) => {
    expiredLogin();
    answer = reply;
    expect(await accessToken(c)).toBe('at-2');
    expect(bodies.map((b) => [b.get('grant_type'), b.get('refresh_token')])).toEqual([['refresh_token', 'rt-1']]);
    expect(cached()).toMatchObject({ accessToken: 'at-2', refreshToken });
  });

  it('ok a cache file is a regular 0600 file in a 0700 directory', () => {
    expiredLogin();
    expect(lstatSync(cacheFile(c)).mode & 0o777).toBe(0o600);
    expect(lstatSync(c.cacheDir ?? '').mode & 0o777).toBe(0o700);
  });

  it('fail a symlink planted at the cache file: its target is neither written nor chmodded', () => {
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'unchanged', { mode: 0o644 });
    mkdirSync(c.cacheDir ?? '', { recursive: true });
    symlinkSync(victim, cacheFile(c));
    expiredLogin();
    expect(readFileSync(victim, 'utf8')).toBe('unchanged');
    expect(lstatSync(victim).mode & 0o777).toBe(0o644);
    expect(lstatSync(cacheFile(c)).isSymbolicLink()).toBe(false);
    expect(cached()).toMatchObject({ refreshToken: 'rt-1' });
  });

  it('fail another link to the old cache file: the new token is never written into it', () => {
    writeCache(c, { accessToken: 'at-0', expiresAt: 0 });
    const other = join(dir, 'other-link.json');
    linkSync(cacheFile(c), other);
    chmodSync(other, 0o644);
    expiredLogin();
    expect(readFileSync(other, 'utf8')).not.toContain('rt-1');
    expect(lstatSync(cacheFile(c)).mode & 0o777).toBe(0o600);
  });

  it.each([
    ['fail a cache file readable by others (0644)', 0o644],
    ['fail a cache file writable by the group (0620)', 0o620],
  ])('%s: not taken as a login', async (_n, mode) => {
    writeCache(c, { accessToken: 'at-planted', expiresAt: Date.now() + 3600_000, refreshToken: 'rt-planted' });
    chmodSync(cacheFile(c), mode);
    const err = await accessToken(c).catch((e: unknown) => e);
    expect(err).toMatchObject({ exit: Exit.Auth, code: 'login_required' });
    expect(bodies).toEqual([]);
  });

  it.each([
    ['fail an access token that is not a string', { accessToken: { bearer: 'x' }, expiresAt: Date.now() + 3600_000 }],
    ['fail an expiry that is not a number', { accessToken: 'at-x', expiresAt: '9999999999999' }],
    ['fail JSON null', null],
  ])('%s: a damaged cache is no login', async (_n, content) => {
    mkdirSync(c.cacheDir ?? '', { recursive: true, mode: 0o700 });
    writeFileSync(cacheFile(c), JSON.stringify(content), { mode: 0o600 });
    const err = await accessToken(c).catch((e: unknown) => e);
    expect(err).toMatchObject({ exit: Exit.Auth, code: 'login_required' });
  });

  it('fail a symlink to a valid-looking login elsewhere: not taken as a login', async () => {
    const planted = join(dir, 'planted.json');
    writeFileSync(planted, JSON.stringify({ accessToken: 'at-planted', expiresAt: Date.now() + 3600_000 }), { mode: 0o600 });
    mkdirSync(c.cacheDir ?? '', { recursive: true, mode: 0o700 });
    symlinkSync(planted, cacheFile(c));
    const err = await accessToken(c).catch((e: unknown) => e);
    expect(err).toMatchObject({ exit: Exit.Auth, code: 'login_required' });
  });
});

// What may reach the Authorization header (RFC 6750 §2.1 b64token): never a byte fetch refuses (and quotes in its
// message) or a header could be split with, whatever the environment or the token endpoint gives.
describe(bearerToken.name, () => {
  it('property: a token taken is only b64token characters; one from a JWT alphabet is taken as it is', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (raw) => {
        const t = bearerToken(raw);
        if (t !== undefined) expect(t).toMatch(/^[A-Za-z0-9\-._~+/]+=*$/);
      }),
    );
    fc.assert(fc.property(fc.base64String({ minLength: 4 }).map((b) => b.replace(/=+$/, '')), (b64) => expect(bearerToken(`eyJ.${b64}.sig\n`)).toBe(`eyJ.${b64}.sig`)));
  });
});
