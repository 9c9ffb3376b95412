import 'reflect-metadata';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Logger } from 'pino';
import { BootError, bootStep as step, runOrExit } from '@keyserver/config';
import { createDb, migrateDatabase, observeAuditAppends, observeReservations } from '@keyserver/data-access';
import { exitOnSignals, requestMetrics, startMetricsServer } from '@keyserver/observability';
import { UsageReaper } from './usage/usage-reaper';
import { CrlRefresher } from './crl/crl-refresher';
import { CrlService } from './crl/crl.service';
import { HsmKeyDisposer } from './key-admin/hsm-key-disposer';
import { NotificationDispatcher } from './notifications/dispatcher';
import { notifyConfigWarnings } from './notifications/notify-config';
import { createEntraTokenValidator, loadEntraMetadata } from '@keyserver/entra-token';
import { createPkcs11Signer } from '@keyserver/pkcs11-signer';
import type { HsmSigner } from '@keyserver/pki';
import { AppModule } from './app/app.module';
import { buildOpenApi, OPENAPI_DOCUMENT } from './app/openapi';
import type { ApiDeps } from './app/tokens';
import { describeConfig, insecureLoopbackWarnings, loadApiConfig, tsaTrustWarnings, type ApiConfig } from './config/api-config';
import { createLogger, PinoNestLogger } from './common/logging';
import { seedDemoTenant } from './seed/seed-demo';
import { auditAcknowledgeCommand, auditVerifyCommand } from './audit/audit-verify';
import { EDGE, type EdgeServices } from './edge/edge';
import { ApiHttpAdapter, configureHttpServer, type LateEdge } from './edge/http-server';
import { descriptorWarning } from './edge/connections';
import { bootstrapCommand } from './bootstrap/bootstrap';
import { AuditCheckpointRepository, InstallationRepository, KeyLifecycleRepository, NotificationRepository, SubjectRepository } from '@keyserver/data-access';
import { AuditSealer } from './audit/audit-seal';
import { TsaService } from './tsa/tsa.service';
import { ApiMetrics } from './metrics/api-metrics';
import { lowerV8ThreadPriority } from './common/thread-priority';
import { PRODUCT_VERSION } from '@keyserver/api-contract/version';

/**
 * Migrations (a session advisory lock), the access cache's LISTEN and the operator commands use the direct URL: never
 * a transaction pooler.
 */
function directUrlVariable(config: ApiConfig): string {
  return config.databaseDirectUrl === config.databaseUrl ? 'DATABASE_URL' : 'DATABASE_DIRECT_URL';
}

function migrationsDir(): string | undefined {
  const bundled = join(__dirname, 'migrations');
  return existsSync(bundled) ? bundled : undefined;
}

async function buildDeps(config: ApiConfig, logger: Logger, metrics?: ApiMetrics): Promise<ApiDeps> {
  const metadata = await step(`cannot use OPENID_CONNECT_METADATA_DOCUMENT ${config.metadataUrl}`, () =>
    loadEntraMetadata(config.metadataUrl, { tenantId: config.tenantId, allowInsecureLoopback: config.allowInsecureLoopback }),
  );
  const validator = createEntraTokenValidator({
    tenantId: config.tenantId,
    applicationId: config.applicationId,
    metadata,
    appRoles: config.appRoles,
    keyclientClientId: config.keyclientClientId,
    provisioningClientIds: config.provisioningClientIds,
  });
  // Warm the key cache; when the JWKS is down the validator fails closed per request and retries later.
  await validator.refreshKeys().catch((err: Error) => logger.warn({ err: err.message }, 'JWKS not reachable at boot'));
  await step(`cannot migrate the database at ${directUrlVariable(config)}`, () =>
    migrateDatabase(config.databaseDirectUrl, { info: (msg) => logger.info(msg) }, { migrationsDir: migrationsDir() }),
  );
  const db = createDb(config.databaseUrl, config.database);
  const pkcs11 = await step(`cannot open the PKCS#11 token "${config.pkcs11.tokenLabel}" (PKCS11_MODULE ${config.pkcs11.module})`, () =>
    createPkcs11Signer(config.pkcs11),
  );
  if (!metrics) return { config, logger, db, signer: pkcs11, validator };
  metrics.attach({ db, hsmPool: () => pkcs11.poolStats(), logger });
  observeAuditAppends(metrics.onAuditAppend);
  observeReservations(metrics.onReservation);
  return { config, logger, db, signer: metrics.instrumentSigner(pkcs11), validator };
}

