import { createHash, randomBytes } from 'node:crypto';
import { EntraEmulatorError, EntraEmulatorErrorCode } from './emulator-error';

/** The parts of a running emulator the HTTP helpers need (a RunningEmulator fits). */
export interface EmulatorEndpoints {
  baseUrl: string;
  tokenEndpoint: string;
  authorizationEndpoint: string;
}

/** Raw answer of the token endpoint. */
export interface TokenEndpointResponse {
  status: number;
  body: Record<string, unknown>;
}

/** A PKCE verifier and its S256 challenge. */
export interface PkcePair {
  codeVerifier: string;
  codeChallenge: string;
}

/** Creates a random PKCE verifier and its S256 challenge (RFC 7636). */
export function pkcePair(): PkcePair {
  const codeVerifier = randomBytes(32).toString('base64url');
  return { codeVerifier, codeChallenge: createHash('sha256').update(codeVerifier).digest('base64url') };
}

/**
 * POSTs form parameters to the token endpoint. With `basicAuth` the client authenticates with
 * client_secret_basic; otherwise whatever `params` carry (client_secret_post, client_assertion, none).
 */
export async function tokenRequest(
  emu: EmulatorEndpoints,
  params: Record<string, string>,
  basicAuth?: { clientId: string; clientSecret: string },
): Promise<TokenEndpointResponse> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (basicAuth) {
    const enc = (v: string): string => encodeURIComponent(v);
    headers['authorization'] = `Basic ${Buffer.from(`${enc(basicAuth.clientId)}:${enc(basicAuth.clientSecret)}`).toString('base64')}`;
  }
  const res = await fetch(emu.tokenEndpoint, { method: 'POST', headers, body: new URLSearchParams(params) });
  const text = await res.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch (cause) {
    throw new EntraEmulatorError(EntraEmulatorErrorCode.UnexpectedResponse, `token endpoint answered ${res.status} without JSON`, { cause });
  }
  return { status: res.status, body };
}

function tokenOrThrow(res: TokenEndpointResponse, field = 'access_token'): string {
  const value = res.body[field];
  if (res.status !== 200 || typeof value !== 'string') {
    const oauthError = typeof res.body['error'] === 'string' ? res.body['error'] : undefined;
    throw new EntraEmulatorError(
      EntraEmulatorErrorCode.TokenRequestFailed,
      `token endpoint answered ${res.status} ${oauthError ?? ''}`.trim(),
      { oauthError },
    );
  }
  return value;
}

/** Options of {@link clientCredentialsToken}. */
export interface ClientCredentialsOptions {
  clientId: string;
  /** Secret for client_secret_post / client_secret_basic. */
  clientSecret?: string;
  /** A federated-credential assertion (e.g. from `mintAdoToken`) instead of a secret. */
  clientAssertion?: string;
  /** e.g. `api://<keyserver app id>/.default`. */
  scope: string;
  /** How to send the secret; default 'post'. */
  authMethod?: 'post' | 'basic';
}

/** Client-credentials grant over real HTTP; returns the access token or throws `token_request_failed`. */
export async function clientCredentialsToken(emu: EmulatorEndpoints, opts: ClientCredentialsOptions): Promise<string> {
  const params: Record<string, string> = { grant_type: 'client_credentials', scope: opts.scope, client_id: opts.clientId };
  if (opts.clientAssertion) {
    params['client_assertion_type'] = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
    params['client_assertion'] = opts.clientAssertion;
    return tokenOrThrow(await tokenRequest(emu, params));
  }
  if (opts.authMethod === 'basic' && opts.clientSecret !== undefined) {
    delete params['client_id'];
    return tokenOrThrow(await tokenRequest(emu, params, { clientId: opts.clientId, clientSecret: opts.clientSecret }));
  }
  if (opts.clientSecret !== undefined) params['client_secret'] = opts.clientSecret;
  return tokenOrThrow(await tokenRequest(emu, params));
}

/** Options of {@link loginWithPassword} / {@link authorizeWithPassword}. */
export interface PasswordLoginOptions {
  clientId: string;
  redirectUri: string;
  username: string;
  password: string;
  /** e.g. `openid profile offline_access api://<keyserver app id>/keyserver`. */
  scope: string;
  /** S256 challenge; omit to send none (public clients are then refused). */
  codeChallenge?: string;
  /** Default S256 when a challenge is given. */
  codeChallengeMethod?: string;
  state?: string;
  nonce?: string;
  /** Extra authorization parameters (prompt, login_hint, ...). */
  extraParams?: Record<string, string>;
  /** Reuse a browser session (single sign-on); default a fresh jar. */
  cookieJar?: CookieJar;
}

/** Result of a completed browserless sign-in. */
export interface AuthorizationResult {
  code: string;
  state?: string;
  /** The full redirect the browser would follow (for openid-client's authorizationCodeGrant). */
  callbackUrl: string;
  /** False when an existing session (cookieJar) signed the user in without the form. */
  usedSignInForm: boolean;
}

/** Cookies of one simulated browser (names only, paths ignored); pass it to keep a sign-in session. */
export class CookieJar {
  private readonly cookies = new Map<string, string>();

