import { createPrivateKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, SignJWT, type JWTPayload, type JWTVerifyResult } from 'jose';
import { CertificateCredentials } from './certificate-credentials';
import { startEmulator, type RunningEmulator } from './emulator';
import { EntraEmulatorError, EntraEmulatorErrorCode } from './emulator-error';
import { TOKEN_EXCHANGE_AUDIENCE } from './ado-issuer';
import type { DemoTenant, ResolvedTenant } from './tenant';
import {
  authorizeWithPassword,
  clientCredentialsToken,
  CookieJar,
  exchangeCode,
  loginWithPassword,
  pkcePair,
  tokenRequest,
} from './test-clients';

const TENANT_FILE = resolve(__dirname, '../../../../config/demo-tenant.json');
const DEMO_CERT_KEY = resolve(__dirname, '../../../../config/demo-credentials/demo-ci-cert.key.pem');
const DEMO_CERT = resolve(__dirname, '../../../../config/demo-credentials/demo-ci-cert.crt.pem');
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
// RSA key generation and real HTTP are slow when the shared 2-core machine is busy.
jest.setTimeout(60_000);
/** Frozen clock: every JWT the emulator issues carries these times. */
const NOW = Date.UTC(2026, 10, 29, 12, 0, 0);
const NOW_S = NOW / 1000;
const clock = (): number => NOW;

type Json = Record<string, unknown>;
const b64json = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

async function getJson(url: string): Promise<{ status: number; body: Json }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Json };
}

async function verifyWithJwks(emu: RunningEmulator, token: string, audience: string): Promise<JWTVerifyResult> {
  const jwks = createRemoteJWKSet(new URL(emu.jwksUri));
  const result = await jwtVerify(token, jwks, {
    issuer: emu.issuer,
    audience,
    algorithms: ['RS256'],
    typ: 'JWT',
    currentDate: new Date(NOW + 1000),
  });
  // Entra v2 `aud` is always a single GUID string, never an array or the api:// URI.
  expect(typeof result.payload.aud).toBe('string');
  expect(result.protectedHeader.kid).toEqual(expect.any(String));
  return result;
}

function expectEntraTimes(p: JWTPayload, ttl: number): void {
  expect(p.iat).toBe(NOW_S);
  expect(p.nbf).toBe(NOW_S);
  expect(p.exp).toBe(NOW_S + ttl);
}

interface AssertionOptions {
  clientId: string;
  audience: string;
  key: KeyObject;
  alg?: 'PS256' | 'RS256';
  header?: Record<string, unknown>;
  issuer?: string;
  subject?: string;
  issuedAt?: number;
  lifetime?: number;
  jti?: string;
}

/** An RFC 7523 client assertion shaped the way Entra documents certificate credentials. */
function certificateAssertion(o: AssertionOptions): Promise<string> {
  const { x5tS256 } = CertificateCredentials.thumbprints(readFileSync(DEMO_CERT, 'utf8'));
  const iat = o.issuedAt ?? NOW_S;
  return new SignJWT({})
    .setProtectedHeader({ alg: o.alg ?? 'PS256', typ: 'JWT', ...(o.header ?? { 'x5t#S256': x5tS256 }) })
    .setAudience(o.audience)
    .setIssuer(o.issuer ?? o.clientId)
    .setSubject(o.subject ?? o.clientId)
    .setJti(o.jti ?? randomUUID())
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(iat + (o.lifetime ?? 600))
    .sign(o.key);
}

