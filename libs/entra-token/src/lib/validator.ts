import { hash } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, JWTPayload, ProtectedHeaderParameters } from 'jose';
import { TokenError } from './errors';
import { FetchLike } from './http-fetch';
import { JwksKeyStore, JwksKeyStoreStats, KID_PATTERN } from './jwks-key-store';
import { EntraMetadata, GUID } from './metadata';
import { Principal, PrincipalAccount } from './principal';

/** Configuration of {@link createEntraTokenValidator}. */
export interface EntraTokenValidatorConfig {
  /** TENANT_ID. */
  tenantId: string;
  /** APPLICATION_ID: the only accepted `aud`. */
  applicationId: string;
  /** From {@link loadEntraMetadata}. */
  metadata: EntraMetadata;
  /** APP_ROLE plus any other application roles that make an app token acceptable. */
  appRoles: string[];
  /** The keyclient's confidential client id (BFF channel); defaults to applicationId. */
  keyclientClientId?: string;
  /** Public clients allowed to present user tokens (PKCE, provisioning channel). */
  provisioningClientIds?: string[];
  /** Clock skew tolerance for exp/nbf/iat, at most 60 s (default 30). */
  clockToleranceSec?: number;
  /**
   * Minimum delay between two JWKS fetches, whatever triggers them (default 30 s, 1 s to 5 min). It bounds both the
   * load a flood of made-up kids puts on Entra (one fetch per interval) and how long such a flood can hold back a
   * genuine new kid (one interval). ADR 0001 addendum "unknown kids".
   */
  jwksCooldownMs?: number;
  /** Age after which the JWKS is refreshed on next use (default 1 h; from the cooldown to 24 h). */
  jwksCacheMaxAgeMs?: number;
  /** Cap on the token size (default 12 KiB: below Node's 16 KiB total header limit, so the cap is what answers). */
  maxTokenBytes?: number;
  /** Longest accepted exp - iat (default 28 h, the longest CAE lifetime). */
  maxTokenLifetimeSec?: number;
  /**
   * Tokens whose signature and claims were verified, remembered by their SHA-256 (default 10,000; 0 = off): a caller
   * repeating its token (a CI pipeline, a factory line) is not verified again until it expires (exp is still
   * checked on every request, and the signing key must still be in the JWKS). Refusals are never remembered.
   */
  verifiedTokenCacheSize?: number;
  /** Clock in ms (frozen in tests). */
  now?: () => number;
  fetch?: FetchLike;
}

export interface AuthenticateOptions {
  /** The request also carried `access_token` in its query string (refused: RFC 6750 §2.3 leaks). */
  queryHasToken?: boolean;
}

/** Validates Entra v2 access tokens presented to the Keyserver API. */
export interface EntraTokenValidator {
  /**
   * Validates the raw `Authorization` header value(s) and returns the caller.
   * @throws TokenError (401) for every refusal
   */
  authenticate(authorization: string | string[] | undefined, options?: AuthenticateOptions): Promise<Principal>;
  /** Validates a bare compact JWS. @throws TokenError */
  validateToken(token: string): Promise<Principal>;
  /** Fetches the JWKS now (call at boot to warm the cache). @throws EntraMetadataError */
  refreshKeys(): Promise<void>;
  keyStats(): JwksKeyStoreStats;
}

/**
 * Default minimum delay between two JWKS fetches. Nothing tells a made-up kid from a key Entra has just started using
 * before the set is fetched, so whoever sends an unknown kid first spends the fetch: this is the longest a genuine new
 * kid waits behind an attacker, and one fetch per 30 s is the most load a flood of kids puts on Entra (jose's
 * createRemoteJWKSet uses the same default; Microsoft's 5 minutes would hold a new kid back for 5 minutes).
 */
const JWKS_COOLDOWN_MS = 30_000;

const B64URL = /^[A-Za-z0-9_-]+$/;
const B64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * RFC 4648 §3.5: a canonical segment ends on an octet (length % 4 is never 1) with its unused bits zero. Decoders
 * ignore those bits, so without this one signed token has several texts (16 for an RS256 signature).
 */
function canonicalSegment(segment: string): boolean {
  const rest = segment.length % 4;
  if (rest === 0) return true;
  if (rest === 1) return false;
  return (B64URL_ALPHABET.indexOf(segment[segment.length - 1]) & (rest === 2 ? 0b1111 : 0b11)) === 0;
}

/**
 * oid and azp as Entra writes them: a lower-case GUID. One spelling per principal and client, so that (tid, oid) is
 * one key and the exact comparisons with the configured client ids (lower-cased) cannot be sidestepped by case.
 */
