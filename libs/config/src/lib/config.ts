import { z } from 'zod';
import { maskUrlCredentials } from './redact';

/**
 * Raised when the environment does not satisfy an app's schema. `message` is one line that
 * names the variable and never contains a secret's value.
 */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    readonly reason: string,
  ) {
    super(`configuration error: ${variable}: ${reason}`);
    this.name = 'ConfigError';
  }
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** True for localhost, ::1 and the whole 127.0.0.0/8 range. */
export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname) || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** An absolute URL that must be https, except on loopback hosts where http is allowed. */
export const secureUrl = () =>
  z.string().superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be an absolute URL' });
      return;
    }
    if (url.protocol === 'https:') return;
    if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return;
    ctx.addIssue({ code: 'custom', message: 'must use https (plain http is allowed only for loopback hosts)' });
  });

/** A GUID as Entra writes tenant and application ids. */
/**
 * OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK, read alike by the API and the keyclient: plain http to a loopback OpenID
 * provider (the Entra emulator) is meant. Off unless set; `true`/`false`/`1`/`0`.
 */
export const insecureLoopbackFlag = () =>
  z
    .enum(['true', 'false', '1', '0'], { message: 'must be true or false' })
    .default('false')
    .transform((v) => v === 'true' || v === '1');

/**
 * The one rule for that setting (ADR 0011 and ADR 0043 addenda "insecure loopback"): secureUrl() lets plain http
 * through for a loopback host, and the setting says whether that is meant (a local process posing as the provider
 * would otherwise publish the keys, or receive the client secret). Required with an http metadata URL, refused with
 * an https one (there it would only let the document name endpoints reached over plain http).
 */
export function checkInsecureLoopback(metadataUrl: string, allowInsecureLoopback: boolean): void {
  const httpMetadata = new URL(metadataUrl).protocol === 'http:';
  if (httpMetadata && !allowInsecureLoopback) {
    throw new ConfigError('OPENID_CONNECT_METADATA_DOCUMENT', 'must use https (plain http on a loopback host is for the Entra emulator only: set OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK=true)');
  }
  if (!httpMetadata && allowInsecureLoopback) {
    throw new ConfigError('OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK', 'is only for a plain-http loopback OPENID_CONNECT_METADATA_DOCUMENT (the Entra emulator); with https it would only let the document name endpoints reached over plain http');
  }
}

export const guid = () =>
  z
    .string()
    .regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, 'must be a GUID')
    .transform((s) => s.toLowerCase());

export const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);

export const postgresUrl = () =>
  z.string().refine((v) => /^postgres(ql)?:\/\//.test(v), 'must be a postgresql:// URL');

export const csv = () =>
  z
    .string()
    .default('')
    .transform((s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    );

/**
 * Validates `env` against `schema`. The first problem becomes a ConfigError naming its variable.
 * Values are never echoed, so secrets cannot leak through the error line.
 */
export function loadConfig<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>): z.output<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const variable = issue.path.length ? issue.path.map(String).join('.') : '(environment)';
  const reason = issue.code === 'invalid_type' && env[variable] === undefined ? 'is required but not set' : issue.message;
  throw new ConfigError(variable, reason);
}

const SECRET_NAME = /(SECRET|PASSWORD|PIN|TOKEN|KEY)$/i;

/** A copy of a config object fit for logs: secret-looking keys masked, credentials stripped from URLs. */
export function maskSecrets(config: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    if (SECRET_NAME.test(k) && !/_(FILE|URL|URI|ID|LABEL)$/i.test(k)) out[k] = v === undefined ? undefined : '***';
    else if (typeof v === 'string' && /^[a-z][a-z0-9+.-]*:\/\//i.test(v)) out[k] = maskUrlCredentials(v);
    else out[k] = v;
  }
  return out;
}

/**
 * Runs `main`, turning a ConfigError (or any boot failure) into one clear line on stderr and a
 * non-zero exit code instead of a stack trace.
 */
export async function runOrExit(appName: string, main: () => Promise<unknown>): Promise<void> {
  try {
    await main();
  } catch (err) {
    const line = err instanceof Error ? err.message.split('\n')[0] : String(err);
    process.stderr.write(`${appName}: ${line}\n`);
    process.exit(err instanceof ConfigError ? 78 : 1);
  }
}

/** How long the servers keep an idle keep-alive connection (Node's default is 5 s). */
export const KEEP_ALIVE_IDLE_MS = 65_000;

/**
 * Keeps idle keep-alive connections for {@link KEEP_ALIVE_IDLE_MS}. A client that sends on a connection at the moment
 * the server closes it for idleness gets "other side closed" / ECONNRESET; clients (fetch, the keyclient's proxy
 * agent) drop idle connections one second before the `Keep-Alive: timeout` the server announces, and load balancers
 * typically after 60 s, so the server must be the last to give up.
 */
export function keepIdleConnections(server: { keepAliveTimeout: number; headersTimeout: number }): void {
  server.keepAliveTimeout = KEEP_ALIVE_IDLE_MS;
  // Node before 18 misbehaved unless this exceeded keepAliveTimeout; it also bounds slow header senders.
  server.headersTimeout = KEEP_ALIVE_IDLE_MS + 1_000;
}