async function expectEmulatorError(promise: Promise<unknown>, code: EntraEmulatorErrorCode, oauthError?: string): Promise<void> {
  const err = await promise.then(
    // An emulator that started after all is closed, so that a failing case cannot keep jest from exiting.
    async (started: unknown) => void (await (started as Partial<RunningEmulator> | undefined)?.close?.()),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(EntraEmulatorError);
  expect((err as EntraEmulatorError).code).toBe(code);
  if (oauthError) expect((err as EntraEmulatorError).oauthError).toBe(oauthError);
}

describe(startEmulator.name, () => {
  let emu: RunningEmulator;
  let t: ResolvedTenant;
  let keyserverScope: string;
  let defaultScope: string;

  beforeAll(async () => {
    emu = await startEmulator({ port: 0, tenantFile: TENANT_FILE, clock, accessTokenTtlSeconds: 1800 });
    t = emu.tenant;
    keyserverScope = `${t.keyserverApp.applicationIdUri}/${t.keyserverApp.scope}`;
    defaultScope = `${t.keyserverApp.applicationIdUri}/.default`;
  });

  afterAll(async () => {
    await emu.close();
  });

  describe('metadata', () => {
    it('answers liveness and readiness probes', async () => {
      for (const path of ['/healthz', '/readyz']) {
        const { status, body } = await getJson(`${emu.baseUrl}${path}`);
        expect(status).toBe(200);
        expect(body).toEqual({ status: 'ok' });
      }
    });

    it('serves an Entra-shaped v2.0 tenant metadata document', async () => {
      const { status, body } = await getJson(emu.metadataUrl);
      const base = `${emu.baseUrl}/${t.tenant.id}`;
      expect(status).toBe(200);
      expect(emu.issuer).toBe(`${base}/v2.0`);
      expect(emu.metadataUrl).toBe(`${base}/v2.0/.well-known/openid-configuration`);
      expect(body).toMatchObject({
        issuer: `${base}/v2.0`,
        jwks_uri: `${base}/discovery/v2.0/keys`,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        token_endpoint: `${base}/oauth2/v2.0/token`,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        subject_types_supported: ['pairwise'],
        id_token_signing_alg_values_supported: ['RS256'],
        request_uri_parameter_supported: false,
        response_modes_supported: ['query', 'fragment', 'form_post'],
      });
      expect(body['token_endpoint_auth_methods_supported']).toEqual(
        expect.arrayContaining(['client_secret_post', 'client_secret_basic', 'private_key_jwt']),
      );
      expect(body['scopes_supported']).toEqual(expect.arrayContaining(['openid', 'profile', 'email', 'offline_access']));
      expect(body['claims_supported']).toEqual(expect.arrayContaining(['sub', 'iss', 'aud', 'tid', 'ver', 'preferred_username']));
      expect(emu.tokenEndpoint).toBe(body['token_endpoint']);
    });

    it('publishes RS256 signing keys that carry the tenant issuer', async () => {
      const { status, body } = await getJson(emu.jwksUri);
      expect(status).toBe(200);
      const keys = body['keys'] as Json[];
      expect(keys).toHaveLength(1);
      expect(keys[0]).toMatchObject({ kty: 'RSA', use: 'sig', kid: emu.currentSigningKid(), e: 'AQAB', issuer: emu.issuer });
      expect(keys[0]).not.toHaveProperty('d');
    });

    it('answers 503 on the JWKS endpoint while it is made unavailable', async () => {
      emu.setJwksAvailable(false);
      try {
        expect((await fetch(emu.jwksUri)).status).toBe(503);
      } finally {
        emu.setJwksAvailable(true);
      }
      expect((await fetch(emu.jwksUri)).status).toBe(200);
    });

    it('answers 404 with JSON for an unknown tenant path', async () => {
      const res = await fetch(`${emu.baseUrl}/common/v2.0/.well-known/openid-configuration`);
      expect(res.status).toBe(404);
    });
  });

  describe('client credentials', () => {
    it.each([
      ['ok client_secret_post', 'post'],
      ['ok client_secret_basic', 'basic'],
    ] as const)('%s: issues an app token with the client app roles', async (_name, authMethod) => {
      const ci = t.ciClients.find((c) => c.name === 'demo-ci');
      if (!ci?.clientSecret) throw new Error('demo-ci missing');
      const token = await clientCredentialsToken(emu, {
        clientId: ci.clientId,
        clientSecret: ci.clientSecret,
        scope: defaultScope,
        authMethod,
      });
      const { payload, protectedHeader } = await verifyWithJwks(emu, token, t.keyserverApp.clientId);
      expect(protectedHeader).toEqual({ alg: 'RS256', typ: 'JWT', kid: emu.currentSigningKid() });
      expect(payload).toEqual({
        aud: t.keyserverApp.clientId,
        iss: emu.issuer,
        iat: NOW_S,
        nbf: NOW_S,
        exp: NOW_S + 1800,
        azp: ci.clientId,
        azpacr: '1',
        idtyp: 'app',
        oid: ci.servicePrincipalOid,
        sub: ci.servicePrincipalOid,
        roles: ['Keyserver.CI'],
        tid: t.tenant.id,
        uti: expect.any(String),
        ver: '2.0',
      });
    });

    it('issues a token without roles to a client that has no app role assigned', async () => {
      const ci = t.ciClients.find((c) => c.name === 'demo-norole');
      if (!ci?.clientSecret) throw new Error('demo-norole missing');
      const token = await clientCredentialsToken(emu, { clientId: ci.clientId, clientSecret: ci.clientSecret, scope: defaultScope });
      const { payload } = await verifyWithJwks(emu, token, t.keyserverApp.clientId);
      expect(payload).not.toHaveProperty('roles');
      expect(payload).not.toHaveProperty('scp');
      expect(payload['idtyp']).toBe('app');
      expect(payload.sub).toBe(ci.servicePrincipalOid);
    });

    it.each([
      ['fail wrong secret', { secret: 'wrong-secret-value', scope: 'default' }, 401, 'invalid_client'],
      ['fail delegated scope without /.default', { secret: 'right', scope: 'keyserver' }, 400, 'invalid_scope'],
      ['fail unknown resource', { secret: 'right', scope: 'api://00000000-0000-0000-0000-000000000000/.default' }, 400, 'invalid_resource'],
    ] as const)('%s', async (_name, input, status, error) => {
      const ci = t.ciClients.find((c) => c.name === 'demo-ci');
      if (!ci?.clientSecret) throw new Error('demo-ci missing');
      const scope = input.scope === 'default' ? defaultScope : input.scope === 'keyserver' ? keyserverScope : input.scope;
      const res = await tokenRequest(emu, {
        grant_type: 'client_credentials',
        client_id: ci.clientId,
        client_secret: input.secret === 'right' ? ci.clientSecret : input.secret,
        scope,
      });
      expect(res.status).toBe(status);
      expect(res.body['error']).toBe(error);
      expect(res.body).not.toHaveProperty('access_token');
    });

    it('rejects a failed grant through the helper with a stable code', async () => {
      await expectEmulatorError(
        clientCredentialsToken(emu, { clientId: t.ciClients[0].clientId, clientSecret: 'nope-nope-nope', scope: defaultScope }),
        EntraEmulatorErrorCode.TokenRequestFailed,
        'invalid_client',
      );
    });
  });

  describe('workload identity federation', () => {
    const wifClient = (): ResolvedTenant['ciClients'][number] => {
      const c = t.ciClients.find((x) => x.name === 'demo-ado-wif');
      if (!c) throw new Error('demo-ado-wif missing');
      return c;
    };

    it('exchanges an Azure DevOps OIDC token for an app token with azpacr 2', async () => {
      const c = wifClient();
      const assertion = await emu.mintAdoToken();
      const token = await clientCredentialsToken(emu, { clientId: c.clientId, clientAssertion: assertion, scope: defaultScope });
      const { payload } = await verifyWithJwks(emu, token, t.keyserverApp.clientId);
      expect(payload).toMatchObject({
        azp: c.clientId,
        azpacr: '2',
        idtyp: 'app',
        oid: c.servicePrincipalOid,
        sub: c.servicePrincipalOid,
        roles: ['Keyserver.CI'],
        tid: t.tenant.id,
        ver: '2.0',
      });
      expectEntraTimes(payload, 1800);
      expect(payload).not.toHaveProperty('scp');
    });

    it('serves legacy-format ADO OIDC tokens the way SYSTEM_OIDCREQUESTURI does, verifiable with its discovery and JWKS', async () => {
      // The demo tenant's second connection keeps the legacy format; both formats in detail: ado-wif.spec.ts.
      const legacy = t.adoIssuer.serviceConnections.find((c) => c.issuerFormat === 'ado');
      const res = await fetch(`${emu.adoOidcRequestUri}?api-version=7.1&serviceConnectionId=${legacy?.id ?? ''}`, {
        method: 'POST',
        headers: { authorization: 'Bearer system-access-token' },
      });
      expect(res.status).toBe(200);
      const { oidcToken } = (await res.json()) as { oidcToken: string };
      const discovery = await getJson(`${emu.adoIssuer}/.well-known/openid-configuration`);
      expect(discovery.body['issuer']).toBe(emu.adoIssuer);
      const { payload } = await jwtVerify(oidcToken, createRemoteJWKSet(new URL(String(discovery.body['jwks_uri']))), {
        issuer: emu.adoIssuer,
        audience: TOKEN_EXCHANGE_AUDIENCE,
        subject: 'sc://demo-org/firmware/keyserver-connection',
        algorithms: ['RS256'],
        currentDate: new Date(NOW),
      });
      expect(payload.exp).toBe(NOW_S + 300);
      const token = await clientCredentialsToken(emu, { clientId: wifClient().clientId, clientAssertion: oidcToken, scope: defaultScope });
      expect((await verifyWithJwks(emu, token, t.keyserverApp.clientId)).payload['azpacr']).toBe('2');
    });

    it('refuses to mint a token for an unknown service connection', async () => {
      await expectEmulatorError(
        emu.mintAdoToken({ serviceConnectionId: '00000000-0000-4000-8000-000000000000' }),
        EntraEmulatorErrorCode.UnknownServiceConnection,
      );
    });

    it.each([
      ['fail without a bearer System.AccessToken', {}, `f0e1d2c3-b4a5-4968-8778-695a4b3c2d1e`, 401],
      ['fail for an unknown service connection', { authorization: 'Bearer x' }, '00000000-0000-4000-8000-000000000000', 404],
    ])('%s at the ADO OIDC token endpoint', async (_name, headers, connectionId, status) => {
      const res = await fetch(`${emu.adoOidcRequestUri}?serviceConnectionId=${connectionId}`, { method: 'POST', headers });
      expect(res.status).toBe(status);
    });

    it.each([
      ['fail wrong subject', { subject: 'sc://demo-org/firmware/other-connection' }, 700213],
      ['fail wrong audience', { audience: 'api://SomethingElse' }, 700212],
      ['fail wrong issuer', { issuer: 'https://vstoken.dev.azure.com/00000000-0000-0000-0000-000000000000' }, 700211],
      ['fail expired assertion', { issuedAt: NOW_S - 3600, expiresInSeconds: 300 }, 700024],
      ['fail signature by an unpublished key', { signWithUnpublishedKey: true }, 700027],
    ])('%s', async (_name, mintOptions, aadsts) => {
      const assertion = await emu.mintAdoToken(mintOptions);
      const res = await tokenRequest(emu, {
        grant_type: 'client_credentials',
        client_id: wifClient().clientId,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
        scope: defaultScope,
      });
      expect(res.status).toBe(401);
      expect(res.body['error']).toBe('invalid_client');
      expect(res.body['error_codes']).toEqual([aadsts]);
      expect(res.body).not.toHaveProperty('access_token');
    });

    it.each([
      ['fail assertion for a client without federated credentials', 'demo-ci'],
      ['fail assertion without client_id', ''],
    ])('%s', async (_name, clientName) => {
      const assertion = await emu.mintAdoToken();
      const clientId = t.ciClients.find((c) => c.name === clientName)?.clientId ?? '';
      const res = await tokenRequest(emu, {
        grant_type: 'client_credentials',
        ...(clientId ? { client_id: clientId } : {}),
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
        scope: defaultScope,
      });
      expect(res.status).toBe(401);
      expect(res.body['error']).toBe('invalid_client');
    });

    it('refuses a secret guessed for a federated-only client', async () => {
      const res = await tokenRequest(emu, {
        grant_type: 'client_credentials',
        client_id: wifClient().clientId,
        client_secret: 'guessed-secret',
        scope: defaultScope,
      });
      expect(res.status).toBe(401);
      expect(res.body['error']).toBe('invalid_client');
    });
  });

  describe('certificate credentials', () => {
    const demoKey = createPrivateKey(readFileSync(DEMO_CERT_KEY));
    const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const certClient = (): ResolvedTenant['ciClients'][number] => {
      const c = t.ciClients.find((x) => x.name === 'demo-ci-cert');
      if (!c) throw new Error('demo-ci-cert missing');
      return c;
    };
    const redeem = (clientId: string, assertion: string) =>
      tokenRequest(emu, { grant_type: 'client_credentials', client_id: clientId, client_assertion_type: JWT_BEARER, client_assertion: assertion, scope: defaultScope });

    it('registers only the public certificate of the demo client, the one in config/demo-credentials', () => {
      expect(certClient().certificates).toEqual([readFileSync(DEMO_CERT, 'utf8')]);
      expect(certClient().clientSecret).toBeUndefined();
    });

    it.each([
      ['ok PS256 with x5t#S256', 'PS256', 'x5t#S256'],
      ['ok RS256 with x5t (SHA-1)', 'RS256', 'x5t'],
    ] as const)('%s: issues an app token with the client app roles and azpacr 2', async (_name, alg, thumbprint) => {
      const c = certClient();
      const prints = CertificateCredentials.thumbprints(readFileSync(DEMO_CERT, 'utf8'));
      const header = thumbprint === 'x5t' ? { x5t: prints.x5t } : { 'x5t#S256': prints.x5tS256 };
      const assertion = await certificateAssertion({ clientId: c.clientId, audience: emu.tokenEndpoint, key: demoKey, alg, header });
      const token = await clientCredentialsToken(emu, { clientId: c.clientId, clientAssertion: assertion, scope: defaultScope });
      const { payload } = await verifyWithJwks(emu, token, t.keyserverApp.clientId);
      expect(payload).toMatchObject({
        azp: c.clientId,
        azpacr: '2',
        idtyp: 'app',
        oid: c.servicePrincipalOid,
        sub: c.servicePrincipalOid,
        roles: ['Keyserver.CI'],
        tid: t.tenant.id,
      });
      expectEntraTimes(payload, 1800);
    });

    it.each([
      ['fail signature by a key that is not the certificate\'s', { key: 'other' }, 700027],
      ['fail thumbprint of a certificate that is not registered', { header: { 'x5t#S256': Buffer.alloc(32, 1).toString('base64url') } }, 700027],
      ['fail header without a thumbprint', { header: {} }, 700027],
      ['fail expired assertion', { issuedAt: NOW_S - 3600, lifetime: 600 }, 700024],
      ['fail assertion not yet valid', { issuedAt: NOW_S + 3600 }, 700024],
      ['fail audience that is not the token endpoint', { audience: 'https://login.microsoftonline.com/common/oauth2/v2.0/token' }, 700023],
      ['fail subject that is not the client', { subject: 'f0000000-0000-4000-8000-000000000000' }, 700021],
    ])('%s', async (_name, o: Partial<Omit<AssertionOptions, 'key'>> & { key?: string }, aadsts) => {
      const c = certClient();
      const assertion = await certificateAssertion({ clientId: c.clientId, audience: emu.tokenEndpoint, ...o, key: o.key === 'other' ? otherKey : demoKey });
      const res = await redeem(c.clientId, assertion);
      expect(res.status).toBe(401);
      expect(res.body['error']).toBe('invalid_client');
      expect(res.body['error_codes']).toEqual([aadsts]);
      expect(res.body).not.toHaveProperty('access_token');
    });

    it('rejects an assertion replayed with the same jti', async () => {
      const c = certClient();
      const assertion = await certificateAssertion({ clientId: c.clientId, audience: emu.tokenEndpoint, key: demoKey });
      expect((await redeem(c.clientId, assertion)).status).toBe(200);
      const again = await redeem(c.clientId, assertion);
      expect([again.status, again.body['error'], again.body['error_codes']]).toEqual([401, 'invalid_client', [50027]]);
    });

    it.each([
      ['fail unsupported algorithm', 'ES256'],
      ['fail symmetric algorithm', 'HS256'],
    ])('%s', async (_name, alg) => {
      const c = certClient();
      const header = b64json({ alg, typ: 'JWT', 'x5t#S256': CertificateCredentials.thumbprints(readFileSync(DEMO_CERT, 'utf8')).x5tS256 });
      const body = b64json({ aud: emu.tokenEndpoint, iss: c.clientId, sub: c.clientId, jti: randomUUID(), nbf: NOW_S, exp: NOW_S + 600 });
      const res = await redeem(c.clientId, `${header}.${body}.${Buffer.from('sig').toString('base64url')}`);
      expect([res.status, res.body['error_codes']]).toEqual([401, [50027]]);
    });

    it('rejects a certificate assertion for a client that has no certificate registered', async () => {
      const ci = t.ciClients.find((c) => c.name === 'demo-ci');
      if (!ci) throw new Error('demo-ci missing');
      const res = await redeem(ci.clientId, await certificateAssertion({ clientId: ci.clientId, audience: emu.tokenEndpoint, key: demoKey }));
      expect([res.status, res.body['error'], res.body['error_codes']]).toEqual([401, 'invalid_client', [700027]]);
    });

    it('refuses a secret guessed for a certificate-only client', async () => {
      const res = await tokenRequest(emu, { grant_type: 'client_credentials', client_id: certClient().clientId, client_secret: 'guessed-secret', scope: defaultScope });
      expect([res.status, res.body['error']]).toEqual([401, 'invalid_client']);
    });
  });

  describe('authorization code with PKCE (public provisioning client)', () => {
    const loopback = (port: number): string => `http://127.0.0.1:${port}/callback`;

    it('signs a user in on any loopback port and issues Entra-shaped ID and access tokens', async () => {
      const pub = t.provisioningApp.clientId;
      const ada = t.users.find((u) => u.username === 'ada.admin@demo.test');
      if (!ada) throw new Error('ada missing');
      const pkce = pkcePair();
      const result = await authorizeWithPassword(emu, {
        clientId: pub,
        redirectUri: loopback(49152),
        username: ada.username,
        password: ada.password,
        scope: `openid profile offline_access ${keyserverScope}`,
        codeChallenge: pkce.codeChallenge,
        state: 'state-1',
        nonce: 'nonce-1',
      });
      expect(result.state).toBe('state-1');
      expect(result.usedSignInForm).toBe(true);
      expect(result.callbackUrl.startsWith(`${loopback(49152)}?`)).toBe(true);
      const res = await exchangeCode(emu, { clientId: pub, code: result.code, redirectUri: loopback(49152), codeVerifier: pkce.codeVerifier });
      expect(res.status).toBe(200);
      expect(res.body['token_type']).toBe('Bearer');

      const at = await verifyWithJwks(emu, String(res.body['access_token']), t.keyserverApp.clientId);
      // A v2.0 header as Entra writes it: typ JWT (never at+jwt), RS256, the kid only (x5t is a v1.0 member).
      expect(at.protectedHeader).toEqual({ alg: 'RS256', typ: 'JWT', kid: emu.currentSigningKid() });
      expect(at.payload).toEqual({
        aud: t.keyserverApp.clientId,
        iss: emu.issuer,
        iat: NOW_S,
        nbf: NOW_S,
        exp: NOW_S + 1800,
        azp: pub,
        azpacr: '0',
        // The acct optional claim the Keyserver's registration configures (ADR 0040): 0, a member.
        acct: 0,
        name: ada.name,
        oid: ada.oid,
        preferred_username: ada.username,
        scp: 'keyserver',
        sub: emu.pairwiseSubject(ada.oid, pub),
        tid: t.tenant.id,
        uti: expect.any(String),
        ver: '2.0',
      });
      expect(at.payload.sub).not.toBe(ada.oid);

      const id = await verifyWithJwks(emu, String(res.body['id_token']), pub);
      expect(id.protectedHeader.typ).toBe('JWT');
      expect(id.payload).toMatchObject({
        aud: pub,
        nonce: 'nonce-1',
        oid: ada.oid,
        tid: t.tenant.id,
        ver: '2.0',
        name: ada.name,
        preferred_username: ada.username,
        sub: emu.pairwiseSubject(ada.oid, pub),
      });
      expectEntraTimes(id.payload, 3600);
      expect(id.payload).not.toHaveProperty('at_hash');
      expect(typeof res.body['refresh_token']).toBe('string');
    });

    it('gives the same user a different pairwise sub per client, stable across sign-ins', async () => {
      const ann = t.users.find((u) => u.username === 'ann.approver@demo.test');
      if (!ann) throw new Error('ann missing');
      const a = emu.pairwiseSubject(ann.oid, t.provisioningApp.clientId);
      expect(a).toBe(emu.pairwiseSubject(ann.oid, t.provisioningApp.clientId));
      expect(a).not.toBe(emu.pairwiseSubject(ann.oid, t.keyserverApp.clientId));
      expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    });

    it.each([
      ['fail missing code_challenge', undefined, undefined],
      ['fail plain code_challenge_method', 'plain-challenge-value-plain-challenge-value-123', 'plain'],
    ])('%s', async (_name, codeChallenge, method) => {
      await expectEmulatorError(
        loginWithPassword(emu, {
          clientId: t.provisioningApp.clientId,
          redirectUri: loopback(50000),
          username: 'ada.admin@demo.test',
          password: 'demo-password',
          scope: `openid ${keyserverScope}`,
          codeChallenge,
          codeChallengeMethod: method,
          state: 's',
        }),
        EntraEmulatorErrorCode.AuthorizationFailed,
        'invalid_request',
      );
    });

    it('rejects a code redeemed with the wrong verifier', async () => {
      const pkce = pkcePair();
      const code = await loginWithPassword(emu, {
        clientId: t.provisioningApp.clientId,
        redirectUri: loopback(50001),
        username: 'otto.orderer@demo.test',
        password: 'demo-password',
        scope: `openid ${keyserverScope}`,
        codeChallenge: pkce.codeChallenge,
      });
      const res = await exchangeCode(emu, {
        clientId: t.provisioningApp.clientId,
        code,
        redirectUri: loopback(50001),
        codeVerifier: pkcePair().codeVerifier,
      });
      expect(res.status).toBe(400);
      expect(res.body['error']).toBe('invalid_grant');
    });

    it('refuses a redirect URI that is not registered', async () => {
      await expectEmulatorError(
        loginWithPassword(emu, {
          clientId: t.provisioningApp.clientId,
          redirectUri: 'http://localhost:53682/callback',
          username: 'ada.admin@demo.test',
          password: 'demo-password',
          scope: `openid ${keyserverScope}`,
          codeChallenge: pkcePair().codeChallenge,
        }),
        EntraEmulatorErrorCode.AuthorizationFailed,
      );
    });

    it.each([
      ['fail wrong password', 'ada.admin@demo.test', 'wrong-password'],
      ['fail unknown user', 'nobody@demo.test', 'demo-password'],
    ])('%s: shows the sign-in form again', async (_name, username, password) => {
      await expectEmulatorError(
        loginWithPassword(emu, {
          clientId: t.provisioningApp.clientId,
          redirectUri: loopback(50002),
          username,
          password,
          scope: `openid ${keyserverScope}`,
          codeChallenge: pkcePair().codeChallenge,
        }),
        EntraEmulatorErrorCode.InvalidCredentials,
      );
    });
  });

  describe('sign-in page', () => {
    async function openLoginPage(): Promise<{ url: string; cookie: string; html: string }> {
      const url = new URL(emu.authorizationEndpoint);
      url.search = new URLSearchParams({
        client_id: t.provisioningApp.clientId,
        response_type: 'code',
        redirect_uri: 'http://127.0.0.1:50003/callback',
        scope: `openid ${keyserverScope}`,
        code_challenge: pkcePair().codeChallenge,
        code_challenge_method: 'S256',
      }).toString();
      const first = await fetch(url, { redirect: 'manual' });
      expect(first.status).toBe(303);
      const cookie = first.headers
        .getSetCookie()
        .map((c) => c.split(';')[0])
        .join('; ');
      const loginUrl = new URL(String(first.headers.get('location')), emu.baseUrl).href;
      const page = await fetch(loginUrl, { headers: { cookie } });
      expect(page.status).toBe(200);
      return { url: loginUrl, cookie, html: await page.text() };
    }

    it('is a plain HTML form with labelled username and password inputs and no script', async () => {
      const { url, cookie, html } = await openLoginPage();
      const again = await fetch(url, { headers: { cookie } });
      expect(again.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(html).toContain('<label for="username">');
      expect(html).toContain('<input id="username" name="username"');
      expect(html).toContain('<label for="password">');
      expect(html).toContain('<input id="password" name="password" type="password"');
      expect(html).not.toMatch(/<script/i);
    });

    it('escapes the reflected username when it shows the form again with an error', async () => {
      const { url, cookie } = await openLoginPage();
      const res = await fetch(url, {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ username: '"><script>alert(1)</script>', password: 'x' }).toString(),
        redirect: 'manual',
      });
      expect(res.status).toBe(200);
      const html = await res.text();
      expect(html).toContain('role="alert"');
      expect(html).not.toContain('<script>alert(1)</script>');
      expect(html).toContain('&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;');
    });

    it('answers 400, not 500, for an unknown interaction', async () => {
      const res = await fetch(`${emu.baseUrl}/${t.tenant.id}/login/does-not-exist`);
      expect(res.status).toBe(400);
    });
  });

  describe('confidential keyclient code flow, refresh and logout', () => {
    const redirectUri = (): string => t.keyserverApp.redirectUris[0];

    it.each([
      ['ok client_secret_post', 'post'],
      ['ok client_secret_basic', 'basic'],
    ] as const)('%s: redeems a code and refreshes the tokens', async (_name, authMethod) => {
      const app = t.keyserverApp;
      const pkce = pkcePair();
      const code = await loginWithPassword(emu, {
        clientId: app.clientId,
        redirectUri: redirectUri(),
        username: 'ann.approver@demo.test',
        password: 'demo-password',
        scope: `openid profile offline_access ${keyserverScope}`,
        codeChallenge: pkce.codeChallenge,
        state: 'xyz',
        nonce: 'n-0S6',
      });
      const res = await exchangeCode(emu, {
        clientId: app.clientId,
        clientSecret: app.clientSecret,
        authMethod,
        code,
        redirectUri: redirectUri(),
        codeVerifier: pkce.codeVerifier,
      });
      expect(res.status).toBe(200);
      const at = await verifyWithJwks(emu, String(res.body['access_token']), app.clientId);
      expect(at.payload).toMatchObject({ azp: app.clientId, azpacr: '1', scp: 'keyserver', oid: 'a0000001-0000-4000-8000-000000000003' });
      expect(at.payload).not.toHaveProperty('idtyp');
      expect(at.payload).not.toHaveProperty('scope');
      expect(at.payload).not.toHaveProperty('client_id');
      const id = await verifyWithJwks(emu, String(res.body['id_token']), app.clientId);
      expect(id.payload).toMatchObject({ aud: app.clientId, nonce: 'n-0S6', name: 'Ann Approver' });

      const refreshed = await tokenRequest(emu, {
        grant_type: 'refresh_token',
        refresh_token: String(res.body['refresh_token']),
        client_id: app.clientId,
        client_secret: app.clientSecret,
      });
      expect(refreshed.status).toBe(200);
      const at2 = await verifyWithJwks(emu, String(refreshed.body['access_token']), app.clientId);
      expect(at2.payload).toMatchObject({ sub: at.payload.sub, oid: at.payload['oid'], scp: 'keyserver', azpacr: '1' });
      expect(at2.payload['uti']).not.toBe(at.payload['uti']);
    });

    it('rejects a code redeemed with a wrong client secret', async () => {
      const code = await loginWithPassword(emu, {
        clientId: t.keyserverApp.clientId,
        redirectUri: redirectUri(),
        username: 'ann.approver@demo.test',
        password: 'demo-password',
        scope: `openid ${keyserverScope}`,
      });
      const res = await exchangeCode(emu, { clientId: t.keyserverApp.clientId, clientSecret: 'wrong-secret', code, redirectUri: redirectUri() });
      expect(res.status).toBe(401);
      expect(res.body['error']).toBe('invalid_client');
    });

    it('rejects a refresh token presented by another client', async () => {
      const pkce = pkcePair();
      const code = await loginWithPassword(emu, {
        clientId: t.provisioningApp.clientId,
        redirectUri: 'http://127.0.0.1:50010/callback',
        username: 'ada.admin@demo.test',
        password: 'demo-password',
        scope: `openid offline_access ${keyserverScope}`,
        codeChallenge: pkce.codeChallenge,
      });
      const res = await exchangeCode(emu, {
        clientId: t.provisioningApp.clientId,
        code,
        redirectUri: 'http://127.0.0.1:50010/callback',
        codeVerifier: pkce.codeVerifier,
      });
      const stolen = await tokenRequest(emu, {
        grant_type: 'refresh_token',
        refresh_token: String(res.body['refresh_token']),
        client_id: t.keyserverApp.clientId,
        client_secret: t.keyserverApp.clientSecret,
      });
      expect(stolen.status).toBe(400);
      expect(stolen.body['error']).toBe('invalid_grant');
    });

    it('keeps the session for single sign-on, then logs out and redirects to the registered URI', async () => {
      const app = t.keyserverApp;
      const jar = new CookieJar();
      const login = async (): Promise<{ usedSignInForm: boolean; idToken: string }> => {
        const r = await authorizeWithPassword(emu, {
          clientId: app.clientId,
          redirectUri: redirectUri(),
          username: 'aude.auditor@demo.test',
          password: 'demo-password',
          scope: `openid profile ${keyserverScope}`,
          cookieJar: jar,
        });
        const res = await exchangeCode(emu, { clientId: app.clientId, clientSecret: app.clientSecret, code: r.code, redirectUri: redirectUri() });
        return { usedSignInForm: r.usedSignInForm, idToken: String(res.body['id_token']) };
      };
      const first = await login();
      expect(first.usedSignInForm).toBe(true);
      expect((await login()).usedSignInForm).toBe(false);

      const url = new URL(emu.endSessionEndpoint);
      url.search = new URLSearchParams({
        post_logout_redirect_uri: app.postLogoutRedirectUris[0],
        id_token_hint: first.idToken,
        state: 'bye',
      }).toString();
      const res = await fetch(url, { redirect: 'manual', headers: { cookie: jar.header() } });
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe(`${app.postLogoutRedirectUris[0]}?state=bye`);
      // The old session cookie no longer signs anyone in.
      expect((await login()).usedSignInForm).toBe(true);
    });

    it.each([
      ['fail unregistered post_logout_redirect_uri', { post_logout_redirect_uri: 'https://evil.example/', client_id: '5b0f3c2a-8e7d-4f61-a9c3-1d2e3f4a5b60' }],
      ['fail post_logout_redirect_uri without a client', { post_logout_redirect_uri: 'http://localhost:8080/' }],
      ['fail forged id_token_hint', { post_logout_redirect_uri: 'http://localhost:8080/', id_token_hint: 'eyJhbGciOiJSUzI1NiJ9.e30.c2ln' }],
    ])('%s: answers 400 without redirecting', async (_name, params) => {
      const url = new URL(emu.endSessionEndpoint);
      url.search = new URLSearchParams(params).toString();
      const res = await fetch(url, { redirect: 'manual' });
      expect(res.status).toBe(400);
      expect(res.headers.get('location')).toBeNull();
    });

    it('shows a signed-out page when no redirect is requested', async () => {
      const res = await fetch(emu.endSessionEndpoint, { redirect: 'manual' });
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('You signed out');
    });
  });
});

