import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import { compactVerify, decodeJwt, decodeProtectedHeader } from 'jose';
import { AdoIssuer, type AssertionCheck, type MintAdoTokenOptions } from './ado-issuer';
import { CertificateCredentials } from './certificate-credentials';
import { loginPage, messagePage } from './html';
import { MemoryStore } from './memory-adapter';
import { loadOidcProvider, type OidcProvider } from './oidc-provider-module';
import { SigningKeyRing, type RotateOptions } from './signing-keys';
import { loadTenantFile, parseTenant, type DemoTenant, type ResolvedTenant, type TenantCiClient, type TenantUser } from './tenant';

/** Options of {@link startEmulator}. */
export interface StartEmulatorOptions {
  /** TCP port; 0 (the default) picks a random free port. The runnable app uses 4011. */
  port?: number;
  /** Interface to listen on; default 127.0.0.1. */
  host?: string;
  /** Origin the emulator is reached at (e.g. behind a proxy); default http://<host>:<port>. */
  publicBaseUrl?: string;
  /** Tenant file; default config/demo-tenant.json relative to the working directory. */
  tenantFile?: string;
  /** Inline tenant instead of a file. */
  tenant?: DemoTenant;
  /** Access-token lifetime; default 3600 s. */
  accessTokenTtlSeconds?: number;
  /**
   * Clock (ms since the epoch) for the iat/nbf/exp of issued JWTs and minted ADO tokens and for
   * checking client assertions. Codes, sessions and refresh tokens use the real clock.
   */
  clock?: () => number;
  /**
   * Where the emulator logs (pino-compatible: one JSON object per call): each request (method, path without the
   * query, status, duration), refused bodies and oidc-provider's server errors. Default: nothing is logged.
   */
  logger?: EmulatorLogger;
}

/** The logger {@link StartEmulatorOptions.logger} takes (a pino Logger fits). */
export interface EmulatorLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** A running emulator. */
export interface RunningEmulator {
  /** Origin, e.g. http://127.0.0.1:4011 (no trailing slash). */
  baseUrl: string;
  tenantId: string;
  /** `<baseUrl>/<tenantId>/v2.0`. */
  issuer: string;
  /** `<issuer>/.well-known/openid-configuration`. */
  metadataUrl: string;
  /** `<baseUrl>/<tenantId>/oauth2/v2.0/token`. */
  tokenEndpoint: string;
  /** `<baseUrl>/<tenantId>/oauth2/v2.0/authorize`. */
  authorizationEndpoint: string;
  /** `<baseUrl>/<tenantId>/oauth2/v2.0/logout`. */
  endSessionEndpoint: string;
  /** `<baseUrl>/<tenantId>/discovery/v2.0/keys`. */
  jwksUri: string;
  /**
   * Issuer URL of the emulated Azure DevOps organisation in the legacy format (`<baseUrl><adoIssuer.path>`). New-format
   * tokens (the default) are issued by `issuer` itself.
   */
  adoIssuer: string;
  /** SYSTEM_OIDCREQUESTURI equivalent: `<adoIssuer>/oidctoken`. */
  adoOidcRequestUri: string;
  /** The validated tenant the emulator serves. */
  tenant: ResolvedTenant;
  /** Adds a new signing key and signs with it; previous keys stay published unless `dropPrevious`. */
  rotateSigningKeys(options?: RotateOptions): Promise<void>;
  /** Kid of the key that signs new tokens. */
  currentSigningKid(): string;
  /** While false the JWKS endpoint answers 503. */
  setJwksAvailable(ok: boolean): void;
  /** An Azure DevOps OIDC token (client assertion for workload identity federation), in the connection's format. */
  mintAdoToken(options?: MintAdoTokenOptions): Promise<string>;
  /** Subject of a configured service connection in its issuer format (undefined for an unknown id). */
  adoSubject(serviceConnectionId: string): string | undefined;
  /** The pairwise `sub` Entra would give `oid` in tokens issued to `clientId`. */
  pairwiseSubject(oid: string, clientId: string): string;
  close(): Promise<void>;
}

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

