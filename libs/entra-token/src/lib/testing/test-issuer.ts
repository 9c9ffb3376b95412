import { createHmac, generateKeyPairSync, KeyObject, randomBytes, sign as cryptoSign, constants } from 'node:crypto';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';

/** Algorithms {@link TestIssuer.sign} can produce (good and hostile). */
export type TestSigningAlg = 'RS256' | 'RS384' | 'PS256' | 'ES256' | 'HS256' | 'none';

export interface TestSigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** Public JWK as published (kty, n, e, kid, use, alg). */
  jwk: Record<string, unknown>;
}

export interface TestSignOptions {
  /** Default RS256. */
  alg?: TestSigningAlg;
  /** Extra or replacing header members; `undefined` values remove a member. */
  header?: Record<string, unknown>;
  /** Signing key (default: the first published key). */
  key?: TestSigningKey;
  /** HS256 secret (default: the PEM of the default public key, i.e. the classic confusion attack). */
  hmacSecret?: string | Buffer;
  /** Use this raw JSON text as the payload instead of JSON.stringify(claims). */
  rawPayload?: string;
  /** Use this raw JSON text as the protected header (duplicate members, odd spacing) instead of the built one. */
  rawHeader?: string;
}

/**
 * A real HTTP issuer for tests only: serves an Entra-shaped v2.0 metadata document and JWKS on
 * 127.0.0.1 and signs tokens with arbitrary (also hostile) headers. Not for production use.
 */
export interface TestIssuer {
  tenantId: string;
  baseUrl: string;
  issuer: string;
  metadataUrl: string;
  jwksUri: string;
  /** Published keys. */
  keys: TestSigningKey[];
  /** Count of JWKS GET requests received. */
  readonly jwksRequests: number;
  /** When false the JWKS endpoint answers 503. */
  setJwksAvailable(available: boolean): void;
  /** While true the JWKS endpoint holds its requests unanswered (a hanging IdP); false answers them. */
  setJwksStalled(stalled: boolean): void;
  /** Replace the metadata document served (null restores the default). */
  setMetadata(doc: Record<string, unknown> | null): void;
  /** Publish a fresh key set with one new key (old keys are dropped); returns it. */
  rotateKeys(): TestSigningKey;
  /** Create a key that is NOT published (attacker key). */
  newUnpublishedKey(alg?: 'RSA' | 'EC'): TestSigningKey;
  sign(claims: Record<string, unknown>, options?: TestSignOptions): string;
  close(): Promise<void>;
}

const b64u = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

function makeKey(kind: 'RSA' | 'EC' = 'RSA'): TestSigningKey {
  const pair =
    kind === 'RSA'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = b64u(randomBytes(20));
  const jwk: Record<string, unknown> = { ...(pair.publicKey.export({ format: 'jwk' }) as Record<string, unknown>), kid, use: 'sig' };
  if (kind === 'RSA') jwk['alg'] = 'RS256';
  return { kid, privateKey: pair.privateKey, publicKey: pair.publicKey, jwk };
}

/** Starts a {@link TestIssuer} on 127.0.0.1 with a random port. */
export async function startTestIssuer(options: { tenantId: string }): Promise<TestIssuer> {
  const { tenantId } = options;
  let keys: TestSigningKey[] = [makeKey()];
  let jwksAvailable = true;
  let jwksRequests = 0;
  let stalled: (() => void)[] | null = null;
  let metadataOverride: Record<string, unknown> | null = null;
  let baseUrl = '';

  const defaultMetadata = (): Record<string, unknown> => ({
    issuer: `${baseUrl}/${tenantId}/v2.0`,
    jwks_uri: `${baseUrl}/${tenantId}/discovery/v2.0/keys`,
    authorization_endpoint: `${baseUrl}/${tenantId}/oauth2/v2.0/authorize`,
    token_endpoint: `${baseUrl}/${tenantId}/oauth2/v2.0/token`,
    id_token_signing_alg_values_supported: ['RS256'],
  });

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (path === `/${tenantId}/v2.0/.well-known/openid-configuration`) return send(200, metadataOverride ?? defaultMetadata());
    if (path === `/${tenantId}/discovery/v2.0/keys`) {
      jwksRequests++;
      const answer = (): void => {
        if (!jwksAvailable) return send(503, { error: 'unavailable' });
        // Entra-style issuer member on every key, unless a test key publishes its own.
        send(200, { keys: keys.map((k) => ({ issuer: `${baseUrl}/${tenantId}/v2.0`, ...k.jwk })) });
      };
      if (stalled) return void stalled.push(answer);
      return answer();
    }
    send(404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  function sign(claims: Record<string, unknown>, opts: TestSignOptions = {}): string {
    const alg = opts.alg ?? 'RS256';
    const key = opts.key ?? keys[0];
    const header: Record<string, unknown> = { typ: 'JWT', alg, kid: key.kid };
    for (const [k, v] of Object.entries(opts.header ?? {})) {
      if (v === undefined) delete header[k];
      else header[k] = v;
    }
    const input = `${b64u(opts.rawHeader ?? JSON.stringify(header))}.${b64u(opts.rawPayload ?? JSON.stringify(claims))}`;
    const data = Buffer.from(input);
    let sig: Buffer;
    switch (alg) {
      case 'RS256':
        sig = cryptoSign('sha256', data, key.privateKey);
        break;
      case 'RS384':
        sig = cryptoSign('sha384', data, key.privateKey);
        break;
      case 'PS256':
        sig = cryptoSign('sha256', data, { key: key.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
        break;
      case 'ES256':
        sig = cryptoSign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
        break;
      case 'HS256':
        sig = createHmac('sha256', opts.hmacSecret ?? (keys[0].publicKey.export({ format: 'pem', type: 'spki' }) as string))
          .update(data)
          .digest();
        break;
      case 'none':
        sig = Buffer.alloc(0);
        break;
    }
    return `${input}.${b64u(sig)}`;
  }

  return {
    tenantId,
    baseUrl,
    issuer: `${baseUrl}/${tenantId}/v2.0`,
    metadataUrl: `${baseUrl}/${tenantId}/v2.0/.well-known/openid-configuration`,
    jwksUri: `${baseUrl}/${tenantId}/discovery/v2.0/keys`,
    get keys() {
      return keys;
    },
    get jwksRequests() {
      return jwksRequests;
    },
    setJwksAvailable: (a) => {
      jwksAvailable = a;
    },
    setJwksStalled: (on) => {
      const held = stalled ?? [];
      stalled = on ? held : null;
      if (!on) held.forEach((answer) => answer());
    },
    setMetadata: (doc) => {
      metadataOverride = doc;
    },
    rotateKeys: () => {
      keys = [makeKey()];
      return keys[0];
    },
    newUnpublishedKey: (kind = 'RSA') => makeKey(kind),
    sign,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((e) => (e ? reject(e) : resolve()));
      }),
  };
}
