import { format } from 'node:util';
import pino from 'pino';
import { startEmulator } from '@keyserver/entra-emulator';

/*
 * Runs the Entra ID emulator on its own. Environment:
 *   EMULATOR_PORT        listening port (default 4011; 0 = random)
 *   EMULATOR_HOST        listening interface (default 127.0.0.1)
 *   EMULATOR_PUBLIC_URL  origin clients use, when it differs from http://<host>:<port>
 *   EMULATOR_TENANT_FILE tenant file (default config/demo-tenant.json)
 *   EMULATOR_ACCESS_TOKEN_TTL access-token lifetime in seconds (default 3600)
 *   LOG_LEVEL            fatal, error, warn, info (default), debug, trace or silent
 * Logs are JSON lines on stdout like the servers' (pino): start, each request (path only), shutdown.
 * Command-line flags --port, --host, --public-url, --tenant-file and --ttl override them.
 */
function parseArgs(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) continue;
    const eq = arg.indexOf('=');
    if (eq > 0) out[arg.slice(2, eq)] = arg.slice(eq + 1);
    else if (i + 1 < argv.length) out[arg.slice(2)] = argv[++i];
  }
  return out;
}

function intOption(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 65535 * 100) {
    throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  }
  return value;
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** JSON lines on stdout, as the servers log; secrets never reach them (requests are logged by path only). */
function createLogger(): pino.Logger {
  const level = process.env['LOG_LEVEL'] ?? 'info';
  return pino({ level: LEVELS.includes(level) ? level : 'info', base: { service: 'entra-emulator' } });
}

/** Whatever a dependency prints with console.* becomes a JSON line too (oidc-provider warns that way). */
function routeConsole(logger: pino.Logger): void {
  console.log = (...args: unknown[]) => logger.info(format(...args));
  console.info = (...args: unknown[]) => logger.info(format(...args));
  console.warn = (...args: unknown[]) => logger.warn(format(...args));
  console.error = (...args: unknown[]) => logger.error(format(...args));
  console.debug = (...args: unknown[]) => logger.debug(format(...args));
}

async function main(logger: pino.Logger): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const env = process.env;
  const emulator = await startEmulator({
    port: intOption('EMULATOR_PORT', args['port'] ?? env['EMULATOR_PORT'], 4011),
    host: args['host'] ?? env['EMULATOR_HOST'] ?? '127.0.0.1',
    publicBaseUrl: args['public-url'] ?? (env['EMULATOR_PUBLIC_URL'] || undefined),
    tenantFile: args['tenant-file'] ?? (env['EMULATOR_TENANT_FILE'] || 'config/demo-tenant.json'),
    accessTokenTtlSeconds: intOption('EMULATOR_ACCESS_TOKEN_TTL', args['ttl'] ?? env['EMULATOR_ACCESS_TOKEN_TTL'], 3600),
    logger,
  });
  logger.info(
    {
      event: 'listening',
      tenantId: emulator.tenantId,
      url: emulator.baseUrl,
      metadata: emulator.metadataUrl,
      adoIssuer: emulator.adoIssuer,
      adoServiceConnections: emulator.tenant.adoIssuer.serviceConnections.map((c) => `${c.id} (${c.issuerFormat})`),
      adoTokenEndpoint: `POST ${emulator.adoOidcRequestUri}?serviceConnectionId=...`,
    },
    `Entra emulator for tenant ${emulator.tenantId} listening on ${emulator.baseUrl}`,
  );
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    const uptimeSeconds = Math.round(process.uptime());
    if (stopping) {
      logger.warn({ event: 'shutdown_forced', signal, uptimeSeconds }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ event: 'shutdown', signal, uptimeSeconds }, 'shutting down');
    emulator.close().then(
      () => {
        logger.info({ event: 'stopped', signal, uptimeSeconds: Math.round(process.uptime()) }, 'stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ event: 'shutdown_failed', signal, err: err instanceof Error ? err.message : String(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

const logger = createLogger();
routeConsole(logger);
main(logger).catch((err: unknown) => {
  const e = err as { message?: string };
  const reason = (e.message ?? String(err)).split('\n')[0];
  logger.fatal({ event: 'start_failed', err: reason }, 'failed to start');
  // And one plain line on stderr, as every server reports a boot failure.
  process.stderr.write(`entra-emulator: failed to start: ${reason}\n`);
  process.exit(1);
});
