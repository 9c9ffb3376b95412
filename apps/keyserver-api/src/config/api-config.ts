import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { AUDIT_CHECKPOINT_POLICY_OID } from '@keyserver/audit-chain';
import { checkInsecureLoopback, ConfigError, csv, guid, httpEdgeEnvShape, httpEdgeSettings, insecureLoopbackFlag, loadConfig, maskUrlCredentials, port, postgresUrl, secureUrl } from '@keyserver/config';
import { describeNotifyConfig, notifyConfig, notifyEnvSchema } from '../notifications/notify-config';
import { CONNECTION_DEFAULTS, parseDatabaseUrl, type DatabasePooler } from '@keyserver/data-access';
import { metricsConfig, metricsEnvShape } from '@keyserver/observability';
import { DEFAULT_TSA_MAX_SKEW_MS, pemBlocks, PkiError, readTsaCrls, type TsaCrl, type TsaTrust } from '@keyserver/pki';

/** A UUID-based OID (ITU-T X.667, arc 2.25): the demo policy; production sets its own TSA_POLICY_OID. */
export const DEFAULT_TSA_POLICY_OID = '2.25.71464660586911067804008473257468327654';

/** The transport's defaults, shared with the keyclient (libs/config http-edge). */
export { HTTP_CONNECTION_DEFAULTS, HTTP_TIMEOUT_DEFAULTS } from '@keyserver/config';

