import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { createEmptyTestDatabase, type TempDatabase } from '@keyserver/data-access/testing';

// The environment builder is shared with `npm start` (plain CommonJS there, so no build step).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const platform = require(join(__dirname, '..', '..', '..', '..', 'scripts', 'platform.cjs')) as {
  root: string;
  demoTenant: DemoTenant;
  platformEnv(o: Record<string, unknown>): PlatformEnv;
  demoFacts(env: PlatformEnv): DemoFacts;
};

export interface DemoTenant {
  tenant: { id: string; name: string };
  keyserverApp: { clientId: string; clientSecret: string; applicationIdUri: string; scope: string; appRoles: string[]; accessTokenOptionalClaims?: 'acct'[] };
  provisioningApp: { clientId: string; redirectUris: string[] };
  ciClients: { name: string; clientId: string; clientSecret?: string; servicePrincipalOid: string; appRoles: string[] }[];
  /** `userType` Guest: an Entra B2B guest (`acct` 1); default Member (libs/entra-emulator). */
  users: { username: string; password: string; name: string; oid: string; natures: string[]; userType?: 'Member' | 'Guest' }[];
}

export interface PlatformEnv {
  urls: { emulator: string; api: string; keyclient: string };
  emulator: Record<string, string>;
  api: Record<string, string>;
  keyclient: Record<string, string>;
}

export interface DemoFacts {
  urls: PlatformEnv['urls'];
  tenantId: string;
  applicationId: string;
  scope: string;
  defaultScope: string;
  metadataUrl: string;
  tokenEndpoint: string;
  provisioningClientId: string;
  ciClients: { name: string; clientId: string; clientSecret?: string }[];
  users: { username: string; password: string; name: string; natures: string[] }[];
}

export const repoRoot: string = platform.root;
/** The environment of each process of one platform instance (see scripts/platform.cjs). */
export const platformEnv = (o: Record<string, unknown>): PlatformEnv => platform.platformEnv(o);
export const demoTenant: DemoTenant = platform.demoTenant;

/** A TCP port that was free a moment ago. */
/** Ports this process has handed out: the kernel may offer a port again once it is closed, before its taker binds it. */
const handedOut = new Set<number>();

