import { isIP } from 'node:net';
import { z } from 'zod';
import { checkInsecureLoopback, ConfigError, httpEdgeEnvShape, httpEdgeSettings, insecureLoopbackFlag, type HttpEdgeSettings, isLoopbackHost, loadConfig, maskSecrets, port, postgresUrl, secureUrl, guid } from '@keyserver/config';
import { metricsConfig, metricsEnvShape, type MetricsConfig } from '@keyserver/observability';

/** The only callback path the keyclient registers with Entra (integration guide, REDIRECT_URI). */
export const CALLBACK_PATH = '/login/oauth2/code/keyserver-client';

const positiveNumber = () => z.coerce.number().positive().finite();

const booleanFlag = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0'], { message: 'must be true or false' })
    .optional()
    .transform((v) => (v === undefined ? fallback : v === 'true' || v === '1'));

const encryptionKey = () =>
  z.string().transform((value, ctx) => {
    const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(value) ? Buffer.from(value, 'base64') : Buffer.alloc(0);
    if (bytes.length !== 32) {
      ctx.addIssue({ code: 'custom', message: 'must be 32 bytes encoded as base64' });
      return z.NEVER;
    }
    return bytes;
  });

/** The keyclient's public origin: no path, query or fragment, so it can be compared with Origin headers. */
const publicUrl = () =>
  secureUrl().transform((value, ctx) => {
    const url = new URL(value);
    if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
      ctx.addIssue({ code: 'custom', message: 'must be an origin without path, query or fragment' });
      return z.NEVER;
    }
    return url.origin;
  });

const redirectUri = () =>
  secureUrl().superRefine((value, ctx) => {
    const url = new URL(value);
    if (url.pathname !== CALLBACK_PATH || url.search || url.hash) {
      ctx.addIssue({ code: 'custom', message: `path must be ${CALLBACK_PATH} with no query or fragment` });
    }
  });

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** The interface to listen on: an IP address or a DNS name. Loopback unless the operator says otherwise. */
const listenHost = () =>
  z
    .string()
    .default('127.0.0.1')
    .refine((value) => /^[A-Za-z0-9.:-]+$/.test(value) && (isIP(value) !== 0 || HOSTNAME.test(value)), {
      message: 'must be an IP address (no zone, no brackets) or a host name',
    });

const upstreamUrl = () =>
  z.string().superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be an absolute http(s) URL' });
      return;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      ctx.addIssue({ code: 'custom', message: 'must be an absolute http(s) URL' });
    } else if (url.username || url.password || url.search || url.hash) {
      ctx.addIssue({ code: 'custom', message: 'must not contain credentials, query or fragment' });
    }
  });

