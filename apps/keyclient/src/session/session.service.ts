import { createHash, randomBytes } from 'node:crypto';
import type { BffSessionRecord, BffSessionRepository } from './bff-session.repository';
import type { Logger } from 'pino';
import type { KeyclientConfig } from '../config/keyclient-config';
import { SealedBox } from '../crypto/sealed-box';
import { KeyclientError, KeyclientErrorCode } from '../errors/keyclient-error';
import type { LoginIdentity, OidcService, TokenSet } from '../oidc/oidc.service';
import { RefreshRejected } from '../oidc/oidc.service';

/** Activity is written back at most this often, to keep a DB write off most requests. */
const TOUCH_INTERVAL_MS = 15_000;

/** A live session as the request handlers see it. */
export interface ActiveSession {
  id: string;
  identity: LoginIdentity;
  record: BffSessionRecord;
}

/** sha256 hex of the cookie value: the DB never holds a usable session id. */
export function sessionIdFromCookie(cookieValue: string): string {
  return createHash('sha256').update(cookieValue, 'utf8').digest('hex');
}

/**
 * Server-side sessions: opaque 256-bit cookie ids, idle and absolute deadlines, tokens sealed with
 * AES-256-GCM (bound to the session id), refresh shortly before expiry, single-flight per session.
 */
export class SessionService {
  private readonly tokenBox: SealedBox;
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(
    private readonly config: KeyclientConfig,
    private readonly repo: BffSessionRepository,
    private readonly oidc: OidcService,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.tokenBox = new SealedBox(config.sessionEncryptionKey, 'session-tokens');
  }

  /** Creates a session with a fresh id (never reusing one the browser sent) and returns its cookie value. */
  async create(identity: LoginIdentity, tokens: TokenSet): Promise<{ cookieValue: string; session: BffSessionRecord }> {
    const cookieValue = randomBytes(32).toString('base64url');
    const id = sessionIdFromCookie(cookieValue);
    const now = this.now();
    const absolute = now + this.config.sessionAbsoluteMs;
    const session = await this.repo.create({
      id,
      tid: identity.tid,
      oid: identity.oid,
      displayName: identity.displayName,
      username: identity.username,
      tokenCiphertext: this.sealTokens(id, tokens),
      accessTokenExpiresAt: new Date(tokens.accessTokenExpiresAt),
      createdAt: new Date(now),
      lastSeenAt: new Date(now),
      idleExpiresAt: new Date(Math.min(now + this.config.sessionIdleMs, absolute)),
      absoluteExpiresAt: new Date(absolute),
    });
    return { cookieValue, session };
  }

  /** The active session for a cookie value, or null (unknown, expired or malformed). Expired rows are deleted. */
  async resolve(cookieValue: string | undefined): Promise<ActiveSession | null> {
    if (!cookieValue || !/^[A-Za-z0-9_-]{43}$/.test(cookieValue)) return null;
    const id = sessionIdFromCookie(cookieValue);
    const now = this.now();
    const record = await this.repo.findActive(id, new Date(now));
    if (!record) {
      await this.repo.delete(id);
      return null;
    }
    if (now - record.lastSeenAt.getTime() >= TOUCH_INTERVAL_MS) {
      const idle = new Date(Math.min(now + this.config.sessionIdleMs, record.absoluteExpiresAt.getTime()));
      await this.repo.touch(id, new Date(now), idle);
      record.lastSeenAt = new Date(now);
      record.idleExpiresAt = idle;
    }
    return {
      id,
      record,
      identity: { tid: record.tid, oid: record.oid, displayName: record.displayName, username: record.username },
    };
  }

  /** The decrypted tokens of a session (server-side use only). */
  tokens(session: ActiveSession): TokenSet {
    const tokens = this.tokenBox.openJson<TokenSet>(session.record.tokenCiphertext, session.id);
    if (!tokens) throw new KeyclientError(KeyclientErrorCode.Unauthenticated, 'session tokens unreadable');
    return tokens;
  }

