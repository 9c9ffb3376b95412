import { randomInt } from 'node:crypto';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { Client } from 'pg';
import { parseDatabaseUrl, poolConfig, readTimeoutOf } from './connection';
import { createDb, isDatabaseUnavailable, sqlQuery, sqlTransaction } from './db';
import { DataAccessError } from './errors';
import { runProbe } from '../testing/run-probe';

const PG = 'postgresql://postgres@127.0.0.1:5432/postgres';

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return err instanceof DataAccessError ? `${err.status} ${err.code}` : `other: ${(err as Error).message}`;
  }
}

describe(createDb.name, () => {
  it('answers database_unavailable (503) when PostgreSQL cannot be reached, for queries and transactions', async () => {
    const db = createDb('postgresql://postgres@127.0.0.1:1/nowhere', { poolSize: 1 });
    try {
      const query = db.prisma.subject.findMany().catch((e: unknown) => e);
      const raw = db.prisma.$queryRaw`SELECT 1`.catch((e: unknown) => e);
      const tx = db.transaction(async (t) => t.subject.count()).catch((e: unknown) => e);
      for (const err of await Promise.all([query, raw, tx])) {
        expect(err).toBeInstanceOf(DataAccessError);
        expect((err as DataAccessError).code).toBe('database_unavailable');
        expect((err as DataAccessError).status).toBe(503);
      }
    } finally {
      await db.close();
    }
  });
});