describe('startEmulator signing-key rotation', () => {
  let emu: RunningEmulator;
  let ci: ResolvedTenant['ciClients'][number];
  let scope: string;

  beforeAll(async () => {
    emu = await startEmulator({ tenantFile: TENANT_FILE, clock });
    const found = emu.tenant.ciClients.find((c) => c.name === 'demo-ci');
    if (!found) throw new Error('demo-ci missing');
    ci = found;
    scope = `${emu.tenant.keyserverApp.applicationIdUri}/.default`;
  });

  afterAll(async () => {
    await emu.close();
  });

  const appToken = (): Promise<string> => clientCredentialsToken(emu, { clientId: ci.clientId, clientSecret: ci.clientSecret, scope });
  const kids = async (): Promise<string[]> => ((await getJson(emu.jwksUri)).body['keys'] as Json[]).map((k) => String(k['kid']));

  it('signs with the new key, keeps the old one published, and drops it on request', async () => {
    const before = await appToken();
    const oldKid = decodeProtectedHeader(before).kid;
    expect(await kids()).toEqual([oldKid]);

    await emu.rotateSigningKeys();
    const after = await appToken();
    const newKid = decodeProtectedHeader(after).kid;
    expect(newKid).not.toBe(oldKid);
    expect(newKid).toBe(emu.currentSigningKid());
    expect(await kids()).toEqual([newKid, oldKid]);
    // Both tokens verify against the published JWKS during the overlap.
    await verifyWithJwks(emu, before, emu.tenant.keyserverApp.clientId);
    await verifyWithJwks(emu, after, emu.tenant.keyserverApp.clientId);

    await emu.rotateSigningKeys({ dropPrevious: true });
    const newest = decodeProtectedHeader(await appToken()).kid;
    expect(await kids()).toEqual([newest]);
    await expect(verifyWithJwks(emu, before, emu.tenant.keyserverApp.clientId)).rejects.toMatchObject({
      code: 'ERR_JWKS_NO_MATCHING_KEY',
    });
  });

  it('signs ID tokens with the current key after a rotation', async () => {
    await emu.rotateSigningKeys();
    const pkce = pkcePair();
    const code = await loginWithPassword(emu, {
      clientId: emu.tenant.provisioningApp.clientId,
      redirectUri: 'http://127.0.0.1:50020/callback',
      username: 'ada.admin@demo.test',
      password: 'demo-password',
      scope: `openid ${emu.tenant.keyserverApp.applicationIdUri}/keyserver`,
      codeChallenge: pkce.codeChallenge,
    });
    const res = await exchangeCode(emu, {
      clientId: emu.tenant.provisioningApp.clientId,
      code,
      redirectUri: 'http://127.0.0.1:50020/callback',
      codeVerifier: pkce.codeVerifier,
    });
    expect(decodeProtectedHeader(String(res.body['id_token'])).kid).toBe(emu.currentSigningKid());
    expect(decodeProtectedHeader(String(res.body['access_token'])).kid).toBe(emu.currentSigningKid());
    await verifyWithJwks(emu, String(res.body['id_token']), emu.tenant.provisioningApp.clientId);
  });
});

