#!/usr/bin/env node
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { api, apiRaw, accessToken, CliError, Exit, type Connection, type LoginMethod } from './lib/client';
import { pkceLogin } from './lib/pkce-login';

const USAGE = `ksctl: the Keyserver client for CI pipelines and provisioning stations

Usage: ksctl [options] <command>
  login                                       get and cache a token (--pkce opens a browser sign-in)
  keys list                                   keys you may use
  keys show KEYID [--chain FILE]              one key; --chain writes its PEM chain
  operations create --key KEYID=N... --description TEXT [--hours H] [--digest HEX...]
  operations show ID
  operations wait ID [--timeout SECONDS]      until APPROVED (exit 4 if rejected, cancelled or expired)
  sign --operation ID --key KEYID (--digest HEX | --file PATH) [--hash sha256|sha384|sha512]
       [--padding none|digestinfo|pss] [--format asn1|p1363] [--description TEXT] [--out FILE]
       [--idempotency-key K]                  the file is hashed locally as it streams
  sign --cms --operation ID --key KEYID --file PATH --out FILE.p7s
                                              the image streams to the Keyserver, which returns CMS
  cert issue --operation ID --key CA_KEYID --csr FILE [--out CERT.pem] [--chain-out CHAIN.pem]
  cert revoke CERTIFICATE_ID [--reason keyCompromise|superseded|...]

Options: --api URL (KEYSERVER_URL), --token-endpoint URL (KEYSERVER_TOKEN_ENDPOINT), --client-id ID
(KEYSERVER_CLIENT_ID), --client-secret S (KEYSERVER_CLIENT_SECRET), --scope S (KEYSERVER_SCOPE), a ready
token in KEYSERVER_TOKEN, --demo [FILE] (use .keyserver/demo.json and its demo CI client), --json.
Login: client credentials with a secret (default); --wif: Azure DevOps workload identity federation
(SYSTEM_OIDCREQUESTURI + SYSTEM_ACCESSTOKEN + --service-connection-id / AZURESUBSCRIPTION_SERVICE_CONNECTION_ID,
or --federated-token-file / AZURE_FEDERATED_TOKEN_FILE), exchanged as client_assertion; --pkce: a user signs in
on a loopback redirect (--redirect-uri, default PKCE_REDIRECT_URI or http://127.0.0.1:0/callback).
Exit codes: 0 ok, 1 failure, 2 usage, 3 authentication, 4 refused by the Keyserver, 5 unavailable.`;

const DIGEST_INFO_PREFIX: Record<string, string> = {
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};

type Values = Record<string, string | boolean | string[] | undefined>;

function loginMethod(v: Values): LoginMethod {
  if (process.env['KEYSERVER_TOKEN']) return 'token';
  if (v['wif']) return 'wif';
  if (v['pkce']) return 'pkce';
  return 'secret';
}

