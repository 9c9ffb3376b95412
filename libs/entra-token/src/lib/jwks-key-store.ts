import { importJWK } from 'jose';
import { EntraMetadataError, TokenError } from './errors';
import { FetchLike, fetchJson, isRecord, parseTrustedUrl } from './http-fetch';

/** `kid` values we accept: Entra uses base64url thumbprints. Anything else never reaches a lookup. */
export const KID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * A key an RS256 signature can be trusted under: modulus of 2048 bits or more (jose refuses smaller ones only when
 * verifying, which would answer malformed_token), public exponent odd with 2^16 < e < 2^256 (FIPS 186-5 §A.1.1;
 * with e = 1 anyone can write a valid signature). Entra publishes 2048-bit keys with e = 65537.
 */
function strongRsaKey(key: CryptoKey): boolean {
  const { modulusLength, publicExponent } = key.algorithm as RsaHashedKeyAlgorithm;
  if (!(modulusLength >= 2048)) return false;
  const e = BigInt(`0x${Buffer.from(publicExponent).toString('hex') || '0'}`);
  return e % 2n === 1n && e > 0x10000n && e < 1n << 256n;
}

export interface JwksKeyStoreOptions {
  jwksUri: string;
  /** Expected issuer; JWKS entries with an `issuer` member must match it (template substituted). */
  issuer: string;
  tenantId: string;
  allowInsecureLoopback: boolean;
  /**
   * Minimum time between two fetches, whatever triggers them (an unknown kid, a stale set, a retry after a failure):
   * a flood of made-up kids causes at most one fetch per cooldown and holds a genuine new kid back for at most one.
   */
  cooldownMs: number;
  /** After this age the key set is refreshed on the next use (kept if the refresh fails). */
  cacheMaxAgeMs: number;
  now: () => number;
  fetch?: FetchLike;
  timeoutMs?: number;
}

export interface JwksKeyStoreStats {
  /** Fetch attempts, successful or not. */
  fetches: number;
  failures: number;
  kids: string[];
  /** Clock value of the last successful fetch, or null. */
  fetchedAt: number | null;
}

/**
 * RS256 verification keys from the tenant JWKS, cached by `kid`. Refetches at most once per
 * cooldown (on an unknown `kid` or a stale set), keeps the last-known-good keys when the endpoint
 * fails, and fails closed when a `kid` is not known. Concurrent lookups share one fetch.
 *
 * There is no separate negative cache of unknown kids: the one cooldown for every trigger already makes every kid
 * "unknown until the next allowed fetch", and remembering a kid as absent for longer could refuse a key Entra has
 * just published but one of its front ends did not serve yet.
 */
export class JwksKeyStore {
  private keys = new Map<string, CryptoKey>();
  private fetchedAt: number | null = null;
  private lastAttemptAt: number | null = null;
  private lastAttemptFailed = false;
  private inflight: Promise<void> | null = null;
  private fetches = 0;
  private failures = 0;
  private readonly jwksUrl: string;

  constructor(private readonly opts: JwksKeyStoreOptions) {
    this.jwksUrl = parseTrustedUrl(opts.jwksUri, opts.allowInsecureLoopback, 'metadata_jwks_uri_invalid', 'jwks_uri').href;
  }

  stats(): JwksKeyStoreStats {
    return { fetches: this.fetches, failures: this.failures, kids: [...this.keys.keys()], fetchedAt: this.fetchedAt };
  }

  /**
   * Fetches the key set now (ignores the cooldown; for boot and tests).
   * @throws EntraMetadataError when the endpoint fails or serves no usable key; cached keys are kept.
   */
  async refresh(): Promise<void> {
    if (!this.inflight) {
      this.inflight = this.doRefresh().finally(() => {
        this.inflight = null;
      });
    }
    return this.inflight;
  }

  /** The key for `kid` (already sanitized), refreshing within the cooldown rules. @throws TokenError */
  async getKey(kid: string): Promise<CryptoKey> {
    const now = this.opts.now();
    const known = this.keys.get(kid);
    const stale = this.fetchedAt === null || now - this.fetchedAt >= this.opts.cacheMaxAgeMs;
    if (known && !stale) return known;
    const mayFetch = this.lastAttemptAt === null || now - this.lastAttemptAt >= this.opts.cooldownMs;
    if (known && this.lastAttemptFailed) {
      // An outage: retry in the background and answer from the last-known-good keys, so that a hanging endpoint does
      // not hold every request for the fetch timeout once per cooldown. Normally (the last fetch worked) a stale set
      // is refreshed before answering, so that a key Entra withdrew stops verifying.
      if (mayFetch) void this.refresh().catch(() => undefined);
      return known;
    }
    if (mayFetch || this.inflight) {
      // A failed refresh keeps the last-known-good keys; the lookup below decides.
      await this.refresh().catch(() => undefined);
    }
    const key = this.keys.get(kid);
    if (key) return key;
    if (this.keys.size === 0) throw new TokenError('keys_unavailable', 'no signing key is known');
    throw new TokenError('unknown_key', 'kid not in the tenant key set');
  }

  private async doRefresh(): Promise<void> {
    this.lastAttemptAt = this.opts.now();
    this.fetches++;
    try {
      const doc = await fetchJson(this.opts.fetch ?? fetch, this.jwksUrl, this.opts.timeoutMs ?? 5000, 512 * 1024, {
        unreachable: 'jwks_unreachable',
        invalid: 'jwks_invalid',
      });
      const next = await this.importKeys(doc);
      if (next.size === 0) throw new EntraMetadataError('jwks_invalid', 'the key set has no usable RS256 key');
      this.keys = next;
      this.fetchedAt = this.opts.now();
      this.lastAttemptFailed = false;
    } catch (e) {
      this.failures++;
      this.lastAttemptFailed = true;
      throw e;
    }
  }

  private async importKeys(doc: unknown): Promise<Map<string, CryptoKey>> {
    if (!isRecord(doc) || !Array.isArray(doc['keys'])) throw new EntraMetadataError('jwks_invalid', 'not a JWK set');
    const out = new Map<string, CryptoKey>();
    const seen = new Set<string>();
    for (const jwk of doc['keys'] as unknown[]) {
      if (!isRecord(jwk)) continue;
      const { kty, kid, use, alg, n, e, issuer, key_ops: keyOps } = jwk;
      if (kty !== 'RSA' || typeof kid !== 'string' || !KID_PATTERN.test(kid)) continue;
      if (use !== undefined && use !== 'sig') continue;
      if (keyOps !== undefined && !(Array.isArray(keyOps) && keyOps.includes('verify'))) continue;
      if (alg !== undefined && alg !== 'RS256') continue;
      if (typeof n !== 'string' || typeof e !== 'string') continue;
      if (issuer !== undefined && !this.issuerMatches(issuer)) continue;
      // An ambiguous kid selects nothing (jose throws on multiple matches for the same reason).
      if (seen.has(kid)) {
        out.delete(kid);
        continue;
      }
      seen.add(kid);
      try {
        // Only n and e: x5c, x5t and friends are never used.
        const key = (await importJWK({ kty: 'RSA', n, e }, 'RS256')) as CryptoKey;
        if (strongRsaKey(key)) out.set(kid, key);
      } catch {
        // Malformed key: skip it.
      }
    }
    return out;
  }

  private issuerMatches(issuer: unknown): boolean {
    if (typeof issuer !== 'string') return false;
    return issuer.replace(/\{tenantid\}/gi, this.opts.tenantId) === this.opts.issuer;
  }
}