describe('startEmulator tenant configuration', () => {
  const fileTenant = (): DemoTenant => JSON.parse(readFileSync(TENANT_FILE, 'utf8')) as DemoTenant;

  it('takes an inline tenant and puts user app-role assignments into roles', async () => {
    const tenant = fileTenant();
    tenant.users = tenant.users.map((u) => (u.username === 'ada.admin@demo.test' ? { ...u, appRoles: ['Keyserver.CI'] } : u));
    const emu = await startEmulator({ tenant, clock });
    try {
      const pkce = pkcePair();
      const code = await loginWithPassword(emu, {
        clientId: tenant.provisioningApp.clientId,
        redirectUri: 'http://127.0.0.1:50030/callback',
        username: 'ada.admin@demo.test',
        password: 'demo-password',
        scope: `openid ${tenant.keyserverApp.applicationIdUri}/keyserver`,
        codeChallenge: pkce.codeChallenge,
      });
      const res = await exchangeCode(emu, {
        clientId: tenant.provisioningApp.clientId,
        code,
        redirectUri: 'http://127.0.0.1:50030/callback',
        codeVerifier: pkce.codeVerifier,
      });
      const at = await verifyWithJwks(emu, String(res.body['access_token']), tenant.keyserverApp.clientId);
      expect(at.payload).toMatchObject({ roles: ['Keyserver.CI'], scp: 'keyserver', azpacr: '0' });
    } finally {
      await emu.close();
    }
  });

  // ADR 0040: `acct` on user access tokens, 0 for members and 1 for B2B guests, as Entra with the optional claim.
  describe('acct (member or guest)', () => {
    const guest = { username: 'gus.guest@partner.test', password: 'demo-password', name: 'Gus Guest (Partner)', oid: 'a0000001-0000-4000-8000-0000000000a1', userType: 'Guest' as const };
    async function userToken(emu: RunningEmulator, tenant: DemoTenant, username: string, clientId: 'keyclient' | 'provisioning'): Promise<JWTPayload> {
      const app = tenant.keyserverApp;
      const confidential = clientId === 'keyclient';
      const redirectUri = confidential ? app.redirectUris[0] : 'http://127.0.0.1:50031/callback';
      const pkce = pkcePair();
      const code = await loginWithPassword(emu, {
        clientId: confidential ? app.clientId : tenant.provisioningApp.clientId,
        redirectUri,
        username,
        password: 'demo-password',
        scope: `openid profile ${app.applicationIdUri}/keyserver`,
        codeChallenge: pkce.codeChallenge,
      });
      const res = await exchangeCode(emu, {
        clientId: confidential ? app.clientId : tenant.provisioningApp.clientId,
        ...(confidential ? { clientSecret: app.clientSecret } : {}),
        code,
        redirectUri,
        codeVerifier: pkce.codeVerifier,
      });
      expect(res.status).toBe(200);
      const at = await verifyWithJwks(emu, String(res.body['access_token']), app.clientId);
      const id = await verifyWithJwks(emu, String(res.body['id_token']), confidential ? app.clientId : tenant.provisioningApp.clientId);
      // An access-token optional claim: never in the ID token.
      expect(id.payload).not.toHaveProperty('acct');
      return at.payload;
    }

    it.each([
      ['ok a member (the default userType) gets acct 0 on the keyclient', 'ada.admin@demo.test', 'keyclient', 0],
      ['ok a member gets acct 0 on the provisioning client', 'ada.admin@demo.test', 'provisioning', 0],
      ['ok a guest gets acct 1 on the keyclient', guest.username, 'keyclient', 1],
      ['ok a guest gets acct 1 on the provisioning client', guest.username, 'provisioning', 1],
    ] as const)('%s', async (_n, username, client, acct) => {
      const tenant = fileTenant();
      tenant.users = [...tenant.users, guest];
      const emu = await startEmulator({ tenant, clock });
      try {
        expect((await userToken(emu, tenant, username, client))['acct']).toBe(acct);
      } finally {
        await emu.close();
      }
    });

    it('ok without the acct optional claim configured, user tokens carry none (a misconfigured registration)', async () => {
      const tenant = fileTenant();
      tenant.users = [...tenant.users, guest];
      tenant.keyserverApp = { ...tenant.keyserverApp, accessTokenOptionalClaims: [] };
      const emu = await startEmulator({ tenant, clock });
      try {
        expect(await userToken(emu, tenant, guest.username, 'keyclient')).not.toHaveProperty('acct');
        expect(await userToken(emu, tenant, 'ada.admin@demo.test', 'provisioning')).not.toHaveProperty('acct');
      } finally {
        await emu.close();
      }
    });
  });

  it('refuses a certificate assertion once the registered certificate has expired', async () => {
    const later = Date.UTC(2046, 5, 1);
    const emu = await startEmulator({ tenantFile: TENANT_FILE, clock: () => later });
    try {
      const c = emu.tenant.ciClients.find((x) => x.name === 'demo-ci-cert');
      if (!c) throw new Error('demo-ci-cert missing');
      const assertion = await certificateAssertion({ clientId: c.clientId, audience: emu.tokenEndpoint, key: createPrivateKey(readFileSync(DEMO_CERT_KEY)), issuedAt: later / 1000 });
      const res = await tokenRequest(emu, { grant_type: 'client_credentials', client_id: c.clientId, client_assertion_type: JWT_BEARER, client_assertion: assertion, scope: `${emu.tenant.keyserverApp.applicationIdUri}/.default` });
      expect([res.status, res.body['error'], res.body['error_codes']]).toEqual([401, 'invalid_client', [700027]]);
    } finally {
      await emu.close();
    }
  });

  it.each([
    ['fail missing file', { tenantFile: '/nonexistent/tenant.json' }, EntraEmulatorErrorCode.TenantFileUnreadable],
    ['fail tenant id that is not a GUID', { tenant: { ...fileTenant(), tenant: { id: 'contoso', name: 'x' } } }, EntraEmulatorErrorCode.TenantFileInvalid],
    [
      'fail app role the Keyserver app does not define',
      { tenant: { ...fileTenant(), ciClients: [{ ...fileTenant().ciClients?.[0], appRoles: ['Unknown.Role'] }] } as DemoTenant },
      EntraEmulatorErrorCode.TenantFileInvalid,
    ],
    ['fail userType Entra does not have', { tenant: { ...fileTenant(), users: [{ ...fileTenant().users[0], userType: 'guest' }] } as unknown as DemoTenant }, EntraEmulatorErrorCode.TenantFileInvalid],
    ['fail an access-token optional claim the emulator does not emit', { tenant: { ...fileTenant(), keyserverApp: { ...fileTenant().keyserverApp, accessTokenOptionalClaims: ['wids'] } } as unknown as DemoTenant }, EntraEmulatorErrorCode.TenantFileInvalid],
    [
      'fail certificate credential that is not a PEM certificate',
      { tenant: { ...fileTenant(), ciClients: [{ ...fileTenant().ciClients?.[0], certificates: ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'] }] } as DemoTenant },
      EntraEmulatorErrorCode.TenantFileInvalid,
    ],
  ])('%s', async (_name, options, code) => {
    await expectEmulatorError(startEmulator(options), code);
  });
});
