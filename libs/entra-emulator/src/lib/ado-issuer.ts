import { createHash, createPublicKey, generateKeyPair, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT, errors as joseErrors, type JWK, type JWTPayload } from 'jose';
import { EntraEmulatorError, EntraEmulatorErrorCode } from './emulator-error';
import type { SigningKeyRing } from './signing-keys';
import type { ResolvedTenant, TenantCiClient } from './tenant';

/** Audience Entra requires in federated-credential assertions (the value a federated credential names). */
export const TOKEN_EXCHANGE_AUDIENCE = 'api://AzureADTokenExchange';
/**
 * Client id of the application behind `api://AzureADTokenExchange`. Entra-issued (v2) tokens carry a client id
 * GUID as `aud`, never the App ID URI, so the new-format Azure DevOps token names this (two third-party captures).
 */
export const TOKEN_EXCHANGE_APP_ID = 'fb60f99c-7a34-4190-8149-302f77469936';
/** Azure DevOps' first-party application: `azp` of its new-format tokens and the `/a/` part of their subject. */
export const AZURE_DEVOPS_APP_ID = '499b84ac-1321-427f-aa17-267ca6975798';
/** Lifetime of a new-format token (exp - iat of a captured one: 24 h 5 min). Legacy tokens: 300 s. */
export const ENTRA_FORMAT_TTL_SECONDS = 86_700;
const LEGACY_FORMAT_TTL_SECONDS = 300;

/** Which issuer Azure DevOps uses for a service connection's tokens: `entra` since 2025 (the default), `ado` before. */
export type AdoIssuerFormat = 'entra' | 'ado';

/** A GUID as Entra writes it into `/eid1/` subjects: its 16 bytes in .NET (mixed-endian) order, base64url, no padding. */
export function guidToBase64Url(guid: string): string {
  const b = Buffer.from(guid.replace(/-/g, ''), 'hex');
  if (b.length !== 16) throw new TypeError('not a GUID');
  const swapped = Buffer.concat([
    Buffer.from(b.subarray(0, 4)).reverse(),
    Buffer.from(b.subarray(4, 6)).reverse(),
    Buffer.from(b.subarray(6, 8)).reverse(),
    b.subarray(8),
  ]);
  return swapped.toString('base64url');
}

/** The subject of a new-format token: `/eid1/c/pub/t/<tenant>/a/<Azure DevOps app>/sc/<organization id>/<connection id>`. */
export function entraFederationSubject(tenantId: string, organizationId: string, serviceConnectionId: string): string {
  return `/eid1/c/pub/t/${guidToBase64Url(tenantId)}/a/${guidToBase64Url(AZURE_DEVOPS_APP_ID)}/sc/${organizationId.toLowerCase()}/${serviceConnectionId.toLowerCase()}`;
}

/** Options for {@link AdoIssuer.mint}; every field defaults to what Azure DevOps issues for the service connection. */
export interface MintAdoTokenOptions {
  /** Defaults to the first service connection of the tenant file. */
  serviceConnectionId?: string;
  /** Defaults to the connection's `issuerFormat` (`entra` unless configured `ado`). */
  format?: AdoIssuerFormat;
  /** Defaults to the connection's subject in its format. */
  subject?: string;
  /** Defaults to the Token Exchange app id (new format) or api://AzureADTokenExchange (legacy). */
  audience?: string;
  /** Override `iss` (the token is still signed by the format's key unless `signWith` says otherwise). */
  issuer?: string;
  /** Seconds since the epoch; defaults to the emulator clock. */
  issuedAt?: number;
  /** Seconds since the epoch; defaults to `issuedAt`. */
  notBefore?: number;
  /** Defaults to 86 700 s (new format) or 300 s (legacy), like Azure DevOps. */
  expiresInSeconds?: number;
  /**
   * Key that signs: the tenant's Entra key (new format's default), the legacy ADO issuer's key (legacy default) or a key
   * nobody publishes. Signature checks must fail whenever it is not the key of the token's issuer.
   */
  signWith?: 'entra' | 'ado' | 'unpublished';
  /** Same as `signWith: 'unpublished'`. */
  signWithUnpublishedKey?: boolean;
}

export type AssertionCheck =
  | { ok: true; credentialSubject: string }
  | { ok: false; aadsts: string; description: string };

interface RsaKey {
  privateKey: KeyObject;
  publicJwk: JWK;
}

async function rsaKey(): Promise<RsaKey> {
  const { privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 });
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' }) as JWK;
  return { privateKey, publicJwk: { kty: 'RSA', n: jwk.n, e: jwk.e } };
}

// The never-published key only exists to forge signatures in tests; one per process is enough.
let unpublishedKey: Promise<RsaKey> | undefined;

const b64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