const keyclientEnvSchema = z
  .object({
    TENANT_ID: guid(),
    APPLICATION_ID: guid(),
    CLIENT_SECRET: z.string().min(1, 'must not be empty'),
    OPENID_CONNECT_METADATA_DOCUMENT: secureUrl(),
    // Plain http on a loopback host for the metadata, its issuer and the provider's endpoints: the Entra emulator only
    // (npm start, compose, the dev overlay, the tests set it). The API's setting, same meaning: off by default, refused
    // with an https metadata URL (ADR 0043 addendum "insecure loopback").
    OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK: insecureLoopbackFlag(),
    REDIRECT_URI: redirectUri(),
    KEYSERVER_API_URL: upstreamUrl(),
    DATABASE_URL: postgresUrl(),
    KEYCLIENT_HOST: listenHost(),
    KEYCLIENT_PORT: port(8080),
    SESSION_ENCRYPTION_KEY: encryptionKey(),
    // Bounded so that a deadline is always a valid date (a huge value made every login fail) and a session ends
    // within a day of inactivity and a month at most.
    SESSION_IDLE_MINUTES: positiveNumber().max(1440, 'must be at most 1440 (one day)').default(30),
    SESSION_ABSOLUTE_HOURS: positiveNumber().max(720, 'must be at most 720 (30 days)').default(12),
    KEYCLIENT_PUBLIC_URL: publicUrl(),
    SPA_DIST_DIR: z.string().min(1).default('dist/apps/admin-spa/browser'),
    COOKIE_SECURE: booleanFlag(true),
    TOKEN_REFRESH_SKEW_SECONDS: z.coerce.number().int().min(0).max(3600).default(60),
    PROXY_MAX_BODY_BYTES: z.coerce.number().int().positive().default(1024 * 1024),
    PROXY_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    // The API's transport settings, same names, meanings and defaults: slow senders answered 408 request_timeout,
    // connections per process and per client address (ADR 0043 addendum "the keyclient's transport").
    ...httpEdgeEnvShape,
    // Prometheus metrics on their own listener, never through the public port or the proxy (docs/adr/0022-metrics-endpoint.md).
    ...metricsEnvShape,
  })
  .superRefine((env, ctx) => {
    if (new URL(env.REDIRECT_URI).origin !== env.KEYCLIENT_PUBLIC_URL) {
      ctx.addIssue({ code: 'custom', path: ['REDIRECT_URI'], message: 'must be on the KEYCLIENT_PUBLIC_URL origin' });
    }
    // Browsers see the public URL: over https a cookie without Secure and the __Host- prefix could be planted by a
    // sibling host, and nothing needs it (TLS ended in front of the keyclient still makes the browser's view https).
    if (!env.COOKIE_SECURE && env.KEYCLIENT_PUBLIC_URL.startsWith('https:')) {
      ctx.addIssue({ code: 'custom', path: ['COOKIE_SECURE'], message: 'must be true when KEYCLIENT_PUBLIC_URL is https' });
    }
  });

/** Every variable the keyclient reads (deployment manifests are checked against it: a misspelt name would be ignored). */
export const KEYCLIENT_CONFIG_VARIABLES: readonly string[] = Object.keys(keyclientEnvSchema.shape);

/** Validated keyclient configuration. */
export interface KeyclientConfig {
  tenantId: string;
  clientId: string;
  clientSecret: string;
  metadataDocumentUrl: string;
  /** OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK: plain http to a loopback provider (the emulator) is meant. */
  allowInsecureLoopback: boolean;
  redirectUri: string;
  keyserverApiUrl: string;
  databaseUrl: string;
  /** Interface the server listens on (KEYCLIENT_HOST, default 127.0.0.1). */
  host: string;
  port: number;
  sessionEncryptionKey: Buffer;
  sessionIdleMs: number;
  sessionAbsoluteMs: number;
  publicOrigin: string;
  spaDistDir: string;
  cookieSecure: boolean;
  refreshSkewMs: number;
  proxyMaxBodyBytes: number;
  proxyTimeoutMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** The metrics listener (METRICS_PORT, METRICS_HOST, METRICS_TOKEN_FILE); undefined = none. */
  metrics?: MetricsConfig;
  /** Timeouts and connection limits of the public listener (HTTP_HEADERS_TIMEOUT_MS, …, HTTP_MAX_CONNECTIONS_PER_IP). */
  transport: HttpEdgeSettings;
}

