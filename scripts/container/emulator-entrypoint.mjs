// Entrypoint of the entra-emulator image: registers the keyclient's public URL in the demo tenant, then
// runs the image's command (node dist/tools/entra-emulator/main.js).
// The demo tenant registers http://localhost:8080; a stack on other ports (KEYCLIENT_PORT, see
// docs/containers.md) sets EMULATOR_KEYCLIENT_URL so the emulator accepts that keyclient's redirect URI,
// and EMULATOR_PUBLIC_URL moves the issuers of the demo federated credentials (the tenant's own for new-format Azure
// DevOps tokens, the legacy Azure DevOps-style one) with it.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CALLBACK_PATH = '/login/oauth2/code/keyserver-client';
const env = { ...process.env };
const keyclientUrl = env.EMULATOR_KEYCLIENT_URL;
const publicUrl = env.EMULATOR_PUBLIC_URL;

if (keyclientUrl || publicUrl) {
  const source = env.EMULATOR_TENANT_FILE || 'config/demo-tenant.json';
  const tenant = JSON.parse(readFileSync(source, 'utf8'));
  if (keyclientUrl) {
    const origin = new URL(keyclientUrl).origin;
    tenant.keyserverApp.redirectUris = [`${origin}${CALLBACK_PATH}`];
    tenant.keyserverApp.postLogoutRedirectUris = [`${origin}/`];
  }
  if (publicUrl && tenant.adoIssuer?.path) {
    // The emulator binds these by path anyway; rewriting keeps the file showing the issuers clients really see.
    const origin = new URL(publicUrl).origin;
    const tenantIssuerPath = `/${tenant.tenant.id}/v2.0`;
    for (const client of tenant.ciClients ?? []) {
      for (const fc of client.federatedCredentials ?? []) {
        const path = new URL(fc.issuer).pathname;
        if (path === tenant.adoIssuer.path || path === tenantIssuerPath) fc.issuer = `${origin}${path}`;
      }
    }
  }
  const file = join(mkdtempSync(join(tmpdir(), 'emulator-')), 'tenant.json');
  writeFileSync(file, JSON.stringify(tenant), { mode: 0o600 });
  env.EMULATOR_TENANT_FILE = file;
}

const [cmd, ...args] = process.argv.slice(2);
if (!cmd) {
  console.error('emulator-entrypoint: no command given');
  process.exit(2);
}
const child = spawn(cmd === 'node' ? process.execPath : cmd, args, { stdio: 'inherit', env });
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
child.on('error', (err) => {
  console.error(`emulator-entrypoint: ${err.message}`);
  process.exit(127);
});
