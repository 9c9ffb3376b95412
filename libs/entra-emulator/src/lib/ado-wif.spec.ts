import { createHmac, createPublicKey } from 'node:crypto';
import { resolve } from 'node:path';
import fc from 'fast-check';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { startEmulator, type RunningEmulator } from './emulator';
import { TOKEN_EXCHANGE_AUDIENCE } from './ado-issuer';
import { EntraEmulatorError, EntraEmulatorErrorCode } from './emulator-error';
import { clientCredentialsToken, tokenRequest } from './test-clients';
import type { ResolvedTenant } from './tenant';

const TENANT_FILE = resolve(__dirname, '../../../../config/demo-tenant.json');
jest.setTimeout(60_000);
const NOW = Date.UTC(2026, 11, 7, 12, 0, 0);
const NOW_S = NOW / 1000;
const clock = (): number => NOW;

/** The demo tenant's service connections (config/demo-tenant.json). */
const NEW_CONNECTION = 'f0e1d2c3-b4a5-4968-8778-695a4b3c2d1e';
const LEGACY_CONNECTION = 'b7c8d9e0-f1a2-4b3c-9d4e-5f6a7b8c9d0e';
const OTHER_CONNECTION = '0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e';
const ORG_ID = 'e2d3c4b5-a6f7-4e8d-9c0b-1a2b3c4d5e6f';
const OTHER_TENANT = 'ff882432-09b0-437b-bd22-ca13c0037ded';
const LEGACY_SUBJECT = 'sc://demo-org/firmware/keyserver-connection';
/** Azure DevOps' first-party application (the `azp` and the `/a/` part of the new subject). */
const AZURE_DEVOPS_APP_ID = '499b84ac-1321-427f-aa17-267ca6975798';
/** The application behind `api://AzureADTokenExchange`: a v2 token's `aud` is always a client id GUID. */
const TOKEN_EXCHANGE_APP_ID = 'fb60f99c-7a34-4190-8149-302f77469936';

/** A GUID the way Entra writes it into `/eid1/` subjects: its 16 bytes in .NET order, base64url without padding. */
function guidB64(guid: string): string {
  const b = Buffer.from(guid.replace(/-/g, ''), 'hex');
  const le = Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8)]);
  return le.toString('base64url');
}

const entraSubject = (tid: string, connection: string, org = ORG_ID): string =>
  `/eid1/c/pub/t/${guidB64(tid)}/a/${guidB64(AZURE_DEVOPS_APP_ID)}/sc/${org}/${connection}`;

const b64json = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

/** The same claims under `alg: none`, or HS256 keyed with the issuer's published RSA key (the key-confusion forgery). */
function reforge(token: string, alg: 'none' | 'HS256', publishedPem?: string): string {
  const header = { ...decodeProtectedHeader(token), alg };
  const input = `${b64json(header)}.${b64json(decodeJwt(token))}`;
  if (alg === 'none') return `${input}.`;
  return `${input}.${createHmac('sha256', publishedPem ?? '').update(input).digest('base64url')}`;
}