/**
 * A port free now that this process has not handed out before. Without the second rule two services of one platform
 * could get the same port (the first binds it, the second fails EADDRINUSE, and the first answers in its place: seen
 * in CI as the emulator answering /readyz and /api/signorders for an API that never started).
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

export async function waitForOk(url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (r.ok) return;
      last = `HTTP ${r.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms (${last})`);
}

/** A started child process whose output is kept for failure messages. */
export interface Service {
  name: string;
  child: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The start command of each docker-compose service: the tests run exactly what the images run. */
export function composeCommand(service: string): string[] {
  const doc = parseYaml(readFileSync(join(repoRoot, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { command?: string[] }> };
  const cmd = doc.services[service]?.command;
  if (!cmd || cmd.length === 0) throw new Error(`docker-compose.yml: service ${service} has no command`);
  return cmd;
}

/** Starts a long-running process; `argv[0]` is the program (`node` means this Node binary). */
export function startService(name: string, argv: string[], env: Record<string, string>): Service {
  const [program, ...args] = argv;
  const child = spawn(program === 'node' ? process.execPath : program, args, { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    name,
    child,
    output: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Runs a command to completion (one-shot start steps like the keyserver-init service). */
export function runStep(argv: string[], env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
  const [program, ...args] = argv;
  const r = spawnSync(program === 'node' ? process.execPath : program, args, { cwd: repoRoot, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/**
 * `url` (postgresql://user@host:port/db) through the server's Unix socket in `dir` (its port names the socket file):
 * the form both node-postgres and libpq (pgbench, psql) read.
 */
export function socketUrl(url: string, dir: string): string {
  const u = new URL(url);
  const user = u.username ? `${u.username}${u.password ? `:${u.password}` : ''}@` : '';
  return `postgresql://${user}localhost${u.port ? `:${u.port}` : ''}${u.pathname}?host=${encodeURIComponent(dir)}`;
}

/** A fresh EMPTY database `<prefix>_<random>` (the one temp-database helper, `@keyserver/data-access/testing`). */
export function createDatabase(prefix: string): Promise<TempDatabase> {
  return createEmptyTestDatabase(prefix);
}

export interface RunningPlatform {
  env: PlatformEnv;
  /** The environment the API processes run with (for one-shot commands such as `keyserver-api bootstrap`). */
  apiEnv: Record<string, string>;
  facts: DemoFacts;
  hsmDir: string;
  databaseUrl: string;
  emulator: Service;
  api: Service;
  keyclient?: Service;
  /** Every API process on the shared database and token (`replicas`), the first one being `api`. */
  apiReplicas: { url: string; service: Service }[];
  stop(): Promise<void>;
}

/**
 * Starts the whole platform the way the container images do (same commands), on free ports, with a
 * fresh database and a fresh SoftHSM token: emulator, seed, API and optionally the keyclient.
 */
export async function startPlatform(
  opts: {
    keyclient?: boolean;
    extraApiEnv?: Record<string, string>;
    extraKeyclientEnv?: Record<string, string>;
    /** API processes on the same DB and HSM token (default 1). */
    replicas?: number;
    /**
     * The API reaches PostgreSQL through its Unix socket in this directory instead of TCP (a co-located database,
     * docs/scaling.md), the init step included; the tests' own connections (databaseUrl) keep TCP.
     */
    databaseSocketDir?: string;
    /** Changes the emulator's tenant (e.g. a user the Keyserver does not know); the seed keeps the demo tenant. */
    tenant?: (t: DemoTenant) => void;
    /**
     * 'production': an empty installation (token and migrations only, KEYSERVER_MODE=production, no demo seed) that
     * `keyserver-api bootstrap` sets up (docs/operations.md); default 'demo'.
     */
    mode?: 'demo' | 'production';
  } = {},
): Promise<RunningPlatform> {
  const [emulatorPort, apiPort, keyclientPort] = [await freePort(), await freePort(), await freePort()];
  const hsmDir = mkdtempSync(join(tmpdir(), 'ks-e2e-hsm-'));
  const db = await createDatabase('ks_e2e');
  const env = platform.platformEnv({
    emulatorPort,
    apiPort,
    keyclientPort,
    databaseUrl: db.url,
    hsmDir,
    sessionKey: randomBytes(32).toString('base64'),
  });
  // The suites make many deliberate refusals from one address: limits and audit aggregation are off unless a test
  // sets them (hostile-input.spec proves the defaults' 429 and aggregation).
  const unlimited = { REFUSAL_RATE_BURST: '1000000', REFUSAL_AUDIT_PER_KEY: '1000000', REFUSAL_AUDIT_PER_WINDOW: '1000000' };
  const production = opts.mode === 'production';
  if (opts.databaseSocketDir) env.api['DATABASE_URL'] = socketUrl(db.url, opts.databaseSocketDir);
  const apiEnv: Record<string, string> = { ...env.api, KEYSERVER_HSM_DIR: hsmDir, LOG_LEVEL: 'warn', ...unlimited, KEYSERVER_MODE: production ? 'production' : env.api['KEYSERVER_MODE'], ...opts.extraApiEnv };
  // The emulator only accepts registered redirect URIs: the keyclient's test port replaces :8080
  // (oidc-provider wants a sector identifier for pairwise clients whose redirect URIs span hosts).
  const tenantFile = join(hsmDir, 'demo-tenant.json');
  const tenant = JSON.parse(JSON.stringify(platform.demoTenant)) as DemoTenant & { keyserverApp: { redirectUris: string[]; postLogoutRedirectUris: string[] } };
  tenant.keyserverApp.redirectUris = [env.keyclient['REDIRECT_URI']];
  tenant.keyserverApp.postLogoutRedirectUris = [`${env.urls.keyclient}/`];
  opts.tenant?.(tenant);
  writeFileSync(tenantFile, JSON.stringify(tenant));
  env.emulator['EMULATOR_TENANT_FILE'] = tenantFile;
  const started: Service[] = [];
  const stop = async () => {
    for (const s of started.reverse()) await s.stop();
    rmSync(hsmDir, { recursive: true, force: true });
    await db.drop();
  };
  try {
    const emulator = startService('entra-emulator', composeCommand('entra-emulator'), env.emulator);
    started.push(emulator);
    await waitForOk(env.api['OPENID_CONNECT_METADATA_DOCUMENT']).catch((e) => {
      throw new Error(`${e.message}\n${emulator.output()}`);
    });

    // Token, migrations and demo seed: the compose file's one-shot init service.
    const initCmd = composeCommand('keyserver-init');
    // Production: the same token step, then migrations only (the operator bootstraps).
    const init = runStep(production ? initCmd.map((a) => a.replace(/ seed-demo$/, ' migrate')) : initCmd, apiEnv);
    if (init.status !== 0) throw new Error(`keyserver-init failed (${init.status}): ${init.stderr}${init.stdout}`);

    const api = startService('keyserver-api', composeCommand('keyserver-api'), apiEnv);
    started.push(api);
    await waitForOk(`${env.urls.api}/readyz`).catch((e) => {
      throw new Error(`${e.message}\n${api.output()}`);
    });
    const apiReplicas = [{ url: env.urls.api, service: api }];
    for (let i = 1; i < (opts.replicas ?? 1); i++) {
      const port = await freePort();
      const url = `http://${new URL(env.urls.api).hostname}:${port}`;
      const metricsPort: Record<string, string> = apiEnv['METRICS_PORT'] ? { METRICS_PORT: String(await freePort()) } : {};
      const replica = startService(`keyserver-api-${i + 1}`, composeCommand('keyserver-api'), { ...apiEnv, KEYSERVER_API_PORT: String(port), ...metricsPort });
      started.push(replica);
      await waitForOk(`${url}/readyz`).catch((e) => {
        throw new Error(`${e.message}\n${replica.output()}`);
      });
      apiReplicas.push({ url, service: replica });
    }

    let keyclient: Service | undefined;
    if (opts.keyclient) {
      keyclient = startService('keyclient', composeCommand('keyclient'), { ...env.keyclient, LOG_LEVEL: 'warn', ...opts.extraKeyclientEnv });
      started.push(keyclient);
      await waitForOk(`http://127.0.0.1:${keyclientPort}/readyz`).catch((e) => {
        throw new Error(`${e.message}\n${keyclient?.output()}`);
      });
    }
    return { env, apiEnv, facts: platform.demoFacts(env), hsmDir, databaseUrl: db.url, emulator, api, keyclient, apiReplicas, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A client-credentials token from the emulator's token endpoint, over real HTTP. */
export async function clientCredentialsToken(facts: DemoFacts, clientId: string, clientSecret: string, scope = facts.defaultScope): Promise<string> {
  const r = await fetch(facts.tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret, scope }),
  });
  const body = (await r.json()) as { access_token?: string; error?: string };
  if (!r.ok || !body.access_token) throw new Error(`token request failed: ${r.status} ${JSON.stringify(body)}`);
  return body.access_token;
}
