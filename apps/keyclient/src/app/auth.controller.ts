import { randomBytes } from 'node:crypto';
import { Controller, Get, Inject, Post, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { CALLBACK_PATH } from '../config/keyclient-config';
import { KeyclientError, KeyclientErrorCode } from '../errors/keyclient-error';
import { clearCookie, readCookie, setCookie } from '../http/cookies';
import { LOGIN_TRANSACTION_TTL_MS, LoginFailure, type LoginFailureReason } from '../oidc/oidc.service';
import { safeReturnPath } from '../oidc/return-path';
import { KEYCLIENT_CONTEXT, type KeyclientContext } from './context';
import { loginErrorPage } from './pages';

/** Fixed, provider-independent texts: nothing from the query string is ever put in the page. */
const FAILURE_TEXT: Record<LoginFailureReason, string> = {
  missing_transaction: 'This sign-in link is not valid in this browser any more. Please start again.',
  expired_transaction: 'The sign-in took too long. Please start again.',
  state_mismatch: 'The sign-in response did not match the request. Please start again.',
  provider_error: 'The identity provider did not complete the sign-in.',
  token_exchange_failed: 'The sign-in could not be completed with the identity provider.',
  id_token_invalid: 'The identity provider returned an identity that could not be verified.',
  provider_unavailable: 'The identity provider could not be reached. Please try again later.',
};

function rawQuery(req: Request): string {
  const q = req.url.indexOf('?');
  return q < 0 ? '' : req.url.slice(q + 1);
}

/**
 * The login and its callback are top-level navigations. A request the browser labels as anything else (Fetch
 * Metadata `Sec-Fetch-Dest`: an image, a frame, a fetch) is refused before it starts a flow or spends a
 * transaction; a request without it (an older browser, a tool: Node's fetch sends only Sec-Fetch-Mode) goes on,
 * bound by the state check like any other.
 */
function requireTopLevelNavigation(req: Request): void {
  const dest = req.headers['sec-fetch-dest'];
  if (dest !== undefined && dest !== 'document') throw new KeyclientError(KeyclientErrorCode.CsrfRejected);
}

@Controller()
export class AuthController {
  constructor(@Inject(KEYCLIENT_CONTEXT) private readonly ctx: KeyclientContext) {}

  /**
   * Starts the code flow: sets the sealed transaction cookie and redirects to the provider. A browser with a valid
   * session goes back to the console instead: a login never ends, clears or replaces a session by itself, so a link
   * or redirect to /login from another site cannot sign anyone out (ADR 0043). Switching accounts is POST /logout first.
   */
  @Get('login')
  async login(@Req() req: Request, @Res() res: Response): Promise<void> {
    requireTopLevelNavigation(req);
    const returnTo = new URLSearchParams(rawQuery(req)).get('returnTo');
    res.setHeader('cache-control', 'no-store');
    if (await this.ctx.sessions.resolve(readCookie(req, this.ctx.cookies.session))) {
      res.redirect(302, safeReturnPath(returnTo));
      return;
    }
    let started: { authorizationUrl: string; transactionCookie: string };
    try {
      // Another tab's flow still under way stays in the cookie with this one (two tabs whose session ended).
      started = await this.ctx.oidc.startLogin(returnTo, readCookie(req, this.ctx.cookies.transaction));
    } catch (cause) {
      this.ctx.log.error({ event: 'login_start_failed', requestId: req.requestId, err: String(cause) }, 'discovery failed');
      throw new KeyclientError(KeyclientErrorCode.ProviderUnavailable);
    }
    setCookie(res, this.ctx.config, this.ctx.cookies.transaction, started.transactionCookie, {
      sameSite: 'lax',
      maxAgeMs: LOGIN_TRANSACTION_TTL_MS,
    });
    res.redirect(302, started.authorizationUrl);
  }

  /**
   * The redirect URI. The flow the response names by its state is spent whatever the outcome (used once); other flows
   * of this browser (another tab's) stay, and a response that names none of them spends nothing. A request that is
   * no top-level navigation (an image on a same-site page) is refused before it can use anything up.
   */
  @Get(CALLBACK_PATH.slice(1))
  async callback(@Req() req: Request, @Res() res: Response): Promise<void> {
    requireTopLevelNavigation(req);
    const { cookies, config, oidc, sessions, log } = this.ctx;
    const txCookie = readCookie(req, cookies.transaction);
    res.setHeader('cache-control', 'no-store');
    try {
      const { tx, remaining } = oidc.takeTransaction(rawQuery(req), txCookie);
      if (remaining === null) clearCookie(res, config, cookies.transaction, 'lax');
      else setCookie(res, config, cookies.transaction, remaining, { sameSite: 'lax', maxAgeMs: LOGIN_TRANSACTION_TTL_MS });
      const result = await oidc.completeLogin(rawQuery(req), tx);
      // Anti-fixation: whatever session id the browser had is destroyed and a new one is minted.
      await sessions.destroyByCookie(readCookie(req, cookies.session));
      const { cookieValue } = await sessions.create(result.identity, result.tokens);
      setCookie(res, config, cookies.session, cookieValue, { sameSite: 'strict' });
      log.info({ event: 'login', requestId: req.requestId, tid: result.identity.tid, oid: result.identity.oid }, 'signed in');
      res.redirect(302, result.returnTo);
    } catch (err) {
      const reason: LoginFailureReason = err instanceof LoginFailure ? err.reason : 'provider_unavailable';
      // A cookie no flow can be read from (another key, tampered, expired flows only) is of no use to keep.
      if (reason === 'missing_transaction' && txCookie !== undefined) clearCookie(res, config, cookies.transaction, 'lax');
      log.warn({ event: 'login_failed', requestId: req.requestId, reason }, 'sign-in refused');
      // Styled like the console: its inline style only under this response's nonce (no 'unsafe-inline').
      const nonce = randomBytes(16).toString('base64');
      res.setHeader('content-security-policy', this.ctx.csp(nonce));
      res.status(400).type('html').send(loginErrorPage(FAILURE_TEXT[reason], reason, nonce));
    }
  }

  /**
   * Ends the session and sends the browser through the provider's end_session endpoint:
   * 303 for a navigation, or `{ redirectTo }` when the SPA asks for JSON (fetch cannot follow it).
   */
  @Post('logout')
  async logout(@Req() req: Request, @Res() res: Response): Promise<void> {
    const { cookies, config, sessions, oidc, log } = this.ctx;
    const session = await sessions.resolve(readCookie(req, cookies.session));
    if (session) await sessions.destroy(session);
    clearCookie(res, config, cookies.session, 'strict');
    if (session) log.info({ event: 'logout', requestId: req.requestId, oid: session.identity.oid }, 'signed out');
    const redirectTo = await oidc.endSessionUrl();
    res.setHeader('cache-control', 'no-store');
    if ((req.headers.accept ?? '').includes('application/json')) {
      res.status(200).json({ redirectTo });
    } else {
      res.redirect(303, redirectTo);
    }
  }

  /** Who is signed in: display name, tid/oid and roles; never a token. */
  @Get('me')
  async me(@Req() req: Request, @Res() res: Response): Promise<void> {
    const { cookies, sessions, proxy } = this.ctx;
    const session = await sessions.resolve(readCookie(req, cookies.session));
    if (!session) throw new KeyclientError(KeyclientErrorCode.Unauthenticated);
    const base = {
      displayName: session.identity.displayName,
      username: session.identity.username,
      tid: session.identity.tid,
      oid: session.identity.oid,
    };
    const accessToken = await sessions.accessToken(session);
    let roles: string[] = idTokenRoles(sessions.tokens(session).idToken);
    let source: 'api' | 'id_token' = 'id_token';
    let api: Record<string, unknown> | undefined;
    try {
      const upstream = await proxy.fetchJson('/api/v1/me', accessToken, req.requestId ?? '');
      if (upstream.status === 200 && (upstream.headers['content-type'] ?? '').includes('json')) {
        const body = JSON.parse(upstream.body.toString('utf8')) as Record<string, unknown>;
        // The API speaks of natures (MeView); an API that returns roles is honoured too.
        const fromApi = Array.isArray(body['roles']) ? body['roles'] : body['natures'];
        if (Array.isArray(fromApi)) roles = fromApi.filter((r): r is string => typeof r === 'string');
        api = pickSafe(body);
        source = 'api';
      }
    } catch {
      // The API is optional for /me: fall back to the ID-token facts.
    }
    res.setHeader('cache-control', 'no-store');
    res.status(200).json({ ...base, roles, source, ...(api ? { api } : {}) });
  }
}

/** The `roles` claim of our own stored (already verified) ID token. */
function idTokenRoles(idToken: string): string[] {
  try {
    const payload = JSON.parse(Buffer.from(idToken.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      roles?: unknown;
    };
    return Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === 'string') : [];
  } catch {
    return [];
  }
}

/** The API's /me answer minus anything token-like (keys naming tokens or secrets, JWT-shaped strings). */
function pickSafe(body: Record<string, unknown>): Record<string, unknown> {
  return scrub(body, 0) as Record<string, unknown>;
}

function scrub(value: unknown, depth: number): unknown {
  if (depth > 6) return null;
  if (typeof value === 'string') return /^eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\./.test(value) ? null : value;
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return value;
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (!/token|secret|authorization|password/i.test(k)) out[k] = scrub(v, depth + 1);
    }
    return out;
  }
  return null;
}