/** A stable GUID for the tenant's service principal of Azure DevOps (the `oid` of new-format tokens). */
function servicePrincipalOid(tenantId: string): string {
  const h = createHash('sha256').update(`${tenantId.toLowerCase()}\0${AZURE_DEVOPS_APP_ID}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const invalid = (aadsts: string, description: string): AssertionCheck => ({ ok: false, aadsts, description });
const MALFORMED = invalid('AADSTS50027', 'Invalid JWT token. The client assertion is malformed or uses an unsupported algorithm.');
const SIGNATURE = invalid('AADSTS700027', 'The key used to sign the client assertion is not published by its issuer.');
const LIFETIME = invalid('AADSTS700024', 'Client assertion is not within its valid time range.');

/**
 * The Azure DevOps side of workload identity federation, in both formats Azure DevOps has used:
 *
 * - `entra` (since 2025, the default): Entra itself issues the pipeline's token. `iss` is the tenant issuer
 *   (`<base>/<tid>/v2.0`), `sub` `/eid1/c/pub/t/<tenant>/a/<Azure DevOps app>/sc/<organization id>/<connection id>`,
 *   `aud` the Token Exchange app's client id; signed with the tenant's own keys (its JWKS).
 * - `ado` (legacy): the Azure DevOps issuer (`<base><adoIssuer.path>`, in Azure `https://vstoken.dev.azure.com/<org id>`)
 *   with `sub` `sc://org/project/connection` and `aud` api://AzureADTokenExchange, signed with that issuer's key.
 *
 * It serves the legacy issuer's discovery and JWKS, the OIDC-token endpoint (SYSTEM_OIDCREQUESTURI) and checks the
 * assertions when they come back as `client_assertion`.
 */
export class AdoIssuer {
  /** The legacy issuer URL, `<base><adoIssuer.path>`. */
  readonly issuer: string;
  private key!: RsaKey;
  private foreignKey!: RsaKey;
  private kid = '';
  private readonly adoOid: string;

  constructor(
    baseUrl: string,
    private readonly tenant: ResolvedTenant,
    private readonly clock: () => number,
    /** The tenant's own issuer and signing keys (new-format tokens). */
    private readonly entra: { issuer: string; ring: SigningKeyRing },
  ) {
    this.issuer = `${baseUrl}${tenant.adoIssuer.path}`;
    this.adoOid = servicePrincipalOid(tenant.tenant.id);
  }

  async init(): Promise<void> {
    unpublishedKey ??= rsaKey();
    [this.key, this.foreignKey] = await Promise.all([rsaKey(), unpublishedKey]);
    this.kid = await calculateJwkThumbprint(this.key.publicJwk, 'sha256');
  }

  private connection(id: string): ResolvedTenant['adoIssuer']['serviceConnections'][number] | undefined {
    return this.tenant.adoIssuer.serviceConnections.find((c) => c.id.toLowerCase() === id.toLowerCase());
  }

  /** Subject of a configured service connection in its format, or undefined for an unknown id. */
  subjectFor(serviceConnectionId: string, format?: AdoIssuerFormat): string | undefined {
    const c = this.connection(serviceConnectionId);
    if (!c) return undefined;
    if ((format ?? c.issuerFormat) === 'ado') return c.subject;
    return entraFederationSubject(this.tenant.tenant.id, this.tenant.adoIssuer.organizationId, c.id);
  }

  discovery(): Record<string, unknown> {
    return {
      issuer: this.issuer,
      jwks_uri: `${this.issuer}/.well-known/jwks`,
      subject_types_supported: ['public', 'pairwise'],
      response_types_supported: ['id_token'],
      claims_supported: ['sub', 'aud', 'exp', 'iat', 'iss', 'nbf', 'jti', 'sc_id'],
      id_token_signing_alg_values_supported: ['RS256'],
      scopes_supported: ['openid'],
    };
  }

  jwks(): { keys: JWK[] } {
    return { keys: [{ ...this.key.publicJwk, kid: this.kid, use: 'sig', alg: 'RS256' }] };
  }

  async mint(options: MintAdoTokenOptions = {}): Promise<string> {
    const connectionId = options.serviceConnectionId ?? this.tenant.adoIssuer.serviceConnections[0].id;
    const connection = this.connection(connectionId);
    const format = options.format ?? connection?.issuerFormat ?? 'entra';
    const subject = options.subject ?? this.subjectFor(connectionId, format);
    if (!subject) {
      throw new EntraEmulatorError(EntraEmulatorErrorCode.UnknownServiceConnection, 'no subject is configured for that service connection');
    }
    const iat = options.issuedAt ?? Math.floor(this.clock() / 1000);
    const nbf = options.notBefore ?? iat;
    const signWith = options.signWithUnpublishedKey ? 'unpublished' : (options.signWith ?? (format === 'entra' ? 'entra' : 'ado'));
    const claims: JWTPayload =
      format === 'entra'
        ? {
            aud: options.audience ?? TOKEN_EXCHANGE_APP_ID,
            iss: options.issuer ?? this.entra.issuer,
            iat,
            nbf,
            exp: iat + (options.expiresInSeconds ?? ENTRA_FORMAT_TTL_SECONDS),
            azp: AZURE_DEVOPS_APP_ID,
            azpacr: '2',
            idtyp: 'app',
            oid: this.adoOid,
            sub: subject,
            tid: this.tenant.tenant.id,
            uti: randomBytes(16).toString('base64url'),
            ver: '2.0',
          }
        : {
            jti: randomUUID(),
            sub: subject,
            aud: options.audience ?? TOKEN_EXCHANGE_AUDIENCE,
            sc_id: connection?.id ?? connectionId,
            iss: options.issuer ?? this.issuer,
            nbf,
            exp: iat + (options.expiresInSeconds ?? LEGACY_FORMAT_TTL_SECONDS),
            iat,
          };
    if (signWith === 'entra') {
      const input = `${b64url({ typ: 'JWT', alg: 'RS256', kid: this.entra.ring.currentKid })}.${b64url(claims)}`;
      return `${input}.${this.entra.ring.signCurrent(Buffer.from(input)).toString('base64url')}`;
    }
    // An unpublished key claims the kid of the format's real key, so only the signature gives it away.
    const kid = signWith === 'ado' || format === 'ado' ? this.kid : this.entra.ring.currentKid;
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid })
      .sign(signWith === 'unpublished' ? this.foreignKey.privateKey : this.key.privateKey);
  }

  /**
   * Checks a client assertion against the federated credentials of `client`, the way Entra does: the issuer names a
   * credential exactly (case-sensitive, no normalisation), the signature verifies with that issuer's keys (RS256
   * only), the assertion is within nbf..exp, and a credential of that issuer has exactly its subject and audience.
   * An assertion may be redeemed more than once within its lifetime: nothing documents that Entra consumes federated
   * assertions (ADR 0001 addendum 2026-12-07, session 25).
   */
  async verifyAssertion(assertion: string, client: TenantCiClient): Promise<AssertionCheck> {
    let iss: unknown;
    let kid: unknown;
    let alg: unknown;
    try {
      iss = decodeJwt(assertion).iss;
      ({ kid, alg } = decodeProtectedHeader(assertion));
    } catch {
      return MALFORMED;
    }
    const candidates = client.federatedCredentials.filter((f) => this.bind(f.issuer) === iss);
    const entraIssued = iss === this.entra.issuer;
    if (candidates.length === 0 || (!entraIssued && iss !== this.issuer)) {
      return invalid('AADSTS700211', `No matching federated identity record found for presented assertion issuer '${String(iss)}'.`);
    }
    if (alg !== 'RS256') return MALFORMED;
    const key = entraIssued
      ? typeof kid === 'string' ? this.entra.ring.publicKeyFor(kid) : undefined
      : createPublicKey({ key: this.key.publicJwk, format: 'jwk' });
    if (!key) return SIGNATURE;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(assertion, key, {
        issuer: iss as string,
        algorithms: ['RS256'],
        currentDate: new Date(this.clock()),
        requiredClaims: ['exp', 'iat', 'sub', 'aud'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) return SIGNATURE;
      if (err instanceof joseErrors.JWTExpired) return LIFETIME;
      if (err instanceof joseErrors.JWTClaimValidationFailed && (err.claim === 'nbf' || err.claim === 'iat')) return LIFETIME;
      return MALFORMED;
    }
    // The subject picks the credential; then its audience must match exactly.
    const bySubject = candidates.filter((f) => f.subject === payload.sub);
    if (bySubject.length === 0) {
      return invalid('AADSTS700213', 'No matching federated identity record found for presented assertion subject.');
    }
    const fic = bySubject.find((f) => typeof payload.aud === 'string' && this.acceptedAudiences(f.audience, entraIssued).includes(payload.aud));
    if (!fic) {
      return invalid('AADSTS700212', 'No matching federated identity record found for presented assertion audience.');
    }
    return { ok: true, credentialSubject: fic.subject };
  }

  /** A credential's audience; for Entra's own tokens `api://AzureADTokenExchange` is also spelled as its app's client id. */
  private acceptedAudiences(ficAudience: string, entraIssued: boolean): string[] {
    return entraIssued && ficAudience === TOKEN_EXCHANGE_AUDIENCE ? [ficAudience, TOKEN_EXCHANGE_APP_ID] : [ficAudience];
  }

  /**
   * Federated credentials are bound to this emulator whatever host and port the file names (tests use random ports):
   * an issuer whose path is the legacy `adoIssuer.path` is the emulated Azure DevOps issuer, one whose path is
   * `/<tenant id>/v2.0` (e.g. `https://login.microsoftonline.com/<tid>/v2.0`, as a customer registers it) is this
   * tenant's issuer. The path must match exactly (case, trailing slash); the assertion's `iss` is then compared exactly.
   */
  bind(ficIssuer: string): string {
    const path = new URL(ficIssuer).pathname;
    if (path === this.tenant.adoIssuer.path) return this.issuer;
    if (path === `/${this.tenant.tenant.id}/v2.0`) return this.entra.issuer;
    return ficIssuer;
  }
}
