import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { authorizeWithPassword, exchangeCode, pkcePair, type EmulatorEndpoints } from '@keyserver/entra-emulator';
import { clientCredentialsToken, demoTenant, repoRoot, type RunningPlatform } from '@keyserver/testing';

// Shared helpers of the operations, certificates, firmware and concurrency e2e specs.

const PASSWORD_OF = new Map(demoTenant.users.map((u) => [u.username, u.password]));

async function emulatorEndpoints(p: RunningPlatform): Promise<EmulatorEndpoints> {
  const meta = (await (await fetch(p.facts.metadataUrl)).json()) as { authorization_endpoint: string; token_endpoint: string };
  return { baseUrl: p.facts.urls.emulator, tokenEndpoint: meta.token_endpoint, authorizationEndpoint: meta.authorization_endpoint };
}

/**
 * A user's access token for the Keyserver over real HTTP: the sign-in form and the code flow of either the
 * provisioning public client (PKCE, channel "provisioning") or the keyclient confidential client (channel "bff").
 */
export async function userToken(p: RunningPlatform, username: string, via: 'provisioning' | 'keyclient' = 'provisioning'): Promise<string> {
  const password = PASSWORD_OF.get(username);
  if (!password) throw new Error(`no demo user ${username}`);
  const emu = await emulatorEndpoints(p);
  const client =
    via === 'provisioning'
      ? { clientId: demoTenant.provisioningApp.clientId, redirectUri: demoTenant.provisioningApp.redirectUris[0], clientSecret: undefined }
      : {
          clientId: demoTenant.keyserverApp.clientId,
          redirectUri: p.env.keyclient['REDIRECT_URI'],
          clientSecret: demoTenant.keyserverApp.clientSecret,
        };
  const pkce = pkcePair();
  const { code } = await authorizeWithPassword(emu, {
    clientId: client.clientId,
    redirectUri: client.redirectUri,
    username,
    password,
    scope: `openid profile offline_access ${p.facts.scope}`,
    codeChallenge: pkce.codeChallenge,
    state: 's',
    nonce: 'n',
  });
  const r = await exchangeCode(emu, { clientId: client.clientId, clientSecret: client.clientSecret, code, redirectUri: client.redirectUri, codeVerifier: pkce.codeVerifier });
  const token = r.body['access_token'];
  if (r.status !== 200 || typeof token !== 'string') throw new Error(`code exchange failed: ${r.status} ${JSON.stringify(r.body)}`);
  return token;
}

/** The demo CI client's client-credentials token. */
export async function ciToken(p: RunningPlatform): Promise<string> {
  const ci = demoTenant.ciClients.find((c) => c.name === 'demo-ci');
  if (!ci?.clientSecret) throw new Error('demo-ci client missing from config/demo-tenant.json');
  return clientCredentialsToken(p.facts, ci.clientId, ci.clientSecret);
}

export interface ApiAnswer<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

/** A JSON call to the API with a bearer token; `body` objects are sent as JSON, strings as they are. */
export async function call<T = Record<string, unknown>>(
  baseUrl: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<ApiAnswer<T>> {
  const r = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    // not JSON: keep the text
  }
  return { status: r.status, body: parsed as T, headers: r.headers };
}

/** Body of `POST /api/v1/operations` for one key, valid from a minute ago for an hour unless given. */
export function operationBody(keyid: string, usages: number, extra: Record<string, unknown> = {}) {
  const now = Date.now();
  return {
    description: `e2e operation on ${keyid}`,
    validFrom: new Date(now - 60_000).toISOString(),
    validTo: new Date(now + 3_600_000).toISOString(),
    keys: [{ keyid, usages }],
    ...extra,
  };
}

/** A sign-order body for a SHA-256 digest. */
export function signOrderBody(operationid: string, keyid: string, digestHex: string) {
  return { operationid, keyid, inputdata: digestHex, inputformat: 'hex', inputpadding: 'none', signatureformat: 'asn1', description: 'e2e sign order' };
}

/** Runs a tool we did not write; returns its combined output, throws with it on failure. */
export function run(program: string, args: string[], input?: string): string {
  try {
    return execFileSync(program, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${program} ${args.join(' ')} failed: ${e.stderr ?? ''}${e.stdout ?? ''}${e.message}`);
  }
}

/**
 * A customer's offline root made with openssl (a tool we did not write): `f('offline.key')` and `f('offline.pem')`
 * (P-384, "Acme Offline Root"), `f('other.key')`/`f('other.pem')` (another root, P-256) when `other`, and `f('ext.cnf')`,
 * the extensions it certifies a Keyserver ROOT with (CA, pathlen 1).
 */
export function offlineRoot(f: (name: string) => string, other = false): void {
  const root = (key: string, cert: string, curve: string, subject: string) =>
    run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', `ec_paramgen_curve:${curve}`, '-nodes', '-keyout', f(key), '-out', f(cert), '-days', '3650', '-subj', subject,
      '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  root('offline.key', 'offline.pem', 'P-384', '/C=DK/O=Acme/CN=Acme Offline Root');
  if (other) root('other.key', 'other.pem', 'P-256', '/CN=Someone Else Root');
  writeFileSync(f('ext.cnf'), 'basicConstraints=critical,CA:true,pathlen:1\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n');
}

/** The label of every object on the API's SoftHSM token, as pkcs11-tool lists them (a key pair: two objects). */
export function tokenLabels(p: RunningPlatform): string[] {
  const api = p.apiEnv;
  const out = execFileSync('pkcs11-tool', ['--module', api['PKCS11_MODULE'], '--token-label', api['PKCS11_TOKEN_LABEL'], '--login', '--pin', readFileSync(api['PKCS11_PIN_FILE'], 'utf8').trim(), '--list-objects'], {
    env: { ...process.env, SOFTHSM2_CONF: api['SOFTHSM2_CONF'] },
    stdio: ['ignore', 'pipe', 'pipe'],
  }).toString();
  return [...out.matchAll(/label:\s+(\S+)/g)].map((m) => m[1]);
}

/** The built ksctl against the platform's API with `token` (`--json`): its exit status, parsed output and stderr. */
export function ksctlAs(p: RunningPlatform, cacheDir: string, token: string) {
  return (...args: string[]) => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'dist', 'tools', 'keyserver-cli', 'main.js'), '--api', p.env.urls.api, '--json', ...args], {
      encoding: 'utf8',
      env: { PATH: process.env['PATH'] ?? '', KSCTL_CACHE_DIR: cacheDir, KEYSERVER_TOKEN: token },
      timeout: 60_000,
    });
    return { status: r.status, json: r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : {}, stderr: r.stderr };
  };
}
