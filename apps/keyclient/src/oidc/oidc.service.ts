import * as client from 'openid-client';
import type { KeyclientConfig } from '../config/keyclient-config';
import { isLoopbackUrl } from '../config/keyclient-config';
import { SealedBox } from '../crypto/sealed-box';
import { KeyclientError, KeyclientErrorCode } from '../errors/keyclient-error';
import { safeReturnPath } from './return-path';

/** How long a started login may take before its transaction cookie is refused. */
export const LOGIN_TRANSACTION_TTL_MS = 10 * 60_000;
/** Logins one browser may have under way at once (tabs); a new one beyond it drops the oldest. */
export const MAX_PENDING_LOGINS = 3;
const TX_AAD = 'login-transaction';
/** A cookie's name and value must stay under 4096 bytes (RFC 6265 §6.1, what browsers keep). */
const MAX_TX_COOKIE_CHARS = 3_900;
const PROVIDER_TIMEOUT_S = 10;
/** The longest a call to the provider may take (discovery, token endpoint). */
export const PROVIDER_TIMEOUT_MS = PROVIDER_TIMEOUT_S * 1000;

/** What the short-lived transaction cookie carries between /login and the callback. */
export interface LoginTransaction {
  state: string;
  nonce: string;
  codeVerifier: string;
  returnTo: string;
  createdAt: number;
}

function isTransaction(tx: unknown): tx is LoginTransaction {
  if (tx === null || typeof tx !== 'object') return false;
  const t = tx as Record<string, unknown>;
  return typeof t['state'] === 'string' && typeof t['nonce'] === 'string' && typeof t['codeVerifier'] === 'string' && typeof t['createdAt'] === 'number';
}

/** Tokens from the token endpoint; only ever held server-side (encrypted at rest). */
export interface TokenSet {
  accessToken: string;
  refreshToken?: string;
  idToken: string;
  accessTokenExpiresAt: number;
  /**
   * Set while one replica refreshes these tokens (ms since epoch): the others do not spend the same refresh token
   * meanwhile (a provider that rotates refresh tokens takes a second use as theft and revokes them all).
   */
  refreshLeaseUntil?: number;
}

/** The facts of a verified ID token the keyclient keeps in clear. */
export interface LoginIdentity {
  tid: string;
  oid: string;
  displayName: string | null;
  username: string | null;
}

export interface LoginResult {
  tokens: TokenSet;
  identity: LoginIdentity;
  returnTo: string;
}

/** Why a callback was refused; the page shows a fixed text per reason, never provider input. */
export type LoginFailureReason =
  | 'missing_transaction'
  | 'expired_transaction'
  | 'state_mismatch'
  | 'provider_error'
  | 'token_exchange_failed'
  | 'id_token_invalid'
  | 'provider_unavailable';

export class LoginFailure extends KeyclientError {
  constructor(
    readonly reason: LoginFailureReason,
    options?: { cause?: unknown },
  ) {
    super(KeyclientErrorCode.LoginFailed, reason, options);
  }
}

/** Refresh was refused by the provider (the session must end), as opposed to a transport failure. */
export class RefreshRejected extends Error {}

/** OAuth errors that say the provider could not answer now, not that it refused (RFC 6749 4.1.2.1). */
const PROVIDER_TROUBLE = new Set(['server_error', 'temporarily_unavailable']);

/**
 * Whether a failed refresh is the provider refusing it (an OAuth error such as invalid_grant, a client
 * authentication challenge, a token response that fails validation): the session ends. A provider that could not
 * answer (5xx, 429, server_error or temporarily_unavailable, a gateway's page that is no OAuth response at all, no
 * connection) is an outage: sessions stay, and the request gets 503 once its access token has run out.
 */
export function refusedByProvider(err: unknown): boolean {
  if (err instanceof client.ResponseBodyError) return err.status < 500 && err.status !== 429 && !PROVIDER_TROUBLE.has(err.error);
  if (err instanceof client.WWWAuthenticateChallengeError) return err.status < 500;
  if (err instanceof client.ClientError) return err.code !== 'OAUTH_RESPONSE_IS_NOT_CONFORM' && err.code !== 'OAUTH_RESPONSE_IS_NOT_JSON';
  return false;
}

