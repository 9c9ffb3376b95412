import { createHash, scryptSync, X509Certificate } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { jsonAnswer, problemOf, smallJsonObject } from './answer';
import { certificateAssertion, loadCertificateCredential, type AssertionAlgorithm } from './assertion';
import { isDeadlineError, type Deadline } from './deadline';
import { CliError, Exit, exitForStatus } from './errors';
import { replaceFile } from './output-file';

export { CliError, Exit } from './errors';

/** How ksctl gets its token: a ready one, client credentials (secret, certificate or workload-identity assertion), or a PKCE login. */
export type LoginMethod = 'token' | 'secret' | 'certificate' | 'wif' | 'pkce';

export interface Connection {
  apiUrl: string;
  method: LoginMethod;
  tokenEndpoint?: string;
  scope?: string;
  clientId?: string;
  clientSecret?: string;
  token?: string;
  cacheDir?: string;
  /** Workload identity federation: where the pipeline's OIDC token comes from. */
  wif?: { tokenFile?: string; requestUri?: string; systemAccessToken?: string; serviceConnectionId?: string };
  /** Certificate credential: PEM files of the registered certificate and its private key. */
  certificate?: { certificateFile: string; privateKeyFile?: string; passphrase?: string; algorithm?: AssertionAlgorithm };
  /** The command's deadline (deadline.ts): every request to the Keyserver and the identity provider ends by it. */
  deadline?: Deadline;
}

/** The longest a token from the token endpoint is cached, whatever its `expires_in` says (Entra's longest is a day). */
export const MAX_TOKEN_LIFETIME_SECONDS = 86_400;

/**
 * A bearer token as RFC 6750 §2.1 writes it (b64token; a JWT is one). Anything else would reach the Authorization header:
 * a line break makes fetch refuse the header with a message that quotes it (the token in a CI log), other characters
 * are no token of any identity provider.
 */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/** `token` without surrounding whitespace (a token read from a file ends with a line break), when it is a b64token. */
export function bearerToken(token: string): string | undefined {
  const t = token.trim();
  return B64TOKEN.test(t) ? t : undefined;
}

/** The signal of `c`'s deadline, after naming what is waited for (the message of a passed deadline says it). */
function waitFor(c: Connection, what: string, note?: string): AbortSignal | undefined {
  if (!c.deadline) return undefined;
  c.deadline.waitingFor = what;
  c.deadline.note = note;
  return c.deadline.signal;
}

/** A passed deadline is reported as itself, never as the failure it caused (an aborted read, an empty answer). */
function rethrowDeadline(err: unknown): void {
  if (isDeadlineError(err)) throw err;
}

export interface CachedToken {
  accessToken: string;
  expiresAt: number;
  refreshToken?: string;
}

/**
 * What identifies the credential a token was obtained with, so a changed secret, certificate or key never
 * reuses another credential's token. Never the secret itself: a salted, slow hash of it (the file name is a
 * hash of this again). PKCE: empty, the user's login is the credential (and the PKCS#11 module finds
 * that cache file by endpoint, client and scope alone: tools/pkcs11-module/src/auth.c ks_ksctl_cache_file).
 */
export function credentialId(c: Connection): string {
  const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
  const fileHash = (path: string | undefined) => {
    if (!path) return 'none';
    try {
      return sha256(readFileSync(path));
    } catch {
      return `unreadable:${path}`; // the login fails on it later with its own message; nothing is cached then
    }
  };
  switch (c.method) {
    case 'secret':
      return `secret:${scryptSync(c.clientSecret ?? '', `ksctl-cache|${c.tokenEndpoint}|${c.clientId}`, 32, { N: 1 << 14 }).toString('hex')}`;
    case 'certificate': {
      let thumbprint = fileHash(c.certificate?.certificateFile);
      try {
        thumbprint = new X509Certificate(readFileSync(c.certificate?.certificateFile ?? '')).fingerprint256;
      } catch {
        // not a readable certificate: the file hash (or the unreadable marker) stands in
      }
      return `certificate:${thumbprint}|key:${fileHash(c.certificate?.privateKeyFile ?? c.certificate?.certificateFile)}`;
    }
    case 'wif':
      return `wif:${c.wif?.serviceConnectionId ?? ''}|${c.wif?.tokenFile ?? ''}|${c.wif?.requestUri ?? ''}`;
    default:
      return '';
  }
}