const schema = z
  .object({
    TENANT_ID: guid(),
    APPLICATION_ID: guid(),
    OPENID_CONNECT_METADATA_DOCUMENT: secureUrl(),
    // Plain http on a loopback host for the metadata, its issuer and its JWKS: the Entra emulator only (npm start,
    // compose, the dev overlay, the tests set it). Off by default; refused with an https metadata URL (ADR 0011
    // addendum "insecure loopback").
    OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK: insecureLoopbackFlag(),
    APP_ROLE: z.string().min(1).optional(),
    APP_ROLES: csv(),
    KEYCLIENT_CLIENT_ID: guid().optional(),
    PROVISIONING_CLIENT_IDS: csv(),
    DATABASE_URL: postgresUrl(),
    DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(100).default(10),
    // Failover bounds (ADR 0026): each one hit is a 503 database_unavailable + Retry-After, never a hang.
    DATABASE_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(CONNECTION_DEFAULTS.connectTimeoutMs),
    DATABASE_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(0).max(3_600_000).default(CONNECTION_DEFAULTS.statementTimeoutMs),
    DATABASE_LOCK_TIMEOUT_MS: z.coerce.number().int().min(0).max(3_600_000).default(CONNECTION_DEFAULTS.lockTimeoutMs),
    // transaction: DATABASE_URL is a transaction-pooling PgBouncer; nothing relies on the session (docs/scaling.md).
    DATABASE_POOLER: z.enum(['none', 'transaction'] as const satisfies readonly DatabasePooler[]).default('none'),
    // A session connection that bypasses any pooler: the migrations' advisory lock, the access cache's LISTEN and the
    // operator commands.
    DATABASE_DIRECT_URL: postgresUrl().optional(),
    PKCS11_MODULE: z.string().min(1),
    PKCS11_TOKEN_LABEL: z.string().min(1).max(32),
    PKCS11_PIN: z.string().min(4).optional(),
    PKCS11_PIN_FILE: z.string().min(1).optional(),
    PKCS11_POOL_SIZE: z.coerce.number().int().min(1).max(64).default(4),
    // Worker threads that sign (ADR 0008); unset = min(pool size, CPUs), 0 = the libuv pool only.
    PKCS11_SIGN_WORKERS: z.coerce.number().int().min(0).max(64).optional(),
    KEYSERVER_API_HOST: z.string().default('127.0.0.1'),
    KEYSERVER_API_PORT: port(3000),
    KEYSERVER_PUBLIC_URL: secureUrl().optional(),
    ADMIN_SESSION_APPROVALS: z.coerce.number().int().min(1).max(10).default(2),
    ADMIN_SESSION_MINUTES: z.coerce.number().int().min(1).max(24 * 60).default(60),
    MAX_BODY_BYTES: z.coerce.number().int().min(1024).max(1 << 20).default(64 * 1024),
    FIRMWARE_MAX_BYTES: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(4 * 1024 ** 3),
    // How long a usage taken for a signature stays reserved if its replica dies before storing the result.
    USAGE_LEASE_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
    // How often each replica checks every live CA key version's CRL (re-signed when an hour old or changed; ADR 0029).
    CRL_REFRESH_SECONDS: z.coerce.number().int().min(1).max(3600).default(300),
    // How often each replica seals the audit chain's head with the TSA when it moved (ADR 0048); 0 = no checkpoints.
    AUDIT_CHECKPOINT_INTERVAL_MS: z.coerce
      .number()
      .int()
      .min(0)
      .max(86_400_000)
      .refine((v) => v === 0 || v >= 100, 'is 0 (off) or at least 100 ms')
      .default(60_000),
    // Subject and key lookups cached per process, flushed on every change via LISTEN/NOTIFY (ADR 0028); 0 = off.
    // The listener holds a session on DATABASE_DIRECT_URL (DATABASE_URL without a pooler).
    ACCESS_CACHE_TTL_MS: z.coerce.number().int().min(0).max(60_000).default(5_000),
    // Nesting depth of a JSON body (objects and arrays); deeper bodies get 400 json_too_deep.
    MAX_JSON_DEPTH: z.coerce.number().int().min(4).max(256).default(32),
    // Refusals (and requests without a token) per caller: a token bucket per IP and per principal (ADR 0011).
    REFUSAL_RATE_BURST: z.coerce.number().int().min(1).max(1_000_000).default(60),
    REFUSAL_RATE_PER_MINUTE: z.coerce.number().int().min(1).max(1_000_000).default(60),
    REFUSAL_RATE_MAX_TRACKED: z.coerce.number().int().min(100).max(10_000_000).default(100_000),
    // Audit of refusals: identical ones (action, code, caller) one by one per window, then one aggregated event.
    REFUSAL_AUDIT_WINDOW_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
    REFUSAL_AUDIT_PER_KEY: z.coerce.number().int().min(1).max(1_000_000).default(5),
    REFUSAL_AUDIT_PER_WINDOW: z.coerce.number().int().min(1).max(1_000_000).default(200),
    // Timeouts and connection limits of the transport (ADR 0011 addenda), one meaning with the keyclient's.
    // (HTTP_SHUTDOWN_GRACE_MS among them: the bounded shutdown.)
    ...httpEdgeEnvShape,
    // RFC 3161 (docs/adr/0024): the policy every token names, the accuracy it states, and which TSA key signs.
    TSA_POLICY_OID: z
      .string()
      .regex(/^[0-2](\.(0|[1-9][0-9]{0,38})){1,20}$/, 'must be a dotted OID')
      .refine((v) => v !== AUDIT_CHECKPOINT_POLICY_OID, 'is the audit checkpoint policy, which only the sealer may issue (docs/adr/0048)')
      .default(DEFAULT_TSA_POLICY_OID),
    TSA_ACCURACY_MS: z.coerce.number().int().min(1).max(60_000).default(1000),
    TSA_KEYID: z.string().min(1).max(64).optional(),
    // Signature timestamps of CMS firmware signatures: unset URL = this Keyserver's own TSA when a TSA key exists.
    // http is allowed: a token protects itself (signature, imprint, nonce and its signer's trust checked), the path
    // can only deny service.
    CMS_TSA_URL: z.url({ protocol: /^https?$/ }).optional(),
    // Whom that TSA's tokens must come from (ADR 0043; one of them required with CMS_TSA_URL): a PEM file of trust
    // anchors the TSA certificate chains to, and/or SHA-256 fingerprints of the TSA certificates themselves.
    CMS_TSA_CA_CERT: z.string().min(1).optional(),
    CMS_TSA_CERT_SHA256: csv().refine((pins) => pins.every((p) => /^([0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2}$/.test(p)), 'must be SHA-256 fingerprints (64 hex digits, colons allowed)'),
    // CRLs of the CMS_TSA_CA_CERT anchors (PEM or DER file, ADR 0046 addendum): the TSA certificate must not be listed
    // and the CRL not past its nextUpdate; the file is read again when it changes.
    CMS_TSA_CRL: z.string().min(1).optional(),
    CMS_TSA_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
    // How far that TSA's genTime may be from our clock beyond its declared accuracy (ADR 0046).
    CMS_TSA_MAX_SKEW_MS: z.coerce.number().int().min(1000).max(3_600_000).default(DEFAULT_TSA_MAX_SKEW_MS),
    // required: no timestamp, no signature (503, the usage given back); off: never timestamp.
    CMS_TIMESTAMP: z.enum(['required', 'off']).default('required'),
    // production (default): never seeds demo data; demo: `seed-demo` may create the demo tenant (npm start, compose).
    KEYSERVER_MODE: z.enum(['production', 'demo']).default('production'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    // Nice of V8's background compiler and GC helper threads (docs/adr/0039-v8-background-threads.md); 0 (default) leaves them.
    V8_BACKGROUND_NICE: z.coerce.number().int().min(0).max(19).default(0),
    // Approver notifications (email, webhooks): src/notifications/notify-config.ts, docs/notifications.md.
    ...notifyEnvSchema,
    // Prometheus metrics on their own listener (docs/adr/0022-metrics-endpoint.md): METRICS_PORT, METRICS_HOST, METRICS_TOKEN_FILE.
    ...metricsEnvShape,
  })
  .strip();

export type ApiConfig = ReturnType<typeof loadApiConfig>;

/** Every variable the API reads (deployment manifests are checked against it: a misspelt name would be ignored). */
export const API_CONFIG_VARIABLES: readonly string[] = Object.keys(schema.shape);

/** Reads and validates the API's environment once at boot; any problem is one ConfigError line. */
export function loadApiConfig(env: Record<string, string | undefined>) {
  const raw = loadConfig(schema, env);
  for (const variable of ['DATABASE_URL', 'DATABASE_DIRECT_URL'] as const) {
    try {
      const url = raw[variable];
      if (url !== undefined) parseDatabaseUrl(url);
    } catch (err) {
      throw new ConfigError(variable, (err as Error).message);
    }
  }
  const transport = httpEdgeSettings(raw);
  checkInsecureLoopback(raw.OPENID_CONNECT_METADATA_DOCUMENT, raw.OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK);
  const pooled = raw.DATABASE_POOLER === 'transaction';
  // The migrator's session advisory lock would be taken in one server session and released in another.
  if (pooled && !raw.DATABASE_DIRECT_URL) throw new ConfigError('DATABASE_DIRECT_URL', 'is required with DATABASE_POOLER=transaction (a session connection to the primary for migrations and the access cache listener)');
  // Four eyes: one authorizer (the creator alone) is for demo systems; production needs a second administrator.
  if (raw.KEYSERVER_MODE === 'production' && raw.ADMIN_SESSION_APPROVALS < 2) {
    throw new ConfigError('ADMIN_SESSION_APPROVALS', 'must be at least 2 with KEYSERVER_MODE=production (four eyes); 1 is for KEYSERVER_MODE=demo');
  }
  if (!existsSync(raw.PKCS11_MODULE)) throw new ConfigError('PKCS11_MODULE', `no such file: ${raw.PKCS11_MODULE}`);
  let pin = raw.PKCS11_PIN;
  if (!pin) {
    if (!raw.PKCS11_PIN_FILE) throw new ConfigError('PKCS11_PIN', 'is required (or set PKCS11_PIN_FILE)');
    if (!existsSync(raw.PKCS11_PIN_FILE)) throw new ConfigError('PKCS11_PIN_FILE', `no such file: ${raw.PKCS11_PIN_FILE}`);
    pin = readFileSync(raw.PKCS11_PIN_FILE, 'utf8').trim();
    if (pin.length < 4) throw new ConfigError('PKCS11_PIN_FILE', 'the file does not hold a PIN of at least 4 characters');
  }
  const cmsTsaTrust = externalTsaTrust(raw.CMS_TSA_URL, raw.CMS_TSA_CA_CERT, raw.CMS_TSA_CERT_SHA256, raw.CMS_TSA_CRL);
  const appRoles = [...new Set([...(raw.APP_ROLE ? [raw.APP_ROLE] : []), ...raw.APP_ROLES])];
  const provisioningClientIds = raw.PROVISIONING_CLIENT_IDS.length ? raw.PROVISIONING_CLIENT_IDS.map((s) => s.toLowerCase()) : [raw.APPLICATION_ID];
  return {
    tenantId: raw.TENANT_ID,
    applicationId: raw.APPLICATION_ID,
    metadataUrl: raw.OPENID_CONNECT_METADATA_DOCUMENT,
    allowInsecureLoopback: raw.OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK,
    appRoles,
    keyclientClientId: raw.KEYCLIENT_CLIENT_ID ?? raw.APPLICATION_ID,
    provisioningClientIds,
    databaseUrl: raw.DATABASE_URL,
    // Migrations, the access cache's LISTEN and the operator commands (bootstrap, audit-acknowledge): they need a
    // session of their own, which a transaction pooler does not give.
    databaseDirectUrl: raw.DATABASE_DIRECT_URL ?? raw.DATABASE_URL,
    databasePoolSize: raw.DATABASE_POOL_SIZE,
    database: {
      pooler: raw.DATABASE_POOLER,
      poolSize: raw.DATABASE_POOL_SIZE,
      connectTimeoutMs: raw.DATABASE_CONNECT_TIMEOUT_MS,
      statementTimeoutMs: raw.DATABASE_STATEMENT_TIMEOUT_MS,
      lockTimeoutMs: raw.DATABASE_LOCK_TIMEOUT_MS,
    },
    pkcs11: { module: raw.PKCS11_MODULE, tokenLabel: raw.PKCS11_TOKEN_LABEL, pin, poolSize: raw.PKCS11_POOL_SIZE, signWorkers: raw.PKCS11_SIGN_WORKERS },
    host: raw.KEYSERVER_API_HOST,
    port: raw.KEYSERVER_API_PORT,
    publicUrl: raw.KEYSERVER_PUBLIC_URL ?? `http://${raw.KEYSERVER_API_HOST}:${raw.KEYSERVER_API_PORT}`,
    adminSessionApprovals: raw.ADMIN_SESSION_APPROVALS,
    adminSessionMinutes: raw.ADMIN_SESSION_MINUTES,
    maxBodyBytes: raw.MAX_BODY_BYTES,
    firmwareMaxBytes: raw.FIRMWARE_MAX_BYTES,
    usageLeaseMs: raw.USAGE_LEASE_SECONDS * 1000,
    crlRefreshMs: raw.CRL_REFRESH_SECONDS * 1000,
    auditCheckpointIntervalMs: raw.AUDIT_CHECKPOINT_INTERVAL_MS,
    accessCacheTtlMs: raw.ACCESS_CACHE_TTL_MS,
    logLevel: raw.LOG_LEVEL,
    v8BackgroundNice: raw.V8_BACKGROUND_NICE,
    notify: notifyConfig(raw),
    tsa: { policy: raw.TSA_POLICY_OID, accuracyMs: raw.TSA_ACCURACY_MS, keyid: raw.TSA_KEYID },
    cmsTimestamp: { mode: raw.CMS_TIMESTAMP, url: raw.CMS_TSA_URL, timeoutMs: raw.CMS_TSA_TIMEOUT_MS, maxSkewMs: raw.CMS_TSA_MAX_SKEW_MS, trust: cmsTsaTrust, crlFile: raw.CMS_TSA_CRL },
    mode: raw.KEYSERVER_MODE,
    metrics: metricsConfig(raw),
    maxJsonDepth: raw.MAX_JSON_DEPTH,
    edge: {
      rateBurst: raw.REFUSAL_RATE_BURST,
      ratePerMinute: raw.REFUSAL_RATE_PER_MINUTE,
      rateMaxTracked: raw.REFUSAL_RATE_MAX_TRACKED,
      auditWindowMs: raw.REFUSAL_AUDIT_WINDOW_SECONDS * 1000,
      auditPerKey: raw.REFUSAL_AUDIT_PER_KEY,
      auditPerWindow: raw.REFUSAL_AUDIT_PER_WINDOW,
      ...transport,
    },
  };
}

/**
 * The trust in an external TSA (ADR 0043): required with CMS_TSA_URL, refused without it (the Keyserver's own TSA
 * needs none, and a trust nobody reads would look like protection). Every certificate of the PEM file is an anchor.
 */
function externalTsaTrust(url: string | undefined, caFile: string | undefined, pins: string[], crlFile: string | undefined): TsaTrust | undefined {
  if (!url) {
    if (caFile) throw new ConfigError('CMS_TSA_CA_CERT', 'is only read with CMS_TSA_URL (the Keyserver\'s own TSA needs no anchor)');
    if (pins.length) throw new ConfigError('CMS_TSA_CERT_SHA256', 'is only read with CMS_TSA_URL (the Keyserver\'s own TSA needs no pin)');
    if (crlFile) throw new ConfigError('CMS_TSA_CRL', 'is only read with CMS_TSA_URL and CMS_TSA_CA_CERT (the Keyserver\'s own TSA is revoked on its ROOT\'s CRL)');
    return undefined;
  }
  // A pin names one certificate: revoking it is changing the pin. A CRL is checked against the anchors that signed it.
  if (crlFile && !caFile) throw new ConfigError('CMS_TSA_CRL', 'needs CMS_TSA_CA_CERT: the CRLs are those of its certificates (with a pin alone, revoking is changing the pin)');
  if (!caFile && !pins.length) {
    throw new ConfigError('CMS_TSA_CA_CERT', 'is required with CMS_TSA_URL: the PEM file of the external TSA\'s trust anchor(s), or pin its certificate with CMS_TSA_CERT_SHA256');
  }
  const anchors: X509Certificate[] = [];
  if (caFile) {
    if (!existsSync(caFile)) throw new ConfigError('CMS_TSA_CA_CERT', `no such file: ${caFile}`);
    const blocks = pemBlocks(readFileSync(caFile, 'utf8')).filter((b) => b.label === 'CERTIFICATE');
    if (!blocks.length) throw new ConfigError('CMS_TSA_CA_CERT', 'the file holds no PEM certificate');
    blocks.forEach((b, i) => {
      try {
        anchors.push(new X509Certificate(Buffer.from(b.body.replace(/\s+/g, ''), 'base64')));
      } catch {
        throw new ConfigError('CMS_TSA_CA_CERT', `certificate ${i + 1} of the file does not parse`);
      }
    });
  }
  const trust: TsaTrust = { anchors, pins: pins.map((p) => new Uint8Array(Buffer.from(p.replace(/:/g, ''), 'hex'))) };
  if (crlFile) trust.crls = loadTsaCrls(crlFile, anchors, 'CMS_TSA_CRL');
  return trust;
}

/** Reads and verifies the CRL file (readTsaCrls); any problem is one ConfigError line naming `variable`. */
export function loadTsaCrls(file: string, anchors: X509Certificate[], variable = 'CMS_TSA_CRL'): TsaCrl[] {
  if (!existsSync(file)) throw new ConfigError(variable, `no such file: ${file}`);
  try {
    return readTsaCrls(new Uint8Array(readFileSync(file)), anchors);
  } catch (err) {
    throw new ConfigError(variable, err instanceof PkiError ? (err.detail ?? err.message) : `is not readable (${(err as Error).message})`);
  }
}

/** What the boot log warns about the external TSA's trust (ADR 0046 addendum). */
export function tsaTrustWarnings(c: ApiConfig, now = new Date()): string[] {
  const trust = c.cmsTimestamp.trust;
  if (!trust || trust.anchors.length === 0) return [];
  if (!trust.crls) return ['CMS_TSA_CA_CERT without CMS_TSA_CRL: a revoked certificate of the external TSA is not refused (set CMS_TSA_CRL, or pin it with CMS_TSA_CERT_SHA256)'];
  const warnings = trust.crls.filter((crl) => crl.nextUpdate < now).map((crl) => `CMS_TSA_CRL: the CRL of ${crl.issuer.subject.replace(/\n/g, ', ')} is past its nextUpdate (${crl.nextUpdate.toISOString()}); timestamps fail with timestamp_tsa_crl_stale until it is refreshed`);
  const without = trust.anchors.filter((a) => !trust.crls?.some((crl) => crl.issuer === a));
  if (without.length) warnings.push(`CMS_TSA_CRL holds no CRL of ${without.map((a) => a.subject.replace(/\n/g, ', ')).join('; ')}: TSA certificates they issue are refused (timestamp_tsa_untrusted)`);
  return warnings;
}

/** What the boot log warns about trusting the provider over plain http (ADR 0011 addendum "insecure loopback"). */
export function insecureLoopbackWarnings(c: ApiConfig): string[] {
  if (!c.allowInsecureLoopback || c.mode !== 'production') return [];
  return ['OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK=true with KEYSERVER_MODE=production: tokens are checked with keys fetched over plain http from a loopback provider (the Entra emulator); a real installation uses Entra ID over https'];
}

/** SHA-256 of a certificate's DER, lower-case hex (as a pin is written). */
const fingerprint = (c: X509Certificate): string => createHash('sha256').update(c.raw).digest('hex');

/** The config as it may appear in logs. */
export function describeConfig(c: ApiConfig): Record<string, unknown> {
  const trust = c.cmsTimestamp.trust;
  return {
    ...c,
    cmsTimestamp: {
      ...c.cmsTimestamp,
      trust: trust && {
        anchors: trust.anchors.map((a) => `${a.subject.replace(/\n/g, ', ')} (SHA-256 ${fingerprint(a)})`),
        pins: trust.pins.map((p) => Buffer.from(p).toString('hex')),
        ...(trust.crls ? { crls: trust.crls.map((crl) => `${crl.issuer.subject.replace(/\n/g, ', ')}: ${crl.revoked.size} revoked, next update ${crl.nextUpdate.toISOString()}`) } : {}),
      },
    },
    pkcs11: { ...c.pkcs11, pin: '***' },
    databaseUrl: maskUrlCredentials(c.databaseUrl),
    databaseDirectUrl: maskUrlCredentials(c.databaseDirectUrl),
    metrics: c.metrics && { ...c.metrics, token: c.metrics.token === undefined ? undefined : '***' },
    notify: describeNotifyConfig(c.notify),
  };
}
