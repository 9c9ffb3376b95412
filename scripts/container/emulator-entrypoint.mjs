// Entrypoint of the entra-emulator image: registers the keyclient's public URL in the demo tenant, then
// runs the image's command (node dist/tools/entra-emulator/main.js).
// The demo tenant registers http://localhost:8080; a stack on other ports (KEYCLIENT_PORT, see
// docs/containers.md) sets EMULATOR_KEYCLIENT_URL so the emulator accepts that keyclient's redirect URI,
// and EMULATOR_PUBLIC_URL moves the Azure DevOps-style issuer of the demo federated credential with it.
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
    const issuer = `${new URL(publicUrl).origin}${tenant.adoIssuer.path}`;
    for (const client of tenant.ciClients ?? []) {
      for (const fc of client.federatedCredentials ?? []) {
        if (new URL(fc.issuer).pathname === tenant.adoIssuer.path) fc.issuer = issuer;
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
