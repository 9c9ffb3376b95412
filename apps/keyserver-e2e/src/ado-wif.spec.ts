import { createHash, createPublicKey, verify, X509Certificate } from 'node:crypto';
import { decodeJwt } from 'jose';
import { demoTenant, startPlatform, type RunningPlatform } from '@keyserver/testing';

/**
 * The CI path of Azure DevOps workload identity federation, as a pipeline runs it, against the real API: the job asks
 * the (emulated) Azure DevOps OIDC endpoint for its service connection's token, exchanges it at Entra's token
 * endpoint as a client assertion, and signs a firmware digest with the access token. Both issuer formats: the Entra
 * issuer (Azure DevOps' default since 2025) and the legacy vstoken-style issuer (docs/ci/azure-devops.md).
 */
const NEW_CONNECTION = 'f0e1d2c3-b4a5-4968-8778-695a4b3c2d1e';
const LEGACY_CONNECTION = 'b7c8d9e0-f1a2-4b3c-9d4e-5f6a7b8c9d0e';

describe('Azure DevOps workload identity federation (CI path)', () => {
  let p: RunningPlatform;
  const wif = demoTenant.ciClients.find((c) => c.name === 'demo-ado-wif');

  beforeAll(async () => {
    p = await startPlatform();
  });

  afterAll(async () => {
    await p?.stop();
  });

  /** What `System.OidcRequestUri` answers a job (AzureCLI@2 / ksctl --wif do this POST). */
  async function pipelineOidcToken(serviceConnectionId: string): Promise<string> {
    const r = await fetch(`${p.env.urls.emulator}/_ado/demo-org/oidctoken?api-version=7.1&serviceConnectionId=${serviceConnectionId}`, {
      method: 'POST',
      headers: { authorization: 'Bearer pipeline-system-access-token', 'content-type': 'application/json' },
    });
    expect(r.status).toBe(200);
    return ((await r.json()) as { oidcToken: string }).oidcToken;
  }

  async function exchange(assertion: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const r = await fetch(p.facts.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: wif?.clientId ?? '',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
        scope: p.facts.defaultScope,
      }),
    });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  }

  it.each([
    ['ok new format (Entra issuer, /eid1/ subject)', NEW_CONNECTION, (tid: string) => ({ iss: expect.stringMatching(new RegExp(`/${tid}/v2\\.0$`)), sub: expect.stringMatching(new RegExp(`^/eid1/c/pub/t/[A-Za-z0-9_-]{22}/a/rISbSSETf0KqFyZ8ppdXmA/sc/[0-9a-f-]{36}/${NEW_CONNECTION}$`)) })],
    ['ok legacy format (ADO issuer, sc:// subject)', LEGACY_CONNECTION, () => ({ iss: expect.stringMatching(/\/_ado\/demo-org$/), sub: 'sc://demo-org/firmware/keyserver-connection' })],
  ])('%s: the pipeline gets its token, exchanges it and signs a firmware digest the certificate verifies', async (_name, connection, shape) => {
    const oidcToken = await pipelineOidcToken(connection);
    expect(decodeJwt(oidcToken)).toMatchObject(shape(p.facts.tenantId));

    const exchanged = await exchange(oidcToken);
    expect(exchanged.status).toBe(200);
    const accessToken = String(exchanged.body['access_token']);
    expect(decodeJwt(accessToken)).toMatchObject({ azp: wif?.clientId, idtyp: 'app', roles: ['Keyserver.CI'], oid: wif?.servicePrincipalOid });
    const api = (path: string, init: RequestInit = {}) =>
      fetch(`${p.env.urls.api}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
      });

    const now = Date.now();
    const op = await api('/api/v1/operations', {
      method: 'POST',
      body: JSON.stringify({
        description: `ADO WIF release (${connection})`,
        validFrom: new Date(now - 60_000).toISOString(),
        validTo: new Date(now + 3_600_000).toISOString(),
        keys: [{ keyid: 'demo-fw-dev', usages: 1 }],
      }),
    });
    expect(op.status).toBe(201);
    const { id: operationid } = (await op.json()) as { id: string };
    const firmware = Buffer.from(`firmware built by the pipeline of ${connection}`);
    const digest = createHash('sha256').update(firmware).digest();
    const signed = await api('/api/signorders', {
      method: 'POST',
      body: JSON.stringify({ operationid, keyid: 'demo-fw-dev', inputdata: digest.toString('hex'), inputformat: 'hex', inputpadding: 'none', signatureformat: 'p1363', description: 'ADO WIF sign' }),
    });
    expect(signed.status).toBe(201);
    const { result } = (await signed.json()) as { result: string };
    const keys = (await (await api('/api/keys')).json()) as { keyid: string; certificate: string }[];
    const cert = new X509Certificate(keys.find((k) => k.keyid === 'demo-fw-dev')?.certificate ?? '');
    const publicKey = createPublicKey(cert.publicKey.export({ type: 'spki', format: 'pem' }));
    expect(verify('sha256', firmware, { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(result, 'hex'))).toBe(true);
  });

  it('fail the pipeline token itself as a bearer token at the API (its audience is the token exchange, not the Keyserver)', async () => {
    const oidcToken = await pipelineOidcToken(NEW_CONNECTION);
    const r = await fetch(`${p.env.urls.api}/api/keys`, { headers: { authorization: `Bearer ${oidcToken}` } });
    expect(r.status).toBe(401);
    expect(((await r.json()) as { code: string }).code).toBe('invalid_token');
  });

  it('fail a new-format token whose subject names another service connection', async () => {
    const oidcToken = await pipelineOidcToken(NEW_CONNECTION);
    const claims = decodeJwt(oidcToken);
    // The signature covers the subject: a respelled one no longer verifies, so ask for an unregistered connection instead.
    const other = await fetch(`${p.env.urls.emulator}/_ado/demo-org/oidctoken?serviceConnectionId=0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e`, {
      method: 'POST',
      headers: { authorization: 'Bearer pipeline-system-access-token' },
    });
    expect(other.status).toBe(404);
    const tampered = oidcToken.split('.');
    tampered[1] = Buffer.from(JSON.stringify({ ...claims, sub: String(claims.sub).replace(NEW_CONNECTION, '0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e') })).toString('base64url');
    const r = await exchange(tampered.join('.'));
    expect(r.status).toBe(401);
    expect(r.body['error_codes']).toEqual([700027]);
  });
});