  store(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => {
        const [k, v] = a.split('=');
        return (k.trim().toLowerCase() === 'expires' && Date.parse(v) < Date.now()) || (k.trim().toLowerCase() === 'max-age' && Number(v) <= 0);
      });
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  /** Value of a cookie, if set. */
  get(name: string): string | undefined {
    return this.cookies.get(name);
  }

  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

function isRedirect(status: number): boolean {
  return status >= 300 && status < 400;
}

function fail(code: EntraEmulatorErrorCode, detail: string, oauthError?: string): never {
  throw new EntraEmulatorError(code, detail, { oauthError });
}

/**
 * Drives the real authorize endpoint and sign-in form with plain HTTP and a cookie jar (no browser)
 * and returns the authorization response. Throws `authorization_failed` (with `oauthError`) when the
 * emulator redirects back with an error and `invalid_credentials` when the form rejects the password.
 */
export async function authorizeWithPassword(emu: EmulatorEndpoints, opts: PasswordLoginOptions): Promise<AuthorizationResult> {
  const url = new URL(emu.authorizationEndpoint);
  const q = url.searchParams;
  q.set('client_id', opts.clientId);
  q.set('response_type', 'code');
  q.set('redirect_uri', opts.redirectUri);
  q.set('scope', opts.scope);
  if (opts.codeChallenge !== undefined) {
    q.set('code_challenge', opts.codeChallenge);
    q.set('code_challenge_method', opts.codeChallengeMethod ?? 'S256');
  }
  if (opts.state !== undefined) q.set('state', opts.state);
  if (opts.nonce !== undefined) q.set('nonce', opts.nonce);
  for (const [k, v] of Object.entries(opts.extraParams ?? {})) q.set(k, v);

  return signInAt(emu, { authorizationUrl: url.href, username: opts.username, password: opts.password, cookieJar: opts.cookieJar });
}

/** Options of {@link signInAt}. */
export interface SignInAtOptions {
  /** A complete authorization URL, e.g. from openid-client's buildAuthorizationUrl or a BFF's login redirect. */
  authorizationUrl: string;
  username: string;
  password: string;
  cookieJar?: CookieJar;
}

/**
 * Follows an authorization URL through the sign-in form (plain HTTP, cookie jar) until the
 * emulator redirects to the client's redirect_uri; same errors as {@link authorizeWithPassword}.
 */
export async function signInAt(emu: EmulatorEndpoints, opts: SignInAtOptions): Promise<AuthorizationResult> {
  const redirectUri = new URL(opts.authorizationUrl).searchParams.get('redirect_uri');
  if (!redirectUri) fail(EntraEmulatorErrorCode.AuthorizationFailed, 'the authorization URL has no redirect_uri');
  const jar = opts.cookieJar ?? new CookieJar();
  const redirectTarget = new URL(redirectUri);
  let next: { url: string; init?: RequestInit } = { url: opts.authorizationUrl };
  let submitted = false;
  for (let hop = 0; hop < 15; hop++) {
    const res = await fetch(next.url, {
      ...next.init,
      redirect: 'manual',
      headers: { ...(next.init?.headers as Record<string, string> | undefined), cookie: jar.header() },
    });
    jar.store(res);
    if (isRedirect(res.status)) {
      await res.arrayBuffer();
      const location = new URL(res.headers.get('location') ?? '', next.url);
      if (location.origin !== new URL(emu.baseUrl).origin || location.pathname === redirectTarget.pathname) {
        const error = location.searchParams.get('error');
        if (error) fail(EntraEmulatorErrorCode.AuthorizationFailed, `authorization error ${error}`, error);
        const code = location.searchParams.get('code');
        if (!code) fail(EntraEmulatorErrorCode.UnexpectedResponse, 'redirect without code');
        return { code, state: location.searchParams.get('state') ?? undefined, callbackUrl: location.href, usedSignInForm: submitted };
      }
      next = { url: location.href };
      continue;
    }
    const text = await res.text();
    if (res.status === 200 && /<form method="post"/.test(text) && /name="password"/.test(text)) {
      if (submitted) fail(EntraEmulatorErrorCode.InvalidCredentials, 'the sign-in form rejected the credentials');
      submitted = true;
      const action = /<form method="post" action="([^"]+)"/.exec(text)?.[1]?.replace(/&amp;/g, '&');
      if (!action) fail(EntraEmulatorErrorCode.UnexpectedResponse, 'sign-in form without action');
      next = {
        url: new URL(action, next.url).href,
        init: {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ username: opts.username, password: opts.password }).toString(),
        },
      };
      continue;
    }
    fail(EntraEmulatorErrorCode.AuthorizationFailed, `authorization stopped with HTTP ${res.status}`);
  }
  return fail(EntraEmulatorErrorCode.UnexpectedResponse, 'too many redirects');
}

/** Like {@link authorizeWithPassword} but returns only the authorization code. */
export async function loginWithPassword(emu: EmulatorEndpoints, opts: PasswordLoginOptions): Promise<string> {
  return (await authorizeWithPassword(emu, opts)).code;
}

/** Options of {@link exchangeCode}. */
export interface ExchangeCodeOptions {
  clientId: string;
  /** Confidential clients only (sent as client_secret_post unless authMethod is 'basic'). */
  clientSecret?: string;
  authMethod?: 'post' | 'basic';
  code: string;
  redirectUri: string;
  codeVerifier?: string;
}

/** Authorization-code grant over real HTTP; returns the raw token endpoint answer. */
export async function exchangeCode(emu: EmulatorEndpoints, opts: ExchangeCodeOptions): Promise<TokenEndpointResponse> {
  const params: Record<string, string> = {
    grant_type: 'authorization_code',
    code: opts.code,
    redirect_uri: opts.redirectUri,
    client_id: opts.clientId,
  };
  if (opts.codeVerifier !== undefined) params['code_verifier'] = opts.codeVerifier;
  if (opts.clientSecret !== undefined && opts.authMethod === 'basic') {
    delete params['client_id'];
    return tokenRequest(emu, params, { clientId: opts.clientId, clientSecret: opts.clientSecret });
  }
  if (opts.clientSecret !== undefined) params['client_secret'] = opts.clientSecret;
  return tokenRequest(emu, params);
}
