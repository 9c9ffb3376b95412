import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, isLoopbackHost, port, secureUrl } from '@keyserver/config';
import { canonicalEndpoint } from '@keyserver/data-access';

/** An empty value counts as unset (compose files pass `${SMTP_HOST:-}` through as ""). */
const unsetIfEmpty = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === '' ? undefined : v), schema);

/** Notification variables of the API's environment (README "Configuration"; docs/notifications.md). */
export const notifyEnvSchema = {
  // Where the admin SPA is served (the keyclient's public URL): messages link to its pages, never to an action.
  NOTIFY_SPA_URL: unsetIfEmpty(secureUrl().optional()),
  SMTP_HOST: unsetIfEmpty(z.string().min(1).max(253).optional()),
  SMTP_PORT: unsetIfEmpty(port(587)),
  // starttls (default): STARTTLS required; implicit: TLS from the first byte (port 465); none: loopback hosts only.
  SMTP_TLS: unsetIfEmpty(z.enum(['starttls', 'implicit', 'none']).default('starttls')),
  SMTP_TLS_CA_FILE: unsetIfEmpty(z.string().min(1).optional()),
  SMTP_USER: unsetIfEmpty(z.string().min(1).optional()),
  SMTP_PASSWORD: unsetIfEmpty(z.string().min(1).optional()),
  SMTP_PASSWORD_FILE: unsetIfEmpty(z.string().min(1).optional()),
  SMTP_FROM: unsetIfEmpty(z.string().min(3).max(320).optional()),
  // JSON array: [{"name":"teams","url":"https://…","format":"teams","secretFile":"/run/secrets/teams"}]
  NOTIFY_WEBHOOKS: unsetIfEmpty(z.string().optional()),
  NOTIFY_MAX_ATTEMPTS: unsetIfEmpty(z.coerce.number().int().min(1).max(50).default(8)),
  NOTIFY_RETRY_BASE_MS: unsetIfEmpty(z.coerce.number().int().min(10).max(3_600_000).default(30_000)),
  NOTIFY_RETRY_MAX_MS: unsetIfEmpty(z.coerce.number().int().min(10).max(86_400_000).default(3_600_000)),
  NOTIFY_POLL_MS: unsetIfEmpty(z.coerce.number().int().min(50).max(600_000).default(2_000)),
  NOTIFY_SEND_TIMEOUT_MS: unsetIfEmpty(z.coerce.number().int().min(100).max(120_000).default(20_000)),
  NOTIFY_DB_POOL_SIZE: unsetIfEmpty(z.coerce.number().int().min(1).max(10).default(2)),
  // Finished events (every delivery SENT, SKIPPED or DEAD) are deleted after this many days.
  NOTIFY_RETENTION_DAYS: unsetIfEmpty(z.coerce.number().int().min(1).max(3650).default(90)),
  // Approval-request emails per recipient address and hour, across replicas; past it, one notice, the rest held back.
  NOTIFY_RECIPIENT_HOURLY_MAX: unsetIfEmpty(z.coerce.number().int().min(1).max(10_000).default(20)),
  // Approval-request calls per webhook endpoint and hour, across replicas; past it, one summary call, the rest held back.
  NOTIFY_WEBHOOK_HOURLY_MAX: unsetIfEmpty(z.coerce.number().int().min(1).max(10_000).default(60)),
};

export type WebhookFormat = 'keyserver' | 'slack' | 'teams';

export interface WebhookEndpoint {
  name: string;
  url: string;
  format: WebhookFormat;
  /** HMAC-SHA256 key; required for the keyserver format (Slack and Teams incoming webhooks check none: their URL is the secret). */
  secret: string | null;
}

