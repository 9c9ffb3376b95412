// eslint-disable-next-line @nx/enforce-module-boundaries -- test-only: the database is migrated by its owner
import { migrateDatabase } from '@keyserver/data-access';
import { createServer, type Server, type Socket } from 'node:net';
import { BffSessionRepository, isSessionStoreUnavailable, SessionStoreError } from '../src/session/bff-session.repository';
import { createDatabase } from './harness';
import { asKeyclientRole, SessionTable } from './session-table';

jest.setTimeout(30_000);

describe(BffSessionRepository.name, () => {
  let db: SessionTable;
  let drop: () => Promise<void>;
  let repo: BffSessionRepository;
  let url: string;
  const t0 = new Date('2026-11-29T10:00:00.000Z');
  const at = (minutes: number) => new Date(t0.getTime() + minutes * 60_000);

  beforeAll(async () => {
    const created = await createDatabase();
    drop = created.drop;
    url = created.url;
    await migrateDatabase(created.url);
    db = new SessionTable(created.url);
    // As in production: the repository connects as the keyclient's role.
    repo = new BffSessionRepository(asKeyclientRole(created.url), { poolSize: 2 });
  });

  afterAll(async () => {
    await repo?.close();
    await db?.close();
    await drop?.();
  });

  function session(id: string, over: Partial<Parameters<BffSessionRepository['create']>[0]> = {}) {
    return repo.create({
      id,
      tid: 'tid',
      oid: 'oid',
      displayName: 'Ada',
      username: null,
      tokenCiphertext: Buffer.from([1, 2, 3]),
      accessTokenExpiresAt: at(60),
      createdAt: t0,
      idleExpiresAt: at(30),
      absoluteExpiresAt: at(480),
      ...over,
    });
  }

  it('returns plain records with Buffers and finds only sessions before both deadlines', async () => {
    const created = await session('a'.repeat(64));
    expect(Buffer.isBuffer(created.tokenCiphertext)).toBe(true);
    expect(created.lastSeenAt).toEqual(t0);
    expect((await repo.findActive(created.id, at(29)))?.displayName).toBe('Ada');
    expect(await repo.findActive(created.id, at(30))).toBeNull();
    await repo.touch(created.id, at(29), at(59));
    expect(await repo.findActive(created.id, at(58))).not.toBeNull();
    await repo.setDeadlines(created.id, { absoluteExpiresAt: at(40) });
    expect(await repo.findActive(created.id, at(41))).toBeNull();
  });

  it('replaces tokens only when the stored ciphertext is the expected one (compare-and-set)', async () => {
    const s = await session('b'.repeat(64));
    expect(await repo.replaceTokens(s.id, Buffer.from([9]), Buffer.from([4]), at(90))).toBe(false);
    expect(await repo.replaceTokens(s.id, Buffer.from([1, 2, 3]), Buffer.from([4, 5]), at(90))).toBe(true);
    expect(await repo.replaceTokens(s.id, Buffer.from([1, 2, 3]), Buffer.from([6]), at(95))).toBe(false);
    const now = await repo.findActive(s.id, at(1));
    expect([...now!.tokenCiphertext]).toEqual([4, 5]);
    expect(now!.accessTokenExpiresAt).toEqual(at(90));
  });

  it('deletes one session and sweeps expired ones', async () => {
    await session('c'.repeat(64), { idleExpiresAt: at(5) });
    await session('d'.repeat(64), { idleExpiresAt: at(500), absoluteExpiresAt: at(500) });
    expect(await repo.delete('d'.repeat(64))).toBe(true);
    expect(await repo.delete('d'.repeat(64))).toBe(false);
    expect(await repo.deleteExpired(at(600))).toBeGreaterThanOrEqual(1);
    expect(await db.prisma.bffSession.count()).toBe(0);
    await expect(repo.ping()).resolves.toBeUndefined();
  });

  it('keeps the newest sessions of one user up to the cap, never the one just created, never another user\'s', async () => {
    const mine = { tid: 'tid-cap', oid: 'oid-cap' };
    for (const [n, minute] of [['1', 1], ['2', 2], ['3', 3]] as const) await session(n.repeat(64), { ...mine, createdAt: at(minute) });
    await session('9'.repeat(64), { tid: 'tid-cap', oid: 'someone-else', createdAt: at(0) });
    // Created by a replica whose clock is behind: still kept, it is the session the user just signed in with.
    await repo.create(
      { id: '0'.repeat(64), ...mine, displayName: null, username: null, tokenCiphertext: Buffer.from([1]), accessTokenExpiresAt: at(60), createdAt: at(0), idleExpiresAt: at(30), absoluteExpiresAt: at(480) },
      { keepPerIdentity: 2 },
    );
    const left = (await db.prisma.bffSession.findMany()).filter((r) => r.tid === 'tid-cap').map((r) => r.id[0]).sort();
    expect(left).toEqual(['0', '3', '9']);
  });

  it('refuses a duplicate id with the conflict code', async () => {
    await session('e'.repeat(64));
    await expect(session('e'.repeat(64))).rejects.toMatchObject({ code: 'conflict' });
  });

  // A database restart or failover (ADR 0026, docs/scaling.md): every statement fails with one retryable code, never
  // a raw driver error the filter would answer 500 with, and the pool keeps no connection to a server that cannot write.
  const codeOf = (p: Promise<unknown>) =>
    p.then(
      () => 'ok',
      (err: unknown) => (err instanceof SessionStoreError ? `${err.status} ${err.code}` : `raw ${(err as Error).message}`),
    );

  it('fail a session database nobody listens on: 503 session_store_unavailable for reads, writes and the probe', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const down = new BffSessionRepository(`postgresql://keyserver_keyclient@127.0.0.1:${port}/x`, { poolSize: 1 });
    try {
      expect(await codeOf(down.findActive('f'.repeat(64), t0))).toBe('503 session_store_unavailable');
      expect(await codeOf(down.touch('f'.repeat(64), t0, at(1)))).toBe('503 session_store_unavailable');
      expect(await codeOf(down.ping())).toBe('503 session_store_unavailable');
    } finally {
      await down.close();
    }
  });

  it('fail a proxy that accepts TCP but has no primary behind it: 503 within the connect timeout, not a hang', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((sock) => void sockets.push(sock));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const down = new BffSessionRepository(`postgresql://keyserver_keyclient@127.0.0.1:${port}/x`, { poolSize: 1 });
    try {
      const started = Date.now();
      expect(await codeOf(down.findActive('f'.repeat(64), t0))).toBe('503 session_store_unavailable');
      expect(Date.now() - started).toBeLessThan(8_000);
    } finally {
      await down.close();
      for (const sock of sockets) sock.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it('fail a server that cannot write (a standby, a demoted primary): refused at connect, no connection kept', async () => {
    const u = new URL(asKeyclientRole(url));
    u.searchParams.set('options', '-c default_transaction_read_only=on');
    const standby = new BffSessionRepository(u.href, { poolSize: 2 });
    try {
      expect(await codeOf(standby.findActive('f'.repeat(64), t0))).toBe('503 session_store_unavailable');
      expect(await codeOf(session('f'.repeat(64)).then(() => standby.delete('f'.repeat(64))))).toBe('503 session_store_unavailable');
      expect(standby.pool.totalCount).toBe(0);
    } finally {
      await standby.close();
    }
    // The same database through the ordinary URL still serves: the refusal was about the server, not the data.
    expect(await repo.delete('f'.repeat(64))).toBe(true);
  });

  it.each([
    ['ok connection refused', { code: 'ECONNREFUSED' }, true],
    ['ok connection exception (08006)', { code: '08006' }, true],
    ['ok administrator shutdown (57P01)', { code: '57P01' }, true],
    ['ok read-only transaction (25006)', { code: '25006' }, true],
    ['ok statement_timeout (57014)', { code: '57014' }, true],
    ['ok lock_timeout (55P03)', { code: '55P03' }, true],
    ['ok too many connections (53300)', { code: '53300' }, true],
    ['ok pool connect timeout', new Error('timeout exceeded when trying to connect'), true],
    ['ok connection cut', new Error('Connection terminated unexpectedly'), true],
    ['ok every address refused (AggregateError)', new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })]), true],
    ['ok wrapped in a cause', new Error('outer', { cause: { code: '08001' } }), true],
    ['fail unique violation (23505)', { code: '23505' }, false],
    ['fail permission denied (42501)', { code: '42501' }, false],
    ['fail a conflict of the store', new SessionStoreError('conflict'), false],
    ['fail not an object', 'ECONNREFUSED', false],
  ] as const)('%s', (_name, err, expected) => {
    expect(isSessionStoreUnavailable(err)).toBe(expected);
  });
});
