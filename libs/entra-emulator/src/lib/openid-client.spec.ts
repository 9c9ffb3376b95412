import { resolve } from 'node:path';
import * as oidc from 'openid-client';
import { startEmulator, type RunningEmulator } from './emulator';
import { signInAt } from './test-clients';

const TENANT_FILE = resolve(__dirname, '../../../../config/demo-tenant.json');
// RSA key generation and real HTTP are slow when the shared 2-core machine is busy.
jest.setTimeout(60_000);

// The keyclient BFF and the CLI use openid-client; this proves the emulator satisfies a strict
// third-party OIDC client (discovery, PKCE, state, nonce, iss response parameter, ID token checks).
describe('startEmulator with openid-client', () => {
  let emu: RunningEmulator;

  beforeAll(async () => {
    emu = await startEmulator({ tenantFile: TENANT_FILE });
  });

  afterAll(async () => {
    await emu.close();
  });

  it('runs the keyclient code flow with client_secret_post through openid-client', async () => {
    const app = emu.tenant.keyserverApp;
    const config = await oidc.discovery(new URL(emu.issuer), app.clientId, undefined, oidc.ClientSecretPost(app.clientSecret), {
      execute: [oidc.allowInsecureRequests],
    });
    expect(config.serverMetadata().issuer).toBe(emu.issuer);
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: app.redirectUris[0],
      scope: `openid profile offline_access ${app.applicationIdUri}/${app.scope}`,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    const result = await signInAt(emu, { authorizationUrl: url.href, username: 'arno.approver@demo.test', password: 'demo-password' });
    const tokens = await oidc.authorizationCodeGrant(config, new URL(result.callbackUrl), {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
    });
    expect(tokens.claims()).toMatchObject({
      aud: app.clientId,
      iss: emu.issuer,
      oid: 'a0000001-0000-4000-8000-000000000004',
      tid: emu.tenantId,
      ver: '2.0',
      preferred_username: 'arno.approver@demo.test',
    });
    expect(tokens.refresh_token).toEqual(expect.any(String));
    const refreshed = await oidc.refreshTokenGrant(config, String(tokens.refresh_token));
    expect(refreshed.access_token).toEqual(expect.any(String));
  });

  it('gets an app token with openid-client client credentials (client_secret_basic)', async () => {
    const ci = emu.tenant.ciClients.find((c) => c.name === 'demo-ci');
    if (!ci?.clientSecret) throw new Error('demo-ci missing');
    const config = await oidc.discovery(new URL(emu.issuer), ci.clientId, undefined, oidc.ClientSecretBasic(ci.clientSecret), {
      execute: [oidc.allowInsecureRequests],
    });
    const tokens = await oidc.clientCredentialsGrant(config, { scope: `${emu.tenant.keyserverApp.applicationIdUri}/.default` });
    expect(tokens.token_type).toBe('bearer');
    expect(tokens.access_token.split('.')).toHaveLength(3);
  });
});