/** The 0600 token cache file of one (token endpoint, client, scope, credential). */
export function cacheFile(c: Connection): string {
  const credential = credentialId(c);
  const key = `${c.tokenEndpoint}|${c.clientId}|${c.scope}${credential ? `|${credential}` : ''}`;
  const id = createHash('sha256').update(key).digest('hex').slice(0, 32);
  return join(c.cacheDir ?? join(homedir(), '.cache', 'ksctl'), `token-${id}.json`);
}

/**
 * Writes the cache as a fresh 0600 file renamed over the old one ({@link replaceFile}), as the PKCS#11 module does
 * (auth.c write_cache): a symlink planted at the name, or another link to the old file, never receives the token, and
 * no reader ever sees it half-written or under looser permissions.
 */
export function writeCache(c: Connection, t: CachedToken): void {
  const file = cacheFile(c);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  replaceFile(file, JSON.stringify(t), 0o600);
}

/**
 * The cached login, or undefined (a miss): only a regular file of this user that no one else may read or write counts
 * (as ssh treats its keys). A symlink, another user's file or one with group/other bits may have been planted (another
 * identity's token) or read; the next login replaces it with a fresh 0600 file.
 */
function readCache(c: Connection): CachedToken | undefined {
  const file = cacheFile(c);
  try {
    const st = lstatSync(file);
    if (!st.isFile() || (st.mode & 0o077) !== 0 || (process.getuid && st.uid !== process.getuid())) return undefined;
    const t = JSON.parse(readFileSync(file, 'utf8')) as Partial<Record<keyof CachedToken, unknown>> | null;
    // The shape the PKCS#11 module also requires (auth.c): anything else is no login. An empty accessToken is a PKCE
    // login whose access token the API refused (dropRefusedToken): its refresh token still counts.
    if (typeof t?.accessToken !== 'string' || typeof t.expiresAt !== 'number' || !Number.isFinite(t.expiresAt)) return undefined;
    const refreshToken = typeof t.refreshToken === 'string' ? t.refreshToken : undefined;
    if (!bearerToken(t.accessToken) && !(t.accessToken === '' && refreshToken)) return undefined;
    // ksctl caches a token for a day at most (MAX_TOKEN_LIFETIME_SECONDS): a later expiry was not written by it, and the
    // token is renewed (the PKCS#11 module does the same).
    const expiresAt = t.accessToken === '' || t.expiresAt > Date.now() + (MAX_TOKEN_LIFETIME_SECONDS + 60) * 1000 ? 0 : t.expiresAt;
    return { accessToken: t.accessToken, expiresAt, ...(refreshToken ? { refreshToken } : {}) };
  } catch {
    return undefined; // absent or damaged: a cache miss, not a failure
  }
}

/**
 * A URL ksctl may send a credential to (bearer token, client secret or assertion, System.AccessToken): https, or plain
 * http to a loopback host (demo, tests), never with userinfo. The PKCS#11 module applies the same rule (config.c).
 * TLS is verified always: NODE_TLS_REJECT_UNAUTHORIZED=0 (which turns Node's verification off for every connection of
 * the process) is refused rather than obeyed; a private CA is trusted with NODE_EXTRA_CA_CERTS.
 * @throws CliError(insecure_url | tls_verification_disabled, exit 2) before anything is sent
 */
export function credentialUrl(raw: string, what: string): URL {
  if (process.env['NODE_TLS_REJECT_UNAUTHORIZED'] === '0') {
    throw new CliError(
      'NODE_TLS_REJECT_UNAUTHORIZED=0 turns TLS verification off: ksctl sends no credential so (trust a private CA with NODE_EXTRA_CA_CERTS instead)',
      Exit.Usage,
      'tls_verification_disabled',
    );
  }
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new CliError(`${what} is not a URL`, Exit.Usage, 'insecure_url');
  }
  const loopback = u.hostname === 'localhost' || u.hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(u.hostname);
  if (u.username || u.password || !(u.protocol === 'https:' || (u.protocol === 'http:' && loopback))) {
    throw new CliError(`${what} must be https (plain http only for loopback hosts, no user:password@)`, Exit.Usage, 'insecure_url');
  }
  return u;
}