function connection(v: Values): Connection & { authorizationEndpoint?: string; redirectUri: string } {
  const env = process.env;
  const method = loginMethod(v);
  const c: Connection & { authorizationEndpoint?: string; redirectUri: string } = {
    method,
    authorizationEndpoint: env['KEYSERVER_AUTHORIZATION_ENDPOINT'],
    redirectUri: (v['redirect-uri'] as string) ?? env['PKCE_REDIRECT_URI'] ?? 'http://127.0.0.1:0/callback',
    wif: {
      tokenFile: (v['federated-token-file'] as string) ?? env['AZURE_FEDERATED_TOKEN_FILE'],
      requestUri: env['SYSTEM_OIDCREQUESTURI'],
      systemAccessToken: env['SYSTEM_ACCESSTOKEN'],
      serviceConnectionId: (v['service-connection-id'] as string) ?? env['AZURESUBSCRIPTION_SERVICE_CONNECTION_ID'],
    },
    apiUrl: (v['api'] as string) ?? env['KEYSERVER_URL'] ?? 'http://127.0.0.1:3000',
    tokenEndpoint: (v['token-endpoint'] as string) ?? env['KEYSERVER_TOKEN_ENDPOINT'],
    clientId: (v['client-id'] as string) ?? env['KEYSERVER_CLIENT_ID'] ?? (method === 'wif' ? env['AZURESUBSCRIPTION_CLIENT_ID'] : undefined),
    clientSecret: (v['client-secret'] as string) ?? env['KEYSERVER_CLIENT_SECRET'],
    scope: (v['scope'] as string) ?? env['KEYSERVER_SCOPE'],
    token: env['KEYSERVER_TOKEN'] || undefined,
    cacheDir: env['KSCTL_CACHE_DIR'],
  };
  if (v['demo'] !== undefined) {
    const file = typeof v['demo'] === 'string' && v['demo'] ? v['demo'] : '.keyserver/demo.json';
    if (!existsSync(file)) throw new CliError(`${file} not found: run npm start first`, Exit.Usage);
    const demo = JSON.parse(readFileSync(file, 'utf8')) as {
      urls: { api: string };
      tokenEndpoint: string;
      scope: string;
      defaultScope: string;
      provisioningClientId: string;
      ciClients: { name?: string; clientId: string; clientSecret?: string }[];
    };
    c.apiUrl = (v['api'] as string) ?? demo.urls.api;
    c.tokenEndpoint ??= demo.tokenEndpoint;
    c.authorizationEndpoint ??= demo.tokenEndpoint.replace(/\/token$/, '/authorize');
    if (method === 'pkce') {
      c.scope ??= demo.scope;
      c.clientId ??= demo.provisioningClientId;
    } else if (method === 'wif') {
      c.scope ??= demo.defaultScope;
      c.clientId ??= demo.ciClients.find((x) => x.name === 'demo-ado-wif')?.clientId;
    } else {
      c.scope ??= demo.defaultScope;
      c.clientId ??= demo.ciClients[0].clientId;
      c.clientSecret ??= demo.ciClients[0].clientSecret;
    }
  }
  return c;
}

function need(v: Values, name: string): string {
  const x = v[name];
  if (typeof x !== 'string' || !x) throw new CliError(`--${name} is required`, Exit.Usage);
  return x;
}

/** PEM blocks one after another, each ending with a newline (OpenSSL refuses `-----END...-----BEGIN`). */
function pemBundle(pems: string[]): string {
  return pems.map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join('');
}

/** A repeatable option used once (sign takes one --key). */
function single(x: string[] | undefined, name: string): string {
  if (!x || x.length !== 1 || !x[0]) throw new CliError(`exactly one --${name} is required`, Exit.Usage);
  return x[0];
}

async function hashFile(path: string, algorithm: string): Promise<Buffer> {
  if (!existsSync(path)) throw new CliError(`no such file: ${path}`, Exit.Usage);
  const h = createHash(algorithm);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest();
}

interface OperationView {
  id: string;
  state: string;
  description: string;
  keys: { keyid: string; usagesAllowed: number; usagesUsed: number; requiredApprovers: number; approvals: number }[];
}