async function createApp(deps: ApiDeps, metrics?: ApiMetrics): Promise<{ app: NestFastifyApplication; adapter: ApiHttpAdapter }> {
  // Counted first, so refusals at the edge are counted too (under the route "(unmatched)").
  const late: LateEdge = { logger: deps.logger, metrics: metrics ? requestMetrics(metrics.registry) : undefined, registry: metrics?.registry };
  const adapter = new ApiHttpAdapter(late, deps.config.edge);
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.register(deps), adapter, {
    bodyParser: false,
    logger: new PinoNestLogger(deps.logger),
  });
  late.edge = app.get<EdgeServices>(EDGE);
  configureHttpServer(app, { edge: late.edge, db: deps.db, logger: deps.logger, config: deps.config, metrics: late.metrics, connections: adapter.connections });
  // No enableShutdownHooks: serve() handles the signals, logs them and closes everything in order (app.close()
  // runs the shutdown hooks).
  await app.init();
  app.get<{ current: object | null }>(OPENAPI_DOCUMENT).current = buildOpenApi(app);
  return { app, adapter };
}

async function serve(config: ApiConfig, logger: Logger) {
  logger.info({ config: describeConfig(config) }, 'keyserver-api starting');
  for (const warning of [...insecureLoopbackWarnings(config), ...tsaTrustWarnings(config), ...notifyConfigWarnings(config.notify)]) logger.warn(warning);
  // HTTP_MAX_CONNECTIONS protects only if the descriptors do not run out first (ADR 0011 addendum "connections").
  const descriptors = existsSync('/proc/self/limits') ? descriptorWarning(config.edge.maxConnections, readFileSync('/proc/self/limits', 'utf8')) : undefined;
  if (descriptors) logger.warn(descriptors);
  try {
    const threads = lowerV8ThreadPriority(config.v8BackgroundNice);
    if (threads > 0) logger.info({ threads, nice: config.v8BackgroundNice }, 'V8 background threads run at a lower priority');
  } catch (err) {
    // A speed setting only: a runtime that refuses it (a restrictive seccomp profile) serves as before.
    logger.warn({ err: (err as Error).message }, 'V8 background threads keep their priority');
  }
  const metrics = config.metrics ? new ApiMetrics() : undefined;
  const deps = await buildDeps(config, logger, metrics);
  // Subject and key lookups cached until a change is notified (ADR 0028); without the listener nothing is cached.
  // LISTEN needs a session of its own: the direct URL (a transaction pooler would hand its notifications to whichever
  // client holds that server connection next). NOTIFY is database-wide, so changes committed through the pooler reach it.
  await deps.db.access.listen(config.databaseDirectUrl, {
    ttlMs: config.accessCacheTtlMs,
    onError: (err) => logger.warn({ err: err.message }, 'access cache listener lost; lookups go to the database until it is back'),
  });
  // Keep-alive and the transport's timeouts are the adapter's (ApiHttpAdapter, from the config).
  const { app, adapter } = await createApp(deps, metrics);
  await app.listen(config.port, config.host);
  logger.info({ event: 'listening', url: `http://${config.host}:${config.port}`, version: PRODUCT_VERSION }, 'keyserver-api listening');
  const metricsConfig = config.metrics;
  const metricsServer =
    metrics && metricsConfig
      ? await step(`cannot listen for metrics on METRICS_HOST ${metricsConfig.host} METRICS_PORT ${metricsConfig.port}`, async () => {
          await metrics.refreshKeys().catch((err: Error) => logger.warn({ err: err.message }, 'key list for metrics not readable at boot'));
          return startMetricsServer(metricsConfig, metrics.registry, logger);
        })
      : undefined;
  const reaper = new UsageReaper(deps.db, logger, config.usageLeaseMs, app.get(SubjectRepository));
  reaper.start();
  const crlRefresher = new CrlRefresher(app.get(CrlService), logger, config.crlRefreshMs);
  crlRefresher.start();
  // Seals the audit chain's head with the TSA (ADR 0048); every replica runs one, one checkpoint per seq.
  const sealer = new AuditSealer(app.get(AuditCheckpointRepository), app.get(TsaService), logger, config.auditCheckpointIntervalMs);
  sealer.start();
  // Key pairs whose cancellation was interrupted before the HSM destroyed them (ADR 0042 addendum).
  const disposer = new HsmKeyDisposer(app.get(KeyLifecycleRepository), deps.signer, logger);
  disposer.start();
  // Its own small pool: sending notifications never waits for, nor takes, a connection of the request path.
  const notifyDb = createDb(config.databaseUrl, { ...config.database, poolSize: config.notify.dbPoolSize });
  const dispatcher = new NotificationDispatcher(new NotificationRepository(notifyDb), logger, config.notify);
  dispatcher.start();
  exitOnSignals(logger, async () => {
    // First, and bounded (ADR 0011 addenda "connections", "a request already started"): no new connections; idle ones
    // closed at once; a request whose headers are still arriving answered 503 shutting_down once they are complete;
    // requests in flight finish within HTTP_SHUTDOWN_GRACE_MS while the database and the HSM are still open.
    const openAtSignal = adapter.connections.openConnections;
    await adapter.connections.shutdown(app.getHttpServer());
    logger.info({ event: 'connections_closed', openAtSignal }, 'HTTP connections closed');
    await reaper.stop();
    await crlRefresher.stop();
    await sealer.stop();
    await disposer.stop();
    await dispatcher.stop();
    await notifyDb.close();
    await metricsServer?.close();
    await app.close();
    await deps.signer.close();
    await deps.db.close();
  });
}

