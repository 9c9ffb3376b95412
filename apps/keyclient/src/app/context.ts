import type { BffSessionRepository } from '../session/bff-session.repository';
import type { Logger } from 'pino';
import type { KeyclientConfig } from '../config/keyclient-config';
import type { CookieNames } from '../http/cookies';
import type { OidcService } from '../oidc/oidc.service';
import type { ProxyService } from '../proxy/proxy.service';
import type { SessionService } from '../session/session.service';

/** Injection token of the {@link KeyclientContext}. */
export const KEYCLIENT_CONTEXT = Symbol('KEYCLIENT_CONTEXT');

/** Everything the controllers need, built once by createKeyclientApp. */
export interface KeyclientContext {
  config: KeyclientConfig;
  log: Logger;
  cookies: CookieNames;
  oidc: OidcService;
  sessions: SessionService;
  repo: BffSessionRepository;
  proxy: ProxyService;
  /** The current CSP, optionally with a style nonce (index.html). */
  csp: (styleNonce?: string) => string;
}