async function oidcRequest(emu: RunningEmulator, connectionId: string): Promise<string> {
  const res = await fetch(`${emu.adoOidcRequestUri}?api-version=7.1&serviceConnectionId=${connectionId}`, {
    method: 'POST',
    headers: { authorization: 'Bearer system-access-token' },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { oidcToken: string }).oidcToken;
}

describe('startEmulator workload identity federation, both Azure DevOps issuer formats', () => {
  let emu: RunningEmulator;
  let t: ResolvedTenant;
  let defaultScope: string;
  let wifClientId: string;
  let wifOid: string;
  let entraPem: string;
  let adoPem: string;

  beforeAll(async () => {
    emu = await startEmulator({ port: 0, tenantFile: TENANT_FILE, clock });
    t = emu.tenant;
    defaultScope = `${t.keyserverApp.applicationIdUri}/.default`;
    const wif = t.ciClients.find((c) => c.name === 'demo-ado-wif');
    if (!wif) throw new Error('demo-ado-wif missing');
    wifClientId = wif.clientId;
    wifOid = wif.servicePrincipalOid;
    const pem = async (jwksUri: string): Promise<string> => {
      const { keys } = (await (await fetch(jwksUri)).json()) as { keys: Record<string, unknown>[] };
      return createPublicKey({ key: keys[0] as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
    };
    entraPem = await pem(emu.jwksUri);
    adoPem = await pem(`${emu.adoIssuer}/.well-known/jwks`);
  });

  afterAll(async () => {
    await emu?.close();
  });

  const exchange = (assertion: string, clientId = wifClientId) =>
    tokenRequest(emu, {
      grant_type: 'client_credentials',
      client_id: clientId,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
      scope: defaultScope,
    });

  async function expectAppToken(accessToken: string): Promise<JWTPayload> {
    const { payload } = await jwtVerify(accessToken, createRemoteJWKSet(new URL(emu.jwksUri)), {
      issuer: emu.issuer,
      audience: t.keyserverApp.clientId,
      algorithms: ['RS256'],
      currentDate: new Date(NOW),
    });
    expect(payload).toMatchObject({ azp: wifClientId, azpacr: '2', idtyp: 'app', oid: wifOid, sub: wifOid, roles: ['Keyserver.CI'], ver: '2.0' });
    expect(payload).not.toHaveProperty('scp');
    return payload;
  }

  describe('the ADO OIDC endpoint (SYSTEM_OIDCREQUESTURI)', () => {
    it('issues the Entra-issuer format by default: tenant issuer, /eid1/ subject, signed with the tenant keys', async () => {
      const token = await oidcRequest(emu, NEW_CONNECTION);
      const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(emu.jwksUri)), {
        issuer: emu.issuer,
        subject: entraSubject(t.tenant.id, NEW_CONNECTION),
        audience: TOKEN_EXCHANGE_APP_ID,
        algorithms: ['RS256'],
        currentDate: new Date(NOW),
      });
      expect(protectedHeader).toMatchObject({ typ: 'JWT', alg: 'RS256', kid: emu.currentSigningKid() });
      expect(payload).toMatchObject({ azp: AZURE_DEVOPS_APP_ID, azpacr: '2', idtyp: 'app', tid: t.tenant.id, ver: '2.0', iat: NOW_S, nbf: NOW_S });
      expect(payload.exp).toBe(NOW_S + 86_700);
      expect(emu.issuer).toBe(`${emu.baseUrl}/${t.tenant.id}/v2.0`);
      // Every /eid1/ subject names this tenant and Azure DevOps' application in Entra's GUID encoding.
      expect(payload.sub).toBe(`/eid1/c/pub/t/HoxcfQo7WUydHi9rik4cAQ/a/rISbSSETf0KqFyZ8ppdXmA/sc/${ORG_ID}/${NEW_CONNECTION}`);
    });

    it('issues the legacy format for a connection configured with issuerFormat "ado"', async () => {
      const token = await oidcRequest(emu, LEGACY_CONNECTION);
      const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(`${emu.adoIssuer}/.well-known/jwks`)), {
        issuer: emu.adoIssuer,
        subject: LEGACY_SUBJECT,
        audience: TOKEN_EXCHANGE_AUDIENCE,
        algorithms: ['RS256'],
        currentDate: new Date(NOW),
      });
      expect(payload.exp).toBe(NOW_S + 300);
    });

    it('encodes GUIDs as Entra does (a captured subject of another tenant)', () => {
      expect(guidB64(OTHER_TENANT)).toBe('MiSI_7AJe0O9IsoTwAN97Q');
    });
  });

  describe('the exchange at the token endpoint', () => {
    it.each([
      ['ok new format from the ADO OIDC endpoint', NEW_CONNECTION],
      ['ok legacy format from the ADO OIDC endpoint', LEGACY_CONNECTION],
    ])('%s gives an app token with the app role', async (_name, connection) => {
      const token = await clientCredentialsToken(emu, { clientId: wifClientId, clientAssertion: await oidcRequest(emu, connection), scope: defaultScope });
      await expectAppToken(token);
    });

    it('ok the same assertion exchanged twice within its lifetime (nothing documents that Entra consumes federated assertions)', async () => {
      const assertion = await oidcRequest(emu, NEW_CONNECTION);
      expect((await exchange(assertion)).status).toBe(200);
      expect((await exchange(assertion)).status).toBe(200);
    });

    type Forge = (emu: RunningEmulator) => Promise<string>;
    const mint = (o: Parameters<RunningEmulator['mintAdoToken']>[0]): Forge => (e) => e.mintAdoToken(o);
    const legacy = (o: Parameters<RunningEmulator['mintAdoToken']>[0] = {}): Forge => mint({ serviceConnectionId: LEGACY_CONNECTION, ...o });
    const fresh = (o: Parameters<RunningEmulator['mintAdoToken']>[0] = {}): Forge => mint({ serviceConnectionId: NEW_CONNECTION, ...o });
    const withIssuer = (fmt: 'new' | 'legacy', iss: (e: RunningEmulator) => string): Forge => (e) =>
      e.mintAdoToken({ serviceConnectionId: fmt === 'new' ? NEW_CONNECTION : LEGACY_CONNECTION, issuer: iss(e) });

    const cases: [string, Forge, number][] = [
      // Issuer: exact and case-sensitive, no trailing slash.
      ['fail new issuer with an upper-case tenant id', withIssuer('new', (e) => `${e.baseUrl}/${e.tenantId.toUpperCase()}/v2.0`), 700211],
      ['fail new issuer with V2.0', withIssuer('new', (e) => `${e.baseUrl}/${e.tenantId}/V2.0`), 700211],
      ['fail new issuer with a trailing slash', withIssuer('new', (e) => `${e.issuer}/`), 700211],
      ['fail new issuer of another tenant', withIssuer('new', (e) => `${e.baseUrl}/${OTHER_TENANT}/v2.0`), 700211],
      ['fail new issuer with upper-case scheme and host', withIssuer('new', (e) => e.issuer.replace('http://127.0.0.1', 'HTTP://127.0.0.1')), 700211],
      ['fail legacy issuer with a trailing slash', withIssuer('legacy', (e) => `${e.adoIssuer}/`), 700211],
      ['fail legacy issuer in upper case', withIssuer('legacy', (e) => e.adoIssuer.replace('/_ado/demo-org', '/_ado/DEMO-ORG')), 700211],
      ['fail legacy issuer of real Azure DevOps (vstoken)', withIssuer('legacy', () => `https://vstoken.dev.azure.com/${ORG_ID}`), 700211],
      // Subject: exact and case-sensitive.
      ['fail new subject in upper case', (e) => fresh({ subject: entraSubject(e.tenantId, NEW_CONNECTION).toUpperCase() })(e), 700213],
      ['fail new subject with the connection id in upper case', (e) => fresh({ subject: entraSubject(e.tenantId, NEW_CONNECTION.toUpperCase()) })(e), 700213],
      ['fail new subject with a trailing slash', (e) => fresh({ subject: `${entraSubject(e.tenantId, NEW_CONNECTION)}/` })(e), 700213],
      ['fail new subject for another service connection', (e) => fresh({ subject: entraSubject(e.tenantId, OTHER_CONNECTION) })(e), 700213],
      ['fail new subject for another tenant', fresh({ subject: entraSubject(OTHER_TENANT, NEW_CONNECTION) }), 700213],
      ['fail new subject for another organization', (e) => fresh({ subject: entraSubject(e.tenantId, NEW_CONNECTION, OTHER_CONNECTION) })(e), 700213],
      ['fail new subject presented in the legacy format', fresh({ subject: LEGACY_SUBJECT }), 700213],
      ['fail legacy subject with another case', legacy({ subject: 'sc://Demo-Org/firmware/keyserver-connection' }), 700213],
      ['fail legacy subject for another connection', legacy({ subject: 'sc://demo-org/firmware/other-connection' }), 700213],
      ['fail legacy subject presented in the new format', (e) => legacy({ subject: entraSubject(e.tenantId, NEW_CONNECTION) })(e), 700213],
      // Lifetime.
      ['fail new assertion expired', fresh({ issuedAt: NOW_S - 86_700 - 1 }), 700024],
      ['fail new assertion not yet valid (nbf in the future)', fresh({ notBefore: NOW_S + 120 }), 700024],
      ['fail legacy assertion expired', legacy({ issuedAt: NOW_S - 301 }), 700024],
      ['fail legacy assertion not yet valid (nbf in the future)', legacy({ notBefore: NOW_S + 120 }), 700024],
      // Audience.
      ['fail new audience of the Keyserver', (e) => fresh({ audience: e.tenant.keyserverApp.clientId })(e), 700212],
      ['fail new audience with another case', fresh({ audience: 'API://AzureADTokenExchange' }), 700212],
      ['fail new audience with a trailing slash', fresh({ audience: 'api://AzureADTokenExchange/' }), 700212],
      ['fail legacy audience of the Keyserver', (e) => legacy({ audience: e.tenant.keyserverApp.clientId })(e), 700212],
      ['fail legacy audience as the token-exchange app id (only Entra-issued tokens carry it)', legacy({ audience: TOKEN_EXCHANGE_APP_ID }), 700212],
      ['fail legacy audience with another case', legacy({ audience: 'api://azureadtokenexchange' }), 700212],
      // Keys: each format verifies only with its own issuer's keys.
      ['fail new-format claims signed with the legacy issuer key', fresh({ signWith: 'ado' }), 700027],
      ['fail legacy claims signed with the new-format (tenant) key', legacy({ signWith: 'entra' }), 700027],
      ['fail new format signed by an unpublished key', fresh({ signWith: 'unpublished' }), 700027],
      ['fail legacy format signed by an unpublished key', legacy({ signWith: 'unpublished' }), 700027],
      // Algorithms.
      ['fail new format with alg none', async (e) => reforge(await fresh()(e), 'none'), 50027],
      ['fail legacy format with alg none', async (e) => reforge(await legacy()(e), 'none'), 50027],
      ['fail new format HS256 keyed with the tenant public key', async (e) => reforge(await fresh()(e), 'HS256', entraPem), 50027],
      ['fail legacy format HS256 keyed with the ADO public key', async (e) => reforge(await legacy()(e), 'HS256', adoPem), 50027],
      // Other tokens of the tenant are not assertions.
      [
        'fail a Keyserver access token of this tenant presented as the assertion',
        async (e) => {
          const ci = e.tenant.ciClients.find((c) => c.name === 'demo-ci');
          return clientCredentialsToken(e, { clientId: ci?.clientId ?? '', clientSecret: ci?.clientSecret ?? '', scope: defaultScope });
        },
        700213,
      ],
    ];

    it.each(cases)('%s', async (_name, forge, aadsts) => {
      const res = await exchange(await forge(emu));
      expect(res.status).toBe(401);
      expect(res.body['error']).toBe('invalid_client');
      expect(res.body['error_codes']).toEqual([aadsts]);
      expect(res.body).not.toHaveProperty('access_token');
    });

    it('fail any case variant of the issuer or the subject, in either format (property)', async () => {
      const flip = (text: string, at: number[]): string =>
        [...text].map((ch, i) => (at.includes(i % text.length) ? (ch === ch.toLowerCase() ? ch.toUpperCase() : ch.toLowerCase()) : ch)).join('');
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('new', 'legacy'),
          fc.constantFrom('issuer', 'subject'),
          fc.uniqueArray(fc.nat({ max: 200 }), { minLength: 1, maxLength: 6 }),
          async (format, claim, at) => {
            const connection = format === 'new' ? NEW_CONNECTION : LEGACY_CONNECTION;
            const original = claim === 'issuer' ? (format === 'new' ? emu.issuer : emu.adoIssuer) : (emu.adoSubject(connection) ?? '');
            const variant = flip(original, at);
            fc.pre(variant !== original);
            const res = await exchange(await emu.mintAdoToken({ serviceConnectionId: connection, [claim]: variant }));
            expect([res.status, res.body['error_codes']]).toEqual([401, [claim === 'issuer' ? 700211 : 700213]]);
          },
        ),
        { seed: 2512, numRuns: 40 },
      );
    });

    it('fail a new-format assertion for a client whose federated credentials trust only other subjects', async () => {
      const other = t.ciClients.find((c) => c.name === 'demo-ci');
      const res = await exchange(await oidcRequest(emu, NEW_CONNECTION), other?.clientId);
      expect(res.status).toBe(401);
      expect(res.body['error']).toBe('invalid_client');
    });
  });

  describe('tenant configuration', () => {
    const fileTenant = (): Record<string, unknown> => ({ ...(emu.tenant as unknown as Record<string, unknown>) });

    it.each([
      ['fail a legacy-format connection without a subject', { serviceConnections: [{ id: LEGACY_CONNECTION, issuerFormat: 'ado' }] }],
      ['fail an issuer format Azure DevOps does not have', { serviceConnections: [{ id: NEW_CONNECTION, issuerFormat: 'vstoken' }] }],
      ['fail no service connection', { serviceConnections: [] }],
      ['fail the same connection twice', { serviceConnections: [{ id: NEW_CONNECTION }, { id: NEW_CONNECTION.toUpperCase() }] }],
      ['fail the pre-2026-12-07 shape (one serviceConnectionId)', { serviceConnectionId: NEW_CONNECTION, subject: LEGACY_SUBJECT }],
    ])('%s', async (_name, adoIssuer) => {
      const tenant = { ...fileTenant(), adoIssuer: { path: '/_ado/demo-org', organizationId: ORG_ID, ...adoIssuer } };
      const err = await startEmulator({ tenant: tenant as never, clock }).then(
        async (started) => void (await started.close()),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(EntraEmulatorError);
      expect((err as EntraEmulatorError).code).toBe(EntraEmulatorErrorCode.TenantFileInvalid);
    });

    it('ok a connection without issuerFormat gets the new format', async () => {
      const tenant = { ...fileTenant(), adoIssuer: { path: '/_ado/demo-org', organizationId: ORG_ID, serviceConnections: [{ id: OTHER_CONNECTION }] } };
      const e2 = await startEmulator({ tenant: tenant as never, clock });
      try {
        const token = await e2.mintAdoToken();
        expect(decodeJwt(token)).toMatchObject({ iss: e2.issuer, sub: entraSubject(e2.tenantId, OTHER_CONNECTION) });
      } finally {
        await e2.close();
      }
    });
  });
});
