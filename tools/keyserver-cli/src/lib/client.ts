import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** Exit codes a CI log reader can act on. */
export enum Exit {
  Ok = 0,
  Failure = 1,
  Usage = 2,
  Auth = 3,
  Refused = 4,
  Unavailable = 5,
}

/** A failure with its exit code and, when the server said so, the problem+json code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exit: Exit,
    readonly code?: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface Connection {
  apiUrl: string;
  tokenEndpoint?: string;
  scope?: string;
  clientId?: string;
  clientSecret?: string;
  token?: string;
  cacheDir?: string;
}

interface CachedToken {
  accessToken: string;
  expiresAt: number;
}

function cacheFile(c: Connection): string {
  const id = createHash('sha256').update(`${c.tokenEndpoint}|${c.clientId}|${c.scope}`).digest('hex').slice(0, 32);
  return join(c.cacheDir ?? join(homedir(), '.cache', 'ksctl'), `token-${id}.json`);
}

/** A client-credentials token, from a 0600 cache file per (token endpoint, client, scope) while it lasts. */
export async function accessToken(c: Connection): Promise<string> {
  if (c.token) return c.token;
  if (!c.tokenEndpoint || !c.clientId || !c.clientSecret || !c.scope) {
    throw new CliError('no credentials: set KEYSERVER_TOKEN, or KEYSERVER_TOKEN_ENDPOINT, KEYSERVER_CLIENT_ID, KEYSERVER_CLIENT_SECRET and KEYSERVER_SCOPE', Exit.Usage);
  }
  const file = cacheFile(c);
  if (existsSync(file)) {
    const cached = JSON.parse(readFileSync(file, 'utf8')) as CachedToken;
    if (cached.expiresAt - 60_000 > Date.now()) return cached.accessToken;
  }
  let r: Response;
  try {
    r = await fetch(c.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: c.clientId, client_secret: c.clientSecret, scope: c.scope }),
    });
  } catch (err) {
    throw new CliError(`token endpoint unreachable: ${(err as Error).message}`, Exit.Unavailable);
  }
  const body = (await r.json().catch(() => ({}))) as { access_token?: string; expires_in?: number; error?: string };
  if (!r.ok || !body.access_token) throw new CliError(`token request refused (${body.error ?? r.status})`, Exit.Auth, body.error, r.status);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, JSON.stringify({ accessToken: body.access_token, expiresAt: Date.now() + (body.expires_in ?? 300) * 1000 }), { mode: 0o600 });
  chmodSync(file, 0o600);
  return body.access_token;
}

/** Calls the Keyserver API; problem+json answers become CliErrors carrying their code. */
export async function api<T>(c: Connection, method: string, path: string, body?: unknown): Promise<T> {
  const token = await accessToken(c);
  let r: Response;
  try {
    r = await fetch(`${c.apiUrl.replace(/\/$/, '')}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new CliError(`Keyserver unreachable at ${c.apiUrl}: ${(err as Error).message}`, Exit.Unavailable);
  }
  const text = await r.text();
  const json = text ? (JSON.parse(text) as unknown) : undefined;
  if (r.ok) return json as T;
  const problem = (json ?? {}) as { code?: string; title?: string; detail?: string };
  const exit = r.status === 401 ? Exit.Auth : r.status >= 500 ? Exit.Unavailable : Exit.Refused;
  throw new CliError(`${method} ${path} failed: ${r.status} ${problem.code ?? ''}${problem.detail ? ` (${problem.detail})` : ''}`.trim(), exit, problem.code, r.status);
}
