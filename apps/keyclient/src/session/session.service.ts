import { createHash, randomBytes } from 'node:crypto';
import type { BffSessionRecord, BffSessionRepository } from './bff-session.repository';
import type { Logger } from 'pino';
import type { KeyclientConfig } from '../config/keyclient-config';
import { SealedBox } from '../crypto/sealed-box';
import { KeyclientError, KeyclientErrorCode } from '../errors/keyclient-error';
import type { LoginIdentity, OidcService, TokenSet } from '../oidc/oidc.service';
import { PROVIDER_TIMEOUT_MS, RefreshRejected } from '../oidc/oidc.service';

/** Activity is written back at most this often, to keep a DB write off most requests. */
const TOUCH_INTERVAL_MS = 15_000;
/**
 * Sessions one user (tid, oid) may hold; a new login ends the oldest beyond it. Without it one account (a script with
 * the provider's single sign-on) could fill the session table at the provider's pace, one row per login.
 */
export const MAX_SESSIONS_PER_IDENTITY = 10;
/** A refresh lease outlives the provider call it covers (a replica that died mid-refresh holds it no longer). */
const REFRESH_LEASE_MS = PROVIDER_TIMEOUT_MS + 2_000;
const LEASE_POLL_MS = 100;
/**
 * Longest a request waits for another replica's refresh (a healthy one takes well under a second). Beyond it the
 * provider is stalled: waiting out the lease (up to the provider timeout) and then calling the provider again held a
 * request ~20 s.
 */
const LEASE_WAIT_MS = 2_000;
/** Claims lost to other writers (touches do not count: they leave the tokens alone) before giving up. */
const CLAIM_ATTEMPTS = 5;
/** An access token this close to its expiry is not sent any more. */
const USABLE_MARGIN_MS = 5_000;

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
    }, { keepPerIdentity: MAX_SESSIONS_PER_IDENTITY });
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
   * Concurrent callers on this replica share one refresh; across replicas the first claims a lease (see refresh).
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

  /**
   * One refresh per session across replicas: the refreshing replica first claims the session by a compare-and-set of
   * its sealed tokens with a lease (`refreshLeaseUntil`); another replica meanwhile keeps using the current access
   * token while it is valid, else waits for the new one (or for the lease to run out). A refresh token is never sent
   * twice, which a provider rotating refresh tokens would answer by revoking them all (RFC 9700 §4.14.2).
   */
  private async refresh(session: ActiveSession, current: TokenSet): Promise<string> {
    for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
      // Another request may have refreshed since this session was read.
      const fresh = await this.repo.findActive(session.id, new Date(this.now()));
      if (!fresh) throw new KeyclientError(KeyclientErrorCode.Unauthenticated);
      const stored = this.tokenBox.openJson<TokenSet>(fresh.tokenCiphertext, session.id);
      if (!stored) throw new KeyclientError(KeyclientErrorCode.Unauthenticated);
      if (stored.accessTokenExpiresAt - this.now() > this.config.refreshSkewMs) {
        session.record = fresh;
        return stored.accessToken;
      }
      const leaseUntil = stored.refreshLeaseUntil ?? 0;
      // A lease further ahead than any lease is long comes from a replica whose clock is wrong: not honoured.
      if (leaseUntil > this.now() && leaseUntil - this.now() <= REFRESH_LEASE_MS) {
        // Another replica is refreshing: the token in hand is still good, or wait for the new one.
        if (stored.accessTokenExpiresAt - this.now() > USABLE_MARGIN_MS) return stored.accessToken;
        if (await this.waitForChange(session, fresh.tokenCiphertext, leaseUntil)) continue;
        // The other replica's refresh is stuck (a stalled provider): this request waits no longer than a healthy
        // refresh takes and does not call the provider a second time; the token in hand while it is valid, else 503.
        if (stored.accessTokenExpiresAt > this.now()) return stored.accessToken;
        throw new KeyclientError(KeyclientErrorCode.ProviderUnavailable);
      }
      const tokens: TokenSet = { ...stored };
      delete tokens.refreshLeaseUntil;
      const claimed = this.sealTokens(session.id, { ...tokens, refreshLeaseUntil: this.now() + REFRESH_LEASE_MS });
      if (!(await this.repo.replaceTokens(session.id, fresh.tokenCiphertext, claimed, new Date(tokens.accessTokenExpiresAt)))) continue;
      return this.refreshClaimed(session, current, tokens, claimed);
    }
    throw new KeyclientError(KeyclientErrorCode.Unauthenticated);
  }

  /** The refresh itself, by the replica holding the lease (`claimed` is the stored ciphertext). */
  private async refreshClaimed(session: ActiveSession, current: TokenSet, tokens: TokenSet, claimed: Buffer): Promise<string> {
    let next: TokenSet;
    try {
      next = await this.oidc.refresh(tokens);
    } catch (err) {
      if (!(err instanceof RefreshRejected)) {
        // Provider unreachable: give the lease back, keep the session and use the old token while it is still valid.
        const released = this.sealTokens(session.id, tokens);
        await this.repo.replaceTokens(session.id, claimed, released, new Date(tokens.accessTokenExpiresAt)).catch(() => false);
        if (current.accessTokenExpiresAt - this.now() > USABLE_MARGIN_MS) return current.accessToken;
        throw err;
      }
      const winner = await this.adoptIfChanged(session, claimed);
      if (winner) return winner;
      this.log.info({ event: 'session_refresh_failed', sessionOid: session.identity.oid }, 'refresh refused; session ended');
      await this.repo.delete(session.id);
      throw new KeyclientError(KeyclientErrorCode.SessionRefreshFailed);
    }
    const ciphertext = this.sealTokens(session.id, next);
    const won = await this.repo.replaceTokens(session.id, claimed, ciphertext, new Date(next.accessTokenExpiresAt));
    if (!won) {
      const winner = await this.adoptIfChanged(session, claimed);
      if (winner) return winner;
      throw new KeyclientError(KeyclientErrorCode.Unauthenticated);
    }
    session.record = { ...session.record, tokenCiphertext: ciphertext, accessTokenExpiresAt: new Date(next.accessTokenExpiresAt) };
    this.log.debug({ event: 'session_refreshed' }, 'access token refreshed');
    return next.accessToken;
  }

  /**
   * Polls until the stored tokens are no longer `seen` (true), or for at most {@link LEASE_WAIT_MS} while the other
   * replica's lease lasts (false: its refresh is slow or its lease ran out unchanged).
   */
  private async waitForChange(session: ActiveSession, seen: Buffer, leaseUntil: number): Promise<boolean> {
    // Wall time for the wait itself; the lease is in the session clock's time.
    const deadline = Date.now() + Math.min(leaseUntil - this.now(), LEASE_WAIT_MS);
    while (Date.now() < deadline && this.now() < leaseUntil) {
      await new Promise((r) => setTimeout(r, LEASE_POLL_MS));
      const latest = await this.repo.findActive(session.id, new Date(this.now()));
      if (!latest || !latest.tokenCiphertext.equals(seen)) return true;
    }
    return false;
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
