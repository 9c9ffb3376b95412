import { createHmac, createPublicKey } from 'node:crypto';
import { authorizeWithPassword, exchangeCode, pkcePair, tokenRequest, type EmulatorEndpoints } from '@keyserver/entra-emulator';
import { clientCredentialsToken, demoTenant, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { sql } from './admin-helpers';

// The API's access-token profile (docs/auth.md, libs/entra-token) against real Entra-shaped tokens: the emulator signs
// them, the real API process validates them over HTTP. Every refusal is the same 401 body; the audit log names why.
// libs/authz's auth.guard.http.spec covers the forged-claim matrix with a local test issuer; this spec proves the
// deployed wiring (TENANT_ID, APPLICATION_ID, APP_ROLE, PROVISIONING_CLIENT_IDS from the environment) with tokens the
// real registrations yield: ID tokens, the keyclient's own app token, a role-less client, tampered real tokens.

jest.setTimeout(180_000);

const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
const parts = (t: string): { header: Record<string, unknown>; payload: Record<string, unknown>; signature: string } => {
  const [h, p, s] = t.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url').toString()), payload: JSON.parse(Buffer.from(p, 'base64url').toString()), signature: s };
};

describe('token attacks on the real API', () => {
  let p: RunningPlatform;
  let emu: EmulatorEndpoints;
  /** Ada's tokens as the keyclient's code flow yields them (with a nonce), and the ID token of a refresh. */
  let ada: { access: string; id: string; refreshedId: string; idWithoutNonce: string };
  let publicKeyPem: string;

  beforeAll(async () => {
    p = await startPlatform();
    emu = { baseUrl: p.env.urls.emulator, tokenEndpoint: p.facts.tokenEndpoint, authorizationEndpoint: `${p.env.urls.emulator}/${p.facts.tenantId}/oauth2/v2.0/authorize` };
    const app = demoTenant.keyserverApp;
    const user = p.facts.users.find((u) => u.username === 'ada.admin@demo.test');
    const pkce = pkcePair();
    const redirectUri = p.env.keyclient['REDIRECT_URI'];
    const { code } = await authorizeWithPassword(emu, {
      clientId: app.clientId,
      redirectUri,
      username: 'ada.admin@demo.test',
      password: user?.password ?? '',
      scope: `openid profile offline_access ${p.facts.scope}`,
      codeChallenge: pkce.codeChallenge,
      nonce: 'n-0S6_WzA2Mj',
    });
    const res = await exchangeCode(emu, { clientId: app.clientId, clientSecret: app.clientSecret, authMethod: 'basic', code, redirectUri, codeVerifier: pkce.codeVerifier });
    const refreshed = await tokenRequest(emu, { grant_type: 'refresh_token', refresh_token: String(res.body['refresh_token']), scope: `openid profile offline_access ${p.facts.scope}` }, { clientId: app.clientId, clientSecret: app.clientSecret });
    const plain = pkcePair();
    const second = await authorizeWithPassword(emu, { clientId: app.clientId, redirectUri, username: 'ada.admin@demo.test', password: user?.password ?? '', scope: `openid profile ${p.facts.scope}`, codeChallenge: plain.codeChallenge });
    const withoutNonce = await exchangeCode(emu, { clientId: app.clientId, clientSecret: app.clientSecret, authMethod: 'basic', code: second.code, redirectUri, codeVerifier: plain.codeVerifier });
    ada = { access: String(res.body['access_token']), id: String(res.body['id_token']), refreshedId: String(refreshed.body['id_token']), idWithoutNonce: String(withoutNonce.body['id_token']) };
    const meta = (await (await fetch(p.facts.metadataUrl)).json()) as { jwks_uri: string };
    const jwks = (await (await fetch(meta.jwks_uri)).json()) as { keys: Record<string, string>[] };
    const jwk = jwks.keys.find((k) => k['kid'] === parts(ada.access).header['kid']);
    publicKeyPem = createPublicKey({ key: jwk as never, format: 'jwk' }).export({ format: 'pem', type: 'spki' }).toString();
  });
  afterAll(async () => {
    await p?.stop();
  });

  const me = (authorization: string, query = ''): Promise<Response> => fetch(`${p.env.urls.api}/api/v1/me${query}`, { headers: { authorization } });

  /** The detailed code the API audited for the last refused token (written after the answer: polled). */
  async function auditedCode(before: bigint): Promise<string> {
    for (let i = 0; i < 100; i++) {
      const rows = await sql<{ errorCode: string }>(p, `SELECT "errorCode" FROM "audit_event" WHERE "action" = 'auth.invalid_token' AND "seq" > $1 ORDER BY "seq"`, [before.toString()]);
      if (rows.length > 0) return rows.map((r) => r.errorCode).join(',');
      await new Promise((r) => setTimeout(r, 50));
    }
    return 'not audited';
  }
  const lastSeq = async (): Promise<bigint> => BigInt((await sql<{ m: string | null }>(p, 'SELECT max("seq")::text AS m FROM "audit_event"'))[0].m ?? '0');

  /** Sends the token, expects the one fixed 401 and returns the audited code. */
  async function refused(authorization: string, query = ''): Promise<string> {
    const before = await lastSeq();
    const r = await me(authorization, query);
    const text = await r.text();
    expect([r.status, r.headers.get('www-authenticate'), r.headers.get('content-type')?.split(';')[0]]).toEqual([401, 'Bearer error="invalid_token"', 'application/problem+json']);
    expect(JSON.parse(text)).toEqual({ type: 'https://keyserver.dev/problems/invalid_token', title: 'Unauthorized', status: 401, code: 'invalid_token', detail: 'The access token is missing or invalid.' });
    return auditedCode(before);
  }

  it('ok the keyclient access token of Ada: 200', async () => {
    expect((await me(`Bearer ${ada.access}`)).status).toBe(200);
  });

  it('ok the emulator tokens are Entra-shaped: v2, RS256, one aud, the ID tokens carry no scp (and no nonce unless one was sent)', () => {
    expect(parts(ada.access).header).toMatchObject({ alg: 'RS256', typ: 'JWT' });
    expect(parts(ada.access).payload).toMatchObject({ ver: '2.0', aud: p.facts.applicationId, scp: expect.stringContaining('keyserver') });
    expect(parts(ada.id).payload).toMatchObject({ aud: p.facts.applicationId, nonce: 'n-0S6_WzA2Mj' });
    expect(parts(ada.id).payload['scp']).toBeUndefined();
    expect(parts(ada.idWithoutNonce).payload).toMatchObject({ aud: p.facts.applicationId, oid: expect.any(String) });
    expect([parts(ada.idWithoutNonce).payload['nonce'], parts(ada.idWithoutNonce).payload['scp'], parts(ada.idWithoutNonce).payload['azp']]).toEqual([undefined, undefined, undefined]);
  });

  it.each([
    // One app registration for keyclient and API (integration guide): the ID token has our aud, issuer and keys.
    ['fail the ID token of the login (aud = APPLICATION_ID, nonce)', () => `Bearer ${ada.id}`, 'id_token_not_accepted'],
    ['fail the ID token of a refresh (it keeps the nonce)', () => `Bearer ${ada.refreshedId}`, 'id_token_not_accepted'],
    ['fail the ID token of a login without a nonce (no scp, no azp)', () => `Bearer ${ada.idWithoutNonce}`, 'invalid_claims'],
    ['fail HS256 keyed with the published RSA public key', () => { const t = parts(ada.access); const input = `${b64({ ...t.header, alg: 'HS256' })}.${b64(t.payload)}`; return `Bearer ${input}.${createHmac('sha256', publicKeyPem).update(input).digest('base64url')}`; }, 'alg_not_allowed'],
    ['fail alg none with the signature dropped', () => { const t = parts(ada.access); return `Bearer ${b64({ ...t.header, alg: 'none' })}.${b64(t.payload)}.`; }, 'malformed_token'],
    ['fail alg none with the original signature', () => { const t = parts(ada.access); return `Bearer ${b64({ ...t.header, alg: 'none' })}.${b64(t.payload)}.${t.signature}`; }, 'alg_not_allowed'],
    ['fail aud widened to an array, original signature', () => { const [h, , s] = ada.access.split('.'); return `Bearer ${h}.${b64({ ...parts(ada.access).payload, aud: [p.facts.applicationId, 'evil'] })}.${s}`; }, 'invalid_signature'],
    ['fail oid swapped to another user, original signature', () => { const [h, , s] = ada.access.split('.'); return `Bearer ${h}.${b64({ ...parts(ada.access).payload, oid: 'a0000001-0000-4000-8000-000000000006' })}.${s}`; }, 'invalid_signature'],
    ['fail jku and jwk headers pointing elsewhere, real kid', () => { const t = parts(ada.access); return `Bearer ${b64({ ...t.header, jku: 'http://127.0.0.1:9/keys', jwk: { kty: 'RSA', n: 'AQAB', e: 'AQAB' } })}.${b64(t.payload)}.${t.signature}`; }, 'invalid_signature'],
    // A 2048-bit signature is 342 base64url characters: 4 unused bits that decoders ignore, so 16 texts verified.
    ['fail the access token with its signature respelled (unused bits set, same signature bytes)', () => { const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'; return `Bearer ${ada.access.slice(0, -1)}${A[A.indexOf(ada.access.slice(-1)) | 1]}`; }, 'malformed_token'],
    ['fail unknown crit header', () => { const t = parts(ada.access); return `Bearer ${b64({ ...t.header, crit: ['exp'] })}.${b64(t.payload)}.${t.signature}`; }, 'unsupported_crit'],
    ['fail the access token in lower-case scheme with two spaces', () => `bearer  ${ada.access}`, 'invalid_scheme'],
  ])('%s: 401, audited as the reason', async (_n, auth, code) => {
    expect(await refused(auth())).toBe(code);
  });

  it('fail a valid token also sent in the query string: token_in_query', async () => {
    expect(await refused(`Bearer ${ada.access}`, `?access_token=${ada.access}`)).toBe('token_in_query');
  });

  // The keyclient's registration holds no assignment of its own app role, so its app token is role-less; with the role
  // it would still be refused (client_not_allowed: auth.guard.http.spec "fail app token minted by the keyclient itself").
  it("fail the keyclient's own client-credentials token (its secret is never a signing identity): missing_role", async () => {
    const app = demoTenant.keyserverApp;
    const token = await clientCredentialsToken(p.facts, app.clientId, app.clientSecret);
    expect(parts(token).payload).toMatchObject({ azp: app.clientId, idtyp: 'app' });
    expect(await refused(`Bearer ${token}`)).toBe('missing_role');
  });

  it('fail a client without the APP_ROLE (a role-less app token, which Entra does issue): missing_role', async () => {
    const norole = p.facts.ciClients.find((c) => c.name === 'demo-norole');
    const token = await clientCredentialsToken(p.facts, norole?.clientId ?? '', norole?.clientSecret ?? '');
    expect(parts(token).payload['roles']).toBeUndefined();
    expect(await refused(`Bearer ${token}`)).toBe('missing_role');
  });
});
