// The embedded defaults of the whole platform: one place that turns config/demo-tenant.json and the
// local machine into the environment of each process. Used by `npm start` and by the end-to-end tests.
'use strict';
const { randomBytes } = require('node:crypto');
const { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const demoTenant = JSON.parse(readFileSync(join(root, 'config', 'demo-tenant.json'), 'utf8'));

/** A secret generated once per checkout and kept in .keyserver/ (git-ignored). */
function localSecret(name, bytes = 32) {
  const dir = join(root, '.keyserver');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, name);
  if (!existsSync(file)) {
    writeFileSync(file, randomBytes(bytes).toString('base64'), { mode: 0o600 });
  }
  chmodSync(file, 0o600);
  return readFileSync(file, 'utf8').trim();
}

/**
 * Environment for every process of one platform instance.
 * @param {{ emulatorPort?: number, apiPort?: number, keyclientPort?: number, databaseUrl?: string,
 *           hsmDir?: string, host?: string }} o
 */
function platformEnv(o = {}) {
  const host = o.host ?? '127.0.0.1';
  const emulatorPort = o.emulatorPort ?? 4011;
  const apiPort = o.apiPort ?? 3000;
  const keyclientPort = o.keyclientPort ?? 8080;
  const hsmDir = o.hsmDir ?? join(root, '.hsm');
  const tid = demoTenant.tenant.id;
  const app = demoTenant.keyserverApp;
  const emulatorUrl = `http://${host}:${emulatorPort}`;
  const keyclientUrl = `http://localhost:${keyclientPort}`;
  const common = {
    TENANT_ID: tid,
    APPLICATION_ID: app.clientId,
    OPENID_CONNECT_METADATA_DOCUMENT: `${emulatorUrl}/${tid}/v2.0/.well-known/openid-configuration`,
    DATABASE_URL: o.databaseUrl ?? process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/keyserver',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
  };
  return {
    urls: { emulator: emulatorUrl, api: `http://${host}:${apiPort}`, keyclient: keyclientUrl },
    emulator: {
      EMULATOR_PORT: String(emulatorPort),
      EMULATOR_HOST: host,
      EMULATOR_PUBLIC_URL: emulatorUrl,
      EMULATOR_TENANT_FILE: join(root, 'config', 'demo-tenant.json'),
    },
    api: {
      ...common,
      APP_ROLE: app.appRoles[0],
      KEYCLIENT_CLIENT_ID: app.clientId,
      PROVISIONING_CLIENT_IDS: [demoTenant.provisioningApp.clientId, app.clientId].join(','),
      PKCS11_MODULE: process.env.PKCS11_MODULE ?? '/usr/lib/softhsm/libsofthsm2.so',
      PKCS11_TOKEN_LABEL: 'keyserver',
      PKCS11_PIN_FILE: join(hsmDir, 'pin'),
      SOFTHSM2_CONF: join(hsmDir, 'softhsm2.conf'),
      KEYSERVER_HSM_DIR: hsmDir,
      KEYSERVER_API_HOST: host,
      KEYSERVER_API_PORT: String(apiPort),
      KEYSERVER_PUBLIC_URL: `http://${host}:${apiPort}`,
      ADMIN_SESSION_APPROVALS: '2',
      // npm start and the tests run the demo tenant; production leaves this unset (docs/operations.md).
      KEYSERVER_MODE: 'demo',
      // The emulator speaks plain http on loopback; production leaves this unset and uses Entra ID over https.
      OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK: 'true',
    },
    keyclient: {
      ...common,
      // Its own role: the keyclient's session schema and nothing of the Keyserver's tables (docs/adr/0018).
      DATABASE_URL: process.env.KEYCLIENT_DATABASE_URL ?? asRole(common.DATABASE_URL, 'keyserver_keyclient'),
      CLIENT_SECRET: app.clientSecret,
      // The emulator speaks plain http on loopback, as for the API above.
      OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK: 'true',
      REDIRECT_URI: `${keyclientUrl}/login/oauth2/code/keyserver-client`,
      KEYSERVER_API_URL: `http://${host}:${apiPort}`,
      KEYCLIENT_HOST: host,
      KEYCLIENT_PORT: String(keyclientPort),
      KEYCLIENT_PUBLIC_URL: keyclientUrl,
      SESSION_ENCRYPTION_KEY: o.sessionKey ?? localSecret('session-encryption-key'),
      SPA_DIST_DIR: join(root, 'dist', 'apps', 'admin-spa', 'browser'),
    },
  };
}

/** The same database URL, connecting as `role` (no password: local trust; deployments set KEYCLIENT_DATABASE_URL). */
function asRole(url, role) {
  const u = new URL(url);
  u.username = role;
  u.password = '';
  return u.href;
}

/** The demo tenant's public facts for the CLI, scripts and tests (written to .keyserver/demo.json). */
function demoFacts(env) {
  const t = demoTenant;
  return {
    urls: env.urls,
    tenantId: t.tenant.id,
    applicationId: t.keyserverApp.clientId,
    scope: `${t.keyserverApp.applicationIdUri}/${t.keyserverApp.scope}`,
    defaultScope: `${t.keyserverApp.applicationIdUri}/.default`,
    metadataUrl: env.api.OPENID_CONNECT_METADATA_DOCUMENT,
    tokenEndpoint: `${env.urls.emulator}/${t.tenant.id}/oauth2/v2.0/token`,
    provisioningClientId: t.provisioningApp.clientId,
    ciClients: t.ciClients.map((c) => ({ name: c.name, clientId: c.clientId, clientSecret: c.clientSecret })),
    users: t.users.map((u) => ({ username: u.username, password: u.password, name: u.name, natures: u.natures })),
  };
}

module.exports = { root, demoTenant, localSecret, platformEnv, demoFacts };