/** POSTs to the token endpoint; an OAuth error answer becomes an authentication CliError. */
export async function tokenRequest(c: Connection, params: Record<string, string>): Promise<CachedToken> {
  if (!c.tokenEndpoint) throw new CliError('no token endpoint: set KEYSERVER_TOKEN_ENDPOINT or use --demo', Exit.Usage);
  const endpoint = credentialUrl(c.tokenEndpoint, 'the token endpoint');
  let r: Response;
  try {
    // A redirect is never followed: fetch would send the secret or code in the body again, to wherever it points.
    r = await fetch(endpoint, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(params), signal: waitFor(c, 'the token request to the identity provider') });
  } catch (err) {
    rethrowDeadline(err);
    throw new CliError(`token endpoint unreachable: ${(err as Error).message}`, Exit.Unavailable);
  }
  await refuseRedirect(r, 'the token endpoint', 'check --token-endpoint / KEYSERVER_TOKEN_ENDPOINT');
  const body = await smallJsonObject(r);
  // An OAuth error code has this shape (RFC 6749 §5.2); anything else from the endpoint is not printed.
  const error = typeof body['error'] === 'string' && /^[a-z_]{1,64}$/.test(body['error']) ? body['error'] : undefined;
  const token = body['access_token'];
  if (!r.ok || typeof token !== 'string' || !token) throw new CliError(`token request refused (${error ?? r.status})`, Exit.Auth, error, r.status);
  const accessToken = bearerToken(token);
  if (!accessToken) throw new CliError('the token endpoint answered an access_token that is no bearer token (RFC 6750): not used, not cached', Exit.Auth, 'token_malformed', r.status);
  const given = typeof body['expires_in'] === 'number' && Number.isFinite(body['expires_in']) && body['expires_in'] > 0 ? body['expires_in'] : 300;
  const expiresIn = Math.min(given, MAX_TOKEN_LIFETIME_SECONDS);
  return { accessToken, refreshToken: typeof body['refresh_token'] === 'string' ? body['refresh_token'] : undefined, expiresAt: Date.now() + expiresIn * 1000 };
}

/**
 * A 3xx from a place ksctl sends a credential to is refused, not followed (fetch runs with `redirect: 'manual'`): exit
 * 4, the URL must change. (`redirect: 'error'` made it a network error: exit 5 "unreachable", and scripts retried.)
 */
async function refuseRedirect(r: Response, what: string, hint: string): Promise<void> {
  if (r.status < 300 || r.status >= 400) return;
  await r.body?.cancel().catch(() => undefined);
  throw new CliError(`${what} answered a redirect (${r.status}): ksctl follows none; ${hint}`, Exit.Refused, 'redirect_refused', r.status);
}

/** The pipeline's OIDC token: a file (AZURE_FEDERATED_TOKEN_FILE) or Azure DevOps' SYSTEM_OIDCREQUESTURI. */
async function federatedAssertion(c: Connection): Promise<string> {
  const w = c.wif ?? {};
  if (w.tokenFile) {
    if (!existsSync(w.tokenFile)) throw new CliError(`federated token file not found: ${w.tokenFile}`, Exit.Usage);
    return readFileSync(w.tokenFile, 'utf8').trim();
  }
  if (!w.requestUri || !w.systemAccessToken || !w.serviceConnectionId) {
    throw new CliError('workload identity needs SYSTEM_OIDCREQUESTURI, SYSTEM_ACCESSTOKEN and a service connection id, or a federated token file', Exit.Usage);
  }
  // Sent as a bearer token too: the same syntax rule as ours (a line break would reach the header, and fetch's message).
  const systemAccessToken = bearerToken(w.systemAccessToken);
  if (!systemAccessToken) throw new CliError('SYSTEM_ACCESSTOKEN is no bearer token (RFC 6750): not sent', Exit.Usage, 'token_malformed');
  const url = credentialUrl(w.requestUri, 'SYSTEM_OIDCREQUESTURI');
  url.searchParams.set('api-version', '7.1');
  url.searchParams.set('serviceConnectionId', w.serviceConnectionId);
  let r: Response;
  try {
    r = await fetch(url, { method: 'POST', redirect: 'manual', headers: { authorization: `Bearer ${systemAccessToken}`, 'content-type': 'application/json' }, signal: waitFor(c, "the pipeline's OIDC token request") });
  } catch (err) {
    rethrowDeadline(err);
    throw new CliError(`OIDC token request unreachable: ${(err as Error).message.split(systemAccessToken).join('***')}`, Exit.Unavailable);
  }
  await refuseRedirect(r, 'SYSTEM_OIDCREQUESTURI', 'check the pipeline');
  const oidcToken = (await smallJsonObject(r))['oidcToken'];
  if (!r.ok || typeof oidcToken !== 'string' || !oidcToken) throw new CliError(`the pipeline's OIDC token was refused (${r.status})`, Exit.Auth, undefined, r.status);
  return oidcToken;
}