/** Reads and validates the keyclient environment; throws ConfigError naming the first bad variable. */
export function loadKeyclientConfig(env: Record<string, string | undefined>): KeyclientConfig {
  const e = loadConfig(keyclientEnvSchema, env);
  // One endpoint that always reaches the primary (ADR 0026): node-postgres connects to one host, so a libpq
  // multi-host list is refused here instead of being reduced to its first host.
  if (/^postgres(?:ql)?:\/\/(?:[^@/?#]*@)?[^/?#]*,/.test(e.DATABASE_URL)) {
    throw new ConfigError('DATABASE_URL', 'lists several hosts; point it at one endpoint that always reaches the primary (HAProxy with Patroni checks, or the CloudNativePG -rw Service)');
  }
  checkInsecureLoopback(e.OPENID_CONNECT_METADATA_DOCUMENT, e.OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK);
  const transport = httpEdgeSettings(e);
  return {
    tenantId: e.TENANT_ID,
    clientId: e.APPLICATION_ID,
    clientSecret: e.CLIENT_SECRET,
    metadataDocumentUrl: e.OPENID_CONNECT_METADATA_DOCUMENT,
    allowInsecureLoopback: e.OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK,
    redirectUri: e.REDIRECT_URI,
    keyserverApiUrl: e.KEYSERVER_API_URL,
    databaseUrl: e.DATABASE_URL,
    host: e.KEYCLIENT_HOST,
    port: e.KEYCLIENT_PORT,
    sessionEncryptionKey: e.SESSION_ENCRYPTION_KEY,
    sessionIdleMs: Math.round(e.SESSION_IDLE_MINUTES * 60_000),
    sessionAbsoluteMs: Math.round(e.SESSION_ABSOLUTE_HOURS * 3_600_000),
    publicOrigin: e.KEYCLIENT_PUBLIC_URL,
    spaDistDir: e.SPA_DIST_DIR,
    cookieSecure: e.COOKIE_SECURE,
    refreshSkewMs: e.TOKEN_REFRESH_SKEW_SECONDS * 1000,
    proxyMaxBodyBytes: e.PROXY_MAX_BODY_BYTES,
    proxyTimeoutMs: e.PROXY_TIMEOUT_MS,
    logLevel: e.LOG_LEVEL,
    metrics: metricsConfig(e),
    transport,
  };
}

/** The configuration as it may appear in logs: secrets masked, DB credentials stripped. */
export function describeKeyclientConfig(config: KeyclientConfig): Record<string, unknown> {
  return maskSecrets({
    TENANT_ID: config.tenantId,
    APPLICATION_ID: config.clientId,
    CLIENT_SECRET: config.clientSecret,
    OPENID_CONNECT_METADATA_DOCUMENT: config.metadataDocumentUrl,
    OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK: config.allowInsecureLoopback,
    REDIRECT_URI: config.redirectUri,
    KEYSERVER_API_URL: config.keyserverApiUrl,
    DATABASE_URL: config.databaseUrl,
    KEYCLIENT_HOST: config.host,
    KEYCLIENT_PORT: config.port,
    SESSION_ENCRYPTION_KEY: config.sessionEncryptionKey,
    SESSION_IDLE_MINUTES: config.sessionIdleMs / 60_000,
    SESSION_ABSOLUTE_HOURS: config.sessionAbsoluteMs / 3_600_000,
    KEYCLIENT_PUBLIC_URL: config.publicOrigin,
    SPA_DIST_DIR: config.spaDistDir,
    COOKIE_SECURE: config.cookieSecure,
    METRICS_HOST: config.metrics?.host,
    METRICS_PORT: config.metrics?.port,
    METRICS_TOKEN: config.metrics?.token,
    HTTP_HEADERS_TIMEOUT_MS: config.transport.headersTimeoutMs,
    HTTP_REQUEST_TIMEOUT_MS: config.transport.requestTimeoutMs,
    HTTP_MAX_CONNECTIONS: config.transport.maxConnections,
    HTTP_MAX_CONNECTIONS_PER_IP: config.transport.maxConnectionsPerIp,
    HTTP_SHUTDOWN_GRACE_MS: config.transport.shutdownGraceMs,
  });
}

/**
 * What the boot log warns about trusting the provider over plain http (ADR 0043 addendum "insecure loopback"). The
 * keyclient has no KEYSERVER_MODE; a public URL off loopback means browsers elsewhere, its "production".
 */
export function insecureLoopbackWarnings(c: KeyclientConfig): string[] {
  if (!c.allowInsecureLoopback || isLoopbackUrl(c.publicOrigin)) return [];
  return [`OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK=true with KEYCLIENT_PUBLIC_URL ${c.publicOrigin}: logins are checked against a provider reached over plain http on loopback (the Entra emulator); a real installation uses Entra ID over https`];
}

/** True when the URL's host is a loopback address, where plain http is tolerated (with the setting above). */
export function isLoopbackUrl(url: string): boolean {
  return isLoopbackHost(new URL(url).hostname);
}
