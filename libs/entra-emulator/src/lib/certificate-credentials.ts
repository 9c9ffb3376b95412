import { createHash, X509Certificate } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, jwtVerify, errors as joseErrors, type ProtectedHeaderParameters } from 'jose';
import type { AssertionCheck } from './ado-issuer';
import type { TenantCiClient } from './tenant';

/** Signature algorithms Entra accepts in certificate assertions (PS256 is what its docs now ask for). */
const ALGORITHMS = ['PS256', 'RS256'];
/** Clock skew tolerated on exp and nbf, in seconds. */
const SKEW_SECONDS = 60;

interface RegisteredCertificate {
  cert: X509Certificate;
  /** base64url SHA-1 thumbprint of the DER certificate (header `x5t`). */
  x5t: string;
  /** base64url SHA-256 thumbprint of the DER certificate (header `x5t#S256`). */
  x5tS256: string;
}

function fail(aadsts: string, description: string): AssertionCheck {
  return { ok: false, aadsts, description };
}

/**
 * Certificate credentials of confidential clients: RFC 7523 `private_key_jwt` client assertions signed
 * with the private key of a certificate registered on the client (only the public certificate is known
 * here). Checked as Entra does: the header's `x5t#S256`/`x5t` names a registered certificate that is
 * within its validity, the signature verifies (PS256 or RS256), `aud` is the token endpoint, `iss` and
 * `sub` are the client id, the assertion is within `nbf`..`exp`, and its `jti` is used once.
 */
export class CertificateCredentials {
  /** `clientId jti` → exp (ms) of assertions already redeemed; entries go once they have expired. */
  private readonly redeemed = new Map<string, number>();
  private readonly byClient = new Map<string, RegisteredCertificate[]>();

  constructor(
    private readonly tokenEndpoint: string,
    private readonly clock: () => number,
  ) {}

  /** base64url thumbprints of a PEM certificate, as a client puts them in its assertion header. */
  static thumbprints(pem: string): { x5t: string; x5tS256: string } {
    const der = new X509Certificate(pem).raw;
    return {
      x5t: createHash('sha1').update(der).digest('base64url'),
      x5tS256: createHash('sha256').update(der).digest('base64url'),
    };
  }

  async verify(assertion: string, client: TenantCiClient): Promise<AssertionCheck> {
    let header: ProtectedHeaderParameters;
    let claims: Record<string, unknown>;
    try {
      header = decodeProtectedHeader(assertion);
      claims = decodeJwt(assertion);
    } catch {
      return fail('AADSTS50027', 'Invalid JWT token. The client assertion is malformed.');
    }
    if (!header.alg || !ALGORITHMS.includes(header.alg)) {
      return fail('AADSTS50027', `Invalid JWT token. '${String(header.alg)}' is not a supported signature algorithm for client assertions.`);
    }
    const s256 = typeof header['x5t#S256'] === 'string' ? header['x5t#S256'] : undefined;
    const s1 = typeof header.x5t === 'string' ? header.x5t : undefined;
    const registered = this.certificatesOf(client).find(
      (r) => (s256 !== undefined || s1 !== undefined) && (s256 === undefined || r.x5tS256 === s256) && (s1 === undefined || r.x5t === s1),
    );
    if (!registered) {
      return fail(
        'AADSTS700027',
        `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${s256 ?? s1 ?? ''}']`,
      );
    }
    const now = this.clock();
    if (now < registered.cert.validFromDate.getTime() || now > registered.cert.validToDate.getTime()) {
      return fail('AADSTS700027', 'The certificate used to sign the client assertion is outside its validity period.');
    }
    try {
      await jwtVerify(assertion, registered.cert.publicKey, {
        algorithms: [header.alg],
        audience: this.tokenEndpoint,
        issuer: client.clientId,
        subject: client.clientId,
        currentDate: new Date(now),
        clockTolerance: SKEW_SECONDS,
        requiredClaims: ['aud', 'exp', 'iss', 'jti', 'sub'],
      });
    } catch (err) {
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
        return fail('AADSTS700027', 'Client assertion failed signature validation.');
      }
      if (err instanceof joseErrors.JWTExpired) {
        return fail('AADSTS700024', 'Client assertion is not within its valid time range.');
      }
      if (err instanceof joseErrors.JWTClaimValidationFailed) {
        if (err.claim === 'aud') return fail('AADSTS700023', 'Client assertion audience claim does not match the token endpoint of the tenant.');
        if (err.claim === 'iss' || err.claim === 'sub') {
          return fail('AADSTS700021', "Client assertion application identifier doesn't match 'client_id' parameter.");
        }
        if (err.claim === 'nbf') return fail('AADSTS700024', 'Client assertion is not within its valid time range.');
      }
      return fail('AADSTS50027', `Invalid JWT token. ${(err as Error).message}`);
    }
    // Replay: only a verified assertion is remembered, until it expires anyway.
    for (const [key, exp] of this.redeemed) if (exp + SKEW_SECONDS * 1000 < now) this.redeemed.delete(key);
    const key = `${client.clientId} ${String(claims['jti'])}`;
    if (this.redeemed.has(key)) return fail('AADSTS50027', 'Invalid JWT token. The client assertion was already used (jti replay).');
    this.redeemed.set(key, Number(claims['exp']) * 1000);
    return { ok: true, credentialSubject: client.clientId };
  }

  private certificatesOf(client: TenantCiClient): RegisteredCertificate[] {
    let list = this.byClient.get(client.clientId);
    if (!list) {
      list = client.certificates.map((pem) => ({ cert: new X509Certificate(pem), ...CertificateCredentials.thumbprints(pem) }));
      this.byClient.set(client.clientId, list);
    }
    return list;
  }
}