type ClientKind = 'public' | 'secret' | 'certificate' | 'federated';

interface ClientInfo {
  clientId: string;
  name: string;
  kind: ClientKind;
  servicePrincipalOid?: string;
  appRoles: string[];
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  native: boolean;
  ci?: TenantCiClient;
}

/** Minimal view of oidc-provider's AccessToken / ClientCredentials models. */
interface IssuedToken {
  kind: string;
  jti: string;
  clientId: string;
  accountId?: string;
  scope?: string;
}

interface StructuredJwt {
  header?: Record<string, unknown>;
  payload: Record<string, unknown>;
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      ok((server.address() as AddressInfo).port);
    });
  });
}

function oauthError(res: Response, status: number, error: string, aadsts: string, description: string): void {
  res
    .status(status)
    .set('Cache-Control', 'no-store')
    .json({
      error,
      error_description: `${aadsts}: ${description}`,
      error_codes: [Number(aadsts.replace('AADSTS', ''))],
      timestamp: new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
      trace_id: randomUUID(),
      correlation_id: randomUUID(),
    });
}

function html(res: Response, status: number, body: string): void {
  res
    .status(status)
    .type('html')
    .set({
      'Cache-Control': 'no-store',
      // No script at all; inline styles only. form-action is left open because Chrome applies it
      // to the redirect chain that ends at the client's redirect_uri.
      'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
      'X-Frame-Options': 'DENY',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
    })
    .send(body);
}

function loopbackWithoutPort(uri: string): string | undefined {
  try {
    const u = new URL(uri);
    if (u.protocol !== 'http:' || !['127.0.0.1', '[::1]'].includes(u.hostname)) return undefined;
    u.port = '';
    return u.href;
  } catch {
    return undefined;
  }
}

/** Exact match, except that public native clients may use any port on an http loopback redirect (as Entra). */
function redirectAllowed(client: ClientInfo, uri: string, allowed: string[]): boolean {
  if (allowed.includes(uri)) return true;
  if (!client.native) return false;
  const bare = loopbackWithoutPort(uri);
  return bare !== undefined && allowed.some((a) => loopbackWithoutPort(a) === bare);
}