/**
 * The API refused `refused` (401 invalid_token): the cache no longer offers it. Client credentials: the entry is removed;
 * a PKCE login keeps its refresh token with the access token emptied (the login survives, the next use refreshes it).
 * Only when the entry still holds that token: a concurrent ksctl (or the PKCS#11 module) may have renewed it already.
 */
function dropRefusedToken(c: Connection, refused: string): void {
  const cached = readCache(c);
  if (!cached || cached.accessToken !== refused) return;
  try {
    if (c.method === 'pkce' && cached.refreshToken) writeCache(c, { accessToken: '', expiresAt: 0, refreshToken: cached.refreshToken });
    else unlinkSync(cacheFile(c));
  } catch {
    // a cache that cannot be changed is no failure of the command; the next run meets the same 401 and tries again
  }
}

/** A token for a request, and whether it came from ksctl's cache (only such a token is renewed after a 401). */
interface RequestToken {
  token: string;
  fromCache: boolean;
}

/** A token for the Keyserver, from the 0600 cache while it lasts (refreshed for PKCE logins). */
export async function accessToken(c: Connection): Promise<string> {
  return (await requestToken(c)).token;
}

async function requestToken(c: Connection): Promise<RequestToken> {
  if (c.method === 'token') {
    if (!c.token) throw new CliError('KEYSERVER_TOKEN is empty', Exit.Usage);
    const token = bearerToken(c.token);
    if (!token) throw new CliError('KEYSERVER_TOKEN is no bearer token (RFC 6750: letters, digits, -._~+/ and a trailing =; no line break inside): not sent', Exit.Usage, 'token_malformed');
    return { token, fromCache: false };
  }
  if (!c.clientId || !c.scope) throw new CliError('set KEYSERVER_CLIENT_ID and KEYSERVER_SCOPE (or use --demo)', Exit.Usage);
  const cached = readCache(c);
  if (cached?.accessToken && cached.expiresAt - 60_000 > Date.now()) return { token: cached.accessToken, fromCache: true };
  let fresh: CachedToken;
  if (c.method === 'pkce') {
    if (!cached?.refreshToken) throw new CliError('not logged in: run `ksctl login --pkce` first', Exit.Auth, 'login_required');
    fresh = await tokenRequest(c, { grant_type: 'refresh_token', client_id: c.clientId, refresh_token: cached.refreshToken, scope: c.scope });
    // RFC 6749 §6: only a new refresh token replaces the old one; an answer without one keeps the login alive.
    fresh.refreshToken ??= cached.refreshToken;
  } else if (c.method === 'wif') {
    fresh = await tokenRequest(c, {
      grant_type: 'client_credentials',
      client_id: c.clientId,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await federatedAssertion(c),
      scope: c.scope,
    });
  } else if (c.method === 'certificate') {
    const cert = c.certificate;
    if (!cert) throw new CliError('--certificate FILE is required', Exit.Usage);
    if (!c.tokenEndpoint) throw new CliError('no token endpoint: set KEYSERVER_TOKEN_ENDPOINT or use --demo', Exit.Usage);
    const credential = loadCertificateCredential(cert.certificateFile, cert.privateKeyFile ?? cert.certificateFile, cert.passphrase);
    fresh = await tokenRequest(c, {
      grant_type: 'client_credentials',
      client_id: c.clientId,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: certificateAssertion(credential, { clientId: c.clientId, tokenEndpoint: c.tokenEndpoint, algorithm: cert.algorithm }),
      scope: c.scope,
    });
  } else {
    if (!c.clientSecret) throw new CliError('no credentials: set KEYSERVER_TOKEN, or KEYSERVER_CLIENT_SECRET, or use --certificate / --wif / --pkce', Exit.Usage);
    fresh = await tokenRequest(c, { grant_type: 'client_credentials', client_id: c.clientId, client_secret: c.clientSecret, scope: c.scope });
  }
  writeCache(c, fresh);
  return { token: fresh.accessToken, fromCache: false };
}