/** The claims of our own stored ID token (verified when it was received), or null. */
function storedClaims(idToken: string): Record<string, unknown> | null {
  try {
    const payload: unknown = JSON.parse(Buffer.from(idToken.split('.')[1] ?? '', 'base64url').toString('utf8'));
    return payload !== null && typeof payload === 'object' && !Array.isArray(payload) ? (payload as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Whether a refreshed ID token names the login's subject: the same iss, sub, tid and oid (all present). */
export function sameSubject(loginIdToken: string, refreshed: Record<string, unknown> | undefined): boolean {
  const login = storedClaims(loginIdToken);
  if (!login || !refreshed) return false;
  return ['iss', 'sub', 'tid', 'oid'].every((c) => typeof login[c] === 'string' && login[c] !== '' && refreshed[c] === login[c]);
}

/** OpenID Connect relying party for Entra ID: code flow + PKCE S256 + state + nonce, confidential client. */
export class OidcService {
  private configuration?: Promise<client.Configuration>;
  private readonly txBox: SealedBox;
  private readonly insecureAllowed: boolean;

  constructor(
    private readonly config: KeyclientConfig,
    private readonly now: () => number = Date.now,
  ) {
    this.txBox = new SealedBox(config.sessionEncryptionKey, 'login-transaction');
    // Only with OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK (the config refuses it without a plain-http loopback metadata URL).
    this.insecureAllowed = config.allowInsecureLoopback;
  }

  get scope(): string {
    return `openid profile email offline_access api://${this.config.clientId}/keyserver`;
  }

  /**
   * Discovers the provider from the issuer named in the metadata document, so openid-client keeps
   * validating that the discovered issuer equals it. Memoised; a failure is retried on next use.
   */
  getConfiguration(): Promise<client.Configuration> {
    if (!this.configuration) {
      this.configuration = this.discover().catch((err) => {
        this.configuration = undefined;
        throw err;
      });
    }
    return this.configuration;
  }

  /** Fetches the configured metadata document; used by discovery and readiness. */
  async fetchMetadataDocument(): Promise<{ issuer: string }> {
    const res = await fetch(this.config.metadataDocumentUrl, {
      headers: { accept: 'application/json' },
      redirect: 'error',
      signal: AbortSignal.timeout(PROVIDER_TIMEOUT_S * 1000),
    });
    if (!res.ok) throw new Error(`metadata document answered ${res.status}`);
    const doc = (await res.json()) as { issuer?: unknown };
    if (typeof doc.issuer !== 'string') throw new Error('metadata document has no issuer');
    return { issuer: doc.issuer };
  }

  private async discover(): Promise<client.Configuration> {
    const { issuer } = await this.fetchMetadataDocument();
    const issuerUrl = new URL(issuer);
    if (issuerUrl.protocol !== 'https:' && !(this.insecureAllowed && isLoopbackUrl(issuer))) {
      throw new Error('issuer must use https');
    }
    const configuration = await client.discovery(
      issuerUrl,
      this.config.clientId,
      { redirect_uris: [this.config.redirectUri], response_types: ['code'] },
      client.ClientSecretPost(this.config.clientSecret),
      { execute: this.insecureAllowed ? [client.allowInsecureRequests] : [], timeout: PROVIDER_TIMEOUT_S },
    );
    return configuration;
  }

  /** Origins the browser is sent to (authorize and logout), for the CSP form-action list. */
  async providerOrigins(): Promise<string[]> {
    const meta = (await this.getConfiguration()).serverMetadata();
    const origins = new Set<string>();
    for (const url of [meta.authorization_endpoint, meta.end_session_endpoint]) {
      if (url) origins.add(new URL(url).origin);
    }
    return [...origins];
  }

  /**
   * Builds the authorization URL and the sealed transaction cookie value for a new login. The cookie keeps the flows
   * of this browser still under way (another tab's, from `pendingCookie`), at most {@link MAX_PENDING_LOGINS}, newest
   * last: one cookie for one jar, so a page sending the browser to /login again and again grows nothing.
   */
  async startLogin(returnTo: unknown, pendingCookie?: string): Promise<{ authorizationUrl: string; transactionCookie: string }> {
    const configuration = await this.getConfiguration();
    const tx: LoginTransaction = {
      state: client.randomState(),
      nonce: client.randomNonce(),
      codeVerifier: client.randomPKCECodeVerifier(),
      returnTo: safeReturnPath(returnTo),
      createdAt: this.now(),
    };
    const url = client.buildAuthorizationUrl(configuration, {
      redirect_uri: this.config.redirectUri,
      response_type: 'code',
      response_mode: 'query',
      scope: this.scope,
      state: tx.state,
      nonce: tx.nonce,
      code_challenge: await client.calculatePKCECodeChallenge(tx.codeVerifier),
      code_challenge_method: 'S256',
    });
    const pending = this.openTransactions(pendingCookie).filter((t) => this.isLive(t));
    // Never null: the list holds this flow.
    const transactionCookie = this.sealTransactions([...pending, tx]) as string;
    return { authorizationUrl: url.href, transactionCookie };
  }

  /** Seals the newest flows that fit ({@link MAX_PENDING_LOGINS}, one cookie under 4 KiB); null for none. */
  sealTransactions(txs: LoginTransaction[]): string | null {
    for (let kept = txs.slice(-MAX_PENDING_LOGINS); kept.length > 0; kept = kept.slice(1)) {
      const sealed = this.txBox.sealJson(kept, TX_AAD).toString('base64url');
      if (sealed.length <= MAX_TX_COOKIE_CHARS || kept.length === 1) return sealed;
    }
    return null;
  }

  /** The flows sealed in a cookie value (oldest first), or [] if it was not sealed by this keyclient's key. */
  openTransactions(cookieValue: string | undefined): LoginTransaction[] {
    if (!cookieValue || !/^[A-Za-z0-9_-]{1,4096}$/.test(cookieValue)) return [];
    const opened = this.txBox.openJson<unknown>(Buffer.from(cookieValue, 'base64url'), TX_AAD);
    // A cookie of a single flow (set before a browser could hold several) reads as a list of one.
    const list = Array.isArray(opened) ? opened : opened ? [opened] : [];
    if (list.length === 0 || list.length > MAX_PENDING_LOGINS || !list.every(isTransaction)) return [];
    return list.map((tx) => ({ ...tx, returnTo: safeReturnPath(tx.returnTo) }));
  }

  private isLive(tx: LoginTransaction): boolean {
    return this.now() - tx.createdAt <= LOGIN_TRANSACTION_TTL_MS && tx.createdAt <= this.now() + 60_000;
  }

  /**
   * The flow an authorization response belongs to, by its one `state`, and the cookie value of the flows left (null:
   * none). A response naming no flow of this browser (no state, two, another browser's, a forged one) is refused and
   * spends none of them: a link on another site to the callback cannot abort a sign-in under way.
   */
  takeTransaction(rawQuery: string, transactionCookie: string | undefined): { tx: LoginTransaction; remaining: string | null } {
    const txs = this.openTransactions(transactionCookie);
    if (txs.length === 0) throw new LoginFailure('missing_transaction');
    const states = new URLSearchParams(rawQuery).getAll('state');
    const tx = states.length === 1 ? txs.find((t) => t.state === states[0]) : undefined;
    if (!tx) throw new LoginFailure('state_mismatch');
    return { tx, remaining: this.sealTransactions(txs.filter((t) => t !== tx && this.isLive(t))) };
  }

  /**
   * Validates the authorization response against its transaction (from {@link takeTransaction}), redeems the code with
   * the PKCE verifier and checks the ID token (iss, aud, exp, nonce by openid-client; tid and oid here).
   */
  async completeLogin(rawQuery: string, tx: LoginTransaction): Promise<LoginResult> {
    if (!this.isLive(tx)) throw new LoginFailure('expired_transaction');
    const params = new URLSearchParams(rawQuery);
    if (params.getAll('state').length !== 1 || params.get('state') !== tx.state) {
      throw new LoginFailure('state_mismatch');
    }
    if (params.has('error')) throw new LoginFailure('provider_error');

    let configuration: client.Configuration;
    try {
      configuration = await this.getConfiguration();
    } catch (cause) {
      throw new LoginFailure('provider_unavailable', { cause });
    }
    // Rebuild the current URL from the configured redirect URI, never from the Host header.
    const currentUrl = new URL(this.config.redirectUri);
    currentUrl.search = params.toString();
    let response: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      response = await client.authorizationCodeGrant(configuration, currentUrl, {
        pkceCodeVerifier: tx.codeVerifier,
        expectedState: tx.state,
        expectedNonce: tx.nonce,
        idTokenExpected: true,
      });
    } catch (cause) {
      if (cause instanceof client.ResponseBodyError || cause instanceof client.AuthorizationResponseError) {
        throw new LoginFailure('token_exchange_failed', { cause });
      }
      if (cause instanceof client.ClientError) throw new LoginFailure('id_token_invalid', { cause });
      throw new LoginFailure('provider_unavailable', { cause });
    }
    const claims = response.claims();
    if (!claims || !response.id_token) throw new LoginFailure('id_token_invalid');
    if (claims['tid'] !== this.config.tenantId || typeof claims['oid'] !== 'string' || !claims['oid']) {
      throw new LoginFailure('id_token_invalid');
    }
    return {
      tokens: this.toTokenSet(response, undefined, undefined),
      identity: {
        tid: claims['tid'] as string,
        oid: claims['oid'] as string,
        displayName: typeof claims['name'] === 'string' ? claims['name'] : null,
        username: typeof claims['preferred_username'] === 'string' ? claims['preferred_username'] : null,
      },
      returnTo: tx.returnTo,
    };
  }

  /**
   * Redeems a refresh token. Throws RefreshRejected when the provider refuses it (the session must
   * end) and KeyclientError(provider_unavailable) when the provider cannot be reached.
   */
  async refresh(previous: TokenSet): Promise<TokenSet> {
    if (!previous.refreshToken) throw new RefreshRejected('no refresh token');
    let configuration: client.Configuration;
    try {
      configuration = await this.getConfiguration();
    } catch (cause) {
      throw new KeyclientError(KeyclientErrorCode.ProviderUnavailable, undefined, { cause });
    }
    let response: Awaited<ReturnType<typeof client.refreshTokenGrant>>;
    try {
      response = await client.refreshTokenGrant(configuration, previous.refreshToken, {
        scope: this.scope,
      });
    } catch (cause) {
      if (refusedByProvider(cause)) throw new RefreshRejected('refresh refused', { cause });
      throw new KeyclientError(KeyclientErrorCode.ProviderUnavailable, undefined, { cause });
    }
    // OIDC Core §12.2: the session's identity was fixed at login; tokens for anyone else end it.
    if (response.id_token && !sameSubject(previous.idToken, response.claims())) {
      throw new RefreshRejected('the refreshed ID token names another subject');
    }
    return this.toTokenSet(response, previous.refreshToken, previous.idToken);
  }

  /**
   * Where to send the browser after the local session is gone; `/` if the provider has no logout.
   * No id_token_hint: the ID token would travel through the browser, which the BFF never allows.
   */
  async endSessionUrl(): Promise<string> {
    const postLogout = `${this.config.publicOrigin}/`;
    try {
      const configuration = await this.getConfiguration();
      if (!configuration.serverMetadata().end_session_endpoint) return postLogout;
      return client.buildEndSessionUrl(configuration, {
        client_id: this.config.clientId,
        post_logout_redirect_uri: postLogout,
      }).href;
    } catch {
      return postLogout;
    }
  }

  private toTokenSet(
    response: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers,
    fallbackRefresh: string | undefined,
    fallbackId: string | undefined,
  ): TokenSet {
    const expiresIn = response.expiresIn() ?? 300;
    const idToken = response.id_token ?? fallbackId;
    if (!idToken) throw new LoginFailure('id_token_invalid');
    return {
      accessToken: response.access_token,
      refreshToken: response.refresh_token ?? fallbackRefresh,
      idToken,
      accessTokenExpiresAt: this.now() + expiresIn * 1000,
    };
  }
}