function stringParam(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function b64url(input: string | Buffer): string {
  return Buffer.from(input).toString('base64url');
}

function cookieValue(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

/**
 * Starts an Entra ID (v2.0 endpoint) look-alike for one tenant, backed by oidc-provider and
 * configured by a declarative tenant file. See tools/entra-emulator/README.md.
 */
export async function startEmulator(opts: StartEmulatorOptions = {}): Promise<RunningEmulator> {
  const tenant = opts.tenant
    ? parseTenant(opts.tenant)
    : loadTenantFile(resolve(opts.tenantFile ?? 'config/demo-tenant.json'));
  const host = opts.host ?? '127.0.0.1';
  const clock = opts.clock ?? Date.now;
  const ttl = opts.accessTokenTtlSeconds ?? 3600;
  const tid = tenant.tenant.id;
  const nowSeconds = (): number => Math.floor(clock() / 1000);

  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = createServer((req, res) => handler(req, res));
  // As the Keyserver's servers do (keepIdleConnections in @keyserver/config, which a tool lib may not import): idle
  // connections outlive the clients' own keep-alive, so no client sends on a connection being closed.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  const port = await listen(server, opts.port ?? 0, host);
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const baseUrl = (opts.publicBaseUrl ?? `http://${urlHost}:${port}`).replace(/\/+$/, '');

  const issuer = `${baseUrl}/${tid}/v2.0`;
  const urls = {
    issuer,
    metadata: `${issuer}/.well-known/openid-configuration`,
    authorize: `${baseUrl}/${tid}/oauth2/v2.0/authorize`,
    token: `${baseUrl}/${tid}/oauth2/v2.0/token`,
    logout: `${baseUrl}/${tid}/oauth2/v2.0/logout`,
    jwks: `${baseUrl}/${tid}/discovery/v2.0/keys`,
    userinfo: `${baseUrl}/${tid}/openid/userinfo`,
  };

  const app = tenant.keyserverApp;
  const resourceUri = app.applicationIdUri;
  const clients = new Map<string, ClientInfo>();
  clients.set(app.clientId, {
    clientId: app.clientId,
    name: 'Keyserver',
    kind: 'secret',
    servicePrincipalOid: app.servicePrincipalOid,
    appRoles: [],
    redirectUris: app.redirectUris,
    postLogoutRedirectUris: app.postLogoutRedirectUris,
    native: false,
  });
  clients.set(tenant.provisioningApp.clientId, {
    clientId: tenant.provisioningApp.clientId,
    name: 'Keyserver provisioning',
    kind: 'public',
    appRoles: [],
    redirectUris: tenant.provisioningApp.redirectUris,
    postLogoutRedirectUris: tenant.provisioningApp.postLogoutRedirectUris,
    native: true,
  });
  for (const ci of tenant.ciClients) {
    clients.set(ci.clientId, {
      clientId: ci.clientId,
      name: ci.name,
      kind: ci.clientSecret ? 'secret' : ci.certificates.length > 0 ? 'certificate' : 'federated',
      servicePrincipalOid: ci.servicePrincipalOid,
      appRoles: ci.appRoles,
      redirectUris: [],
      postLogoutRedirectUris: [],
      native: false,
      ci,
    });
  }
  // Clients without a secret (certificate or federated credentials only) authenticate to oidc-provider
  // with a secret nobody outside knows, after the emulator has checked their client assertion.
  const internalSecrets = new Map<string, string>();
  const usersByOid = new Map<string, TenantUser>(tenant.users.map((u) => [u.oid.toLowerCase(), u]));
  const usersByName = new Map<string, TenantUser>(tenant.users.map((u) => [u.username.toLowerCase(), u]));

  const pairwiseSubject = (oid: string, clientId: string): string =>
    createHash('sha256').update(`${tid}\0${clientId.toLowerCase()}\0${oid.toLowerCase()}`).digest('base64url');

  const mod = loadOidcProvider();
  const ring = await SigningKeyRing.create(mod);
  const ado = new AdoIssuer(baseUrl, tenant, clock, { issuer, ring });
  await ado.init();
  const certificateCredentials = new CertificateCredentials(urls.token, clock);
  const store = new MemoryStore();
  let jwksAvailable = true;

  const providerClients = [...clients.values()].map((c) => {
    const common = { client_id: c.clientId, client_name: c.name, id_token_signed_response_alg: 'RS256' };
    if (c.kind === 'public') {
      return {
        ...common,
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: c.redirectUris,
        post_logout_redirect_uris: c.postLogoutRedirectUris,
        subject_type: 'pairwise',
      };
    }
    let secret = c.ci?.clientSecret ?? app.clientSecret;
    if (c.kind === 'federated' || c.kind === 'certificate') {
      secret = randomBytes(32).toString('base64url');
      internalSecrets.set(c.clientId, secret);
    }
    const interactive = c.redirectUris.length > 0;
    return {
      ...common,
      client_secret: secret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: interactive ? ['authorization_code', 'refresh_token', 'client_credentials'] : ['client_credentials'],
      response_types: interactive ? ['code'] : [],
      redirect_uris: c.redirectUris,
      post_logout_redirect_uris: c.postLogoutRedirectUris,
      ...(interactive ? { subject_type: 'pairwise' } : {}),
    };
  });

  // Per client, not per request: a client with both a secret and a certificate gets "1".
  const azpacr = (c: ClientInfo | undefined): string =>
    c?.kind === 'public' ? '0' : c?.kind === 'secret' ? '1' : '2';

  /** Rebuilds the access-token JWT exactly as Entra v2 shapes it. */
  const entraAccessToken = (token: IssuedToken, jwt: StructuredJwt): void => {
    const client = clients.get(token.clientId);
    const iat = nowSeconds();
    const base: Record<string, unknown> = {
      aud: app.clientId,
      iss: issuer,
      iat,
      nbf: iat,
      exp: iat + ttl,
      azp: token.clientId,
      azpacr: azpacr(client),
    };
    const user = token.accountId ? usersByOid.get(token.accountId.toLowerCase()) : undefined;
    if (user) {
      const scp = new Set<string>();
      for (const s of (token.scope ?? '').split(' ')) {
        if (!s.startsWith(`${resourceUri}/`)) continue;
        const bare = s.slice(resourceUri.length + 1);
        // `.default` grants every consented delegated scope of the resource.
        scp.add(bare === '.default' ? app.scope : bare);
      }
      jwt.payload = {
        ...base,
        // Entra's optional claim, when the registration configures it: 0 a member of the tenant, 1 a B2B guest.
        ...(app.accessTokenOptionalClaims.includes('acct') ? { acct: user.userType === 'Guest' ? 1 : 0 } : {}),
        name: user.name,
        oid: user.oid,
        preferred_username: user.username,
        ...(user.appRoles.length ? { roles: [...user.appRoles] } : {}),
        scp: [...scp].join(' '),
        sub: pairwiseSubject(user.oid, token.clientId),
        tid,
        uti: token.jti,
        ver: '2.0',
      };
    } else {
      const oid = client?.servicePrincipalOid ?? token.clientId;
      jwt.payload = {
        ...base,
        idtyp: 'app',
        oid,
        ...(client && client.appRoles.length ? { roles: [...client.appRoles] } : {}),
        sub: oid,
        tid,
        uti: token.jti,
        ver: '2.0',
      };
    }
    jwt.header = { typ: 'JWT' };
  };

  const { Provider, errors } = mod;
  const configuration: Record<string, unknown> = {
    adapter: (name: string) => store.adapterFor(name),
    clients: providerClients,
    jwks: { keys: ring.providerKeys() },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    claims: {
      openid: ['sub', 'tid', 'ver', 'roles'],
      profile: ['name', 'preferred_username', 'oid'],
      email: ['email'],
    },
    conformIdTokenClaims: false,
    subjectTypes: ['public', 'pairwise'],
    pairwiseIdentifier: (_ctx: unknown, accountId: string, client: { clientId: string }) =>
      pairwiseSubject(accountId, client.clientId),
    findAccount: (_ctx: unknown, id: string) => {
      const user = usersByOid.get(id.toLowerCase());
      if (!user) return undefined;
      return {
        accountId: user.oid,
        claims: () => ({
          sub: user.oid,
          oid: user.oid,
          tid,
          ver: '2.0',
          name: user.name,
          preferred_username: user.username,
          email: user.username,
          ...(user.appRoles.length ? { roles: [...user.appRoles] } : {}),
        }),
      };
    },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/${tid}/login/${interaction.uid}` },
    routes: {
      authorization: '/oauth2/v2.0/authorize',
      token: '/oauth2/v2.0/token',
      jwks: '/discovery/v2.0/keys',
      end_session: '/oauth2/v2.0/logout',
      userinfo: '/openid/userinfo',
      revocation: '/oauth2/v2.0/revoke',
      introspection: '/oauth2/v2.0/introspect',
      pushed_authorization_request: '/oauth2/v2.0/par',
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      externalSigningSupport: { enabled: true, ack: 'experimental-01' },
      resourceIndicators: {
        enabled: true,
        // Entra has no `resource` parameter on v2.0: the resource is the prefix of the scope.
        defaultResource: (ctx: { oidc?: { params?: Record<string, unknown> } }, _client: unknown, oneOf?: string[]) => {
          if (oneOf?.length) return oneOf[0];
          const scope = stringParam(ctx.oidc?.params?.['scope']) ?? '';
          return scope.split(' ').some((s) => s.startsWith(`${resourceUri}/`)) ? resourceUri : undefined;
        },
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, indicator: string) => {
          if (indicator !== resourceUri) throw new errors['InvalidTarget']();
          return {
            scope: `${resourceUri}/${app.scope} ${resourceUri}/.default`,
            audience: app.clientId,
            accessTokenTTL: ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    formats: {
      customizers: {
        jwt: async (_ctx: unknown, token: IssuedToken, jwt: StructuredJwt) => entraAccessToken(token, jwt),
      },
    },
    ttl: {
      AccessToken: ttl,
      ClientCredentials: ttl,
      IdToken: 3600,
      AuthorizationCode: 600,
      RefreshToken: 24 * 3600,
      Interaction: 3600,
      Session: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
    },
    renderError: (ctx: { type: string; body: string }, out: Record<string, string>) => {
      ctx.type = 'html';
      ctx.body = messagePage("Sorry, but we're having trouble signing you in.", out['error'] ?? 'error', out['error_description']);
    },
  };

  const provider: OidcProvider = new Provider(issuer, configuration);
  ring.markInitialized();
  if (baseUrl.startsWith('https:')) provider.proxy = true;
  if (opts.logger) {
    const log = opts.logger;
    provider.on('server_error', (_ctx: unknown, err: unknown) => log.error({ event: 'provider_error', err: err instanceof Error ? err.message : String(err) }, 'oidc-provider server error'));
  }
  const providerCallback = provider.callback();

  const metadata = {
    token_endpoint: urls.token,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
    jwks_uri: urls.jwks,
    response_modes_supported: ['query', 'fragment', 'form_post'],
    subject_types_supported: ['pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
    response_types_supported: ['code'],
    scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
    issuer,
    request_uri_parameter_supported: false,
    userinfo_endpoint: urls.userinfo,
    authorization_endpoint: urls.authorize,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: urls.logout,
    claims_supported: [
      'sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'nonce', 'preferred_username', 'name', 'tid', 'ver', 'oid', 'email',
    ],
    tenant_region_scope: 'EU',
    cloud_instance_name: 'microsoftonline.com',
  };

  const web = express();
  web.disable('x-powered-by');
  const tidPath = `/${tid}`;
  const log = opts.logger;
  if (log) {
    // Paths only: queries carry authorization codes, state and PKCE values.
    web.use((req: Request, res: Response, next: NextFunction) => {
      const start = process.hrtime.bigint();
      res.once('finish', () => {
        const ms = Number(process.hrtime.bigint() - start) / 1e6;
        log.info({ event: 'request', method: req.method, path: req.originalUrl.split('?')[0].slice(0, 512), status: res.statusCode, ms: Math.round(ms * 10) / 10 }, 'request');
      });
      next();
    });
  }

  // Liveness and readiness for containers and scripts (the same answer: the emulator has no dependencies).
  web.get(['/healthz', '/readyz'], (_req, res) => {
    res.json({ status: 'ok' });
  });

  web.get(`${tidPath}/v2.0/.well-known/openid-configuration`, (_req, res) => {
    res.json(metadata);
  });
  web.get(`${tidPath}/discovery/v2.0/keys`, (_req, res) => {
    if (!jwksAvailable) {
      res.status(503).set('Retry-After', '1').json({ error: 'temporarily_unavailable' });
      return;
    }
    res.set('Cache-Control', 'max-age=86400, private').json(ring.jwks(issuer));
  });

  // --- Emulated Azure DevOps organisation (workload identity federation): the legacy issuer's discovery and keys, and
  // the OIDC-token endpoint, which answers in each service connection's format (new: issued by this tenant) ---
  const adoPath = tenant.adoIssuer.path;
  web.get(`${adoPath}/.well-known/openid-configuration`, (_req, res) => {
    res.json(ado.discovery());
  });
  web.get(`${adoPath}/.well-known/jwks`, (_req, res) => {
    res.json(ado.jwks());
  });
  web.post(`${adoPath}/oidctoken`, async (req, res) => {
    // Azure DevOps wants the job's System.AccessToken; the emulator only requires that one is sent.
    if (!/^Bearer \S+$/.test(req.headers.authorization ?? '')) {
      res.status(401).json({ message: 'A bearer System.AccessToken is required.', code: 'missing_access_token' });
      return;
    }
    const connectionId = stringParam(req.query['serviceConnectionId']);
    if (!connectionId || !ado.subjectFor(connectionId)) {
      res.status(404).json({ message: 'Unknown service connection.', code: 'unknown_service_connection' });
      return;
    }
    res.json({ oidcToken: await ado.mint({ serviceConnectionId: connectionId }) });
  });

  // --- Token endpoint: Entra rules the provider does not know, then oidc-provider ---
  web.post(
    `${tidPath}/oauth2/v2.0/token`,
    express.urlencoded({ extended: false, limit: '56kb' }),
    async (req: Request, res: Response, next: NextFunction) => {
      const body = (req.body ?? {}) as Record<string, unknown>;
      const grantType = stringParam(body['grant_type']);
      if (grantType === 'client_credentials') {
        const scope = stringParam(body['scope']) ?? '';
        if (!/^\S+\/\.default$/.test(scope)) {
          oauthError(res, 400, 'invalid_scope', 'AADSTS1002012',
            `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`);
          return;
        }
        if (scope !== `${resourceUri}/.default`) {
          oauthError(res, 400, 'invalid_resource', 'AADSTS500011',
            `The resource principal named ${scope.slice(0, -'/.default'.length)} was not found in the tenant named ${tenant.tenant.name}.`);
          return;
        }
      }
      if (body['client_assertion'] !== undefined || body['client_assertion_type'] !== undefined) {
        const assertion = stringParam(body['client_assertion']);
        if (stringParam(body['client_assertion_type']) !== JWT_BEARER || !assertion) {
          oauthError(res, 400, 'invalid_request', 'AADSTS50027', 'client_assertion_type must be jwt-bearer and client_assertion must be present.');
          return;
        }
        const clientId = stringParam(body['client_id']) ?? '';
        const client = clients.get(clientId);
        let claimedIssuer: unknown;
        try {
          claimedIssuer = decodeJwt(assertion).iss;
        } catch {
          claimedIssuer = undefined;
        }
        // A self-issued assertion (iss = client id) is a certificate credential; anything else is federated.
        let check: AssertionCheck;
        if (client?.ci && claimedIssuer === clientId) {
          check = await certificateCredentials.verify(assertion, client.ci);
        } else if (client?.ci && client.ci.federatedCredentials.length > 0) {
          check = await ado.verifyAssertion(assertion, client.ci);
        } else {
          check = { ok: false, aadsts: 'AADSTS700211', description: `No matching federated identity record found for the application ${clientId}.` };
        }
        if (!check.ok) {
          oauthError(res, 401, 'invalid_client', check.aadsts, check.description);
          return;
        }
        const rest = { ...body };
        delete rest['client_assertion'];
        delete rest['client_assertion_type'];
        rest['client_secret'] = client?.ci?.clientSecret ?? internalSecrets.get(clientId);
        req.body = rest;
      }
      rewriteIdTokenInResponse(res);
      next();
    },
  );

  /** Re-signs the ID token with Entra's header (`typ: JWT`) and claim set (nbf, uti; no at_hash). */
  const rewriteIdTokenInResponse = (res: Response): void => {
    const originalEnd = res.end.bind(res) as (...args: unknown[]) => Response;
    (res as unknown as { end: (...args: unknown[]) => Response }).end = (chunk?: unknown, ...rest: unknown[]) => {
      if (res.statusCode === 200 && (typeof chunk === 'string' || Buffer.isBuffer(chunk))) {
        try {
          const json = JSON.parse(chunk.toString()) as Record<string, unknown>;
          const idToken = stringParam(json['id_token']);
          if (idToken) {
            const [, payloadPart] = idToken.split('.');
            const payload = JSON.parse(Buffer.from(payloadPart, 'base64url').toString()) as Record<string, unknown>;
            delete payload['at_hash'];
            delete payload['c_hash'];
            const iat = nowSeconds();
            const lifetime = Number(payload['exp']) - Number(payload['iat']);
            const reshaped = { ...payload, iat, nbf: iat, exp: iat + lifetime, uti: b64url(randomBytes(16)) };
            const signingInput = `${b64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', kid: ring.currentKid }))}.${b64url(JSON.stringify(reshaped))}`;
            json['id_token'] = `${signingInput}.${ring.signCurrent(Buffer.from(signingInput)).toString('base64url')}`;
            const out = JSON.stringify(json);
            res.setHeader('Content-Length', Buffer.byteLength(out));
            return originalEnd(out);
          }
        } catch {
          // Not a JSON token response: pass it through untouched.
        }
      }
      return originalEnd(chunk, ...rest);
    };
  };

  // --- Authorization endpoint: Entra issues refresh tokens for offline_access without prompt=consent ---
  web.get(`${tidPath}/oauth2/v2.0/authorize`, (req, _res, next) => {
    const url = new URL(req.url, baseUrl);
    const scope = url.searchParams.get('scope') ?? '';
    const prompt = url.searchParams.get('prompt');
    if (prompt === 'select_account') url.searchParams.delete('prompt');
    if (scope.split(' ').includes('offline_access') && !url.searchParams.get('prompt')) {
      url.searchParams.set('prompt', 'consent');
    }
    req.url = `${url.pathname}${url.search}`;
    next();
  });

  // --- Sign-in page (oidc-provider interactions) ---
  const loginAction = (uid: string): string => `/${tid}/login/${encodeURIComponent(uid)}`;
  const clientName = (clientId: unknown): string => clients.get(String(clientId))?.name ?? 'an application';

  web.get(`${tidPath}/login/:uid`, async (req, res) => {
    let interaction;
    try {
      interaction = await provider.interactionDetails(req, res);
    } catch {
      html(res, 400, messagePage('Sign-in session expired', 'This sign-in request is no longer valid. Start again from the application.'));
      return;
    }
    if (interaction.prompt.name === 'login') {
      html(res, 200, loginPage({
        action: loginAction(interaction.uid),
        tenantName: tenant.tenant.name,
        clientName: clientName(interaction.params['client_id']),
        username: stringParam(interaction.params['login_hint']),
      }));
      return;
    }
    // Consent: the tenant admin has consented for everyone, as is usual for line-of-business apps.
    const details = interaction.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    const accountId = interaction.session?.accountId;
    if (!accountId) {
      html(res, 400, messagePage('Sign-in session expired', 'No signed-in user for this request. Start again from the application.'));
      return;
    }
    const grant =
      (interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined) ??
      new provider.Grant({ accountId, clientId: String(interaction.params['client_id']) });
    if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
    if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  });

  web.post(`${tidPath}/login/:uid`, express.urlencoded({ extended: false, limit: '8kb' }), async (req, res) => {
    let interaction;
    try {
      interaction = await provider.interactionDetails(req, res);
    } catch {
      html(res, 400, messagePage('Sign-in session expired', 'This sign-in request is no longer valid. Start again from the application.'));
      return;
    }
    const body = (req.body ?? {}) as Record<string, unknown>;
    const username = stringParam(body['username'])?.trim() ?? '';
    const password = stringParam(body['password']) ?? '';
    const user = usersByName.get(username.toLowerCase());
    if (interaction.prompt.name !== 'login') {
      html(res, 400, messagePage('Unexpected request', 'This sign-in step does not take a password.'));
      return;
    }
    if (!user || user.password !== password) {
      html(res, 200, loginPage({
        action: loginAction(interaction.uid),
        tenantName: tenant.tenant.name,
        clientName: clientName(interaction.params['client_id']),
        username,
        error: user
          ? "Your account or password is incorrect. If you don't remember your password, reset it now."
          : "This username may be incorrect. Make sure you typed it correctly.",
      }));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: user.oid } }, { mergeWithLastSubmission: false });
  });

  // --- End session: Entra signs out and redirects without a confirmation form ---
  const logout = async (req: Request, res: Response): Promise<void> => {
    const params = { ...(req.query as Record<string, unknown>), ...((req.body ?? {}) as Record<string, unknown>) };
    const postLogout = stringParam(params['post_logout_redirect_uri']);
    const state = stringParam(params['state']);
    let clientId = stringParam(params['client_id']);
    const hint = stringParam(params['id_token_hint']);
    if (hint) {
      try {
        const { kid } = decodeProtectedHeader(hint);
        const key = kid ? ring.publicKeyFor(kid) : undefined;
        if (!key) throw new Error('unknown kid');
        const { payload } = await compactVerify(hint, key, { algorithms: ['RS256'] });
        const claims = JSON.parse(Buffer.from(payload).toString()) as Record<string, unknown>;
        if (claims['iss'] !== issuer) throw new Error('foreign issuer');
        const aud = stringParam(claims['aud']);
        if (clientId && aud !== clientId) throw new Error('client mismatch');
        clientId = aud;
      } catch {
        html(res, 400, messagePage('Sign-out failed', 'The id_token_hint is not a token this tenant issued.'));
        return;
      }
    }
    if (postLogout) {
      const client = clientId ? clients.get(clientId) : undefined;
      if (!client || !redirectAllowed(client, postLogout, client.postLogoutRedirectUris)) {
        html(res, 400, messagePage('Sign-out failed', 'The post_logout_redirect_uri is not registered for this application.'));
        return;
      }
    }
    const sessionId = cookieValue(req, '_session');
    if (sessionId) {
      const session = await provider.Session.find(sessionId);
      await session?.destroy();
    }
    for (const name of ['_session', '_session.sig']) res.clearCookie(name, { path: '/' });
    if (postLogout) {
      const target = new URL(postLogout);
      if (state) target.searchParams.set('state', state);
      res.redirect(302, target.href);
      return;
    }
    html(res, 200, messagePage('You signed out of your account', "It's a good idea to close all browser windows."));
  };
  web.get(`${tidPath}/oauth2/v2.0/logout`, logout);
  web.post(`${tidPath}/oauth2/v2.0/logout`, express.urlencoded({ extended: false, limit: '16kb' }), logout);

  // Everything else under /{tid} is oidc-provider (authorize, token, userinfo, interactions' resume).
  web.use(tidPath, (req, res) => providerCallback(req, res));

  web.use((_req: Request, res: Response) => {
    res.status(404).json({ error: 'not_found' });
  });
  // Malformed bodies and anything unexpected: a clear 400 rather than Express' HTML 500 page.
  // Express recognises an error handler by its four parameters.
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  web.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const status = (err as { status?: number }).status;
    const code = status && status >= 400 && status < 500 ? status : 400;
    log?.warn({ event: 'request_refused', status: code, err: err instanceof Error ? err.message.split('\n')[0] : String(err) }, 'request refused');
    if (!res.headersSent) res.status(code).json({ error: 'invalid_request', error_description: 'The request could not be processed.' });
  });

  handler = web;

  return {
    baseUrl,
    tenantId: tid,
    issuer,
    metadataUrl: urls.metadata,
    tokenEndpoint: urls.token,
    authorizationEndpoint: urls.authorize,
    endSessionEndpoint: urls.logout,
    jwksUri: urls.jwks,
    adoIssuer: ado.issuer,
    adoOidcRequestUri: `${ado.issuer}/oidctoken`,
    tenant,
    rotateSigningKeys: (options?: RotateOptions) => ring.rotate(options),
    currentSigningKid: () => ring.currentKid,
    setJwksAvailable: (ok: boolean) => {
      jwksAvailable = ok;
    },
    mintAdoToken: (options?: MintAdoTokenOptions) => ado.mint(options),
    adoSubject: (serviceConnectionId: string) => ado.subjectFor(serviceConnectionId),
    pairwiseSubject,
    close: () =>
      new Promise<void>((ok, fail) => {
        server.close((err) => (err ? fail(err) : ok()));
        server.closeAllConnections();
        store.clear();
      }),
  };
}