export interface NotifyConfig {
  spaUrl: string | null;
  smtp: {
    host: string;
    port: number;
    tls: 'starttls' | 'implicit' | 'none';
    ca: string | null;
    user: string | null;
    password: string | null;
    from: string;
  } | null;
  webhooks: WebhookEndpoint[];
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  pollMs: number;
  sendTimeoutMs: number;
  /** Lease on a claimed delivery: longer than any send can take (timeout), so no other replica sends it meanwhile. */
  leaseMs: number;
  dbPoolSize: number;
  retentionDays: number;
  /** Approval-request emails per recipient address and hour (ADR 0023 addendum); one notice past it, the rest SKIPPED. */
  recipientHourlyMax: number;
  /** Approval-request calls per webhook endpoint and hour (ADR 0023 addendum); one summary call past it, the rest SKIPPED. */
  webhookHourlyMax: number;
}

const Webhook = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'names are 1-64 characters [a-z0-9_-]'),
  url: secureUrl(),
  format: z.enum(['keyserver', 'slack', 'teams']).default('keyserver'),
  secret: z.string().min(32, 'secrets have at least 32 characters').optional(),
  secretFile: z.string().min(1).optional(),
});

type NotifyEnv = z.output<z.ZodObject<typeof notifyEnvSchema>>;

/** Checks the notification variables together (the fields alone are checked by the schema). */
export function notifyConfig(raw: NotifyEnv): NotifyConfig {
  let smtp: NotifyConfig['smtp'] = null;
  if (raw.SMTP_HOST) {
    if (!raw.SMTP_FROM) throw new ConfigError('SMTP_FROM', 'is required when SMTP_HOST is set');
    if (raw.SMTP_TLS === 'none' && !isLoopbackHost(raw.SMTP_HOST)) throw new ConfigError('SMTP_TLS', 'none is allowed only for loopback hosts');
    let password = raw.SMTP_PASSWORD ?? null;
    if (!password && raw.SMTP_PASSWORD_FILE) password = readSecretFile('SMTP_PASSWORD_FILE', raw.SMTP_PASSWORD_FILE, 1);
    if (raw.SMTP_USER && !password) throw new ConfigError('SMTP_PASSWORD', 'is required when SMTP_USER is set (or set SMTP_PASSWORD_FILE)');
    let ca: string | null = null;
    if (raw.SMTP_TLS_CA_FILE) {
      if (!existsSync(raw.SMTP_TLS_CA_FILE)) throw new ConfigError('SMTP_TLS_CA_FILE', `no such file: ${raw.SMTP_TLS_CA_FILE}`);
      ca = readFileSync(raw.SMTP_TLS_CA_FILE, 'utf8');
    }
    smtp = { host: raw.SMTP_HOST, port: raw.SMTP_PORT, tls: raw.SMTP_TLS, ca, user: raw.SMTP_USER ?? null, password, from: raw.SMTP_FROM };
  }
  const webhooks = parseWebhooks(raw.NOTIFY_WEBHOOKS);
  if (raw.NOTIFY_RETRY_MAX_MS < raw.NOTIFY_RETRY_BASE_MS) throw new ConfigError('NOTIFY_RETRY_MAX_MS', 'must be at least NOTIFY_RETRY_BASE_MS');
  return {
    spaUrl: raw.NOTIFY_SPA_URL ? raw.NOTIFY_SPA_URL.replace(/\/+$/, '') : null,
    smtp,
    webhooks,
    maxAttempts: raw.NOTIFY_MAX_ATTEMPTS,
    retryBaseMs: raw.NOTIFY_RETRY_BASE_MS,
    retryMaxMs: raw.NOTIFY_RETRY_MAX_MS,
    pollMs: raw.NOTIFY_POLL_MS,
    sendTimeoutMs: raw.NOTIFY_SEND_TIMEOUT_MS,
    leaseMs: Math.max(60_000, 3 * raw.NOTIFY_SEND_TIMEOUT_MS),
    dbPoolSize: raw.NOTIFY_DB_POOL_SIZE,
    retentionDays: raw.NOTIFY_RETENTION_DAYS,
    recipientHourlyMax: raw.NOTIFY_RECIPIENT_HOURLY_MAX,
    webhookHourlyMax: raw.NOTIFY_WEBHOOK_HOURLY_MAX,
  };
}