const CLAIM_GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const BEARER = /^Bearer ([^\s]+)$/i;

type Claims = JWTPayload & Record<string, unknown>;

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/**
 * A display-only claim (name, preferred_username: mutable, never used for decisions) as storable text: control
 * characters (NUL cannot be stored in PostgreSQL) and lone surrogates become U+FFFD, at most 256 characters.
 */
export function displayClaim(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  const clean = v.replace(LONE_SURROGATE, '\ufffd').replace(CONTROL, '\ufffd');
  return [...clean].slice(0, 256).join('') || undefined;
}

/**
 * The `acct` optional claim of a user token in the forms Entra writes: 0 (member) or 1 (guest), as a JSON number or
 * its one-digit string; absent: undefined (nothing proven). Anything else refuses the token, so that a claim we cannot
 * read never decides who is a member ("1 ", "０", -0, true, ["0"]...). JSON has one number type: 1.0 is 1.
 */
function accountClaim(v: unknown): PrincipalAccount | undefined {
  if (v === undefined) return undefined;
  if (Object.is(v, 0) || v === '0') return 'member';
  if (v === 1 || v === '1') return 'guest';
  throw new TokenError('invalid_claims', 'acct must be 0 or 1');
}

/** The token id (uti/jti) when it looks like one; anything else is dropped rather than logged or audited. */
function tokenIdClaim(v: unknown): string | undefined {
  return typeof v === 'string' && /^[A-Za-z0-9_.~+/=-]{1,128}$/.test(v) ? v : undefined;
}

/**
 * Builds the Keyserver's access-token validator (Entra ID v2, RS256, single tenant).
 * See docs/auth.md for every check and why.
 */
