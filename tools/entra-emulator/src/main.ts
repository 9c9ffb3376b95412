import { startEmulator } from '@keyserver/entra-emulator';

/*
 * Runs the Entra ID emulator on its own. Environment:
 *   EMULATOR_PORT        listening port (default 4011; 0 = random)
 *   EMULATOR_HOST        listening interface (default 127.0.0.1)
 *   EMULATOR_PUBLIC_URL  origin clients use, when it differs from http://<host>:<port>
 *   EMULATOR_TENANT_FILE tenant file (default config/demo-tenant.json)
 *   EMULATOR_ACCESS_TOKEN_TTL access-token lifetime in seconds (default 3600)
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

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const env = process.env;
  const emulator = await startEmulator({
    port: intOption('EMULATOR_PORT', args['port'] ?? env['EMULATOR_PORT'], 4011),
    host: args['host'] ?? env['EMULATOR_HOST'] ?? '127.0.0.1',
    publicBaseUrl: args['public-url'] ?? (env['EMULATOR_PUBLIC_URL'] || undefined),
    tenantFile: args['tenant-file'] ?? (env['EMULATOR_TENANT_FILE'] || 'config/demo-tenant.json'),
    accessTokenTtlSeconds: intOption('EMULATOR_ACCESS_TOKEN_TTL', args['ttl'] ?? env['EMULATOR_ACCESS_TOKEN_TTL'], 3600),
  });
  console.log(`Entra emulator for tenant ${emulator.tenantId} listening on ${emulator.baseUrl}`);
  console.log(`  metadata: ${emulator.metadataUrl}`);
  console.log(`  ADO OIDC issuer: ${emulator.adoIssuer} (token: POST ${emulator.adoOidcRequestUri}?serviceConnectionId=...)`);
  const stop = (): void => {
    emulator.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  const e = err as { code?: string; message?: string };
  console.error(`entra-emulator failed to start: ${e.message ?? String(err)}`);
  process.exit(1);
});