async function seedDemo(config: ApiConfig, logger: Logger) {
  // Production never gets demo data: the seed needs KEYSERVER_MODE=demo and an installation not bootstrapped for production.
  if (config.mode !== 'demo') throw new BootError('seed-demo: refused (demo_refused): KEYSERVER_MODE is production; demo data is only seeded with KEYSERVER_MODE=demo');
  const deps = await buildDeps(config, logger);
  try {
    await step('seed-demo: refused (demo_refused)', () => new InstallationRepository(deps.db).markDemo());
    await seedDemoTenant({ db: deps.db, signer: deps.signer, logger, publicUrl: config.publicUrl });
  } finally {
    await deps.signer.close();
    await deps.db.close();
  }
}

/** Writes the OpenAPI document without touching the database, the HSM or the provider. */
async function writeOpenApi(config: ApiConfig, logger: Logger, file: string) {
  const offline = (): never => {
    throw new Error('not available while generating the OpenAPI document');
  };
  const signer: HsmSigner = { generateKey: offline, getKey: offline, sign: offline, destroyKey: offline, health: offline, close: async () => undefined };
  const deps = { config, logger, db: createDb(config.databaseUrl), signer, validator: { authenticate: offline } } as unknown as ApiDeps;
  const { app } = await createApp(deps);
  writeFileSync(file, JSON.stringify(app.get<{ current: object }>(OPENAPI_DOCUMENT).current, null, 2) + '\n');
  await app.close();
}

void runOrExit('keyserver-api', async () => {
  // Offline: verifies an audit export without config, database or HSM.
  if (process.argv[2] === 'audit-verify') process.exit(await auditVerifyCommand(process.argv[3], process.argv.slice(4)));
  const config = loadApiConfig(process.env);
  const logger = createLogger(config.logLevel);
  const [command = 'serve', arg] = process.argv.slice(2);
  switch (command) {
    case 'serve':
      return serve(config, logger);
    case 'seed-demo':
      await seedDemo(config, logger);
      process.exit(0);
      return;
    case 'migrate':
      await step(`cannot migrate the database at ${directUrlVariable(config)}`, () => migrateDatabase(config.databaseDirectUrl, { info: (msg) => logger.info({ event: 'migration' }, msg) }, { migrationsDir: migrationsDir() }));
      process.exit(0);
      return;
    case 'audit-verify':
      process.exit(await auditVerifyCommand(arg));
      return;
    case 'bootstrap':
      await step(`cannot migrate the database at ${directUrlVariable(config)}`, () => migrateDatabase(config.databaseDirectUrl, undefined, { migrationsDir: migrationsDir() }));
      process.exit(
        await bootstrapCommand({ ...config, databaseUrl: config.databaseDirectUrl }, process.argv.slice(3), process.env, async () => {
          const signer = await step(`cannot open the PKCS#11 token "${config.pkcs11.tokenLabel}" (PKCS11_MODULE ${config.pkcs11.module})`, () => createPkcs11Signer(config.pkcs11));
          try {
            return (await signer.holdsKeys?.()) ?? false;
          } finally {
            await signer.close();
          }
        }),
      );
      return;
    case 'audit-acknowledge':
      process.exit(await auditAcknowledgeCommand(config.databaseDirectUrl, process.argv.slice(3)));
      return;
    case 'openapi':
      await writeOpenApi(config, logger, arg ?? 'docs/openapi.json');
      process.exit(0);
      return;
    default:
      throw new BootError(`unknown command "${command}" (use serve, bootstrap --admin TID:OID[:NAME] ..., seed-demo, migrate, openapi [file], audit-verify FILE or audit-acknowledge SEQ --by NAME --reason TEXT)`);
  }
});
