#!/usr/bin/env node
// `npm start`: the whole platform on embedded defaults on this machine.
// Entra emulator :4011, keyserver-api :3000, keyclient (+ admin SPA) :8080, a seeded demo tenant.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import platform from './platform.cjs';
const { demoFacts, platformEnv, root } = platform;

const env = platformEnv();
// Prometheus metrics on their own loopback listeners (docs/monitoring/README.md); METRICS_PORT in the environment wins.
env.api.METRICS_PORT = process.env.KEYSERVER_API_METRICS_PORT ?? '9464';
env.keyclient.METRICS_PORT = process.env.KEYCLIENT_METRICS_PORT ?? '9465';
const logDir = join(root, '.keyserver', 'logs');
mkdirSync(logDir, { recursive: true });
const children = [];
const skipBuild = process.argv.includes('--no-build');

function fail(line) {
  console.error(`npm start: ${line}`);
  stopAll(1);
}

function stopAll(code) {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  process.exit(code);
}
process.on('SIGINT', () => stopAll(0));
process.on('SIGTERM', () => stopAll(0));

function run(title, cmd, args, extraEnv = {}) {
  console.log(`- ${title}`);
  const r = spawnSync(cmd, args, {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NX_NO_CLOUD: 'true', NX_DAEMON: 'false', NX_TUI: 'false', ...extraEnv },
    encoding: 'utf8',
  });
  if (r.status !== 0) {
    process.stderr.write(r.stdout.slice(-4000) + r.stderr.slice(-4000));
    fail(`${title} failed (exit ${r.status}).`);
  }
  return r.stdout;
}

async function ensureSoftHsm() {
  if (spawnSync('sh', ['-c', 'command -v softhsm2-util']).status === 0) return;
  if (process.getuid?.() === 0) {
    run('installing softhsm2 and opensc with apt (running as root)', 'sh', [
      '-c',
      'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 opensc',
    ]);
  } else {
    fail('SoftHSM2 is missing. Install it with: sudo apt-get install -y softhsm2 opensc   (then run npm start again)');
  }
}

async function ensureDatabase() {
  const url = new URL(env.api.DATABASE_URL);
  const dbName = decodeURIComponent(url.pathname.slice(1));
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
  } catch (err) {
    fail(
      `PostgreSQL is not reachable at ${url.host} (${err.code ?? err.message}). ` +
        `Start the local server with: pg_ctlcluster 15 main start   ` +
        `(or point DATABASE_URL at a reachable PostgreSQL 15+ database).`,
    );
  }
  const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [dbName]);
  if (exists.rowCount === 0) {
    console.log(`- creating database ${dbName}`);
    await client.query(`CREATE DATABASE "${dbName.replace(/"/g, '""')}"`);
  }
  await client.end();
}

function startService(name, script, serviceEnv) {
  const log = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' });
  const child = spawn(process.execPath, [script], {
    cwd: root,
    env: { ...process.env, ...serviceEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(log);
  let lastErr = '';
  child.stderr.on('data', (d) => {
    lastErr = (lastErr + d).slice(-2000);
    log.write(d);
  });
  child.on('exit', (code, signal) => {
    if (shuttingDown) return;
    console.error(`\n${name} exited (${code ?? signal}). Last output:\n${lastErr.trim()}\nFull log: ${join(logDir, name + '.log')}`);
    stopAll(1);
  });
  children.push(child);
  return child;
}
let shuttingDown = false;
process.on('exit', () => {
  shuttingDown = true;
});

async function waitFor(url, what, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (r.ok) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  fail(`${what} did not become ready at ${url} within ${timeoutMs / 1000}s (see ${logDir}).`);
}

console.log('Keyserver: starting the platform on embedded defaults');
await ensureSoftHsm();
await ensureDatabase();
if (!skipBuild) {
  run('generating the Prisma client', 'npm', ['run', '-s', 'db:generate']);
  run('building emulator, API, keyclient and admin SPA (cached after the first run)', 'npx', [
    'nx',
    'run-many',
    '-t',
    'build',
    '-p',
    'entra-emulator',
    'keyserver-api',
    'keyclient',
    'admin-spa',
    '--parallel=2',
  ]);
}
run('preparing the SoftHSM token in .hsm/', 'bash', [join(root, 'scripts', 'softhsm-init.sh')], env.api);

startService('entra-emulator', join(root, 'dist/tools/entra-emulator/main.js'), env.emulator);
await waitFor(env.api.OPENID_CONNECT_METADATA_DOCUMENT, 'the Entra emulator');

run('migrating the database and seeding the demo tenant (keys in the HSM, subjects, roles)', process.execPath, [
  join(root, 'dist/apps/keyserver-api/main.js'),
  'seed-demo',
], env.api);

startService('keyserver-api', join(root, 'dist/apps/keyserver-api/main.js'), env.api);
await waitFor(`${env.urls.api}/readyz`, 'keyserver-api');
startService('keyclient', join(root, 'dist/apps/keyclient/main.js'), env.keyclient);
await waitFor(`http://127.0.0.1:${env.keyclient.KEYCLIENT_PORT}/readyz`, 'keyclient');

const facts = demoFacts(env);
writeFileSync(join(root, '.keyserver', 'demo.json'), JSON.stringify(facts, null, 2) + '\n', { mode: 0o600 });

console.log(`
Keyserver is running.
  Admin UI (keyclient):  ${env.urls.keyclient}/
  Keyserver API:         ${env.urls.api}/api/keys   (OpenAPI: ${env.urls.api}/api/docs)
  Entra emulator:        ${env.api.OPENID_CONNECT_METADATA_DOCUMENT}
  Metrics (Prometheus):  http://127.0.0.1:${env.api.METRICS_PORT}/metrics (API), http://127.0.0.1:${env.keyclient.METRICS_PORT}/metrics (keyclient)
Demo logins (password: ${facts.users[0].password}):
${facts.users.map((u) => `  ${u.username.padEnd(26)} ${u.name} (${u.natures.join(', ') || 'no Keyserver role'})`).join('\n')}
CI client: ${facts.ciClients[0].clientId} / ${facts.ciClients[0].clientSecret}  scope ${facts.defaultScope}
Demo facts for scripts and the CLI: .keyserver/demo.json   Logs: .keyserver/logs/
Press Ctrl+C to stop.`);