describe('createDb bounds (failover, ADR 0026)', () => {
  it('answers 503 database_unavailable when a statement runs past statement_timeout', async () => {
    const db = createDb(PG, { poolSize: 1, statementTimeoutMs: 200 });
    try {
      expect(await codeOf(db.prisma.$queryRaw`SELECT pg_sleep(2)`)).toBe('503 database_unavailable');
      // The connection stays usable: the server cancelled the statement, not the session.
      expect(await codeOf(db.prisma.$queryRaw`SELECT 1`)).toBe('ok');
    } finally {
      await db.close();
    }
  });

  it('answers 503 database_unavailable when a lock is not granted within lock_timeout', async () => {
    const key = randomInt(1, 2 ** 31);
    const holder = new Client({ connectionString: PG });
    await holder.connect();
    const db = createDb(PG, { poolSize: 1, lockTimeoutMs: 200 });
    try {
      await holder.query('SELECT pg_advisory_lock($1)', [key]);
      const started = Date.now();
      expect(await codeOf(db.prisma.$queryRawUnsafe('SELECT pg_advisory_lock($1)', key))).toBe('503 database_unavailable');
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await holder.end();
      await db.close();
    }
  });

  it('refuses a server that cannot write (target_session_attrs=read-write) and keeps none of its connections', async () => {
    const readOnly = `${PG}?options=${encodeURIComponent('-c default_transaction_read_only=on')}`;
    const db = createDb(readOnly, { poolSize: 2 });
    try {
      expect(await codeOf(db.prisma.$queryRaw`SELECT 1`)).toBe('503 database_unavailable');
      expect(await codeOf(db.transaction(async (t) => t.$queryRaw`SELECT 1`))).toBe('503 database_unavailable');
      expect(db.pool.totalCount).toBe(0);
    } finally {
      await db.close();
    }
    // A read-only tool may ask for any server.
    const any = createDb(`${readOnly}&target_session_attrs=any`, { poolSize: 1 });
    try {
      expect(await codeOf(any.prisma.$queryRaw`SELECT 1`)).toBe('ok');
    } finally {
      await any.close();
    }
  });

  it('answers 503 within the connect timeout when the endpoint accepts TCP but never answers (a proxy with no primary)', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => void sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const db = createDb(`postgresql://postgres@127.0.0.1:${port}/x`, { poolSize: 1, connectTimeoutMs: 300 });
    try {
      const started = Date.now();
      expect(await codeOf(db.prisma.$queryRaw`SELECT 1`)).toBe('503 database_unavailable');
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      await db.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});

/** A TCP proxy to PostgreSQL that can go silent: it keeps the connections open and forwards nothing (a vanished peer, no FIN or RST). */
async function silenceableProxy(): Promise<{ url: string; silence(): void; resume(): void; close(): Promise<void> }> {
  let silent = false;
  const sockets: Socket[] = [];
  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: 5432 });
    sockets.push(client, upstream);
    client.on('data', (d) => void (silent || upstream.write(d)));
    upstream.on('data', (d) => void (silent || client.write(d)));
    for (const s of [client, upstream]) s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    silence: () => void (silent = true),
    resume: () => void (silent = false),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('createDb read timeout (a peer that vanished without FIN or RST, ADR 0026)', () => {
  it.each(['pool query', 'prisma query', 'pool transaction'])('fail %s: 503 database_unavailable within the read timeout, then the pool reconnects', async (kind) => {
    const proxy = await silenceableProxy();
    const db = createDb(proxy.url, { poolSize: 1, readTimeoutMs: 300 });
    try {
      const query = () =>
        kind === 'pool query' ? sqlQuery(db, 'SELECT 1') : kind === 'prisma query' ? db.prisma.$queryRaw`SELECT 1` : sqlTransaction(db, (c) => c.query('SELECT 1'));
      expect(await codeOf(query())).toBe('ok');
      proxy.silence();
      const started = Date.now();
      const hung = new Promise<string>((r) => setTimeout(() => r('still waiting after 4 s'), 4_000).unref());
      expect(await Promise.race([codeOf(query()), hung])).toBe('503 database_unavailable');
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      proxy.resume();
      expect(await codeOf(query())).toBe('ok');
    } finally {
      // The proxy first: its sockets' end fails a query still waiting, which db.close() would wait for.
      await proxy.close();
      await db.close().catch(() => undefined);
    }
  });

  it('ok an idle connection (no query outstanding) outlives the read timeout: it is not a dead peer', async () => {
    const db = createDb(PG, { poolSize: 1, readTimeoutMs: 200 });
    try {
      const r = await sqlTransaction(db, async (c) => {
        const [{ pid }] = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows;
        // The caller holds the connection without a query (an HSM signing mid-transaction), longer than the timeout.
        await new Promise((res) => setTimeout(res, 600));
        return { pid, again: (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid };
      });
      expect(r.again).toBe(r.pid);
    } finally {
      await db.close();
    }
  });
});

describe('createDb when the server ends a connection a transaction holds (failover, kill -9 of the primary)', () => {
  it.each(['prisma transaction', 'pool transaction'])('ok %s: 503 database_unavailable, no crash, and the pool serves the next request', async (kind) => {
    const db = createDb(PG, { poolSize: 1 });
    const admin = new Client({ connectionString: PG });
    await admin.connect();
    try {
      // Between two statements the server goes away: PostgreSQL sends FATAL 57P01 to a connection with no query
      // running, which node-postgres emits as an 'error' event (unhandled, it would end the process).
      const between = async (pid: number) => {
        await admin.query('SELECT pg_terminate_backend($1)', [pid]);
        await new Promise((r) => setTimeout(r, 300));
      };
      const work =
        kind === 'prisma transaction'
          ? db.transaction(async (t) => {
              const [{ pid }] = await t.$queryRaw<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
              await between(pid);
              return t.$queryRaw`SELECT 1`;
            })
          : sqlTransaction(db, async (c) => {
              const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
              await between(pid);
              return c.query('SELECT 1');
            });
      expect(await codeOf(work)).toBe('503 database_unavailable');
      expect(await codeOf(db.prisma.$queryRaw`SELECT 1`)).toBe('ok');
    } finally {
      await admin.end();
      await db.close();
    }
  });
});

describe('queries under load (issue 20: what a young-generation GC promotes)', () => {
  it('ok a pooled client\'s queries die young: < 100 bytes promoted per query, in a process of their own', async () => {
    // testing/gc-probe.ts, run alone (the test runner's own work would be counted and disturbs the GC).
    const probe = await runProbe<{ queries: number; promoted: number; scavenges: number }>(join(__dirname, '../testing/gc-probe.ts'), [PG, '3000']);
    // ~2 bytes per query here; with pg's promise form ~710 (docs/benchmarks.md, ADR 0035).
    expect(probe.scavenges).toBeGreaterThanOrEqual(2);
    expect(probe.promoted / probe.queries).toBeLessThan(100);
  }, 150_000);
});

describe(poolConfig.name, () => {
  it('ok the pool keeps every connection it opened: none is closed for idling, to be reopened in the next burst', () => {
    expect(poolConfig(PG, { poolSize: 7 })).toMatchObject({ max: 7, min: 7 });
    expect(poolConfig(PG)).toMatchObject({ max: 10, min: 10 });
  });

  it('ok no query_timeout: the read timeout is the socket\'s (armReadTimeout)', () => {
    expect(poolConfig(PG)).not.toHaveProperty('query_timeout');
    expect(readTimeoutOf({})).toBe(35_000);
    expect(readTimeoutOf({ statementTimeoutMs: 0 })).toBe(0);
    expect(readTimeoutOf({ statementTimeoutMs: 0, readTimeoutMs: 300 })).toBe(300);
  });

  it('ok sends the server-side timeouts at connect, except to a transaction pooler (which refuses them); the read timeout stays', () => {
    const session = { statement_timeout: 30_000, lock_timeout: 10_000, idle_in_transaction_session_timeout: 60_000 };
    expect(poolConfig(PG)).toMatchObject(session);
    expect(poolConfig(PG, { pooler: 'none' })).toMatchObject(session);
    const pooled = poolConfig(PG, { pooler: 'transaction' });
    for (const name of Object.keys(session)) expect(pooled).not.toHaveProperty(name);
    expect(readTimeoutOf({ pooler: 'transaction' })).toBe(35_000);
  });
});

describe(parseDatabaseUrl.name, () => {
  it.each([
    ['ok one host, read-write by default', 'postgresql://u:p@db:5432/ks', { connectionString: 'postgresql://u:p@db:5432/ks', targetSessionAttrs: 'read-write' }],
    ['ok target_session_attrs removed, other parameters kept', 'postgres://db/ks?sslmode=require&target_session_attrs=any', { connectionString: 'postgres://db/ks?sslmode=require', targetSessionAttrs: 'any' }],
    ['ok explicit read-write', 'postgresql://db/ks?target_session_attrs=read-write', { connectionString: 'postgresql://db/ks', targetSessionAttrs: 'read-write' }],
  ])('%s', (_name, url, expected) => {
    expect(parseDatabaseUrl(url)).toEqual(expected);
  });

  it.each([
    ['fail several hosts', 'postgresql://u@db1:5432,db2:5432/ks?target_session_attrs=read-write'],
    ['fail standby target', 'postgresql://db/ks?target_session_attrs=standby'],
    ['fail not postgres', 'mysql://db/ks'],
  ])('%s', (_name, url) => {
    expect(() => parseDatabaseUrl(url)).toThrow(expect.objectContaining({ code: 'invalid_input' }));
  });
});

describe(isDatabaseUnavailable.name, () => {
  it.each([
    ['ok refused socket', { code: 'ECONNREFUSED' }, true],
    ['ok admin shutdown SQLSTATE', { code: 'P2010', meta: { driverAdapterError: { cause: { originalCode: '57P01' } } } }, true],
    ['ok adapter cause kind', { cause: { kind: 'DatabaseNotReachable' } }, true],
    ['ok write on a server that became a standby', { code: '25006' }, true],
    ['ok statement_timeout', { cause: { originalCode: '57014' } }, true],
    ['ok lock_timeout', { code: '55P03' }, true],
    ['ok pool connect timeout', new Error('timeout exceeded when trying to connect'), true],
    ['ok client read timeout', new Error('Query read timeout'), true],
    ['fail serialization failure', { code: '40001' }, false],
    ['fail unique violation', { code: 'P2002' }, false],
    ['fail plain error', new Error('boom'), false],
  ])('%s', (_name, err, expected) => {
    expect(isDatabaseUnavailable(err)).toBe(expected);
  });
});