  /**
   * A valid access token for the session, refreshing it first when it expires within the skew.
   * Concurrent callers on this replica share one refresh; across replicas a compare-and-set on the
   * ciphertext decides the winner and losers adopt the winner's tokens.
   * A refused refresh deletes the session and throws session_refresh_failed.
   */
  async accessToken(session: ActiveSession): Promise<string> {
    const tokens = this.tokens(session);
    if (tokens.accessTokenExpiresAt - this.now() > this.config.refreshSkewMs) return tokens.accessToken;
    let pending = this.inflight.get(session.id);
    if (!pending) {
      pending = this.refresh(session, tokens).finally(() => this.inflight.delete(session.id));
      this.inflight.set(session.id, pending);
    }
    return pending;
  }

  private async refresh(session: ActiveSession, current: TokenSet): Promise<string> {
    // Another request on this replica may have refreshed since this session was read.
    const fresh = await this.repo.findActive(session.id, new Date(this.now()));
    if (!fresh) throw new KeyclientError(KeyclientErrorCode.Unauthenticated);
    const stored = this.tokenBox.openJson<TokenSet>(fresh.tokenCiphertext, session.id);
    if (!stored) throw new KeyclientError(KeyclientErrorCode.Unauthenticated);
    if (stored.accessTokenExpiresAt - this.now() > this.config.refreshSkewMs) {
      session.record = fresh;
      return stored.accessToken;
    }
    let next: TokenSet;
    try {
      next = await this.oidc.refresh(stored);
    } catch (err) {
      if (!(err instanceof RefreshRejected)) {
        // Provider unreachable: keep the session and use the old token while it is still valid.
        if (current.accessTokenExpiresAt - this.now() > 5_000) return current.accessToken;
        throw err;
      }
      const winner = await this.adoptIfChanged(session, fresh.tokenCiphertext);
      if (winner) return winner;
      this.log.info({ event: 'session_refresh_failed', sessionOid: session.identity.oid }, 'refresh refused; session ended');
      await this.repo.delete(session.id);
      throw new KeyclientError(KeyclientErrorCode.SessionRefreshFailed);
    }
    const ciphertext = this.sealTokens(session.id, next);
    const won = await this.repo.replaceTokens(
      session.id,
      fresh.tokenCiphertext,
      ciphertext,
      new Date(next.accessTokenExpiresAt),
    );
    if (!won) {
      const winner = await this.adoptIfChanged(session, fresh.tokenCiphertext);
      if (winner) return winner;
      throw new KeyclientError(KeyclientErrorCode.Unauthenticated);
    }
    session.record = { ...fresh, tokenCiphertext: ciphertext, accessTokenExpiresAt: new Date(next.accessTokenExpiresAt) };
    this.log.debug({ event: 'session_refreshed' }, 'access token refreshed');
    return next.accessToken;
  }

  /** If another replica replaced the tokens meanwhile, use its access token. */
  private async adoptIfChanged(session: ActiveSession, seenCiphertext: Buffer): Promise<string | null> {
    const latest = await this.repo.findActive(session.id, new Date(this.now()));
    if (!latest || latest.tokenCiphertext.equals(seenCiphertext)) return null;
    const tokens = this.tokenBox.openJson<TokenSet>(latest.tokenCiphertext, session.id);
    if (!tokens) return null;
    session.record = latest;
    return tokens.accessToken;
  }

  /** Deletes the session (logout). */
  async destroy(session: ActiveSession): Promise<void> {
    await this.repo.delete(session.id);
  }

  /** Deletes the session behind a cookie value if any (used when a new login replaces it). */
  async destroyByCookie(cookieValue: string | undefined): Promise<void> {
    if (cookieValue && /^[A-Za-z0-9_-]{43}$/.test(cookieValue)) await this.repo.delete(sessionIdFromCookie(cookieValue));
  }

  sealTokens(sessionId: string, tokens: TokenSet): Buffer {
    return this.tokenBox.sealJson(tokens, sessionId);
  }
}