/**
 * Calls the Keyserver API; problem+json answers become CliErrors carrying their code. The answer must be JSON (by
 * its content type) of at most MAX_ANSWER_BYTES (answer.ts).
 */
export async function api<T>(c: Connection, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const r = await apiRaw(c, method, path, body === undefined ? headers : { 'content-type': 'application/json', ...headers }, body === undefined ? undefined : JSON.stringify(body));
  return (await jsonAnswer(r, `${method} ${path.split('?')[0]}`)) as T;
}

/** A body that can be sent again: none, bytes, a string, or a function that makes a fresh one (a file's stream). */
export type ApiBody = BodyInit | (() => BodyInit);

function replayable(body: ApiBody | undefined): boolean {
  return body === undefined || typeof body === 'function' || typeof body === 'string' || body instanceof Uint8Array || body instanceof URLSearchParams;
}

/**
 * Sends a request with the bearer token and returns the successful Response (errors become CliErrors). No redirect is
 * followed: the API answers none, and fetch would send the request (a sign order, a CSR, a firmware image) again to
 * wherever one points, the token too when it is the same origin, and trust what that place answers.
 *
 * A 401 `invalid_token` for a token from ksctl's cache (revoked, signing key rolled, clock skew) drops it from the cache,
 * and the request is sent once more with one fresh token: the API answers 401 only from its guard, before any handler
 * (docs/security.md "Token handling"), so the first request was not carried out. Never more than once, within the
 * command's deadline; a token fetched in this run, or KEYSERVER_TOKEN (the user's), is not renewed; a stream body
 * (not a function that makes one) cannot be sent again.
 */
export async function apiRaw(c: Connection, method: string, path: string, headers?: Record<string, string>, body?: ApiBody, extra: RequestInit = {}): Promise<Response> {
  credentialUrl(c.apiUrl, 'the Keyserver URL (KEYSERVER_URL, --api)');
  const what = `${method} ${path.split('?')[0]}`;
  // A request that changes something and carries no Idempotency-Key may have been carried out when the deadline cuts it.
  const lower = Object.fromEntries(Object.entries(headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  const note = method !== 'GET' && !lower['idempotency-key'] ? 'the Keyserver may have carried it out: check before running it again' : undefined;
  let use = await requestToken(c);
  for (let attempt = 0; ; attempt++) {
    const token = use.token;
    let r: Response;
    try {
      const payload = typeof body === 'function' ? body() : body;
      r = await fetch(`${c.apiUrl.replace(/\/$/, '')}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...headers }, body: payload, ...extra, redirect: 'manual', signal: waitFor(c, what, note) });
    } catch (err) {
      rethrowDeadline(err);
      // The token is never part of a message, whatever fetch's own error quotes.
      throw new CliError(`Keyserver unreachable at ${c.apiUrl}: ${(err as Error).message.split(token).join('***')}`, Exit.Unavailable);
    }
    if (r.ok) return r;
    if (r.status >= 300 && r.status < 400) {
      await r.body?.cancel().catch(() => undefined);
      throw new CliError(`${what} answered a redirect (${r.status}): ksctl follows none; check --api / KEYSERVER_URL`, Exit.Refused, 'redirect_refused', r.status);
    }
    const problem = await problemOf(r);
    if (r.status === 401 && problem.code === 'invalid_token' && c.method !== 'token') {
      dropRefusedToken(c, token);
      if (attempt === 0 && use.fromCache && replayable(body)) {
        use = await requestToken(c);
        continue;
      }
    }
    const exit = exitForStatus(r.status, problem.code);
    throw new CliError(`${what} failed: ${r.status} ${problem.code ?? ''}${problem.detail ? ` (${problem.detail})` : ''}`.trim(), exit, problem.code, r.status);
  }
}