function parseWebhooks(text: string | undefined): WebhookEndpoint[] {
  if (!text?.trim()) return [];
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ConfigError('NOTIFY_WEBHOOKS', 'is not valid JSON (expected an array of {name, url, format, secret | secretFile})');
  }
  const parsed = z.array(Webhook).max(20).safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    // Never echo a value: the path and the rule only.
    throw new ConfigError(`NOTIFY_WEBHOOKS[${issue.path.map(String).join('.')}]`, issue.message);
  }
  const names = new Set<string>();
  return parsed.data.map((w, i) => {
    if (names.has(w.name)) throw new ConfigError(`NOTIFY_WEBHOOKS[${i}].name`, 'is used twice');
    names.add(w.name);
    const secret = w.secret ?? (w.secretFile ? readSecretFile(`NOTIFY_WEBHOOKS[${i}].secretFile`, w.secretFile, 32) : null);
    if (w.format === 'keyserver' && !secret) throw new ConfigError(`NOTIFY_WEBHOOKS[${i}].secret`, 'is required for the keyserver format (or set secretFile)');
    return { name: w.name, url: w.url, format: w.format, secret };
  });
}

function readSecretFile(variable: string, file: string, min: number): string {
  if (!existsSync(file)) throw new ConfigError(variable, `no such file: ${file}`);
  const value = readFileSync(file, 'utf8').trim();
  if (value.length < min) throw new ConfigError(variable, `the file does not hold a secret of at least ${min} characters`);
  return value;
}

/** A webhook URL as it may appear in logs: its origin only (a Slack or Teams URL's path and query are bearer secrets). */
const maskedUrl = (url: string): string => `${new URL(url).origin}/***`;

/**
 * NOTIFY_WEBHOOKS entries that reach one endpoint (one canonical URL, as the per-endpoint cap counts it: ADR 0023
 * addendum "one endpoint, one cap"), in the order configured; one group per shared URL with its masked URL.
 */
export function duplicateWebhookEndpoints(c: NotifyConfig): { names: string[]; entries: string[]; url: string }[] {
  const groups = new Map<string, { names: string[]; entries: string[]; url: string }>();
  c.webhooks.forEach((w, i) => {
    const canonical = canonicalEndpoint(w.url);
    const g = groups.get(canonical) ?? { names: [], entries: [], url: maskedUrl(canonical) };
    g.names.push(w.name);
    g.entries.push(`NOTIFY_WEBHOOKS[${i}] "${w.name}"`);
    groups.set(canonical, g);
  });
  return [...groups.values()].filter((g) => g.names.length > 1);
}

/**
 * What the boot logs as warnings (one line each): webhook names sharing an endpoint. Not refused: it booted before
 * (a rename rolled out in two steps keeps both names a while), but every notification is posted there once per name,
 * under different delivery ids (the receiver cannot dedupe them), and the names share one hourly cap.
 */
export function notifyConfigWarnings(c: NotifyConfig): string[] {
  return duplicateWebhookEndpoints(c).map(
    (g) =>
      `${g.entries.join(', ')} have the same endpoint URL ${g.url}: every notification is posted to it ${g.names.length} times (once per name, each with its own delivery id) and they share one hourly cap (NOTIFY_WEBHOOK_HOURLY_MAX); keep one of them`,
  );
}

/** The notification config as it may appear in logs: secrets, credentials and webhook paths (Slack/Teams URLs are bearer secrets) masked. */
export function describeNotifyConfig(c: NotifyConfig): Record<string, unknown> {
  return {
    ...c,
    smtp: c.smtp ? { ...c.smtp, password: c.smtp.password ? '***' : null, ca: c.smtp.ca ? '(file)' : null } : null,
    webhooks: c.webhooks.map((w) => ({ name: w.name, format: w.format, url: maskedUrl(w.url), secret: w.secret ? '***' : null })),
  };
}
