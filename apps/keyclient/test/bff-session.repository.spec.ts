// eslint-disable-next-line @nx/enforce-module-boundaries -- test-only: the database is migrated by its owner
import { migrateDatabase } from '@keyserver/data-access';
import { BffSessionRepository } from '../src/session/bff-session.repository';
import { createDatabase } from './harness';
import { asKeyclientRole, SessionTable } from './session-table';

jest.setTimeout(30_000);

describe(BffSessionRepository.name, () => {
  let db: SessionTable;
  let drop: () => Promise<void>;
  let repo: BffSessionRepository;
  const t0 = new Date('2026-11-29T10:00:00.000Z');
  const at = (minutes: number) => new Date(t0.getTime() + minutes * 60_000);

  beforeAll(async () => {
    const created = await createDatabase();
    drop = created.drop;
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

  it('refuses a duplicate id with the conflict code', async () => {
    await session('e'.repeat(64));
    await expect(session('e'.repeat(64))).rejects.toMatchObject({ code: 'conflict' });
  });
});
