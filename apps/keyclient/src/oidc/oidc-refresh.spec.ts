import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KeyclientError } from '../errors/keyclient-error';
import { loadKeyclientConfig } from '../config/keyclient-config';
import { OidcService, RefreshRejected, type TokenSet } from './oidc.service';

/** What the token endpoint of the provider below answers: status, content type and body. */
type TokenAnswer = [status: number, contentType: string, body: string];

/** A real HTTP provider on loopback: discovery documents and a token endpoint answering `answer`. */
async function provider(): Promise<{ server: Server; origin: string; answer: (a: TokenAnswer) => void }> {
  let next: TokenAnswer = [200, 'application/json', '{}'];
  const server = createServer((req, res) => {
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    if (req.url?.endsWith('/.well-known/openid-configuration')) {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ issuer: origin, authorization_endpoint: `${origin}/authorize`, token_endpoint: `${origin}/token`, jwks_uri: `${origin}/keys` }));
      return;
    }
    req.resume();
    req.on('end', () => {
      res.writeHead(next[0], { 'content-type': next[1] });
      res.end(next[2]);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, answer: (a) => (next = a) };
}

describe(`${OidcService.name} refresh`, () => {
  let p: Awaited<ReturnType<typeof provider>>;
  let oidc: OidcService;
  const previous: TokenSet = { accessToken: 'at', accessTokenExpiresAt: Date.now(), refreshToken: 'rt', idToken: '' };

  beforeAll(async () => {
    p = await provider();
    oidc = new OidcService(
      loadKeyclientConfig({
        TENANT_ID: '7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01',
        APPLICATION_ID: '5b0f3c2a-8e7d-4f61-a9c3-1d2e3f4a5b60',
        CLIENT_SECRET: 'super-secret-value',
        OPENID_CONNECT_METADATA_DOCUMENT: `${p.origin}/.well-known/openid-configuration`,
        OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK: 'true',
        REDIRECT_URI: 'http://localhost:8080/login/oauth2/code/keyserver-client',
        KEYSERVER_API_URL: 'http://127.0.0.1:3000',
        DATABASE_URL: 'postgresql://app@127.0.0.1:5432/keyserver',
        SESSION_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'),
        KEYCLIENT_PUBLIC_URL: 'http://localhost:8080',
      }),
    );
  });
  afterAll(() => new Promise((resolve) => p.server.close(resolve)));

  const outcome = (answer: TokenAnswer) => {
    p.answer(answer);
    return oidc.refresh(previous).then(
      () => 'ok',
      (err: unknown) => (err instanceof RefreshRejected ? 'session ends' : err instanceof KeyclientError ? err.code : `unexpected ${String(err)}`),
    );
  };

  it.each([
    ['fail invalid_grant (revoked or expired refresh token)', [400, 'application/json', '{"error":"invalid_grant","error_description":"AADSTS70008"}'], 'session ends'],
    ['fail invalid_client', [401, 'application/json', '{"error":"invalid_client"}'], 'session ends'],
    ['fail a 200 that is no token response', [200, 'application/json', '{"token_type":"bearer"}'], 'session ends'],
    ['ok an outage page (503 HTML from a gateway): the session stays', [503, 'text/html', '<html>Service Unavailable</html>'], 'provider_unavailable'],
    ['ok temporarily_unavailable: the session stays', [503, 'application/json', '{"error":"temporarily_unavailable"}'], 'provider_unavailable'],
    ['ok server_error with a 400: the session stays', [400, 'application/json', '{"error":"server_error"}'], 'provider_unavailable'],
    ['ok throttled (429): the session stays', [429, 'application/json', '{"error":"invalid_request","error_description":"AADSTS50196 throttled"}'], 'provider_unavailable'],
    ['ok a 500 with an OAuth error body: the session stays', [500, 'application/json', '{"error":"invalid_grant"}'], 'provider_unavailable'],
  ] as const)('%s', async (_n, answer, expected) => {
    expect(await outcome([...answer])).toBe(expected);
  });

  // OIDC Core §12.2: a refreshed ID token names the same iss and sub as the one of the login. The session's identity
  // (tid, oid) was fixed at the login, so a refresh that answers for someone else must end the session, not carry on
  // with the other subject's access token under this identity.
  describe('the identity of a refreshed ID token', () => {
    const TENANT = '7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01';
    const APP = '5b0f3c2a-8e7d-4f61-a9c3-1d2e3f4a5b60';
    const ADA = { sub: 'pairwise-ada', oid: 'a0000001-0000-4000-8000-000000000001', tid: TENANT };
    /** An ID token as the provider's token endpoint returns it (the signature is not checked on that channel). */
    const idToken = (claims: Record<string, unknown>): string => {
      const now = Math.floor(Date.now() / 1000);
      const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
      return `${b64({ alg: 'RS256', typ: 'JWT', kid: 'k1' })}.${b64({ iss: p.origin, aud: APP, iat: now, nbf: now, exp: now + 3600, ver: '2.0', ...claims })}.${Buffer.alloc(256, 1).toString('base64url')}`;
    };
    const refreshAnswering = (claims: Record<string, unknown>) => {
      p.answer([200, 'application/json', JSON.stringify({ token_type: 'Bearer', access_token: 'at-2', refresh_token: 'rt-2', expires_in: 3600, id_token: idToken(claims) })]);
      return oidc.refresh({ ...previous, idToken: idToken(ADA) }).then(
        (t) => `ok ${t.accessToken}`,
        (err: unknown) => (err instanceof RefreshRejected ? 'session ends' : err instanceof KeyclientError ? err.code : `unexpected ${String(err)}`),
      );
    };

    it.each([
      ['ok the same sub, oid and tid', ADA, 'ok at-2'],
      ['fail another sub', { ...ADA, sub: 'pairwise-mallory' }, 'session ends'],
      ['fail another oid', { ...ADA, oid: 'a0000001-0000-4000-8000-0000000000ff' }, 'session ends'],
      ['fail another tid', { ...ADA, tid: '11111111-2222-4333-8444-555555555555' }, 'session ends'],
      ['fail no oid', { sub: ADA.sub, tid: TENANT }, 'session ends'],
    ])('%s', async (_n, claims, expected) => {
      expect(await refreshAnswering(claims)).toBe(expected);
    });

    it('ok a refresh answer without an ID token keeps the login one', async () => {
      p.answer([200, 'application/json', JSON.stringify({ token_type: 'Bearer', access_token: 'at-3', expires_in: 3600 })]);
      const t = await oidc.refresh({ ...previous, idToken: idToken(ADA) });
      expect([t.accessToken, t.refreshToken]).toEqual(['at-3', 'rt']);
    });
  });
});
