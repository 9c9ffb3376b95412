import { createPublicKey, generateKeyPair, randomUUID, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { calculateJwkThumbprint, decodeJwt, jwtVerify, SignJWT, errors as joseErrors, type JWK } from 'jose';
import { EntraEmulatorError, EntraEmulatorErrorCode } from './emulator-error';
import type { ResolvedTenant, TenantCiClient } from './tenant';

/** Audience Entra requires in federated-credential assertions. */
export const TOKEN_EXCHANGE_AUDIENCE = 'api://AzureADTokenExchange';

/** Options for {@link AdoIssuer.mint}; every field defaults to the tenant's service connection. */
export interface MintAdoTokenOptions {
  /** Defaults to the subject configured for the tenant's service connection. */
  subject?: string;
  /** Defaults to api://AzureADTokenExchange. */
  audience?: string;
  /** Override `iss` (the token is still signed by the emulated ADO key). */
  issuer?: string;
  /** Seconds since the epoch; defaults to the emulator clock. */
  issuedAt?: number;
  /** Defaults to 300 s, like Azure DevOps. */
  expiresInSeconds?: number;
  /** Sign with a key the ADO JWKS does not publish (signature check must fail). */
  signWithUnpublishedKey?: boolean;
  /** Defaults to the tenant's adoIssuer.serviceConnectionId. */
  serviceConnectionId?: string;
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

/**
 * An Azure DevOps-style OIDC issuer (the legacy `sc://org/project/connection` subject format):
 * discovery, JWKS, an OIDC-token endpoint like SYSTEM_OIDCREQUESTURI, and verification of
 * the assertions it issued when they come back as `client_assertion`.
 */
export class AdoIssuer {
  readonly issuer: string;
  private key!: RsaKey;
  private foreignKey!: RsaKey;
  private kid = '';

  constructor(
    baseUrl: string,
    private readonly tenant: ResolvedTenant,
    private readonly clock: () => number,
  ) {
    this.issuer = `${baseUrl}${tenant.adoIssuer.path}`;
  }

  async init(): Promise<void> {
    unpublishedKey ??= rsaKey();
    [this.key, this.foreignKey] = await Promise.all([rsaKey(), unpublishedKey]);
    this.kid = await calculateJwkThumbprint(this.key.publicJwk, 'sha256');
  }

  /** Subject of the configured service connection, or undefined for an unknown id. */
  subjectFor(serviceConnectionId: string): string | undefined {
    const ado = this.tenant.adoIssuer;
    if (serviceConnectionId.toLowerCase() !== ado.serviceConnectionId.toLowerCase()) return undefined;
    if (ado.subject) return ado.subject;
    const path = ado.path;
    for (const c of this.tenant.ciClients) {
      const fic = c.federatedCredentials.find((f) => new URL(f.issuer).pathname === path);
      if (fic) return fic.subject;
    }
    return undefined;
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
    const iat = options.issuedAt ?? Math.floor(this.clock() / 1000);
    const subject = options.subject ?? this.subjectFor(options.serviceConnectionId ?? this.tenant.adoIssuer.serviceConnectionId);
    if (!subject) {
      throw new EntraEmulatorError(EntraEmulatorErrorCode.UnknownServiceConnection, 'no subject is configured for that service connection');
    }
    return new SignJWT({ sc_id: options.serviceConnectionId ?? this.tenant.adoIssuer.serviceConnectionId })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: this.kid })
      .setJti(randomUUID())
      .setIssuer(options.issuer ?? this.issuer)
      .setSubject(subject)
      .setAudience(options.audience ?? TOKEN_EXCHANGE_AUDIENCE)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + (options.expiresInSeconds ?? 300))
      .sign(options.signWithUnpublishedKey ? this.foreignKey.privateKey : this.key.privateKey);
  }

  /**
   * Checks a client assertion against the federated credentials of `client`, the way Entra
   * does: exact issuer, subject and audience match, valid signature and lifetime.
   */
  async verifyAssertion(assertion: string, client: TenantCiClient): Promise<AssertionCheck> {
    let unverifiedIss: string | undefined;
    try {
      unverifiedIss = decodeJwt(assertion).iss;
    } catch {
      return { ok: false, aadsts: 'AADSTS50027', description: 'Invalid JWT token. The client assertion is malformed.' };
    }
    const candidates = client.federatedCredentials.filter((f) => this.bind(f.issuer) === unverifiedIss);
    if (candidates.length === 0 || unverifiedIss !== this.issuer) {
      return {
        ok: false,
        aadsts: 'AADSTS700211',
        description: `No matching federated identity record found for presented assertion issuer '${String(unverifiedIss)}'.`,
      };
    }
    const publicKey = createPublicKey({ key: this.key.publicJwk, format: 'jwk' });
    for (const fic of candidates) {
      try {
        await jwtVerify(assertion, publicKey, {
          issuer: this.issuer,
          subject: fic.subject,
          audience: fic.audience,
          algorithms: ['RS256'],
          currentDate: new Date(this.clock()),
          requiredClaims: ['exp', 'iat', 'sub', 'aud'],
        });
        return { ok: true, credentialSubject: fic.subject };
      } catch (err) {
        if (err instanceof joseErrors.JWTExpired) {
          return { ok: false, aadsts: 'AADSTS700024', description: 'Client assertion is not within its valid time range.' };
        }
        if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
          return { ok: false, aadsts: 'AADSTS700027', description: 'The certificate with identifier used to sign the client assertion is not registered on application.' };
        }
        if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'aud') {
          return { ok: false, aadsts: 'AADSTS700212', description: `No matching federated identity record found for presented assertion audience.` };
        }
        // Subject mismatch: try the next credential with the same issuer.
      }
    }
    return {
      ok: false,
      aadsts: 'AADSTS700213',
      description: 'No matching federated identity record found for presented assertion subject.',
    };
  }

  /**
   * A federated credential whose issuer path is the emulated ADO path is bound to this
   * emulator's own ADO issuer, whatever host and port the file names (tests use random ports).
   */
  bind(ficIssuer: string): string {
    return new URL(ficIssuer).pathname === this.tenant.adoIssuer.path ? this.issuer : ficIssuer;
  }
}