async function run(argv: string[]): Promise<unknown> {
  const { values: v, positionals: pos } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      api: { type: 'string' },
      'token-endpoint': { type: 'string' },
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      scope: { type: 'string' },
      demo: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      chain: { type: 'string' },
      key: { type: 'string', multiple: true },
      description: { type: 'string' },
      hours: { type: 'string' },
      digest: { type: 'string', multiple: true },
      timeout: { type: 'string' },
      operation: { type: 'string' },
      file: { type: 'string' },
      hash: { type: 'string' },
      padding: { type: 'string' },
      format: { type: 'string' },
      out: { type: 'string' },
      'idempotency-key': { type: 'string' },
      wif: { type: 'boolean' },
      pkce: { type: 'boolean' },
      'redirect-uri': { type: 'string' },
      'no-browser': { type: 'boolean' },
      'federated-token-file': { type: 'string' },
      'service-connection-id': { type: 'string' },
      cms: { type: 'boolean' },
      csr: { type: 'string' },
      'chain-out': { type: 'string' },
      reason: { type: 'string' },
    },
  });
  if (v.help || pos.length === 0) {
    process.stdout.write(USAGE + '\n');
    return undefined;
  }
  const c = connection(v);
  const [cmd, sub, arg] = pos;
  if (cmd === 'login') {
    if (c.method === 'pkce') {
      if (!c.authorizationEndpoint) throw new CliError('set KEYSERVER_AUTHORIZATION_ENDPOINT (or use --demo)', Exit.Usage);
      const r = await pkceLogin(c, { authorizationEndpoint: c.authorizationEndpoint, redirectUri: c.redirectUri, openBrowser: !v['no-browser'], timeoutMs: Number(v.timeout ?? '300') * 1000 });
      return { loggedIn: true, method: c.method, expiresAt: new Date(r.expiresAt).toISOString() };
    }
    await accessToken(c);
    return { loggedIn: true, method: c.method };
  }
  if (cmd === 'cert' && sub === 'issue') {
    const csrFile = need(v, 'csr');
    if (!existsSync(csrFile)) throw new CliError(`no such file: ${csrFile}`, Exit.Usage);
    const r = await api<{ id: string; certificate: string; chain: string[]; serial: string }>(c, 'POST', '/api/v1/certificates', {
      operationid: need(v, 'operation'),
      keyid: single(v.key, 'key'),
      csr: readFileSync(csrFile, 'utf8'),
    });
    if (v.out) writeFileSync(v.out, r.certificate);
    if (v['chain-out']) writeFileSync(v['chain-out'], pemBundle([r.certificate, ...r.chain]));
    return r;
  }
  if (cmd === 'cert' && sub === 'revoke' && arg) {
    return api(c, 'POST', `/api/v1/certificates/${encodeURIComponent(arg)}/revocation`, { reason: v.reason ?? 'unspecified' });
  }
  if (cmd === 'sign' && v.cms) {
    const file = need(v, 'file');
    if (!existsSync(file)) throw new CliError(`no such file: ${file}`, Exit.Usage);
    const query = new URLSearchParams({ operationid: need(v, 'operation'), keyid: single(v.key, 'key'), description: v.description ?? `ksctl sign ${file}`.slice(0, 1000) });
    const size = statSync(file).size;
    const r = await apiRaw(
      c,
      'POST',
      `/api/v1/firmware/signatures?${query}`,
      { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      Readable.toWeb(createReadStream(file, { highWaterMark: 1 << 20 })) as unknown as BodyInit,
      { duplex: 'half' } as RequestInit,
    );
    const der = Buffer.from(await r.arrayBuffer());
    const out = v.out ?? `${file}.p7s`;
    writeFileSync(out, der);
    return { out, bytes: der.length, imageBytes: size };
  }
  if (cmd === 'keys' && sub === 'list') return api(c, 'GET', '/api/keys');
  if (cmd === 'keys' && sub === 'show' && arg) {
    const key = await api<{ chain: string[] }>(c, 'GET', `/api/v1/keys/${encodeURIComponent(arg)}`);
    if (v.chain) writeFileSync(v.chain, pemBundle(key.chain));
    return key;
  }
  if (cmd === 'operations' && sub === 'create') {
    const keys = (v.key ?? []).map((k) => {
      const m = /^([^=]+)=(\d+)$/.exec(k);
      if (!m) throw new CliError(`--key must be KEYID=USAGES, got ${k}`, Exit.Usage);
      return { keyid: m[1], usages: Number(m[2]) };
    });
    if (keys.length === 0) throw new CliError('at least one --key KEYID=USAGES is required', Exit.Usage);
    const hours = Number(v.hours ?? '24');
    if (!(hours > 0)) throw new CliError('--hours must be a positive number', Exit.Usage);
    const now = Date.now();
    return api<OperationView>(c, 'POST', '/api/v1/operations', {
      description: need(v, 'description'),
      validFrom: new Date(now - 60_000).toISOString(),
      validTo: new Date(now + hours * 3_600_000).toISOString(),
      keys,
      ...(v.digest ? { digests: v.digest.map((d) => d.toLowerCase()) } : {}),
    });
  }
  if (cmd === 'operations' && sub === 'show' && arg) return api<OperationView>(c, 'GET', `/api/v1/operations/${encodeURIComponent(arg)}`);
  if (cmd === 'operations' && sub === 'wait' && arg) {
    const deadline = Date.now() + Number(v.timeout ?? '600') * 1000;
    for (;;) {
      const op = await api<OperationView>(c, 'GET', `/api/v1/operations/${encodeURIComponent(arg)}`);
      if (op.state === 'APPROVED' || op.state === 'EXHAUSTED') return op;
      const usableNow = op.state === 'REQUESTED' && op.keys.every((k) => k.requiredApprovers === 0);
      if (usableNow) return op;
      if (op.state !== 'REQUESTED') throw new CliError(`operation ${op.id} is ${op.state}`, Exit.Refused, `operation_${op.state.toLowerCase()}`);
      if (Date.now() > deadline) throw new CliError(`operation ${op.id} still waiting for approval`, Exit.Failure, 'timeout');
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  if (cmd === 'sign') {
    const hash = (v.hash ?? 'sha256').toLowerCase();
    if (!DIGEST_INFO_PREFIX[hash]) throw new CliError('--hash must be sha256, sha384 or sha512', Exit.Usage);
    const padding = v.padding ?? 'none';
    const hexDigest = v.digest?.[0];
    if (!v.file && !hexDigest) throw new CliError('--file or --digest is required', Exit.Usage);
    if (hexDigest && !/^(0x)?([0-9a-fA-F]{2})+$/.test(hexDigest)) throw new CliError('--digest must be hex', Exit.Usage);
    const digest = v.file ? await hashFile(v.file, hash) : Buffer.from((hexDigest ?? '').replace(/^0x/, ''), 'hex');
    const input = padding === 'digestinfo' ? Buffer.concat([Buffer.from(DIGEST_INFO_PREFIX[hash], 'hex'), digest]) : digest;
    const order = await api<{ result: string }>(c, 'POST', '/api/signorders', {
      operationid: need(v, 'operation'),
      keyid: single(v.key, 'key'),
      inputdata: input.toString('hex'),
      inputformat: 'hex',
      inputpadding: padding,
      signatureformat: v.format ?? 'asn1',
      description: v.description ?? `ksctl sign ${v.file ?? 'digest'}`.slice(0, 1000).padEnd(8, '.'),
    });
    if (v.out) writeFileSync(v.out, Buffer.from(order.result, 'hex'));
    return { ...order, digest: digest.toString('hex'), ...(v.out ? { out: v.out } : {}) };
  }
  throw new CliError(`unknown command: ${pos.join(' ')} (see ksctl --help)`, Exit.Usage);
}

const argv = process.argv.slice(2);
const json = argv.includes('--json');
run(argv)
  .then((result) => {
    if (result !== undefined) process.stdout.write((json ? JSON.stringify(result) : JSON.stringify(result, null, 2)) + '\n');
  })
  .catch((err: unknown) => {
    const e = err instanceof CliError ? err : new CliError((err as Error).message, /Unknown option|Unexpected argument/.test(String(err)) ? Exit.Usage : Exit.Failure);
    if (json) process.stdout.write(JSON.stringify({ error: e.message, code: e.code ?? null, status: e.status ?? null }) + '\n');
    process.stderr.write(`ksctl: ${e.message}\n`);
    process.exitCode = e.exit;
  });
