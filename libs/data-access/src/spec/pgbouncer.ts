// Test-only (excluded from the library build): a real PgBouncer in transaction pooling mode in front of the test
// PostgreSQL, so that the pooler switch (ConnectionOptions.pooler, docs/scaling.md) is proven against the real thing.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Client } from 'pg';
import { ADMIN_URL } from '../testing/temp-database';

export interface PgBouncer {
  /** `url` (a database of the test PostgreSQL) through this PgBouncer. */
  through(url: string): string;
  /**
   * Replaces every server connection once its client releases it (the admin console's RECONNECT), as
   * `server_lifetime` or a PgBouncer or PostgreSQL restart does: the sessions that come next start empty. Resolves
   * once a connection to `url` (a database of the test PostgreSQL, as given to `through`) works through it again.
   */
  reconnect(url: string): Promise<void>;
  stop(): Promise<void>;
}

/** The pgbouncer binary: $PGBOUNCER, then PATH and the sbin directories (Debian installs it in /usr/sbin). */
export function pgbouncerBinary(): string {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'].filter(Boolean);
  const found = process.env['PGBOUNCER'] ?? dirs.map((d) => join(d, 'pgbouncer')).find((p) => existsSync(p));
  if (!found || !existsSync(found)) {
    throw new Error('pgbouncer is not installed: these tests need a real one (apt-get install pgbouncer, or PGBOUNCER=/path/to/pgbouncer)');
  }
  return found;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Starts PgBouncer on a free loopback port, pool_mode = transaction, in front of the test PostgreSQL: at most
 * `poolSize` server connections per database and user, so several client connections really share them.
 */
export async function startPgBouncer(o: { poolSize?: number } = {}): Promise<PgBouncer> {
  const binary = pgbouncerBinary();
  const upstream = new URL(ADMIN_URL);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ks-pgbouncer-'));
  const user = decodeURIComponent(upstream.username || 'postgres');
  writeFileSync(join(dir, 'users.txt'), `"${user}" "${decodeURIComponent(upstream.password)}"\n`);
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=${upstream.hostname || '127.0.0.1'} port=${upstream.port || '5432'}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(dir, 'users.txt')}`,
      'pool_mode = transaction',
      `admin_users = ${user}`,
      `default_pool_size = ${o.poolSize ?? 2}`,
      'max_client_conn = 200',
      // Hand out server connections in turn rather than the most recently used first (LIFO, which a lightly loaded
      // test would otherwise meet on one server session): consecutive transactions meet different sessions.
      'server_round_robin = 1',
      // A failed server login makes PgBouncer refuse every client for server_login_retry (15 s by default): CI saw one
      // right after RECONNECT under load. Retry after 1 s instead; reconnect() waits until a login works again.
      'server_login_retry = 1',
      // PgBouncer refuses to run as root; CI containers run the tests as root.
      ...(process.getuid?.() === 0 ? ['user = nobody'] : []),
    ].join('\n') + '\n',
  );
  chmodSync(dir, 0o755);
  const child = spawn(binary, [join(dir, 'pgbouncer.ini')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pgbouncer did not start within 10 s: ${log}`)), 10_000);
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      if (/listening on 127\.0\.0\.1/.test(log)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`pgbouncer exited (${code}): ${log}`));
    });
  });
  const through = (url: string): string => {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    u.port = String(port);
    return u.toString();
  };
  return {
    through,
    reconnect: async (url) => {
      const admin = new Client({ connectionString: `postgresql://${encodeURIComponent(user)}@127.0.0.1:${port}/pgbouncer` });
      await admin.connect();
      try {
        await admin.query('RECONNECT');
      } finally {
        await admin.end();
      }
      // The next server logins happen now: wait until one through PgBouncer works (see server_login_retry).
      const until = Date.now() + 10_000;
      for (;;) {
        const probe = new Client({ connectionString: through(url) });
        try {
          await probe.connect();
          await probe.query('SELECT 1');
          return;
        } catch (err) {
          if (Date.now() > until) throw err;
          await new Promise((r) => setTimeout(r, 200));
        } finally {
          await probe.end().catch(() => undefined);
        }
      }
    },
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