export function createEntraTokenValidator(config: EntraTokenValidatorConfig): EntraTokenValidator {
  // Entra writes GUIDs in lower case; configuration copied from the portal may not be.
  const cfg = {
    ...config,
    tenantId: config.tenantId.toLowerCase(),
    applicationId: config.applicationId.toLowerCase(),
    keyclientClientId: config.keyclientClientId?.toLowerCase(),
    provisioningClientIds: config.provisioningClientIds?.map((id) => id.toLowerCase()),
  };
  const now = cfg.now ?? (() => Date.now());
  const tolerance = cfg.clockToleranceSec ?? 30;
  if (!(tolerance >= 0 && tolerance <= 60)) throw new RangeError('clockToleranceSec must be between 0 and 60');
  if (!GUID.test(cfg.tenantId)) throw new RangeError('tenantId must be a GUID');
  if (!GUID.test(cfg.applicationId)) throw new RangeError('applicationId must be a GUID');
  if (cfg.appRoles.some((r) => typeof r !== 'string' || r.length === 0)) throw new RangeError('appRoles must be non-empty strings');
  const keyclientClientId = cfg.keyclientClientId ?? cfg.applicationId;
  const provisioning = new Set(cfg.provisioningClientIds ?? []);
  const appRoles = new Set(cfg.appRoles);
  const maxTokenBytes = cfg.maxTokenBytes ?? 12 * 1024;
  const maxLifetime = cfg.maxTokenLifetimeSec ?? 28 * 3600;
  const jwksCooldownMs = cfg.jwksCooldownMs ?? JWKS_COOLDOWN_MS;
  const jwksCacheMaxAgeMs = cfg.jwksCacheMaxAgeMs ?? 60 * 60_000;
  if (!(jwksCooldownMs >= 1000 && jwksCooldownMs <= 5 * 60_000)) throw new RangeError('jwksCooldownMs must be between 1 s and 5 min');
  if (!(jwksCacheMaxAgeMs >= jwksCooldownMs && jwksCacheMaxAgeMs <= 24 * 3600_000)) {
    throw new RangeError('jwksCacheMaxAgeMs must be between jwksCooldownMs and 24 h');
  }
  const issuer = cfg.metadata.issuer;
  const keys = new JwksKeyStore({
    jwksUri: cfg.metadata.jwksUri,
    issuer,
    tenantId: cfg.tenantId,
    allowInsecureLoopback: cfg.metadata.allowInsecureLoopback,
    cooldownMs: jwksCooldownMs,
    cacheMaxAgeMs: jwksCacheMaxAgeMs,
    now,
    fetch: cfg.fetch,
  });

  function parseHeader(token: string): ProtectedHeaderParameters & Record<string, unknown> {
    if (token.length > maxTokenBytes) throw new TokenError('token_too_large');
    const parts = token.split('.');
    // Only a JWE-shaped token (5 base64url segments) is named one: the audit code of anything else is malformed_token.
    if (parts.length === 5 && parts.every((p) => B64URL.test(p))) throw new TokenError('encrypted_token_not_supported');
    if (parts.length !== 3 || !parts.every((p) => B64URL.test(p) && canonicalSegment(p))) throw new TokenError('malformed_token');
    let header: ProtectedHeaderParameters & Record<string, unknown>;
    try {
      header = decodeProtectedHeader(token) as ProtectedHeaderParameters & Record<string, unknown>;
    } catch {
      throw new TokenError('malformed_token', 'header is not a JSON object');
    }
    if (header.alg !== 'RS256') throw new TokenError('alg_not_allowed');
    if (header.typ !== 'JWT') throw new TokenError('invalid_token_type');
    // We implement no JWS extension, so any critical one is unknown (RFC 7515 §4.1.11).
    if (header.crit !== undefined) throw new TokenError('unsupported_crit');
    // Microsoft Graph tokens carry a header nonce; they are not for us and do not verify as-is.
    if (header['nonce'] !== undefined) throw new TokenError('foreign_token');
    if (typeof header.kid !== 'string' || !KID_PATTERN.test(header.kid)) throw new TokenError('invalid_kid');
    // jku/x5u/jwk/x5c are ignored: keys only ever come from the configured jwks_uri.
    return header;
  }

  function mapJoseError(e: unknown): TokenError {
    if (e instanceof TokenError) return e;
    if (e instanceof joseErrors.JWTExpired) return new TokenError('token_expired', undefined, { cause: e });
    if (e instanceof joseErrors.JWTClaimValidationFailed) {
      const byClaim: Record<string, ConstructorParameters<typeof TokenError>[0]> = {
        iss: 'invalid_issuer',
        aud: 'invalid_audience',
        nbf: 'token_not_yet_valid',
        iat: 'invalid_iat',
        exp: 'token_expired',
      };
      // A missing or non-numeric claim is malformed rather than expired/early.
      if (e.reason !== 'check_failed') return new TokenError(e.claim === 'iat' ? 'invalid_iat' : 'invalid_claims', undefined, { cause: e });
      return new TokenError(byClaim[e.claim] ?? 'invalid_claims', undefined, { cause: e });
    }
    if (e instanceof joseErrors.JWSSignatureVerificationFailed) return new TokenError('invalid_signature', undefined, { cause: e });
    if (e instanceof joseErrors.JOSEAlgNotAllowed) return new TokenError('alg_not_allowed', undefined, { cause: e });
    return new TokenError('malformed_token', undefined, { cause: e });
  }

  // Verified tokens by SHA-256 of their exact text: a forged or altered token never matches an entry.
  const verifiedMax = cfg.verifiedTokenCacheSize ?? 10_000;
  // `key`: the key it verified under. A refresh that publishes other material under the same kid (or re-imports it)
  // sends the token through the full verification again.
  const verified = new Map<string, { kid: string; key: CryptoKey; principal: Principal; until: number }>();
  const VERIFIED_MAX_AGE_MS = 10 * 60_000;

  async function validateToken(token: string): Promise<Principal> {
    if (verifiedMax <= 0 || token.length > maxTokenBytes) return verify(token);
    // One-shot hash: no Hash object per request (the hot path of every authenticated call).
    const id = hash('sha256', token, 'base64');
    const hit = verified.get(id);
    if (hit) {
      // The same rules as jose's exp check (with the clock tolerance), and its kid must still name the key it verified under.
      if (now() < hit.until && now() / 1000 - tolerance < hit.principal.expiresAt && (await keys.getKey(hit.kid)) === hit.key) {
        return { ...hit.principal, roles: [...hit.principal.roles], scopes: [...hit.principal.scopes] };
      }
      verified.delete(id);
    }
    const { principal, key } = await verifyWithKey(token);
    verified.set(id, { kid: parseHeader(token).kid as string, key, principal, until: now() + VERIFIED_MAX_AGE_MS });
    if (verified.size > verifiedMax) verified.delete(verified.keys().next().value as string);
    return { ...principal, roles: [...principal.roles], scopes: [...principal.scopes] };
  }

  async function verify(token: string): Promise<Principal> {
    return (await verifyWithKey(token)).principal;
  }

  async function verifyWithKey(token: string): Promise<{ principal: Principal; key: CryptoKey }> {
    const header = parseHeader(token);
    const key = await keys.getKey(header.kid as string);
    let claims: Claims;
    try {
      const res = await jwtVerify(token, key, {
        algorithms: ['RS256'],
        issuer,
        audience: cfg.applicationId,
        clockTolerance: tolerance,
        currentDate: new Date(now()),
        requiredClaims: ['iss', 'aud', 'exp', 'nbf', 'iat'],
      });
      claims = res.payload as Claims;
    } catch (e) {
      throw mapJoseError(e);
    }
    return { principal: classify(claims), key };
  }

  function classify(c: Claims): Principal {
    // jose accepts an aud array that contains ours; Entra v2 aud is always one string.
    if (typeof c.aud !== 'string' || c.aud !== cfg.applicationId) throw new TokenError('invalid_audience');
    if (c['ver'] !== '2.0') throw new TokenError('invalid_version');
    if (c['tid'] !== cfg.tenantId) throw new TokenError('invalid_tenant');
    const nowSec = now() / 1000;
    const { exp, iat } = c as { exp: number; iat: number };
    if (typeof iat !== 'number' || !Number.isFinite(iat) || iat > nowSec + tolerance) throw new TokenError('invalid_iat');
    if (exp - iat > maxLifetime) throw new TokenError('token_lifetime_too_long');
    // Only ID tokens carry a nonce claim: an ID token is never an access token.
    if (c['nonce'] !== undefined) throw new TokenError('id_token_not_accepted');
    const oid = str(c['oid']);
    const sub = str(c.sub);
    const azp = str(c['azp']);
    if (!oid || !CLAIM_GUID.test(oid) || !sub || sub.length > 256 || !azp || !CLAIM_GUID.test(azp)) throw new TokenError('invalid_claims');
    const azpacr = c['azpacr'];
    if (azpacr !== undefined && typeof azpacr !== 'string') throw new TokenError('invalid_claims');
    const rolesClaim = c['roles'];
    if (rolesClaim !== undefined && !(Array.isArray(rolesClaim) && rolesClaim.every((r) => typeof r === 'string'))) {
      throw new TokenError('invalid_claims', 'roles must be an array of strings');
    }
    const roles = (rolesClaim as string[] | undefined) ?? [];
    const idtyp = c['idtyp'];
    const base = {
      tid: cfg.tenantId,
      oid,
      sub,
      azp,
      ...(azpacr !== undefined ? { azpacr } : {}),
      roles,
      displayName: displayClaim(c['name']),
      username: displayClaim(c['preferred_username']),
      tokenId: tokenIdClaim(c['uti']) ?? tokenIdClaim(c.jti),
      expiresAt: exp,
      issuedAt: iat,
    };

    if (c['scp'] !== undefined) {
      const scp = c['scp'];
      if (typeof scp !== 'string') throw new TokenError('missing_scope', 'scp must be a string');
      const scopes = scp.split(' ').filter((s) => s.length > 0);
      if (!scopes.includes('keyserver')) throw new TokenError('missing_scope');
      if (idtyp !== undefined && idtyp !== 'user') throw new TokenError('token_kind_mismatch');
      if (oid === sub) throw new TokenError('token_kind_mismatch', 'user tokens have a pairwise sub');
      let channel: 'bff' | 'provisioning';
      if (azp === keyclientClientId && (azpacr === '1' || azpacr === '2')) channel = 'bff';
      else if (provisioning.has(azp) && azpacr === '0') channel = 'provisioning';
      else throw new TokenError('client_not_allowed');
      const account = accountClaim(c['acct']);
      return { kind: 'user', channel, scopes, ...base, ...(account ? { account } : {}) };
    }

    if (!roles.some((r) => appRoles.has(r))) throw new TokenError('missing_role');
    if (!(idtyp === 'app' || (idtyp === undefined && oid === sub))) throw new TokenError('token_kind_mismatch');
    // The keyclient's own secret must never become a signing identity.
    if (azp === keyclientClientId || azp === cfg.applicationId) throw new TokenError('client_not_allowed');
    return { kind: 'app', channel: 'app', scopes: [], ...base };
  }

  async function authenticate(authorization: string | string[] | undefined, options: AuthenticateOptions = {}): Promise<Principal> {
    if (options.queryHasToken) throw new TokenError('token_in_query');
    let value: string | undefined;
    if (Array.isArray(authorization)) {
      if (authorization.length > 1) throw new TokenError('multiple_authorization_headers');
      value = authorization[0];
    } else value = authorization;
    if (value === undefined || value.trim() === '') throw new TokenError('missing_token');
    if (value.length > maxTokenBytes + 7) throw new TokenError('token_too_large');
    const m = BEARER.exec(value);
    if (!m) throw new TokenError('invalid_scheme');
    return validateToken(m[1]);
  }

  return {
    authenticate,
    validateToken,
    refreshKeys: () => keys.refresh(),
    keyStats: () => keys.stats(),
  };
}
