#!/usr/bin/env node
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { api, CliError, Exit, type Connection } from './lib/client';

const USAGE = `ksctl: the Keyserver client for CI pipelines and provisioning stations

Usage: ksctl [options] <command>
  keys list                                   keys you may use
  keys show KEYID [--chain FILE]              one key; --chain writes its PEM chain
  operations create --key KEYID=N... --description TEXT [--hours H] [--digest HEX...]
  operations show ID
  operations wait ID [--timeout SECONDS]      until APPROVED (exit 4 if rejected, cancelled or expired)
  sign --operation ID --key KEYID (--digest HEX | --file PATH) [--hash sha256|sha384|sha512]
       [--padding none|digestinfo|pss] [--format asn1|p1363] [--description TEXT] [--out FILE]
       [--idempotency-key K]                  the file is hashed locally as it streams

Options: --api URL (KEYSERVER_URL), --token-endpoint URL (KEYSERVER_TOKEN_ENDPOINT), --client-id ID
(KEYSERVER_CLIENT_ID), --client-secret S (KEYSERVER_CLIENT_SECRET), --scope S (KEYSERVER_SCOPE), a ready
token in KEYSERVER_TOKEN, --demo [FILE] (use .keyserver/demo.json and its demo CI client), --json.
Exit codes: 0 ok, 1 failure, 2 usage, 3 authentication, 4 refused by the Keyserver, 5 unavailable.`;

const DIGEST_INFO_PREFIX: Record<string, string> = {
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};

type Values = Record<string, string | boolean | string[] | undefined>;

function connection(v: Values): Connection {
  const env = process.env;
  const c: Connection = {
    apiUrl: (v['api'] as string) ?? env['KEYSERVER_URL'] ?? 'http://127.0.0.1:3000',
    tokenEndpoint: (v['token-endpoint'] as string) ?? env['KEYSERVER_TOKEN_ENDPOINT'],
    clientId: (v['client-id'] as string) ?? env['KEYSERVER_CLIENT_ID'],
    clientSecret: (v['client-secret'] as string) ?? env['KEYSERVER_CLIENT_SECRET'],
    scope: (v['scope'] as string) ?? env['KEYSERVER_SCOPE'],
    token: env['KEYSERVER_TOKEN'] || undefined,
    cacheDir: env['KSCTL_CACHE_DIR'],
  };
  if (v['demo'] !== undefined) {
    const file = typeof v['demo'] === 'string' && v['demo'] ? v['demo'] : '.keyserver/demo.json';
    if (!existsSync(file)) throw new CliError(`${file} not found: run npm start first`, Exit.Usage);
    const demo = JSON.parse(readFileSync(file, 'utf8')) as { urls: { api: string }; tokenEndpoint: string; defaultScope: string; ciClients: { clientId: string; clientSecret?: string }[] };
    c.apiUrl = (v['api'] as string) ?? demo.urls.api;
    c.tokenEndpoint ??= demo.tokenEndpoint;
    c.scope ??= demo.defaultScope;
    c.clientId ??= demo.ciClients[0].clientId;
    c.clientSecret ??= demo.ciClients[0].clientSecret;
  }
  return c;
}

function need(v: Values, name: string): string {
  const x = v[name];
  if (typeof x !== 'string' || !x) throw new CliError(`--${name} is required`, Exit.Usage);
  return x;
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
    },
  });
  if (v.help || pos.length === 0) {
    process.stdout.write(USAGE + '\n');
    return undefined;
  }
  const c = connection(v);
  const [cmd, sub, arg] = pos;
  if (cmd === 'keys' && sub === 'list') return api(c, 'GET', '/api/keys');
  if (cmd === 'keys' && sub === 'show' && arg) {
    const key = await api<{ chain: string[] }>(c, 'GET', `/api/v1/keys/${encodeURIComponent(arg)}`);
    if (v.chain) writeFileSync(v.chain, key.chain.join(''));
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
